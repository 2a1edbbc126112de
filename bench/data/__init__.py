"""Dataset readers, the demo-data generator, preprocessing and the prefetching input stream."""
