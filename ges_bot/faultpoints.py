"""Named points where the reliability suite can stop a running bot deterministically.

This module owns one test-only mechanism: a process whose environment sets ``GES_BOT_FAULT_DIR``
checks, each time it reaches a named point (:func:`reached`), whether the file ``<dir>/arm``
names that point. If it does, the first task of any process to get there creates ``<dir>/hit``
(``O_EXCL``: one process, one task wins) holding its pid and the point, and then parks for good:
the test sees the file and sends SIGKILL, so the kill lands exactly at that point instead of
after a sleep that hopes to hit it. Everything else the process does (other lanes, heartbeats)
carries on until the signal, as it would in a real crash.

Without ``GES_BOT_FAULT_DIR`` (production), :func:`reached` is a dictionary lookup and returns.

The points:

- ``poll.tick``: a poll tick that holds the project's lease and has fetched and diffed, before
  it commits (a replica dying mid-tick);
- ``delivery.claimed``: an outbox row is claimed and has its posting slot, before the Slack call;
- ``delivery.posted``: Slack accepted the post, before the row is marked sent (the crash window);
- ``delivery.pacing``: a claimed row waits for its channel's turn (a burst being paced).
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Final

__all__ = ["POINTS", "reached"]

POINTS: Final = ("poll.tick", "delivery.claimed", "delivery.posted", "delivery.pacing")
_ENV: Final = "GES_BOT_FAULT_DIR"


async def reached(point: str) -> None:
    """Park here for good if the test armed ``point`` and no one has been stopped for it yet."""
    directory = os.environ.get(_ENV)
    if not directory:
        return
    root = Path(directory)
    try:
        armed = (root / "arm").read_text(encoding="utf-8").strip()
    except OSError:
        return
    if armed != point:
        return
    try:
        fd = os.open(root / "hit", os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        return
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(f"{os.getpid()} {point}\n")
    # Parked until SIGKILL; the rest of the process goes on meanwhile.
    await asyncio.Event().wait()
