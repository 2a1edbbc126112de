"""FAKE ``cuda.bindings`` (see tests/fakes/README.md)."""
