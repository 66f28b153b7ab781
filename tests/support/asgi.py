"""Run an ASGI app on a real loopback port inside the test's event loop (re-exported from the package)."""

from ges_bot.loopback import free_port, serve

__all__ = ["free_port", "serve"]
