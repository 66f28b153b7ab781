"""Keeping optional libraries out of a long-running process (``ges-bot run``'s memory).

Some libraries import a heavy optional dependency at import time just because it is installed:
httpx its command-line client (``httpx._main``: click, rich and pygments), Mako — under Alembic —
pygments for HTML tracebacks. The bot uses neither; :func:`absent` makes such an import fail while
the library itself is imported, so the library takes its fallback (httpx a stub ``main``, Mako
plain-text highlighting) and the dependency stays unloaded.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator


@contextlib.contextmanager
def absent(*modules: str) -> Iterator[None]:
    """Inside the block, importing any of ``modules`` (not imported yet) raises ImportError; after
    it they import normally again. Modules already imported are left as they are."""
    marked = [name for name in modules if name not in sys.modules]
    for name in marked:
        sys.modules[name] = None  # type: ignore[assignment]  # None in sys.modules: "cannot be imported"
    try:
        yield
    finally:
        for name in marked:
            if name in sys.modules and sys.modules[name] is None:
                del sys.modules[name]
