"""Upkeep: renew this process's leases, take over expired ones, trim history.

Every ``lease_secs / 3`` the upkeep extends the leases of the fires this process runs and
of the threads it holds (rows on PostgreSQL), takes over the fires whose holder stopped
renewing (a crashed process; never this runtime's own live turns, whose leases may have
lapsed while its event loop stalled) and trims run history; every
:data:`_MEND_EVERY_SECS` it mends the waiting retries whose stored due time no claim can
compare (written by hand). A taken-over fire whose turn runs on a LangGraph server is
recorded as that server run ended, or followed to its end while it goes on; any other is
recorded ``interrupted`` (its retries follow the task's policy as rows), and the server
run it may have become is stopped.

Leases and due times follow each replica's own clock, so the upkeep also compares the
runtime's clock with the database server's (PostgreSQL), at start and every
:data:`_CLOCK_CHECK_SECS`, and warns when they disagree (see :meth:`Upkeep.check_clock`).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Awaitable, Callable
from datetime import timedelta

from ._bridge import TaskExecutorBridge
from ._clock import Clock, SystemClock
from ._logs import Repeats
from ._turns import ServerRun
from .errors import StoreError
from .store import Store

__all__ = ["DIED", "SKEW_FLOOR_SECS", "SKEW_SHARE", "Upkeep", "dead_holders", "process_host"]

logger = logging.getLogger("langgraph_scheduler")

DIED = "the process running this turn stopped before it finished"
STOPPED_RENEWING = "the process running this turn stopped renewing its claim"
_PURGE_EVERY_SECS = 600.0
_MEND_EVERY_SECS = 600.0
"""How often the upkeep mends waiting retries whose due time the claims cannot compare
(:meth:`~.store.Store.mend_retry_times`, a scan of the waiting retries)."""
_INDEXES_EVERY_SECS = 600.0
"""How often a runtime that runs turns checks the store's late indexes again."""
_CLOCK_CHECK_SECS = 60.0
"""How often the runtime's clock is compared with the database's after the start: less
often than the lease upkeep, as clocks drift slowly and a check takes one of the store's
pooled connections, which the lease renewals need."""
SKEW_SHARE = 0.25
"""The share of ``lease_secs`` by which the runtime's clock may differ from the
database's before it is warned about (a lease is renewed every third of it, so a skew of
a quarter leaves room for a late renewal), but never less than :data:`SKEW_FLOOR_SECS`."""
SKEW_FLOOR_SECS = 1.0
"""The least skew warned about, whatever ``lease_secs``: below it, the round trip and the
clocks' own jitter would be taken for skew."""


class Upkeep:
    """Leases and retention for one runtime.

    Args:
        store: tasks and runs.
        bridge: whose in-flight fires to renew, and who tells listeners (None: a
            runtime that runs no turns of its own, whose upkeep only renews the leases of
            the threads it holds and frees those of dead holders).
        clock: the source of "now".
        lease_secs: how long a claim stays valid without renewal.
        history_limit: run records kept per task (None keeps all).
        history_max_age_days: finished run records older than this are purged.
    """

    def __init__(
        self,
        store: Store,
        bridge: TaskExecutorBridge | None,
        *,
        clock: Clock,
        lease_secs: float,
        history_limit: int | None,
        history_max_age_days: float | None,
    ) -> None:
        self.store = store
        self.bridge = bridge
        self.clock = clock
        self.lease_secs = lease_secs
        self.history_limit = history_limit
        self.history_max_age_days = history_max_age_days
        self._next_purge = clock.now()
        self._next_mend = clock.now()
        self._skewed = False
        """Whether the last clock check warned (said once until the clocks agree)."""

    async def recover(self, holders: list[str], *, reason: str = DIED) -> None:
        """Take over the fires of expired claims and those of ``holders``. A turn that
        runs on a server may outlive its process: ended, it is recorded as it ended;
        still going, this runtime follows it to its end as a turn of its own; otherwise
        (a turn run in a process, a server that cannot say) the fire is recorded
        ``interrupted`` and what may still run of it is stopped. The threads
        ``holders`` held are freed at once (all a runtime without a bridge, which runs
        no turns, recovers)."""
        await self.store.free_thread_locks(holders)
        bridge = self.bridge
        if bridge is None:
            return
        now, turns = self.clock.now(), bridge.turns
        if turns is not None and turns.runs_elsewhere:
            orphans = await self.store.expired_server_runs(now=now, holders=holders)
            # Asked together, each bounded: a server that does not answer must not
            # hold up the renewal of this runtime's own leases.
            states = await asyncio.gather(*(turns.orphan_state(r) for r in orphans))
            for record, state in zip(orphans, states, strict=True):
                # The one place that decides. Recorded ``interrupted``, a turn that
                # ended would be retried, and one still going would be cut short and
                # retried: either would run twice. So: ended, recorded as it ended;
                # still going, followed (by a runtime that is stopping, only taken
                # over, and left to the next runtime when its lease lapses); unknown,
                # interrupted below.
                if state is None:
                    continue
                # Taken over first: of runtimes recovering it at once, one goes on.
                taken = await self.store.take_over_run(
                    record.run_id,
                    now=now,
                    holders=holders,
                    holder=bridge.holder,
                    lease_until=self.clock.now() + timedelta(seconds=self.lease_secs),
                )
                if not taken or record.run_id in bridge.in_flight:
                    # Another runtime's now (or recorded); or a turn of this runtime
                    # whose lease lapsed (a stall), which goes on with it renewed.
                    continue
                if isinstance(state, ServerRun):
                    await bridge.follow(record, state)
                else:
                    await bridge.record_orphan(record, state)
        finished = await self.store.interrupt_expired(
            now=now,
            reason=reason,
            holders=holders,
            holder=bridge.holder,
            alive=list(bridge.in_flight),
        )
        for item in finished:
            bridge.settle(item)
        if turns is not None:  # their server runs must not go on alone (at once, bounded)
            await asyncio.gather(*(turns.stop_orphan(item.record) for item in finished))

    async def renew(self) -> None:
        """Extend the leases of the threads this process holds and of its fires; a fire
        whose claim is no longer this process's is no longer treated as its own."""
        until = self.clock.now() + timedelta(seconds=self.lease_secs)
        await self.store.renew_thread_locks(until=until)
        bridge = self.bridge
        if bridge is not None:
            lost = await self.store.renew_leases(
                list(bridge.in_flight), holder=bridge.holder, until=until
            )
            bridge.lost(lost)

    async def tend(self) -> None:
        """Record the fires of lapsed claims, mend the retries no claim would find due
        (every :data:`_MEND_EVERY_SECS`, whatever else is configured), and trim history."""
        now = self.clock.now()
        if self.bridge is None:
            return
        await self.recover([], reason=STOPPED_RENEWING)
        if now >= self._next_mend:
            for due in await self.store.mend_retry_times(now=now):
                self.bridge.on_due(due)  # a timer, or a claim at once for one due now
            self._next_mend = now + timedelta(seconds=_MEND_EVERY_SECS)
        if self.bridge.finished_tasks:  # taken whatever the limit, or it only grows
            finished = set(self.bridge.finished_tasks)
            self.bridge.finished_tasks.clear()
            if self.history_limit is not None:
                await self.store.trim_history(finished, keep=self.history_limit)
        if self.history_max_age_days is not None and now >= self._next_purge:
            try:
                cutoff = now - timedelta(days=self.history_max_age_days)
            except OverflowError:  # before the year 1: no record is that old
                pass
            else:
                await self.store.purge_history(finished_before=cutoff)
            self._next_purge = now + timedelta(seconds=_PURGE_EVERY_SECS)

    async def run(self) -> None:
        """Renewal and the rest of the upkeep, each every ``lease_secs / 3``, until
        cancelled: apart, so that what recording a lapsed claim awaits (a server that is
        slow to answer) never holds up the renewal of this process's own leases; and, on
        the system clock, the clock check every :data:`_CLOCK_CHECK_SECS` (a fake clock's
        tests see no loop of it)."""
        loops = [self._every(self.renew, "lease renewal"), self._every(self.tend, "lease upkeep")]
        if isinstance(self.clock, SystemClock):
            loops.append(self._every(self.check_clock, "clock check", secs=_CLOCK_CHECK_SECS))
        await asyncio.gather(*loops)

    async def check_clock(self) -> None:
        """Compare the runtime's clock with the database server's, allowing for the round
        trip, and warn, naming both times and what it breaks, when they differ by more
        than ``lease_secs`` × :data:`SKEW_SHARE` (at least :data:`SKEW_FLOOR_SECS`):
        once, then once more only after they agreed again (said at INFO). Only the
        system clock is compared (a fake clock is far from the server's on purpose), and
        only on PostgreSQL (SQLite has no clock of its own)."""
        if not isinstance(self.clock, SystemClock):
            return
        before = self.clock.now()
        server = await self.store.server_now()
        after = self.clock.now()
        if server is None:
            return
        # The server read its clock somewhere between ``before`` and ``after``: the
        # skew is at least the distance from its time to that span.
        here = before + (after - before) / 2
        skew = (here - server).total_seconds()  # > 0: this clock is ahead
        least = max((before - server).total_seconds(), (server - after).total_seconds(), 0.0)
        tolerance = max(self.lease_secs * SKEW_SHARE, SKEW_FLOOR_SECS)
        if least > tolerance and not self._skewed:
            self._skewed = True
            if skew > 0:
                harm = (
                    "it takes other replicas' live turns for dead (records them "
                    "interrupted) and fires tasks early"
                )
            else:
                harm = (
                    "other replicas take its live turns for dead (record them "
                    "interrupted) and it fires tasks late"
                )
            logger.warning(
                "this runtime's clock reads %s but the database server's reads %s: "
                "%.3f s %s of it (round trip %.3f s), more than the %g s allowed "
                "(lease_secs=%g × %g, at least %g s). Leases and due times "
                "follow each replica's own clock, so %s. Sync this machine's clock "
                "and the database server's (NTP).",
                here.isoformat(),
                server.isoformat(),
                abs(skew),
                "ahead" if skew > 0 else "behind",
                (after - before).total_seconds(),
                tolerance,
                self.lease_secs,
                SKEW_SHARE,
                SKEW_FLOOR_SECS,
                harm,
            )
        elif least <= tolerance / 2 and self._skewed:  # not back and forth at the edge
            self._skewed = False
            logger.info(
                "this runtime's clock agrees with the database server's again (%.3f s apart)",
                abs(skew),
            )

    async def indexes(self) -> None:
        """Build the store's late indexes (:meth:`Store.build_indexes`) now, then check
        them every :data:`_INDEXES_EVERY_SECS` until cancelled: a build cut short on
        another replica (killed mid-build) leaves an invalid index, which this one drops
        and builds again instead of leaving it to the next start (a check is one catalog
        read; a build in progress elsewhere is left to it). Apart from the other loops: a
        build takes minutes on millions of runs. A failure is logged (a warning the
        first time): until built, only the webhook sweep and the purge of history by age
        read more of ``lgs_runs``."""
        warned = False
        while True:
            try:
                await self.store.build_indexes()
            except StoreError as exc:
                level = logging.INFO if warned else logging.WARNING
                logger.log(
                    level,
                    "the scheduler's indexes could not be built (%s); tried again in %gs",
                    exc,
                    _INDEXES_EVERY_SECS,
                )
                warned = True
            await self.clock.sleep(_INDEXES_EVERY_SECS)

    async def _every(
        self, work: Callable[[], Awaitable[None]], what: str, *, secs: float | None = None
    ) -> None:
        """``work()`` every ``secs`` (default ``lease_secs / 3``): a failure is logged the
        first time, the same failure again once a minute while it lasts (not at every
        pass: every second while a database is away), and the first pass that works
        after it once."""
        interval = max(self.lease_secs / 3, 0.05) if secs is None else secs
        failures = Repeats(self.clock.now)
        while True:
            await self.clock.sleep(interval)
            try:
                await work()
            except Exception as exc:
                if failures.new(str(exc)):
                    logger.warning("%s failed (%s); retrying every %gs", what, exc, interval)
            else:
                if failures.forget():
                    logger.info("%s works again", what)


def process_host() -> str:
    """Where this process's pid means this process, as a holder names it: the host name
    and, on Linux, the PID namespace (containers that share a host name, with the host's
    network, each have their own, where the same pid is another process)."""
    host = socket.gethostname()
    try:
        namespace = os.stat("/proc/self/ns/pid").st_ino
    except OSError:
        return host
    return f"{host}/pid-ns-{namespace}"


def dead_holders(holders: list[str], *, mine: str) -> list[str]:
    """The holders that name a process of this host and PID namespace that no longer
    exists (any other holder is left to its lease)."""
    return [h for h in holders if h != mine and _holder_is_dead(h)]


def _holder_is_dead(holder: str) -> bool:
    host, _, rest = holder.partition(":")
    pid_text = rest.partition(":")[0]
    if host != process_host() or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if pid == os.getpid():
        return False  # another runtime of this process may be alive: its lease will tell
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False
