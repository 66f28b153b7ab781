"""The work the Slack app does after an ack: started as tasks, kept, and drained on stop.

Owns the tasks behind every ``/gesjobs`` answer, button click and Home tab update. bolt is run with
``process_before_response=True`` and each listener only acks and hands its work here, so Slack's
HTTP request is answered the moment ``ack()`` returns. (With ``process_before_response=False``
bolt itself starts the listener as a task and then *polls* every 10 ms for the ack — a floor of
10 ms per ack, and 20 questions at once meant 20 loops waking 100 times a second on the same event
loop as the answers.)

A task is referenced until it ends (the event loop keeps only weak references), an exception is
logged instead of lost, and :meth:`Inflight.drain` lets a stopping bot finish the answers it
acknowledged before it closes the store under them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

__all__ = ["Inflight"]

log = logging.getLogger(__name__)


class Inflight:
    """Tasks started after an ack, referenced until they end."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[None]] = set()

    def __len__(self) -> int:
        return len(self._tasks)

    def spawn(self, work: Coroutine[Any, Any, None], name: str) -> None:
        task = asyncio.create_task(work, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if task.cancelled():
            return
        error = task.exception()
        if error is not None:
            # The handlers answer their own errors; one that escapes is a bug worth its traceback.
            log.error("slack: %s failed", task.get_name(), exc_info=error)

    async def drain(self, timeout_s: float) -> int:
        """Wait up to ``timeout_s`` for the work in flight; cancel what is left and return how many."""
        if not self._tasks:
            return 0
        _, pending = await asyncio.wait(set(self._tasks), timeout=timeout_s)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending, timeout=1.0)
        return len(pending)
