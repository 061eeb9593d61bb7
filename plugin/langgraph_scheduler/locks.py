"""One turn per conversation thread at a time: in this process, and across replicas."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

__all__ = ["AdvisoryThreadLocks", "ThreadBusy", "ThreadLocks"]


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


def _abandon(lock: asyncio.Lock, waiter: asyncio.Future[Any]) -> None:
    if waiter.done() and not waiter.cancelled():
        lock.release()
    else:
        waiter.cancel()


class AdvisoryThreadLocks:
    """One turn per thread across processes: a PostgreSQL session advisory lock per thread.

    The lock lives on a pooled connection held for the turn; a crashed process's locks
    go with its connections.
    """

    _CLASS_ID = 0x4C47  # "LG": the first key of the two-key advisory lock space

    def __init__(self, engine: AsyncEngine, *, poll_secs: float = 0.05) -> None:
        self._engine = engine
        self._poll_secs = poll_secs

    @asynccontextmanager
    async def hold(self, thread_id: str, *, timeout: float | None = None) -> AsyncIterator[None]:
        """Hold the thread's advisory lock; ThreadBusy if not had within ``timeout``."""
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        key = {"c": self._CLASS_ID, "t": thread_id}
        async with self._engine.connect() as conn:
            delay = self._poll_secs
            while True:
                got = await conn.scalar(text("SELECT pg_try_advisory_lock(:c, hashtext(:t))"), key)
                await conn.commit()
                if got:
                    break
                if deadline is not None and loop.time() >= deadline:
                    raise ThreadBusy(thread_id)
                pause = delay if deadline is None else min(delay, max(deadline - loop.time(), 0))
                await asyncio.sleep(pause)
                delay = min(delay * 2, 1.0)
            try:
                yield
            finally:
                try:
                    await conn.execute(text("SELECT pg_advisory_unlock(:c, hashtext(:t))"), key)
                    await conn.commit()
                except BaseException:
                    # Never return a connection still holding the lock to the pool.
                    await conn.invalidate()
                    raise
