"""Failures said once in a while, not at every pass of a loop that keeps meeting them."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime

__all__ = ["REPEAT_LOG_SECS", "Repeats"]

REPEAT_LOG_SECS = 60.0
"""How often a loop that keeps failing the same way says so again."""


class Repeats:
    """The failure messages a loop said lately (within ``secs``): one it meets at every
    pass is logged once per ``secs``, and the first success after any of them can be
    said once too (see :meth:`forget`).

    Args:
        now: the time the loop runs by (the runtime's clock, so that a test moving a
            fake clock moves this too); None: the running event loop's.
        secs: how long a message said stays said.
    """

    def __init__(
        self, now: Callable[[], datetime] | None = None, *, secs: float = REPEAT_LOG_SECS
    ) -> None:
        self.secs = secs
        self._now = now
        self._said: dict[str, float] = {}

    def new(self, message: str) -> bool:
        """True when ``message`` was not said within ``secs`` (it counts as said now)."""
        now = asyncio.get_running_loop().time() if self._now is None else self._now().timestamp()
        # A clock set back makes what was said "later than now": said long enough ago.
        self._said = {said: at for said, at in self._said.items() if 0 <= now - at < self.secs}
        if message in self._said:
            return False
        self._said[message] = now
        return True

    def forget(self) -> bool:
        """Forget what was said (the failure is over); True when anything was."""
        said = bool(self._said)
        self._said.clear()
        return said
