"""Keeping optional libraries out of a long-running process (``ges-bot run``'s memory).

Some libraries import a heavy optional dependency at import time just because it is installed:
httpx its command-line client (``httpx._main``: click, rich and pygments), Mako — under Alembic —
pygments for HTML tracebacks. The bot uses neither; :func:`absent` makes such an import fail while
the library itself is imported, so the library takes its fallback (httpx a stub ``main``, Mako
plain-text highlighting) and the dependency stays unloaded.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
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


def defer_package_init(package: str, **eager: tuple[str, ...]) -> None:
    """Import the submodules of ``package`` named in ``eager`` (submodule → the names to bind on
    the package) without running ``package/__init__.py`` yet; the first use of any other name
    of the package runs it (a module ``__getattr__``), so everything it exports still works.

    For ``sqlalchemy.ext.asyncio``: its ``__init__`` also imports ``AsyncSession``, which loads
    the whole ORM (~7 MiB resident), and the store uses only the Core engine. Does nothing when
    the package is imported already (or cannot be found: the ordinary import then decides)."""
    if package in sys.modules:
        return
    spec = importlib.util.find_spec(package)
    if spec is None or spec.loader is None or spec.submodule_search_locations is None:
        return
    module = importlib.util.module_from_spec(spec)
    loader = spec.loader

    def run_init(name: str) -> object:
        if importlib.util.find_spec(f"{package}.{name}") is not None:
            # A submodule not imported yet (``from . import exc`` asks first): "no such
            # attribute" lets the import system load it, as it would for a plain package.
            raise AttributeError(name)
        # The package's own __init__, in this same namespace (the eager submodules are cached).
        delattr(module, "__getattr__")
        loader.exec_module(module)
        return getattr(module, name)

    setattr(module, "__getattr__", run_init)  # noqa: B010  # a module __getattr__ (PEP 562)
    sys.modules[package] = module
    parent, _, child = package.rpartition(".")
    if parent:
        setattr(importlib.import_module(parent), child, module)
    for submodule, names in eager.items():
        loaded = importlib.import_module(f"{package}.{submodule}")
        for name in names:
            setattr(module, name, getattr(loaded, name))
