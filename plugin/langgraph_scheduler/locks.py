"""One turn per conversation thread at a time, within this process."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

__all__ = ["ThreadBusy", "ThreadLocks"]


class ThreadBusy(Exception):
    """The thread stayed busy longer than the caller was willing to wait."""


class ThreadLocks:
    """A lock per thread id, created on demand and dropped when nobody holds or waits."""

    def __init__(self) -> None:
        self._locks: dict[str, asyncio.Lock] = {}
        self._users: dict[str, int] = {}

    def busy(self, thread_id: str) -> bool:
        lock = self._locks.get(thread_id)
        return lock is not None and lock.locked()

    @asynccontextmanager
    async def hold(self, thread_id: str, *, timeout: float | None = None) -> AsyncIterator[None]:
        """Hold the thread's lock; ``timeout=0`` fails at once if busy.

        Raises:
            ThreadBusy: if the lock was not acquired within ``timeout`` seconds.
        """
        lock = self._locks.setdefault(thread_id, asyncio.Lock())
        self._users[thread_id] = self._users.get(thread_id, 0) + 1
        try:
            await _acquire(lock, thread_id, timeout)
            try:
                yield
            finally:
                lock.release()
        finally:
            self._users[thread_id] -= 1
            if self._users[thread_id] == 0:
                del self._users[thread_id]
                del self._locks[thread_id]


async def _acquire(lock: asyncio.Lock, thread_id: str, timeout: float | None) -> None:
    if timeout is None:
        await lock.acquire()
        return
    if timeout <= 0:
        if lock.locked():
            raise ThreadBusy(thread_id)
        await lock.acquire()
        return
    # Not wait_for: on some Pythons it can time out *after* acquiring, leaking the lock.
    waiter = asyncio.ensure_future(lock.acquire())
    try:
        done, _ = await asyncio.wait({waiter}, timeout=timeout)
    except BaseException:
        _abandon(lock, waiter)
        raise
    if not done:
        _abandon(lock, waiter)
        raise ThreadBusy(thread_id)


def _abandon(lock: asyncio.Lock, waiter: asyncio.Future[bool]) -> None:
    if waiter.done() and not waiter.cancelled():
        lock.release()
    else:
        waiter.cancel()
