"""Webhooks: every finished run record POSTed to HTTP endpoints, signed, retried, recorded.

A runtime given ``webhook=Webhook(...)`` delivers each finished run record to the
webhook's ``url`` and to its task's own ``TaskOptions.webhook_url``. Delivery never holds
up a turn or a claim: records are handed to a background dispatcher, which stores a
``pending`` delivery per (run, URL) in the database, POSTs it with a few requests at a
time, retries failures with jittered exponential backoff on the runtime's clock, and
writes every attempt's outcome to the delivery's row (``runtime.deliveries(run_id)``). A
delivery still pending when its runtime stops, or dies, is taken up by the next runtime
on the same database: delivery is at least once, and receivers dedupe on its id (the
body's ``delivery_id``, which the signature covers).

A record is in memory only between its run's finish and its delivery's row: a runtime
killed in between would lose it, so each runtime keeps a *delivery floor* in the database
(``lgs_delivery_floors``), the earliest finish time of a record it may hold unstored, and
every runtime's sweep queues the finished runs from the lowest floor on that have no
delivery row. What a dead runtime held is delivered by the next sweep of any runtime with
a webhook on the database; no fire or finish statement does anything more for it. A
record a runtime lets go unstored (its intake full, or the database refusing its
deliveries) is left to the sweeps the same way.

The body is a :class:`~.models.WebhookPayload` as JSON. With a ``secret``, each request
carries ``X-LGS-Timestamp`` (Unix seconds) and ``X-LGS-Signature: sha256=<hex>``, the
HMAC-SHA256 of ``"<timestamp>." + body`` under the secret; :func:`verify_signature`
checks it on the receiving side.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import hmac
import logging
import random
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from datetime import datetime, timedelta, timezone
from email.utils import parsedate_to_datetime
from importlib import metadata
from typing import Any

import httpx
from pydantic import ConfigDict, Field, field_validator
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, stop_after_attempt

from ._bridge import retrying
from ._clock import Clock
from ._context import spawn_clean
from ._logs import Repeats
from ._validated import Validated, is_whole
from .models import (
    MAX_DELIVERY_ATTEMPTS,
    DeliveryStatus,
    TaskRunRecord,
    WebhookDelivery,
    WebhookPayload,
    check_header_name,
    check_header_value,
    check_webhook_url,
    redact_url,
    redacted_url_args,
    storable_text,
)
from .store import QueuedDelivery, Store

__all__ = [
    "DELIVERY_HEADER",
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "Webhook",
    "WebhookDelivery",
    "WebhookPayload",
    "sign",
    "verify_signature",
]

logger = logging.getLogger("langgraph_scheduler")

SIGNATURE_HEADER = "X-LGS-Signature"
"""``sha256=<hex>``: HMAC-SHA256 of ``"<timestamp>." + body`` under the webhook secret."""
TIMESTAMP_HEADER = "X-LGS-Timestamp"
"""Unix seconds when the request was signed (part of the signed message)."""
DELIVERY_HEADER = "X-LGS-Delivery"
"""The delivery id, the same for every attempt of one delivery. Not signed: receivers
dedupe on the body's ``delivery_id``, the same id under the signature."""
EVENT_HEADER = "X-LGS-Event"

_RETRYABLE_STATUS = frozenset({408, 425, 429})
"""4xx answers worth trying again (timeouts, too early, rate limits); 5xx always are."""

_MAX_IN_MEMORY = 1_000
"""Deliveries one runtime works on at once (the rest wait in the table)."""

_MAX_INTAKE = 10_000
"""Finished records waiting to be stored as deliveries (the database is down, say)."""

_BATCH = 200
"""Records stored as deliveries per transaction."""

_LEASE_MARGIN_SECS = 30.0
"""How long past its expected next attempt a delivery stays with its runtime."""

_PURGE_EVERY_SECS = 600.0

_FLOOR_MARGIN_SECS = 60.0
"""How far before now a runtime's delivery floor stays: it covers a record's way from its
finish's commit to :meth:`WebhookDispatcher.submit` (the finish's transaction, the plain
event listeners called before it), which the dispatcher cannot see."""

_SWEEP_AFTER_SECS = 5.0
"""How old a finished run is before the sweep queues it (younger ones are the intake's)."""

_CLOCK_SKEW_SECS = 60.0
"""How long past its expiry (on its holder's clock) a floor waits before it is dropped:
runtimes' clocks may differ by this much."""

_ERROR_BODY_CHARS = 200


class Webhook(Validated):
    """Where finished run records are POSTed, how they are signed and retried.

    Pass it to the runtime: ``SchedulerRuntime(graph, webhook=Webhook(url=..., secret=...))``.

    Args:
        url: receives every finished run record of the runtime; None delivers only to the
            tasks' own ``TaskOptions.webhook_url``.
        secret: signs each request (``X-LGS-Signature``); None sends them unsigned.
        headers: extra request headers (an ``Authorization`` for the receiver, say):
            HTTP names and printable ASCII values, each name once whatever its case;
            those each request sets itself (``Accept-Encoding``, ``Content-Type``,
            ``User-Agent``, ``X-LGS-*``...), in any case, are refused.
        timeout_secs: longest one request may take.
        max_attempts: requests made before a delivery is recorded ``failed``.
        backoff_secs: wait before the second attempt; doubled for each further one, plus
            up to ``backoff_secs`` of random jitter.
        max_backoff_secs: longest wait between two attempts.
        max_in_flight: requests in flight at once (per runtime).

    Note:
        With the defaults a delivery is tried 10 times over about 17 minutes. Answers
        2xx count as delivered once their status arrives (the body is not awaited); 408,
        425, 429, 5xx, timeouts without a status and connection errors are retried, not
        sooner than a ``Retry-After`` asks (up to ``max_backoff_secs``); any other
        answer (redirects included: they are not followed) fails the delivery at once.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True)
    """Errors never show what was given: a secret, a header value, a URL's tokens."""
    called = "webhook"

    url: str | None = None
    secret: str | None = Field(default=None, min_length=1, repr=False)
    headers: dict[str, str] = Field(default_factory=dict, repr=False)
    timeout_secs: float = Field(default=10.0, gt=0, le=300)
    max_attempts: int = Field(default=10, ge=1, le=MAX_DELIVERY_ATTEMPTS)
    backoff_secs: float = Field(default=2.0, ge=0)
    max_backoff_secs: float = Field(default=600.0, ge=0)
    max_in_flight: int = Field(default=8, ge=1, le=256)

    @field_validator("url")
    @classmethod
    def _check_url(cls, url: str | None) -> str | None:
        return None if url is None else check_webhook_url(url)

    @field_validator("headers")
    @classmethod
    def _check_headers(cls, headers: dict[str, str]) -> dict[str, str]:
        seen: set[str] = set()
        for name, value in headers.items():
            _check_header(name, value)
            if name.lower() in seen:  # both would be sent: HTTP names ignore case
                raise ValueError(
                    f"header {name.lower()!r} is given twice (header names are "
                    "case-insensitive): give it once"
                )
            seen.add(name.lower())
        return headers

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        return redacted_url_args(super().__repr_args__(), "url")

    def retry_wait(self, failed: int) -> float:
        """The wait after ``failed`` failed attempts: ``backoff_secs`` doubled for each
        attempt after the first, plus random jitter of up to ``backoff_secs``."""
        return self._wait(failed, random.uniform(0, self.backoff_secs))

    def retry_wait_bound(self, failed: int) -> float:
        """The longest :meth:`retry_wait` after ``failed`` failed attempts."""
        return self._wait(failed, self.backoff_secs) if failed > 0 else 0.0

    def _wait(self, failed: int, jitter: float) -> float:
        try:
            wait = self.backoff_secs * 2.0 ** (max(failed, 1) - 1) + jitter
        except OverflowError:
            return self.max_backoff_secs
        return min(wait, self.max_backoff_secs)


_OWN_HEADERS = frozenset(
    name.lower()
    for name in (
        "Accept-Encoding",  # identity: a refusal's body is read, and never inflated
        "Content-Type",
        "Content-Length",
        "Transfer-Encoding",
        "Host",
        "User-Agent",
        EVENT_HEADER,
        DELIVERY_HEADER,
        TIMESTAMP_HEADER,
        SIGNATURE_HEADER,
    )
)
"""Headers each request sets itself."""


def _check_header(name: str, value: str) -> None:
    """Refuse a header no request can carry (the value is never shown: it may be a
    credential)."""
    check_header_name(name)
    if name.lower() in _OWN_HEADERS:
        raise ValueError(f"header {name!r} is set by each webhook request itself")
    check_header_value(name, value)


def sign(body: bytes, secret: str, timestamp: int) -> str:
    """The ``X-LGS-Signature`` value of ``body`` sent at ``timestamp`` (Unix seconds)."""
    message = str(timestamp).encode() + b"." + body
    return "sha256=" + hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def verify_signature(
    body: bytes,
    *,
    secret: str,
    signature: str | bytes | None,
    timestamp: str | bytes | int | None,
    tolerance_secs: float = 300.0,
    now: float | None = None,
) -> bool:
    """Whether a webhook request is authentic and fresh (for receivers in Python).

    Header values may be given as ``str`` or ``bytes`` (raw ASGI headers, say), or None
    when the header is missing. Anything malformed or forged (a missing header, a
    timestamp that is not Unix seconds in ASCII digits without a leading zero, a signature
    that is not ASCII) returns False: it never raises, so a receiver can answer 401 to
    all of them.

    Args:
        body: the raw request body, exactly as received.
        secret: the runtime's ``Webhook.secret``.
        signature: the ``X-LGS-Signature`` header.
        timestamp: the ``X-LGS-Timestamp`` header.
        tolerance_secs: how old (or how far ahead) a request may be; replays of older
            requests are refused.
        now: the receiver's current Unix time (default: its wall clock).

    Example:
        >>> ok = verify_signature(
        ...     request.body,
        ...     secret=SECRET,
        ...     signature=request.headers.get("X-LGS-Signature"),
        ...     timestamp=request.headers.get("X-LGS-Timestamp"),
        ... )
    """
    sent_at = _unix_seconds(timestamp)
    given = _ascii(signature)
    if sent_at is None or given is None:
        return False
    current = time.time() if now is None else now
    if not abs(current - sent_at) <= tolerance_secs:  # a NaN ``now`` is never fresh
        return False
    return hmac.compare_digest(sign(body, secret, sent_at).encode(), given)


_MAX_TIMESTAMP_DIGITS = 15
"""Unix seconds have 10 digits until the year 2286: longer ones are refused unread."""


def _unix_seconds(value: object) -> int | None:
    """A timestamp header's Unix seconds: ASCII digits as :func:`sign` writes them (no
    leading zero: the HMAC covers the header's text), else None."""
    if is_whole(value):
        value = str(value)
    digits = _ascii(value)
    if digits is None or not 0 < len(digits) <= _MAX_TIMESTAMP_DIGITS or not digits.isdigit():
        return None
    seconds = int(digits)
    return seconds if str(seconds).encode() == digits else None


def _ascii(value: object) -> bytes | None:
    """A header value as ASCII bytes; None when it is missing or not ASCII."""
    if isinstance(value, str):
        try:
            return value.encode("ascii")
        except UnicodeEncodeError:
            return None
    if isinstance(value, bytes | bytearray):
        return bytes(value) if bytes(value).isascii() else None
    return None


class _RetryLater(Exception):
    """An attempt failed in a way worth retrying (already recorded)."""


class _Stopping(Exception):
    """The dispatcher is closing: leave the delivery pending for the next runtime."""


class WebhookDispatcher:
    """Delivers finished run records to webhooks, in the background of one runtime
    (made by the runtime when it is given ``webhook=``; not part of the public API).

    :meth:`submit` never blocks: records wait in memory until a background loop stores
    them as pending deliveries (one transaction per batch) and starts their first
    attempts. Each delivery retries on its own, with tenacity's jittered exponential
    backoff sleeping on the runtime's clock, and holds a request slot only while its
    request is in flight. A periodic sweep takes up deliveries nobody holds (left by a
    stopped or dead runtime) and purges finished ones whose run record is gone; a pending
    one whose row cannot be read (written by hand) is recorded failed, unsent, once, as
    are the deliveries of a finished run whose row cannot be read.

    Records wait in memory before they are stored, so the dispatcher keeps its *delivery
    floor* in the database: the earliest ``finished_at`` of a record it may hold unstored
    (the oldest in its intake, or now minus a margin for those on their way to
    :meth:`submit`), written at start and by each sweep, with an expiry a few sweeps
    ahead. Each sweep queues the finished runs without a delivery row from each floor on
    (up to its expiry, and a few seconds before now: fresh runs are the intake's), so what
    a killed runtime held is delivered by the next sweep of any runtime with a webhook on
    the database. A floor past its expiry is dropped once a sweep has covered it; a clean
    stop drops its own. A record let go unstored (the intake full, or the database
    refusing its deliveries) keeps the floor at or below its finish until a sweep has
    queued it.

    Args:
        store: where deliveries are kept.
        webhook: the runtime's webhook settings (URL, secret, retry policy).
        holder: names this runtime's delivery floor.
        clock: the source of "now" (timestamps, leases, backoff sleeps).
        sweep_secs: how often to look for deliveries nobody holds.
        drain_secs: how long :meth:`close` lets attempts in flight finish.
    """

    def __init__(
        self,
        store: Store,
        webhook: Webhook,
        *,
        holder: str,
        clock: Clock,
        sweep_secs: float,
        drain_secs: float,
    ) -> None:
        self.store = store
        self.webhook = webhook
        self.holder = holder
        self.clock = clock
        self.sweep_secs = sweep_secs
        self.drain_secs = drain_secs
        self._store_failures = Repeats(clock.now)
        """The store failures its retries said lately (see :func:`._bridge.retrying`)."""
        self._intake: list[TaskRunRecord] = []
        self._intake_ready = asyncio.Event()
        self._sweep_now = asyncio.Event()
        self._lock = asyncio.Lock()
        """Held by a pass of the intake or the sweep, so a stop never cuts one short."""
        self._slots = asyncio.Semaphore(webhook.max_in_flight)
        self._active: dict[str, asyncio.Task[None]] = {}
        self._unsettled: set[str] = set()
        """Deliveries that stopped while still pending: made due again at close."""
        self._asked_until: dict[str, datetime] = {}
        """When the receivers of this runtime's pending deliveries asked to be tried
        again (``Retry-After``): a delivery left at close is due then, not sooner."""
        self._backlog = False
        self._draining = asyncio.Event()
        """Set when closing begins: no more backoff waits."""
        self._closing = asyncio.Event()
        """Set when the drain time is over: no more attempts."""
        self._loops: list[asyncio.Task[None]] = []
        self._client: httpx.AsyncClient | None = None
        self._next_purge = clock.now()
        self._covered = clock.now() - timedelta(seconds=_FLOOR_MARGIN_SECS)
        """Up to when this runtime's sweeps have queued the runs owed a delivery: its floor
        never passes it, so a sweep goes on where the last one ended, however far apart
        sweeps are (``lease_secs`` may exceed the margin). A record let go unstored pulls
        it back to the record's finish (see :meth:`_let_go`)."""
        self._let_go_count = 0
        """How many records were let go: a sweep during which one was covers nothing."""

    @property
    def _urls(self) -> list[str]:
        """The runtime's own URL, which every run is delivered to (besides its task's)."""
        return [self.webhook.url] if self.webhook.url else []

    # -- lifecycle ------------------------------------------------------------------

    async def start(self) -> None:
        """Write this runtime's delivery floor, open the HTTP client and start the intake
        and sweep loops."""
        try:
            await self._hold_floor(self.clock.now())
        except Exception as exc:
            logger.warning("writing the webhook delivery floor failed (%s); the sweep retries", exc)
        limits = httpx.Limits(
            max_connections=self.webhook.max_in_flight,
            max_keepalive_connections=self.webhook.max_in_flight,
        )
        self._client = httpx.AsyncClient(
            timeout=self.webhook.timeout_secs, limits=limits, follow_redirects=False
        )
        self._loops = [
            spawn_clean(self._intake_loop(), name="langgraph-scheduler-webhook-intake"),
            spawn_clean(self._sweep_loop(), name="langgraph-scheduler-webhook-sweep"),
        ]

    async def close(self) -> None:
        """Store what was submitted, let attempts in flight finish for up to
        ``drain_secs`` (no more backoff waits), then leave the rest pending and due now
        (or when their receiver asked to be tried again), for the next runtime on this
        database."""
        async with self._lock:  # not in the middle of a transaction
            for loop in self._loops:
                loop.cancel()
        await asyncio.gather(*self._loops, return_exceptions=True)
        self._draining.set()
        why = "the database could not be reached while stopping"
        try:
            async with self._lock:
                await self._queue_intake(patience=min(self.drain_secs, 5.0))
        except Exception as exc:
            why = f"storing them failed while stopping ({exc})"
        if self._intake:
            logger.error(
                "%d finished run record(s) were not queued for webhook delivery: %s; the "
                "sweep of the next runtime with a webhook on this database queues them",
                len(self._intake),
                why,
            )
        else:
            try:  # nothing held: no sweep needs to look behind this runtime any more
                await self.store.drop_delivery_floor(self.holder)
            except Exception as exc:
                logger.warning("the webhook delivery floor stays until it expires (%s)", exc)
        if self._active:
            await asyncio.wait(set(self._active.values()), timeout=self.drain_secs)
        self._closing.set()
        for task in list(self._active.values()):
            task.cancel()
        if self._active:
            await asyncio.wait(set(self._active.values()), timeout=5.0)
        try:
            now = self.clock.now()
            left = self._unsettled | set(self._active)
            await self.store.release_deliveries(
                {d: max(now, self._asked_until.get(d, now)) for d in left}
            )
        except Exception as exc:
            logger.warning("pending webhook deliveries stay leased until it expires (%s)", exc)
        if self._client is not None:
            await self._client.aclose()

    # -- intake ---------------------------------------------------------------------

    def submit(self, record: TaskRunRecord) -> None:
        """Queue a finished record for delivery (returns at once)."""
        if len(self._intake) >= _MAX_INTAKE:
            self._let_go(record)
            logger.warning(
                "webhook intake full: run %s is left for a later sweep to queue from the "
                "database (%d records already wait to be stored as deliveries: is the "
                "database down?)",
                record.run_id,
                len(self._intake),
            )
            return
        self._intake.append(record)
        self._intake_ready.set()

    async def _intake_loop(self) -> None:
        while True:
            await self._intake_ready.wait()
            self._intake_ready.clear()
            try:
                async with self._lock:
                    await self._queue_intake(patience=60.0)
            except Exception:
                logger.exception("queueing webhook deliveries failed; retrying at the next sweep")

    async def _queue_intake(self, *, patience: float) -> None:
        """Store the submitted records as pending deliveries and start those claimed
        (the caller holds the lock).

        A batch the database refuses (an error other than being unreachable) is stored
        again record by record, so one record it cannot hold never holds up the others;
        a record refused alone is let go (see :meth:`_let_go`), with an error naming its
        run."""
        alone = 0
        """Records to store one at a time: those of a refused batch."""
        while self._intake:
            size = 1 if alone else _BATCH
            alone = max(alone - 1, 0)
            batch = self._intake[:size]
            del self._intake[:size]
            try:
                claimed = await retrying(
                    "queue webhook deliveries",
                    self._queuer(batch),
                    patience=patience,
                    said=self._store_failures,
                )
            except Exception as exc:
                if len(batch) > 1:
                    logger.warning(
                        "the database refused a batch of %d webhook records (%s): storing "
                        "them one by one",
                        len(batch),
                        exc,
                    )
                    self._intake[:0] = batch
                    alone = len(batch)
                else:
                    self._let_go(batch[0])
                    logger.error(
                        "the database refused the webhook deliveries of run %s (task %s): "
                        "%s; a later sweep tries again from the database",
                        batch[0].run_id,
                        batch[0].task_id,
                        exc,
                    )
                continue
            if claimed is None:  # the database stayed down: keep them for later
                self._intake[:0] = batch
                return
            for item in claimed:
                self._start(item)

    def _queuer(self, batch: list[TaskRunRecord]) -> Callable[[], Awaitable[list[QueuedDelivery]]]:
        async def queue() -> list[QueuedDelivery]:
            now = self.clock.now()
            room = self._room()
            claimed = await self.store.queue_deliveries(
                batch,
                urls=self._urls,
                now=now,
                lease_until=self._lease_until(now, 0),
                limit=room,
            )
            self._backlog = len(claimed) >= room
            return claimed

        return queue

    # -- sweep ----------------------------------------------------------------------

    async def _sweep_loop(self) -> None:
        while True:
            try:
                async with self._lock:
                    await self._sweep()
            except Exception as exc:
                logger.warning("webhook delivery sweep failed (%s); retrying", exc)
            waiter = asyncio.ensure_future(self._sweep_now.wait())
            sleeper = asyncio.ensure_future(self.clock.sleep(self.sweep_secs))
            try:
                await asyncio.wait({waiter, sleeper}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                waiter.cancel()
                sleeper.cancel()
            self._sweep_now.clear()

    async def _sweep(self) -> None:
        now = self.clock.now()
        let_go = self._let_go_count
        await self._hold_floor(now)  # before the intake is stored: it covers the intake
        await self._queue_intake(patience=self.sweep_secs)
        room = self._room()
        if room > 0:
            claimed = await self.store.claim_deliveries(
                now=now, lease_until=self._lease_until(now, 0), limit=room
            )
            self._backlog = len(claimed) >= room
            for item in claimed:
                self._start(item)
        await self._queue_unqueued(now, let_go=let_go)
        if now >= self._next_purge:
            self._next_purge = now + timedelta(seconds=_PURGE_EVERY_SECS)
            await self.store.purge_deliveries()

    # -- floors ---------------------------------------------------------------------

    async def _hold_floor(self, now: datetime) -> None:
        """Write this runtime's floor: the oldest record in its intake, or now minus the
        margin; it expires unless written again within two sweeps (and the margin)."""
        oldest = min((r.finished_at or now for r in self._intake), default=now)
        floor = min(oldest, now - timedelta(seconds=_FLOOR_MARGIN_SECS), self._covered)
        expires_at = now + timedelta(seconds=2 * self.sweep_secs + _FLOOR_MARGIN_SECS)
        await self.store.hold_delivery_floor(
            self.holder, floor=floor, now=now, expires_at=expires_at
        )

    async def _queue_unqueued(self, now: datetime, *, let_go: int) -> None:
        """Queue the finished runs without a delivery row between each floor and its
        expiry (and ``_SWEEP_AFTER_SECS`` before now), then drop the floors past their
        expiry: their spans were covered. A sweep during which a record was let go
        (``let_go``: how many were before it began) covers nothing: the next reads its
        spans again.

        A run another runtime's intake stores at the same time is stored once: a (run,
        URL) already stored is left as it is. A delivered run is never queued again: its
        delivery rows stay as long as its run record does (see
        :meth:`~.store.Store.purge_deliveries`)."""
        floors = await self.store.delivery_floors()
        until = now - timedelta(seconds=_SWEEP_AFTER_SECS)
        for since, upto in _merged((f.floor, min(f.expires_at, until)) for f in floors):
            after: tuple[datetime, str] | None = None
            while True:
                records, after = await self.store.runs_without_deliveries(
                    since=since, until=upto, after=after, limit=_BATCH, urls=self._urls, now=now
                )
                if records:  # those whose task and runtime have no URL get no row
                    logger.debug("queueing %d finished run(s) without a delivery row", len(records))
                    self._intake.extend(records)
                    await self._queue_intake(patience=self.sweep_secs)
                    if self._intake:  # the database went away: the next sweep goes on
                        return
                if after is None:
                    break
        if self._let_go_count != let_go:  # refused, or let go while this sweep read
            return
        self._covered = max(self._covered, until)
        gone = now - timedelta(seconds=_CLOCK_SKEW_SECS)
        for floor in floors:
            if floor.holder != self.holder and floor.expires_at < gone:
                await self.store.drop_delivery_floor(floor.holder, expires_at=floor.expires_at)

    def _let_go(self, record: TaskRunRecord) -> None:
        """Give up holding a record not stored as deliveries (the intake is full, or the
        database refused them): its run is in the database, and this runtime's floor
        stays at or below its finish until a sweep begun after it has queued the runs
        from there on."""
        self._covered = min(self._covered, record.finished_at or self.clock.now())
        self._let_go_count += 1

    # -- delivering -----------------------------------------------------------------

    def _room(self) -> int:
        return max(_MAX_IN_MEMORY - len(self._active), 0)

    def _lease_until(self, now: datetime, attempts: int, asked: float = 0.0) -> datetime:
        """Until when a delivery stays ours: its next attempt's latest start (``asked``
        at the earliest: the wait its receiver asked for), the request's timeout, and a
        margin."""
        hold = max(self.webhook.retry_wait_bound(attempts), asked) + self.webhook.timeout_secs
        return now + timedelta(seconds=hold + _LEASE_MARGIN_SECS)

    def _start(self, item: QueuedDelivery) -> None:
        if item.delivery_id in self._active:
            return
        self._unsettled.discard(item.delivery_id)
        self._asked_until.pop(item.delivery_id, None)
        task = spawn_clean(self._deliver(item), name=f"langgraph-scheduler-webhook-{item.run_id}")
        self._active[item.delivery_id] = task
        task.add_done_callback(lambda _: self._finished(item.delivery_id))

    def _finished(self, delivery_id: str) -> None:
        self._active.pop(delivery_id, None)
        if self._backlog and not self._draining.is_set():
            self._backlog = False
            self._sweep_now.set()  # deliveries wait in the table for the room just freed

    async def _deliver(self, item: QueuedDelivery) -> None:
        webhook = self.webhook
        attempts = item.attempts
        remaining = max(webhook.max_attempts - attempts, 1)
        settled = False
        asked = 0.0
        """The wait the last answer asked for (``Retry-After``)."""

        async def attempt_once() -> None:
            nonlocal attempts, settled, asked
            if self._closing.is_set():
                raise _Stopping
            answer = _Answer()
            async with self._slots:
                if self._closing.is_set():
                    raise _Stopping
                error, retryable = await self._post(item, answer)
            attempts += 1
            asked = self._asked_wait(answer) if retryable else 0.0
            settled = await self._record(item, attempts, error, retryable, asked)

        try:
            async for attempt in AsyncRetrying(
                retry=retry_if_exception_type(_RetryLater),
                stop=stop_after_attempt(remaining),
                wait=self._waiter(item.attempts, lambda: asked),
                sleep=self._sleep,
                reraise=True,
            ):
                with attempt:
                    await attempt_once()
        except (_Stopping, _RetryLater):
            pass  # left pending: released when the dispatcher closes
        except Exception:
            logger.exception(
                "webhook delivery %s to %s failed", item.delivery_id, redact_url(item.url)
            )
        finally:
            if settled:
                self._asked_until.pop(item.delivery_id, None)
            else:
                self._unsettled.add(item.delivery_id)

    def _waiter(self, before: int, asked: Callable[[], float]) -> Callable[[RetryCallState], float]:
        """Tenacity's wait: the backoff goes on doubling from where attempts made before
        this claim (by this runtime or another) left it, and lasts at least as long as
        the last answer ``asked``."""
        return lambda state: max(self.webhook.retry_wait(before + state.attempt_number), asked())

    def _asked_wait(self, answer: _Answer) -> float:
        """The wait a refusal's ``Retry-After`` asks for (delay seconds, or an HTTP
        date on the runtime's clock), at most ``max_backoff_secs``; 0 without one."""
        value = (answer.retry_after or "").strip()
        if value.isascii() and value.isdigit():
            asked = float(value)
        else:
            try:
                when = parsedate_to_datetime(value)
            except (TypeError, ValueError, IndexError, OverflowError):
                return 0.0
            if when.tzinfo is None:
                when = when.replace(tzinfo=timezone.utc)
            asked = (when - self.clock.now()).total_seconds()
        return min(max(asked, 0.0), self.webhook.max_backoff_secs)

    async def _record(
        self,
        item: QueuedDelivery,
        attempts: int,
        error: str | None,
        retryable: bool,
        asked: float = 0.0,
    ) -> bool:
        """Write an attempt's outcome; True once the delivery is settled (delivered,
        failed, or finished by another runtime), else :class:`_RetryLater`."""
        if error is not None:  # a receiver's body or an exception's message
            error = storable_text(error)
        now = self.clock.now()
        status: DeliveryStatus = "failed"
        next_at: datetime | None = None
        if error is None:
            status = "delivered"
        elif retryable and attempts < self.webhook.max_attempts:
            status, next_at = "pending", self._lease_until(now, attempts, asked)
            self._asked_until[item.delivery_id] = now + timedelta(seconds=asked)
        written = await retrying(
            "record a webhook delivery",
            lambda: self.store.record_delivery(
                item.delivery_id,
                status=status,
                attempts=attempts,
                error=error,
                now=now,
                next_attempt_at=next_at,
            ),
            patience=60.0,
            said=self._store_failures,
        )
        if written is False:  # another runtime took it over and finished it
            return True
        if status == "delivered":
            logger.info(
                "run %s delivered to %s (attempt %d)", item.run_id, redact_url(item.url), attempts
            )
        elif status == "failed":
            logger.warning(
                "webhook delivery of run %s to %s failed after %d attempt(s): %s",
                item.run_id,
                redact_url(item.url),
                attempts,
                error,
            )
        else:
            raise _RetryLater(error)
        return True

    async def _sleep(self, secs: float) -> None:
        """Tenacity's backoff wait, on the runtime's clock; cut short by a stop."""
        if self._draining.is_set():
            raise _Stopping
        sleeper = asyncio.ensure_future(self.clock.sleep(secs))
        stopper = asyncio.ensure_future(self._draining.wait())
        try:
            await asyncio.wait({sleeper, stopper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            sleeper.cancel()
            stopper.cancel()
        if self._draining.is_set():
            raise _Stopping

    async def _post(self, item: QueuedDelivery, answer: _Answer) -> tuple[str | None, bool]:
        """POST once, noting what came in ``answer``; returns (None, _) when accepted,
        else (why, whether to retry)."""
        assert self._client is not None
        body = item.body.encode()
        timestamp = int(self.clock.now().timestamp())
        headers = {
            "Accept-Encoding": "identity",  # a refusal's start is read: never inflated
            **self.webhook.headers,
            "Content-Type": "application/json",
            "User-Agent": _USER_AGENT,
            EVENT_HEADER: "run.finished",
            DELIVERY_HEADER: item.delivery_id,
            TIMESTAMP_HEADER: str(timestamp),
        }
        if self.webhook.secret is not None:
            headers[SIGNATURE_HEADER] = sign(body, self.webhook.secret, timestamp)
        try:
            await asyncio.wait_for(
                self._request(item.url, body, headers, answer), self.webhook.timeout_secs
            )
        except asyncio.TimeoutError:
            pass  # the status may have come, and its body not (all of it): see below
        except httpx.LocalProtocolError as exc:  # a request this side cannot send
            return f"{type(exc).__name__}: {exc}".rstrip(": "), False
        except httpx.TransportError as exc:  # connection refused or lost, DNS, timeouts
            if answer.status is None:  # else it was lost in the body: the status holds
                return f"{type(exc).__name__}: {exc}".rstrip(": "), True
        except Exception as exc:  # a URL httpx cannot use, say: trying again will not help
            return f"{type(exc).__name__}: {exc}".rstrip(": "), False
        status, text = answer.status, _snippet(answer.body)
        if status is None:
            return f"no answer within {self.webhook.timeout_secs:g}s", True
        if 200 <= status < 300:
            return None, False
        error = f"HTTP {status}" + (f": {text}" if text else "")
        if 300 <= status < 400:
            return error + " (redirects are not followed: configure the final URL)", False
        return error, status >= 500 or status in _RETRYABLE_STATUS

    async def _request(
        self, url: str, body: bytes, headers: Mapping[str, str], answer: _Answer
    ) -> None:
        """POST, noting in ``answer`` the status as soon as it comes, then (for a
        refusal) the start of its body: a receiver that answers 2xx has accepted, however
        slowly the rest of its answer comes, or never.

        A refusal's body sent compressed is not read: each network chunk of it would be
        inflated whole (a thousandfold for gzip), or fail to decode, for 200 characters.
        """
        assert self._client is not None
        async with self._client.stream("POST", url, content=body, headers=headers) as response:
            answer.status = response.status_code
            answer.retry_after = response.headers.get("Retry-After")
            if 200 <= response.status_code < 300:
                return
            if response.headers.get("Content-Encoding", "identity").strip().lower() != "identity":
                return
            async for chunk in response.aiter_raw():
                answer.body += chunk
                if len(answer.body) >= _ERROR_BODY_CHARS:
                    break


@dataclasses.dataclass
class _Answer:
    """What a receiver answered so far: its status once its headers came, and the start
    of its body."""

    status: int | None = None
    body: bytes = b""
    retry_after: str | None = None
    """Its ``Retry-After`` header."""


def _merged(spans: Iterable[tuple[datetime, datetime]]) -> list[tuple[datetime, datetime]]:
    """Time spans joined where they overlap, in order; empty ones left out."""
    merged: list[tuple[datetime, datetime]] = []
    for start, end in sorted(span for span in spans if span[0] <= span[1]):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def _snippet(raw: bytes) -> str:
    text = raw[:_ERROR_BODY_CHARS].decode("utf-8", errors="replace")
    return " ".join(text.split())


def _version() -> str:
    try:
        return metadata.version("langgraph-scheduler")
    except metadata.PackageNotFoundError:
        return "0"


_USER_AGENT = f"langgraph-scheduler/{_version()}"
