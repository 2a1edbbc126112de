"""Model cards, model definitions, checkpoint loading, fitting and ONNX export (torch only where needed)."""
