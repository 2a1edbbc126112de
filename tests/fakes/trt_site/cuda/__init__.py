"""FAKE ``cuda`` namespace package (see tests/fakes/README.md)."""
