"""A lock file that keeps tests using PostgreSQL apart from the one test that stops the server.

Every fresh test database (``tests/conftest.py``) holds the lock *shared* while it exists; the
database-outage test holds it *exclusively* while it stops and restarts PostgreSQL, so it never
pulls the server from under another test — in this pytest session or in another one started in
the same checkout. Within the exclusive holder's own process, fresh databases skip the lock (it
is already held).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

__all__ = ["LOCK_PATH", "exclusive", "shared"]

LOCK_PATH = Path(tempfile.gettempdir()) / "ges-bot-tests-postgres.lock"
# A second lock makes the exclusive holder a *waiting writer* first: while it waits for the test
# databases in use to go away, no new one may start (without it, parallel pytest-xdist workers that
# keep creating databases would starve the outage test forever).
INTENT_PATH = Path(tempfile.gettempdir()) / "ges-bot-tests-postgres.intent"


class _State:
    held_exclusively = False
    #: Shared holds open in this process: a nested one skips the intent lock, or it would wait for
    #: an exclusive waiter that waits for the outer hold (a deadlock until the timeout).
    shared_depth = 0


def _open(path: Path = LOCK_PATH) -> int:
    return os.open(path, os.O_RDWR | os.O_CREAT, 0o666)


@contextlib.contextmanager
def shared() -> Iterator[None]:
    """Held while a test database exists (waits while the server is being stopped by another test)."""
    if _State.held_exclusively:
        yield
        return
    fd = _open()
    intent = _open(INTENT_PATH)
    try:
        if _State.shared_depth == 0:
            # Pass through the intent lock: blocks only while an exclusive holder waits or holds.
            fcntl.flock(intent, fcntl.LOCK_SH)
        fcntl.flock(fd, fcntl.LOCK_SH)
        os.close(intent)
        intent = -1
        _State.shared_depth += 1
        try:
            yield
        finally:
            _State.shared_depth -= 1
    finally:
        if intent >= 0:
            os.close(intent)
        os.close(fd)


def _lock_by(fd: int, deadline: float, timed_out: str) -> None:
    """Lock ``fd`` exclusively, trying until ``deadline`` (``time.monotonic``): flock has no
    timeout of its own, and a blocking call could not be given up."""
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() > deadline:
                raise TimeoutError(timed_out) from None
            time.sleep(0.2)


@contextlib.contextmanager
def exclusive(timeout: float = 300.0) -> Iterator[None]:
    """Held while PostgreSQL is stopped on purpose; waits up to ``timeout`` for the others."""
    fd = _open()
    intent = _open(INTENT_PATH)
    deadline = time.monotonic() + timeout
    try:
        _lock_by(intent, deadline, f"another test held {INTENT_PATH} for {timeout:.0f}s")
        _lock_by(fd, deadline, f"other tests kept using PostgreSQL for {timeout:.0f}s ({LOCK_PATH})")
        _State.held_exclusively = True
        yield
    finally:
        _State.held_exclusively = False
        os.close(intent)
        os.close(fd)
