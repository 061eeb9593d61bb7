"""Failures said once in a while, not at every pass of a loop that keeps meeting them."""

from __future__ import annotations

import asyncio

__all__ = ["REPEAT_LOG_SECS", "Repeats"]

REPEAT_LOG_SECS = 60.0
"""How often a loop that keeps failing the same way says so again."""


class Repeats:
    """The failure messages a loop said lately (within ``secs`` of the running event
    loop's time): one it meets at every pass is logged once per ``secs``, and the first
    success after any of them can be said once too (see :meth:`forget`)."""

    def __init__(self, secs: float = REPEAT_LOG_SECS) -> None:
        self.secs = secs
        self._said: dict[str, float] = {}

    def new(self, message: str) -> bool:
        """True when ``message`` was not said within ``secs`` (it counts as said now)."""
        now = asyncio.get_running_loop().time()
        self._said = {said: at for said, at in self._said.items() if now - at < self.secs}
        if message in self._said:
            return False
        self._said[message] = now
        return True

    def forget(self) -> bool:
        """Forget what was said (the failure is over); True when anything was."""
        said = bool(self._said)
        self._said.clear()
        return said
