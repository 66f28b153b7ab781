"""A clock of seconds the test moves by hand, for code that takes ``Callable[[], float]``
(``time.monotonic`` in the shell): rate limits, windows, TTLs."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Seconds"]


@dataclass
class Seconds:
    """Calling it gives ``now``; set or add to ``now`` to move time."""

    now: float = 100.0

    def __call__(self) -> float:
        return self.now
