"""Timers for the fires due within a short window; the only user of APScheduler.

A runtime keeps in memory only the instants, within the next ``window_secs``, at which a
task or a retry falls due (a thousand reminders due at 09:00 are one instant), in a heap
behind a single APScheduler job set for the earliest; they are loaded through the
``(state, next_run_at)`` index and refreshed every half window. Task changes made
anywhere reach the timer through the store's change feed. The job only wakes the bridge
(a little before each instant, so the claim is done when the instant comes), which asks
the database what is due: the timer decides when to look, never what runs.
"""

from __future__ import annotations

import asyncio
import heapq
import inspect
import logging
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta, timezone

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.date import DateTrigger

from ._clock import Clock
from ._logs import Repeats
from .store import Store, TaskChange

__all__ = ["DueTimer", "wake_runtime"]

logger = logging.getLogger("langgraph_scheduler")

_TIMERS: dict[str, DueTimer] = {}
"""Live timers by key, so a job needs only a string to find its runtime."""


async def wake_runtime(timer_key: str, due: str) -> None:
    """The APScheduler job function: wake the runtime whose timer is ``timer_key`` for
    the fires due at ``due`` (ISO-8601). Plain-data arguments, so a job never holds a
    graph, a model or a bound method."""
    timer = _TIMERS.get(timer_key)
    if timer is not None:
        timer.fire(datetime.fromisoformat(due))


# APScheduler checks a job function's signature for every job it adds; a precomputed
# signature spares inspect's slow path (the one job is set again after each instant).
wake_runtime.__signature__ = inspect.signature(wake_runtime)  # type: ignore[attr-defined]
_JOB_FUNC = f"{__name__}:wake_runtime"
_NEXT_JOB = "next-due"


class DueTimer:
    """Sets an APScheduler job for each instant within the window at which a fire falls
    due, and wakes the bridge then.

    Args:
        store: where due times are read and changes come from.
        clock: the source of "now".
        window_secs: how far ahead due times are held in memory.
        poll_secs: how often the SQLite change feed polls (PostgreSQL also pushes).
        wake: called with a due instant when it comes (and when a change makes a task
            due at once).
        ahead: how long before each instant to call ``wake`` (the bridge claims then,
            and its turns wait for the instant).
        told: also told every change the feed reports.
    """

    def __init__(
        self,
        store: Store,
        *,
        clock: Clock,
        window_secs: float,
        poll_secs: float,
        wake: Callable[[datetime | None], None],
        ahead: timedelta = timedelta(0),
        told: Callable[[TaskChange], None] | None = None,
    ) -> None:
        self.store = store
        self.clock = clock
        self.window_secs = window_secs
        self.poll_secs = poll_secs
        self._wake = wake
        self.ahead = ahead
        self._told = told
        self.key = uuid.uuid4().hex
        self._scheduler = AsyncIOScheduler(
            timezone=timezone.utc,
            # The one job is set again from inside its own run, often for a time already
            # come: APScheduler still counts that run as an instance, and with a limit of
            # one would skip (and drop) the job for the next instant.
            job_defaults={"coalesce": True, "misfire_grace_time": None, "max_instances": 2**16},
        )
        self._horizon = clock.now()
        self._instants: list[datetime] = []
        self._known: set[datetime] = set()
        self._early: tuple[datetime, asyncio.Task[None]] | None = None
        """An instant whose job came before this runtime's clock reached it, and the
        wait on that clock for it (see :meth:`fire`)."""

    @property
    def pending(self) -> int:
        """How many due instants are held (memory is bounded by the window, not by the
        number of tasks)."""
        return len(self._known)

    def start(self) -> None:
        _TIMERS[self.key] = self
        self._scheduler.start()

    def shutdown(self) -> None:
        _TIMERS.pop(self.key, None)
        if self._early is not None:
            self._early[1].cancel()
            self._early = None
        if self._scheduler.running:
            self._scheduler.shutdown(wait=False)

    def fire(self, due: datetime) -> None:
        """The job came: every instant up to ``due`` has come, and those within ``ahead``
        of now are as good as come; wake the bridge for the latest of them (one claim
        for all) and set the job for the next one.

        APScheduler judges the job's time by the wall clock, and the runtime's clock is
        the one that says what has come (a test's fake clock, say, runs behind the wall
        clock): a job that comes before that clock reaches its instant waits for it on
        that clock. Woken early instead, the bridge would hand the instant straight back
        and the job would come again at once, over and over."""
        now = self.clock.now()
        early = (due - self.ahead - now).total_seconds()
        if early > self.ahead.total_seconds():
            self._fire_later(due, early)
            return
        latest = max(due, now + self.ahead)
        while self._instants and self._instants[0] <= latest:
            come = heapq.heappop(self._instants)
            self._known.discard(come)
            due = max(due, come)
        self._wake(due)
        self._arm()

    def _fire_later(self, due: datetime, secs: float) -> None:
        """Fire for ``due`` after ``secs`` of this runtime's clock (one wait at a time,
        for the earliest such instant; the later ones stay held and their job is set
        again after it)."""
        if self._early is not None and not self._early[1].done():
            if self._early[0] <= due:
                return
            self._early[1].cancel()
        self._early = (due, asyncio.ensure_future(self._when_come(due, secs)))

    async def _when_come(self, due: datetime, secs: float) -> None:
        await self.clock.sleep(secs)
        self._early = None
        self.fire(due)

    def at(self, when: datetime) -> None:
        """Wake the bridge at ``when``: at once if it has come, by the timer if it falls
        within the window, else later (the window load will find it)."""
        now = self.clock.now()
        if when <= now:
            self._wake(when)
            return
        if when > self._horizon and when > now + timedelta(seconds=self.window_secs):
            return
        if when in self._known:
            return
        self._known.add(when)
        heapq.heappush(self._instants, when)
        if self._instants[0] == when:
            self._arm()

    def _arm(self) -> None:
        """Set the one job for the earliest instant held (or drop it when none is)."""
        if not self._instants:
            if self._scheduler.get_job(_NEXT_JOB) is not None:
                self._scheduler.remove_job(_NEXT_JOB)
            return
        earliest = self._instants[0]
        self._scheduler.add_job(
            _JOB_FUNC,
            # A little early: the bridge claims the fires then and starts their turns
            # at the instant itself, not after the claim.
            trigger=DateTrigger(run_date=earliest - self.ahead, timezone=timezone.utc),
            args=[self.key, earliest.isoformat()],
            id=_NEXT_JOB,
            replace_existing=True,
        )

    async def load_window(self) -> int:
        """Set timers for every due instant before now + window; returns how many."""
        until = self.clock.now() + timedelta(seconds=self.window_secs)
        times = await self.store.due_times(until=until)
        for when in times:
            self.at(when)
        self._horizon = until
        return len(times)

    async def on_change(self, change: TaskChange) -> None:
        """A task was created, changed or deleted somewhere: set its timer."""
        if self._told is not None:
            self._told(change)
        if change.state == "active" and change.next_run_at is not None:
            self.at(change.next_run_at)

    async def run(self) -> None:
        """Reload the window every half window and follow the change feed, until
        cancelled; a reload failing the same way is logged once a minute."""
        feed = asyncio.ensure_future(
            self.store.follow_changes(
                self.on_change,
                since=self.clock.now(),
                poll_secs=self.poll_secs,
                sleep=self.clock.sleep,
                now=self.clock.now,
            )
        )
        failures = Repeats(self.clock.now)
        try:
            while True:
                await self.clock.sleep(self.window_secs / 2)
                try:
                    await self.load_window()
                except Exception as exc:
                    if failures.new(str(exc)):
                        logger.warning("loading due times failed (%s); trying again", exc)
                else:
                    if failures.forget():
                        logger.info("loading due times works again")
        finally:
            feed.cancel()
            await asyncio.gather(feed, return_exceptions=True)
