"""Test support: loopback servers and shared helpers (no patching of library internals)."""
