"""The Device interface, device profiles, the adapter registry and the artifact cache."""
