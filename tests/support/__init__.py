"""Builders and fakes shared by tests; no test module imports another."""
