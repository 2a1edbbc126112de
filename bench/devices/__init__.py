"""The Device interface (``base``), device profiles, the registry of device families, the artifact cache,
one package per family (host, tensorrt, imx500, rb5) and the emulation engine."""
