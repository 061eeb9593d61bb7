"""Webhooks, received by a real HTTP server on a loopback port: signed, retried with
backoff, delivered once, recorded, never in the way of turns, and kept across restarts."""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import hashlib
import hmac
import io
import json
import logging
import signal
import socket
import threading
import tracemalloc
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TypeVar

import pytest
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import ValidationError
from rich.console import Console
from sqlalchemy import insert, update
from sqlalchemy.engine import Connection

from langgraph_scheduler import (
    Interval,
    InvalidTask,
    SchedulerRuntime,
    Task,
    TaskOptions,
    TaskRunRecord,
    webhooks,
)
from langgraph_scheduler.models import redact_url
from langgraph_scheduler.store import (
    QueuedDelivery,
    Store,
    deliveries_table,
    open_store,
    runs_table,
    tasks_table,
)
from langgraph_scheduler.testing import FakeClock
from langgraph_scheduler.tools import scheduler_tools
from langgraph_scheduler.views import TaskList, task_json
from langgraph_scheduler.webhooks import (
    DELIVERY_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    Webhook,
    WebhookDelivery,
    WebhookPayload,
    sign,
    verify_signature,
)

from .helpers import (
    FAKE_START,
    SECRET_PATH,
    SECRET_QUERY,
    HeldGraph,
    RunWaiter,
    assert_no_url_secret,
    child_process,
    secret_url,
    shown_url,
    step,
)

SECRET = "s3cret-for-tests"
FAST: dict[str, Any] = {"backoff_secs": 0.01, "max_backoff_secs": 0.05}
"""Backoff in hundredths of a second: retries happen within the test's fraction of a second."""

_T = TypeVar("_T")


# -- a receiver on a loopback port ------------------------------------------------------------


@dataclass(frozen=True)
class Received:
    headers: dict[str, str]
    """Header names in lower case."""
    body: bytes
    answered: int
    """The status the receiver answered with (0: it never answered)."""
    target: str = ""
    """The path and query the request was sent to."""
    lines: tuple[tuple[str, str], ...] = ()
    """Every header line as sent, a name given twice twice."""


class Receiver:
    """A local HTTP server: answers POSTs with the scripted statuses in order (then 200)
    and remembers every request. With ``hang``, it reads each request and never answers
    until closed; with ``stall_body``, it sends each answer's status and headers and holds
    its body back until closed. ``answer`` is the body of every answer (default: a word
    per status), sent with the ``answer_headers`` given."""

    def __init__(
        self,
        statuses: tuple[int, ...] = (),
        *,
        hang: bool = False,
        stall_body: bool = False,
        answer: bytes | None = None,
        answer_headers: dict[str, str] | None = None,
    ) -> None:
        self.requests: list[Received] = []
        self._statuses = list(statuses)
        self._hang = hang
        self._stall_body = stall_body
        self._answer = answer
        self._answer_headers = answer_headers or {}
        self._release = threading.Event()
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                headers = {k.lower(): v for k, v in self.headers.items()}
                with receiver._lock:
                    status = 0 if receiver._hang else (receiver._statuses or [200]).pop(0)
                    lines = tuple(self.headers.items())
                    receiver.requests.append(Received(headers, body, status, self.path, lines))
                if receiver._hang:
                    receiver._release.wait(10)
                    return
                answer = receiver._answer
                if answer is None:
                    answer = b"ok" if status < 300 else b"gone" if status == 410 else b"try later"
                self.send_response(status)
                self.send_header("Content-Length", str(len(answer)))
                for name, value in receiver._answer_headers.items():
                    self.send_header(name, value)
                self.end_headers()
                if receiver._stall_body:
                    self.wfile.flush()
                    receiver._release.wait(10)
                self.wfile.write(answer)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/hooks/scheduler"

    @property
    def accepted(self) -> list[Received]:
        return [r for r in self.requests if 200 <= r.answered < 300]

    def close(self) -> None:
        self._release.set()
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def receivers() -> Iterator[Callable[..., Receiver]]:
    made: list[Receiver] = []

    def make(
        *statuses: int,
        hang: bool = False,
        stall_body: bool = False,
        answer: bytes | None = None,
        answer_headers: dict[str, str] | None = None,
    ) -> Receiver:
        receiver = Receiver(
            statuses,
            hang=hang,
            stall_body=stall_body,
            answer=answer,
            answer_headers=answer_headers,
        )
        made.append(receiver)
        return receiver

    yield make
    for receiver in made:
        receiver.close()


def dead_url() -> str:
    """A loopback URL nobody listens on (connections are refused at once)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/hooks"


async def eventually(check: Callable[[], Awaitable[_T | None]], *, timeout: float = 30.0) -> _T:
    """Poll ``check`` every hundredth of a second until it returns something."""

    async def poll() -> _T:
        while True:
            found = await check()
            if found is not None:
                return found
            await asyncio.sleep(0.01)

    return await asyncio.wait_for(poll(), timeout)


def settled(rt: SchedulerRuntime, run_id: str, count: int = 1) -> Callable[[], Awaitable[Any]]:
    """A check: the run's ``count`` deliveries, once none is pending any more."""

    async def check() -> list[WebhookDelivery] | None:
        found = await rt.deliveries(run_id)
        if len(found) == count and all(d.status != "pending" for d in found):
            return found
        return None

    return check


def signed_by(request: Received, secret: str) -> bool:
    return verify_signature(
        request.body,
        secret=secret,
        signature=request.headers[SIGNATURE_HEADER.lower()],
        timestamp=request.headers[TIMESTAMP_HEADER.lower()],
    )


async def standup(rt: SchedulerRuntime, **kwargs: Any) -> Any:
    return await rt.create_task(
        name="standup",
        schedule=Interval(hours=1),
        trigger="Summarise yesterday",
        thread_id="alice-main",
        owner="alice",
        **kwargs,
    )


# -- delivery -------------------------------------------------------------------------------


async def test_a_finished_run_is_posted_as_signed_json_and_recorded_delivered(
    sqlite_url: str, make_graph: Any, runtime_factory: Any, receivers: Any
) -> None:
    receiver = receivers()
    webhook = Webhook(url=receiver.url, secret=SECRET)
    async with runtime_factory(make_graph("3 notes."), database=sqlite_url, webhook=webhook) as rt:
        task = await standup(rt)
        run = await rt.run_now(task.id)
        (delivery,) = await eventually(settled(rt, run.run_id))

    (request,) = receiver.requests
    assert signed_by(request, SECRET)
    assert not signed_by(request, "another secret")
    tampered = Received(request.headers, request.body.replace(b"3 notes", b"9 notes"), 200)
    assert not signed_by(tampered, SECRET)
    assert request.headers["content-type"] == "application/json"
    assert request.headers["x-lgs-event"] == "run.finished"

    payload = WebhookPayload.model_validate_json(request.body)
    assert payload.run == run and payload.run.summary == "3 notes."
    assert (payload.event, payload.task_name, payload.owner) == ("run.finished", "standup", "alice")
    assert payload.delivery_id == delivery.delivery_id == request.headers[DELIVERY_HEADER.lower()]
    assert (delivery.status, delivery.attempts, delivery.last_error) == ("delivered", 1, None)
    assert (delivery.run_id, delivery.task_id, delivery.url) == (run.run_id, task.id, receiver.url)
    assert delivery.delivered_at is not None and delivery.next_attempt_at is None


async def test_the_signature_is_an_hmac_of_timestamp_and_body_any_receiver_can_check(
    sqlite_url: str, make_graph: Any, runtime_factory: Any, receivers: Any
) -> None:
    receiver = receivers()
    async with runtime_factory(
        make_graph(), database=sqlite_url, webhook=Webhook(url=receiver.url, secret=SECRET)
    ) as rt:
        run = await rt.run_now((await standup(rt)).id)
        await eventually(settled(rt, run.run_id))

    (request,) = receiver.requests
    timestamp = request.headers["x-lgs-timestamp"]
    expected = hmac.new(
        SECRET.encode(), timestamp.encode() + b"." + request.body, hashlib.sha256
    ).hexdigest()
    assert request.headers["x-lgs-signature"] == f"sha256={expected}"
    assert json.loads(request.body)["run"]["run_id"] == run.run_id


async def test_a_receiver_that_fails_twice_then_succeeds_gets_the_record_once(
    sqlite_url: str, make_graph: Any, runtime_factory: Any, receivers: Any
) -> None:
    receiver = receivers(500, 503)
    webhook = Webhook(url=receiver.url, secret=SECRET, **FAST)
    async with runtime_factory(make_graph(), database=sqlite_url, webhook=webhook) as rt:
        run = await rt.run_now((await standup(rt)).id)
        (delivery,) = await eventually(settled(rt, run.run_id))
        await asyncio.sleep(0.2)  # nothing more arrives once it is delivered

    assert [r.answered for r in receiver.requests] == [500, 503, 200]
    assert len(receiver.accepted) == 1
    assert len({r.body for r in receiver.requests}) == 1  # the same body every time
    assert len({r.headers["x-lgs-delivery"] for r in receiver.requests}) == 1
    assert all(signed_by(r, SECRET) for r in receiver.requests)
    assert (delivery.status, delivery.attempts) == ("delivered", 3)
    assert delivery.last_error == "HTTP 503: try later"


async def test_a_refusal_is_not_retried(
    sqlite_url: str, make_graph: Any, runtime_factory: Any, receivers: Any
) -> None:
    receiver = receivers(410)
    webhook = Webhook(url=receiver.url, secret=SECRET, **FAST)
    async with runtime_factory(make_graph(), database=sqlite_url, webhook=webhook) as rt:
        run = await rt.run_now((await standup(rt)).id)
        (delivery,) = await eventually(settled(rt, run.run_id))
        await asyncio.sleep(0.1)

    assert [r.answered for r in receiver.requests] == [410]
    assert (delivery.status, delivery.attempts, delivery.last_error) == (
        "failed",
        1,
        "HTTP 410: gone",
    )


async def test_a_status_is_taken_as_it_arrives_even_if_its_body_never_does(
    sqlite_url: str, make_graph: Any, runtime_factory: Any, receivers: Any
) -> None:
    # A receiver that sent "200 OK" and then held its body back (a slow link, a stream it
    # never ended) was taken as no answer: POSTed again up to max_attempts, then failed.
    # Likewise a refusal whose body never came was retried as if nothing answered.
    accepting, refusing = receivers(stall_body=True), receivers(404, stall_body=True)
    webhook = Webhook(url=accepting.url, secret=SECRET, timeout_secs=5, max_attempts=2, **FAST)
    async with runtime_factory(make_graph(), database=sqlite_url, webhook=webhook) as rt:
        task = await standup(rt, options=TaskOptions(webhook_url=refusing.url))
        run = await rt.run_now(task.id)
        deliveries = await eventually(settled(rt, run.run_id, 2), timeout=30)

    outcomes = {d.url: (d.status, d.attempts, d.last_error) for d in deliveries}
    assert outcomes == {
        accepting.url: ("delivered", 1, None),
        refusing.url: ("failed", 1, "HTTP 404"),
    }
    assert len(accepting.requests) == len(refusing.requests) == 1


async def test_a_redirect_to_another_host_is_not_followed(
    sqlite_url: str, make_graph: Any, runtime_factory: Any, receivers: Any
) -> None:
    elsewhere = receivers()
    redirecting = receivers(307, 302, answer_headers={"Location": elsewhere.url})
    webhook = Webhook(url=redirecting.url, secret=SECRET, **FAST)
    async with runtime_factory(make_graph(), database=sqlite_url, webhook=webhook) as rt:
        run = await rt.run_now((await standup(rt)).id)
        (delivery,) = await eventually(settled(rt, run.run_id))

    assert (delivery.status, delivery.attempts) == ("failed", 1)
    assert delivery.last_error is not None and delivery.last_error.startswith("HTTP 307")
    assert "redirects are not followed" in delivery.last_error
    assert [r.answered for r in redirecting.requests] == [307]
    assert elsewhere.requests == []


async def test_a_status_stands_when_its_body_cannot_be_decoded(
    sqlite_url: str, make_graph: Any, runtime_factory: Any, receivers: Any
) -> None:
    # A receiver whose answer says "Content-Encoding: gzip" over a body that is not gzip
    # (a proxy's error page, say): reading the start of a 503's body raised httpx's
    # DecodingError, which was taken as a request this side cannot send, so a delivery
    # worth retrying failed at once, recorded as "DecodingError" instead of its status.
    gzip = {"Content-Encoding": "gzip"}
    busy = receivers(503, answer=b"not gzip at all", answer_headers=gzip)
    gone = receivers(404, answer=b"not gzip either", answer_headers=gzip)
    webhook = Webhook(url=busy.url, secret=SECRET, **FAST)
    async with runtime_factory(make_graph(), database=sqlite_url, webhook=webhook) as rt:
        task = await standup(rt, options=TaskOptions(webhook_url=gone.url))
        run = await rt.run_now(task.id)
        deliveries = await eventually(settled(rt, run.run_id, 2))

    outcomes = {d.url: (d.status, d.attempts, d.last_error) for d in deliveries}
    assert outcomes == {busy.url: ("delivered", 2, "HTTP 503"), gone.url: ("failed", 1, "HTTP 404")}
    assert [r.answered for r in busy.requests] == [503, 200]
    assert [r.answered for r in gone.requests] == [404]


async def test_a_refusal_compressed_a_thousandfold_is_never_inflated(
    sqlite_url: str, make_graph: Any, runtime_factory: Any, receivers: Any
) -> None:
    # The start of a refusal's body is kept as its error, and it was read decoded: one
    # 64 KiB network chunk of a gzip body of zeros came out as 64 MiB, held twice, for
    # every request in flight. Requests now ask for an uncompressed answer, and a body
    # sent compressed anyway is not read.
    bomb = gzip.compress(bytes(64 * 1024 * 1024), compresslevel=9)
    gone = receivers(410, answer=bomb, answer_headers={"Content-Encoding": "gzip"})
    webhook = Webhook(url=gone.url, secret=SECRET, **FAST)
    async with runtime_factory(make_graph(), database=sqlite_url, webhook=webhook) as rt:
        task = await standup(rt)
        tracemalloc.start()
        try:
            run = await rt.run_now(task.id)
            (delivery,) = await eventually(settled(rt, run.run_id))
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    assert peak < 16 * 1024 * 1024, f"{peak / 1024 / 1024:.0f} MiB allocated at the peak"
    assert (delivery.status, delivery.attempts, delivery.last_error) == ("failed", 1, "HTTP 410")
    (request,) = gone.requests
    assert request.headers["accept-encoding"] == "identity"


async def test_a_request_carries_each_header_once_its_own_accept_encoding_and_the_users(
    sqlite_url: str, make_graph: Any, runtime_factory: Any, receivers: Any
) -> None:
    # A user's lower-case accept-encoding went out beside the request's own identity
    # (it is refused now, see test_headers_no_request_can_carry_are_refused_at_once).
    hook = receivers()
    webhook = Webhook(url=hook.url, headers={"authorization": "Bearer t0k"}, **FAST)
    async with runtime_factory(make_graph(), database=sqlite_url, webhook=webhook) as rt:
        run = await rt.run_now((await standup(rt)).id)
        await eventually(settled(rt, run.run_id))
    (request,) = hook.requests
    names = [name.lower() for name, _ in request.lines]
    assert sorted(set(names)) == sorted(names)
    assert (request.headers["accept-encoding"], request.headers["authorization"]) == (
        "identity",
        "Bearer t0k",
    )


async def test_an_answer_no_database_stores_is_recorded_and_fails_at_once(
    database: str, make_graph: Any, runtime_factory: Any, receivers: Any
) -> None:
    # A NUL in the answer: PostgreSQL refused the record, so the delivery stayed pending
    # and was POSTed again at every lease, whatever the status and max_attempts.
    receiver = receivers(404, 404, answer=b"not \x00 here \xff")
    webhook = Webhook(url=receiver.url, secret=SECRET, max_attempts=2, **FAST)
    async with runtime_factory(make_graph(), database=database, webhook=webhook) as rt:
        run = await rt.run_now((await standup(rt)).id)
        (delivery,) = await eventually(settled(rt, run.run_id))

    assert (delivery.status, delivery.attempts) == ("failed", 1)
    assert delivery.last_error == "HTTP 404: not \ufffd here \ufffd"
    assert len(receiver.requests) == 1


async def test_a_dead_receiver_fails_after_its_attempts_and_turns_go_on(
    sqlite_url: str, make_graph: Any, runtime_factory: Any, runs: RunWaiter
) -> None:
    webhook = Webhook(url=dead_url(), secret=SECRET, max_attempts=3, **FAST)
    async with runtime_factory(make_graph(), database=sqlite_url, webhook=webhook) as rt:
        task = await standup(rt)
        first = await rt.run_now(task.id)
        second = await rt.run_now(task.id)
        (delivery,) = await eventually(settled(rt, first.run_id))
        await eventually(settled(rt, second.run_id))

    assert first.outcome == second.outcome == "success"
    assert (delivery.status, delivery.attempts) == ("failed", 3)
    assert delivery.last_error is not None and "ConnectError" in delivery.last_error
    assert len(runs.records) == 2


async def test_a_receiver_that_never_answers_blocks_no_turn_and_no_fire(
    tmp_path: Any, make_graph: Any, runtime_factory: Any, receivers: Any, runs: RunWaiter
) -> None:
    receiver = receivers(hang=True)
    database = f"sqlite:///{tmp_path / 'scheduler.db'}"
    clock = FakeClock(FAKE_START)
    webhook = Webhook(url=receiver.url, secret=SECRET, timeout_secs=5, max_in_flight=1)
    rt = runtime_factory(
        make_graph(), database=database, clock=clock, webhook=webhook, drain_timeout_secs=0.2
    )
    loop = asyncio.get_running_loop()
    async with rt:
        task = await rt.create_task(name="tick", schedule=Interval(minutes=1), trigger="tick")
        started = loop.time()
        for _ in range(3):  # three scheduled fires while the receiver holds the first POST
            assert await step(rt, clock, 60) == 1
        manual = await rt.run_now(task.id)
        elapsed = loop.time() - started
        await eventually(lambda: _some(receiver.requests))
        stopping = loop.time()
    stopped_in = loop.time() - stopping

    assert elapsed < 3.0, elapsed  # turns never waited for the 5 s request
    assert stopped_in < 2.0, stopped_in
    assert manual.outcome == "success" and len(runs.records) == 4
    assert len(receiver.requests) == 1  # one request in flight at a time (max_in_flight)
    async with SchedulerRuntime(None, database=database, clock=clock) as admin:
        pending = await admin.store.deliveries(status="pending")
    assert len(pending) == 4  # kept for the next runtime, due at once
    assert all(d.next_attempt_at is not None and d.next_attempt_at <= clock.now() for d in pending)


async def _some(items: list[_T]) -> list[_T] | None:
    return list(items) or None


# -- per task and per runtime ---------------------------------------------------------------


async def test_a_tasks_own_url_gets_its_runs_signed_with_the_runtimes_secret(
    sqlite_url: str, make_graph: Any, runtime_factory: Any, receivers: Any
) -> None:
    alice, ops = receivers(), receivers()
    webhook = Webhook(secret=SECRET)  # no runtime-wide URL: the tasks' own only
    async with runtime_factory(make_graph(), database=sqlite_url, webhook=webhook) as rt:
        mine = await standup(rt, options=TaskOptions(webhook_url=alice.url))
        other = await rt.create_task(name="other", schedule=Interval(hours=1), trigger="hi")
        run = await rt.run_now(mine.id)
        quiet = await rt.run_now(other.id)
        (delivery,) = await eventually(settled(rt, run.run_id))
        await asyncio.sleep(0.1)
        assert await rt.deliveries(quiet.run_id) == []
        stored = await rt.get_task(mine.id)

    assert stored.options.webhook_url == alice.url
    assert delivery.url == alice.url and delivery.status == "delivered"
    (request,) = alice.requests
    assert signed_by(request, SECRET)
    assert WebhookPayload.model_validate_json(request.body).run.run_id == run.run_id
    assert ops.requests == []


async def test_a_run_goes_to_the_runtime_url_and_its_tasks_url(
    sqlite_url: str, make_graph: Any, runtime_factory: Any, receivers: Any
) -> None:
    alice, ops = receivers(), receivers()
    webhook = Webhook(url=ops.url, secret=SECRET)
    async with runtime_factory(make_graph(), database=sqlite_url, webhook=webhook) as rt:
        mine = await standup(rt, options=TaskOptions(webhook_url=alice.url))
        same = await rt.create_task(
            name="same url",
            schedule=Interval(hours=1),
            trigger="hi",
            options=TaskOptions(webhook_url=ops.url),
        )
        run = await rt.run_now(mine.id)
        once = await rt.run_now(same.id)
        deliveries = await eventually(settled(rt, run.run_id, count=2))
        await eventually(settled(rt, once.run_id, count=1))  # one delivery per URL

    assert sorted(d.url for d in deliveries) == sorted([alice.url, ops.url])
    assert len(alice.requests) == 1 and len(ops.requests) == 2
    ids = {r.headers["x-lgs-delivery"] for r in [*alice.requests, *ops.requests]}
    assert len(ids) == 3  # each delivery has its own id


async def test_without_a_webhook_nothing_is_sent(
    sqlite_url: str, make_graph: Any, runtime_factory: Any, receivers: Any
) -> None:
    alice = receivers()
    async with runtime_factory(make_graph(), database=sqlite_url) as rt:
        run = await rt.run_now((await standup(rt, options=TaskOptions(webhook_url=alice.url))).id)
        await asyncio.sleep(0.1)
        assert await rt.deliveries(run.run_id) == []
    assert alice.requests == []


# -- time and restarts ----------------------------------------------------------------------


@contextlib.asynccontextmanager
async def fake_clock_run(
    runtime_factory: Any, graph: Any, database: str, receiver: Receiver, **webhook: Any
) -> AsyncIterator[tuple[SchedulerRuntime, FakeClock, TaskRunRecord]]:
    """A runtime on a fake clock, delivering to ``receiver``, and a run it made."""
    clock = FakeClock(FAKE_START)
    hook = Webhook(url=receiver.url, secret=SECRET, **webhook)
    async with runtime_factory(graph, database=database, clock=clock, webhook=hook) as rt:
        yield rt, clock, await rt.run_now((await standup(rt)).id)


async def test_backoff_waits_on_the_runtimes_clock(
    sqlite_url: str, make_graph: Any, runtime_factory: Any, receivers: Any
) -> None:
    receiver = receivers(503)
    async with fake_clock_run(
        runtime_factory, make_graph(), sqlite_url, receiver, backoff_secs=60, max_backoff_secs=60
    ) as (rt, clock, run):
        await eventually(lambda: _some(receiver.requests))
        (waiting,) = await eventually(
            lambda: _attempted(rt, run.run_id)  # the failure is recorded
        )
        await asyncio.sleep(0.1)
        assert len(receiver.requests) == 1  # a minute of the runtime's time has not passed
        await clock.advance(121)
        (delivery,) = await eventually(settled(rt, run.run_id))

    assert waiting.status == "pending" and waiting.last_error == "HTTP 503: try later"
    assert waiting.next_attempt_at is not None and waiting.next_attempt_at > FAKE_START
    assert (delivery.status, delivery.attempts) == ("delivered", 2)
    stamps = [int(r.headers["x-lgs-timestamp"]) for r in receiver.requests]
    assert stamps[0] == int(FAKE_START.timestamp()) and stamps[1] >= stamps[0] + 120


@pytest.mark.parametrize(
    "retry_after", ["120", format_datetime(FAKE_START + timedelta(seconds=120), usegmt=True)]
)
async def test_a_receiver_asking_to_retry_after_a_while_is_not_asked_sooner(
    sqlite_url: str, make_graph: Any, runtime_factory: Any, receivers: Any, retry_after: str
) -> None:
    # A 429 or 503 with "Retry-After: 120" (seconds, or an HTTP date) was retried after
    # the usual backoff (a second here), again and again while the receiver kept saying
    # so, and the delivery failed once its attempts were spent on answers it had given.
    receiver = receivers(429, answer_headers={"Retry-After": retry_after})
    async with fake_clock_run(
        runtime_factory, make_graph(), sqlite_url, receiver, backoff_secs=1, max_backoff_secs=600
    ) as (rt, clock, run):
        (waiting,) = await eventually(lambda: _attempted(rt, run.run_id))
        await clock.advance(60)
        await asyncio.sleep(0.2)
        assert len(receiver.requests) == 1  # the receiver asked for two minutes
        await clock.advance(61)
        (delivery,) = await eventually(settled(rt, run.run_id))

    assert waiting.status == "pending" and waiting.last_error == "HTTP 429: try later"
    assert waiting.next_attempt_at is not None
    assert waiting.next_attempt_at >= FAKE_START + timedelta(seconds=120)
    assert (delivery.status, delivery.attempts) == ("delivered", 2)


async def test_a_delivery_stopped_while_waiting_out_a_retry_after_is_left_due_then(
    sqlite_url: str, make_graph: Any, runtime_factory: Any, receivers: Any
) -> None:
    # A runtime stopping handed such a delivery back due at once, so the next runtime
    # asked the receiver again sooner than it had said.
    receiver = receivers(503, answer_headers={"Retry-After": "120"})
    async with fake_clock_run(
        runtime_factory, make_graph(), sqlite_url, receiver, backoff_secs=1, max_backoff_secs=600
    ) as (rt, clock, run):
        await eventually(lambda: _attempted(rt, run.run_id))
        await clock.advance(30)
    asked = FAKE_START + timedelta(seconds=120)
    clock = FakeClock(FAKE_START + timedelta(seconds=30))
    async with runtime_factory(make_graph(), database=sqlite_url, clock=clock) as later:
        (left,) = await later.deliveries(run.run_id)
    assert (left.status, left.attempts, left.next_attempt_at) == ("pending", 1, asked)
    assert len(receiver.requests) == 1


async def _attempted(rt: SchedulerRuntime, run_id: str) -> list[WebhookDelivery] | None:
    found = await rt.deliveries(run_id)
    return found if found and found[0].attempts >= 1 else None


async def test_a_pending_delivery_survives_a_restart_and_is_delivered_once(
    database: str, make_graph: Any, runtime_factory: Any, receivers: Any
) -> None:
    receiver = receivers(503)
    # A long backoff: the retry is still waiting when the runtime stops.
    webhook = Webhook(url=receiver.url, secret=SECRET, backoff_secs=30, max_backoff_secs=30)
    first = runtime_factory(make_graph(), database=database, webhook=webhook)
    async with first:
        run = await first.run_now((await standup(first)).id)
        await eventually(lambda: _attempted(first, run.run_id))

    second = runtime_factory(make_graph(), database=database, webhook=webhook)
    async with second:
        (delivery,) = await eventually(settled(second, run.run_id))

    assert [r.answered for r in receiver.requests] == [503, 200]
    assert len({r.headers["x-lgs-delivery"] for r in receiver.requests}) == 1
    assert (delivery.status, delivery.attempts) == ("delivered", 2)


async def test_a_run_its_killed_runtime_never_stored_a_delivery_of_is_delivered_once(
    database: str, make_graph: Any, runtime_factory: Any, receivers: Any
) -> None:
    receiver = receivers()
    webhook = Webhook(url=receiver.url, secret=SECRET)
    now = datetime.now(timezone.utc)
    # Runs finished an hour ago, when no runtime had a webhook: they are owed nothing.
    async with runtime_factory(
        make_graph(), database=database, clock=FakeClock(now - timedelta(hours=1))
    ) as before:
        quiet = await before.create_task(
            name="quiet", schedule=Interval(days=1, start=now + timedelta(days=1)), trigger="hi"
        )
        unowed = [await before.run_now(quiet.id) for _ in range(2)]

    # The child's run is recorded; its listener holds the event loop, so the run's
    # delivery is never stored, and the process is killed from outside.
    child = child_process("webhook_child", database, receiver.url)
    try:
        line = await asyncio.wait_for(asyncio.to_thread(child.stdout.readline), 60)  # type: ignore[union-attr]
        assert line.startswith("FINISHED"), (line, child.stderr.read() if child.poll() else "")  # type: ignore[union-attr]
        orphan = line.split()[1]
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(10)
    assert receiver.requests == []

    # Five minutes later, a runtime without a webhook runs a task: owed nothing either.
    async with runtime_factory(
        make_graph(), database=database, clock=FakeClock(now + timedelta(minutes=5))
    ) as between:
        unowed.append(await between.run_now(quiet.id))

    # The next runtime with a webhook starts ten minutes after the crash: the run is
    # found by the dead runtime's delivery floor, not by the margin of its own.
    later = FakeClock(now + timedelta(minutes=10))
    async with runtime_factory(make_graph(), database=database, clock=later, webhook=webhook) as rt:
        (delivery,) = await eventually(settled(rt, orphan), timeout=30)
        untouched = [await rt.deliveries(run.run_id) for run in unowed]
        # The dead runtime's floor, its span covered, is dropped.
        await eventually(lambda: _only_floor_of(rt))

    assert (delivery.status, delivery.attempts) == ("delivered", 1)
    assert [r.headers["x-lgs-delivery"] for r in receiver.requests] == [delivery.delivery_id]
    assert WebhookPayload.model_validate_json(receiver.requests[0].body).run.run_id == orphan
    assert untouched == [[], [], []]


async def _only_floor_of(rt: SchedulerRuntime) -> bool | None:
    floors = await rt.store.delivery_floors()
    return True if [f.holder for f in floors] == [rt.holder] else None


async def test_sweeps_further_apart_than_the_margin_miss_no_run_of_a_replica_without_one(
    database: str, make_graph: Any, runtime_factory: Any, receivers: Any
) -> None:
    # Sweeps come every lease_secs (here 120 s, above the floor's 60-s margin): each goes
    # on where the last ended, so a run of a replica without a webhook, finished just
    # after one sweep, is still found by the next.
    ops = receivers()
    clock = FakeClock(FAKE_START)
    webhook = Webhook(url=ops.url, secret=SECRET)
    slow = {"database": database, "clock": clock, "lease_secs": 120.0}
    w = runtime_factory(make_graph(), webhook=webhook, **slow)
    n = runtime_factory(make_graph(), **slow)
    async with w, n:
        task = await standup(n)
        await clock.advance(10)
        run = await n.run_now(task.id)
        await clock.advance(120)  # w's next sweep
        (delivery,) = await eventually(settled(w, run.run_id), timeout=30)
    assert delivery.status == "delivered"
    assert [WebhookPayload.model_validate_json(r.body).run.run_id for r in ops.requests] == [
        run.run_id
    ]


async def test_the_sweep_of_one_replica_and_the_intake_of_another_store_a_run_once(
    database: str, make_graph: Any, runtime_factory: Any, receivers: Any
) -> None:
    ops, alice = receivers(), receivers()
    clock = FakeClock(FAKE_START)
    webhook = Webhook(url=ops.url, secret=SECRET)
    a = runtime_factory(make_graph(), database=database, clock=clock, webhook=webhook)
    b = runtime_factory(make_graph(), database=database, clock=clock, webhook=webhook)
    async with a, b:
        task = await standup(a, options=TaskOptions(webhook_url=alice.url))
        assert a._webhooks is not None
        async with a._webhooks._lock:  # a's intake cannot store the runs it finishes
            first = [await a.run_now(task.id) for _ in range(3)]
            await clock.advance(31)  # b's sweep: the runs are a few seconds old
            for run in first:
                await eventually(settled(b, run.run_id, count=2))
            second = [await a.run_now(task.id) for _ in range(3)]
            await clock.advance(31)  # b's sweep and a's intake race for these
        for run in first + second:
            await eventually(settled(a, run.run_id, count=2))
        rows = [await a.deliveries(run.run_id) for run in first + second]

    ids = sorted(run.run_id for run in first + second)
    for receiver in (ops, alice):
        sent = [WebhookPayload.model_validate_json(r.body).run.run_id for r in receiver.requests]
        assert sorted(sent) == ids
    assert all(sorted(d.url for d in found) == sorted([ops.url, alice.url]) for found in rows)


async def test_a_stored_url_too_long_for_the_index_holds_up_no_other_delivery(
    database: str, make_graph: Any, runtime_factory: Any, receivers: Any
) -> None:
    ops, alice = receivers(), receivers()
    async with runtime_factory(
        make_graph(), database=database, webhook=Webhook(url=ops.url, secret=SECRET)
    ) as rt:
        bad = await standup(rt, options=TaskOptions(webhook_url=alice.url))
        # Written before URLs were limited in bytes: 1,531 characters, 4,531 bytes, more
        # than a PostgreSQL index row holds. It failed every batch of deliveries with it.
        options = bad.options.model_dump(mode="json") | {
            "webhook_url": alice.url + "/" + "\u754c" * 1500
        }
        written = update(tasks_table).where(tasks_table.c.id == bad.id).values(options=options)
        await rt.store.transaction(lambda conn: conn.execute(written))
        good = await rt.create_task(name="good", schedule=Interval(hours=1), trigger="hi")
        runs = [await rt.run_now(bad.id), await rt.run_now(good.id)]
        found = [await eventually(settled(rt, run.run_id)) for run in runs]
        stored = await rt.get_task(bad.id)

    assert [d.url for (d,) in found] == [ops.url, ops.url]
    assert all(d.status == "delivered" for (d,) in found)
    assert alice.requests == []
    assert stored.problem is None and stored.options.webhook_url is not None  # still fires


async def test_a_record_the_database_refuses_holds_up_no_other(
    postgres_url: str,
    make_graph: Any,
    runtime_factory: Any,
    receivers: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    ops = receivers()
    webhook = Webhook(url=ops.url, secret=SECRET)
    async with runtime_factory(make_graph(), database=postgres_url, webhook=webhook) as rt:
        task = await standup(rt)
        first = await rt.run_now(task.id)
        await eventually(settled(rt, first.run_id))
        # A run id longer than its column: PostgreSQL refuses the record's delivery row,
        # and with it the whole batch it is stored in.
        poison = first.model_copy(update={"run_id": "r" * 100})
        assert rt._webhooks is not None
        rt._webhooks.submit(poison)
        rt._webhooks.submit(first.model_copy(update={"run_id": "another-run"}))
        await eventually(settled(rt, "another-run"))
        later = await rt.run_now(task.id)
        await eventually(settled(rt, later.run_id))

    dropped = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert [r.getMessage() for r in dropped if "r" * 100 in r.getMessage()], caplog.text
    assert "could not be reached" not in caplog.text
    assert len(ops.accepted) == 3


_DELIVERIES_BY_HAND = {
    "sqlite": {"attempts": "'two'", "attempts ": "2.5", "body": "x'00ff'", "url": "x'00ff'",
               "next_attempt_at": "NULL", "next_attempt_at ": "'soon'"},
    "postgresql": {"attempts": "-1", "attempts ": "2147483647", "next_attempt_at": "NULL",
                   "next_attempt_at ": "'infinity'"},
}  # fmt: skip
"""Per backend, values written by hand into a pending delivery's row that no delivery
has (PostgreSQL's columns refuse what is not of their type; an INTEGER holds -1)."""


async def deliveries_by_hand(
    store: Store, rows: list[dict[str, Any]], hand: dict[str, str]
) -> None:
    """Store delivery rows ``d-0``, ``d-1``... and write by hand the n-th of ``hand``'s
    (column, raw SQL value) pairs into ``d-n`` (a column named twice has a space after)."""

    def write(conn: Connection) -> None:
        conn.execute(insert(deliveries_table), rows)
        for n, (column, raw) in enumerate(hand.items()):
            sql = f"UPDATE lgs_deliveries SET {column.strip()} = {raw} WHERE delivery_id = 'd-{n}'"
            conn.exec_driver_sql(sql)

    await store.transaction(write)


async def test_a_pending_delivery_that_cannot_be_read_ends_failed_once(
    database: str,
    make_graph: Any,
    runtime_factory: Any,
    receivers: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # A pending delivery's row written by hand. Its claim handed the values on as read:
    # the delivery failed before or during its request (text attempts, a blob body), or
    # wrote an attempt count its column cannot hold; left pending, it was claimed (and
    # sent) again after every lease, for ever. One with no due time, or one no claim
    # finds due, waited for ever, and a listing of its run's deliveries raised. Now each
    # is recorded failed saying why, logged once, and not sent; the others go on.
    store = open_store(database)
    await store.setup()
    hand = _DELIVERIES_BY_HAND[store.dialect]
    receiver = receivers()
    rows = [
        {"delivery_id": f"d-{n}", "run_id": f"r-{n}", "task_id": "t", "url": receiver.url,
         "body": "{}", "status": "pending", "attempts": 0, "created_at": FAKE_START,
         "next_attempt_at": FAKE_START}
        for n in range(len(hand) + 1)
    ]  # fmt: skip
    runs = [
        {
            "run_id": f"r-{n}",
            "task_id": f"t-{n}",
            "attempt": 1,
            "trigger": "manual",
            "scheduled_for": FAKE_START,
            "started_at": FAKE_START,
            "finished_at": FAKE_START,
            "outcome": "success",
        }
        for n in range(len(hand) + 1)
    ]  # fmt: skip; kept: the purge drops the finished deliveries of runs gone

    try:
        await store.transaction(lambda conn: conn.execute(insert(runs_table), runs))
        await deliveries_by_hand(store, rows, hand)
    finally:
        await store.close()
    good = f"d-{len(hand)}"

    clock = FakeClock(FAKE_START)
    hook = Webhook(url=receiver.url, secret=SECRET)
    async with runtime_factory(make_graph(), database=database, clock=clock, webhook=hook) as rt:
        await eventually(settled(rt, f"r-{len(hand)}"))  # the good one sent, and recorded
        for _ in range(4):  # past every lease: a delivery left pending is claimed again
            await clock.advance(rt.lease_secs * 2)
            await asyncio.sleep(0.05)
        query = "SELECT delivery_id, status, last_error FROM lgs_deliveries"
        stored = await rt.store.transaction(
            lambda conn: {r[0]: (r[1], r[2]) for r in conn.exec_driver_sql(query)}
        )
        listed = [await rt.deliveries(f"r-{n}") for n in range(len(hand) + 1)]

    assert [r.headers["x-lgs-delivery"] for r in receiver.requests] == [good]
    assert stored.pop(good) == ("delivered", None)
    assert [d.status for d in listed.pop()] == ["delivered"]
    assert all(d.status == "failed" for found in listed for d in found)  # where readable
    for n, column in enumerate(hand):
        status, error = stored[f"d-{n}"]
        assert status == "failed"
        assert f"its stored {column.strip()} could not be read" in (error or "")
        said = [r.getMessage() for r in caplog.records if "recorded failed" in r.getMessage()]
        assert len([m for m in said if m.startswith(f"webhook delivery d-{n}:")]) == 1, said


async def test_a_pending_delivery_that_cannot_be_read_takes_no_place_in_a_claim(
    database: str,
) -> None:
    # Pending rows written by hand, due first: each was failed by the claim that read it,
    # in one of its places, so a claim of one place claimed nothing while they lasted.
    # Now they are failed on the way, and the claim's places go to deliveries it can send.
    store = open_store(database)
    await store.setup()
    hand = {
        column: raw
        for column, raw in _DELIVERIES_BY_HAND[store.dialect].items()
        if column.strip() != "next_attempt_at"  # due: read by a claim
    }
    rows = [
        {"delivery_id": f"d-{n}", "run_id": f"r-{n}", "task_id": "t", "url": "https://ops.example/hook",
         "body": "{}", "status": "pending", "attempts": 0, "created_at": FAKE_START,
         "next_attempt_at": FAKE_START + timedelta(seconds=n)}
        for n in range(len(hand) + 2)
    ]  # fmt: skip

    try:
        await deliveries_by_hand(store, rows, hand)
        now = FAKE_START + timedelta(minutes=1)
        lease = now + timedelta(minutes=5)
        first = await store.claim_deliveries(now=now, lease_until=lease, limit=1)
        second = await store.claim_deliveries(now=now, lease_until=lease, limit=1)
        query = "SELECT delivery_id, status FROM lgs_deliveries"
        stored = await store.transaction(
            lambda conn: {r[0]: r[1] for r in conn.exec_driver_sql(query)}
        )
    finally:
        await store.close()

    good = [f"d-{n}" for n in range(len(hand), len(hand) + 2)]
    assert [d.delivery_id for d in first + second] == good
    assert stored == {f"d-{n}": "failed" for n in range(len(hand))} | dict.fromkeys(good, "pending")


_RUNS_BY_HAND = {
    "sqlite": {"outcome": "'bogus'", "trigger": "'bogus'", "attempt": "0", "task_id": "x'ff'",
               "finished_at": f"'{FAKE_START:%Y-%m-%d %H:%M:%S} soon'"},
    "postgresql": {"outcome": "'bogus'", "trigger": "'bogus'", "attempt": "0"},
}  # fmt: skip
"""Per backend, values written by hand into a finished run's row that no record has (on
SQLite, a finish that is no time but sorts as one among the times around it)."""

_FINISHES_NEVER_SWEPT = {"sqlite": "'soon'", "postgresql": "'infinity'"}
"""Per backend, a finish written by hand that is no time and sorts after every time."""


async def test_a_finished_run_that_cannot_be_read_has_its_deliveries_recorded_failed_once(
    database: str, make_graph: Any, receivers: Any, caplog: pytest.LogCaptureFixture
) -> None:
    # Finished runs whose rows were written by hand, and never stored as deliveries (a
    # replica without a webhook ran them). The sweep read them, logged that they cannot
    # be read, and left them without a delivery row, for ever: nothing was sent, nothing
    # recorded. Now each gets a delivery per URL it is owed (the task's own too, if its
    # task can be told) recorded failed, unsent, saying which column, logged once.
    ops, own = receivers(), receivers()
    clock = FakeClock(FAKE_START)
    async with SchedulerRuntime(make_graph(), database=database, clock=clock) as before:
        task = await standup(before, options=TaskOptions(webhook_url=own.url))
        hand = _RUNS_BY_HAND[before.store.dialect]
        never = _FINISHES_NEVER_SWEPT[before.store.dialect]
        runs = [await before.run_now(task.id) for _ in range(len(hand) + 2)]

        def by_hand(conn: Connection) -> None:
            for (column, raw), run in zip(
                [*hand.items(), ("finished_at", never)], runs[:-1], strict=True
            ):
                sql = f"UPDATE lgs_runs SET {column} = {raw} WHERE run_id = '{run.run_id}'"
                conn.exec_driver_sql(sql)

        await before.store.transaction(by_hand)
    *bad, unplaced, good = runs

    await clock.advance(10)
    hook = Webhook(url=ops.url, secret=SECRET)
    async with SchedulerRuntime(make_graph(), database=database, clock=clock, webhook=hook) as rt:
        await eventually(settled(rt, good.run_id, 2))
        for _ in range(3):  # later sweeps: none reads the runs again
            await clock.advance(rt.lease_secs * 2)
            await asyncio.sleep(0.05)
        listed = [await rt.deliveries(run.run_id) for run in bad]
        left = await rt.deliveries(unplaced.run_id)

    sent = [WebhookPayload.model_validate_json(r.body).run.run_id for r in ops.requests]
    assert sent == [good.run_id]
    assert [WebhookPayload.model_validate_json(r.body).run.run_id for r in own.requests] == sent
    for column, found in zip(hand, listed, strict=True):
        urls = [ops.url] if column == "task_id" else [ops.url, own.url]  # own: its task's
        assert sorted(d.url for d in found) == sorted(urls), column
        error = f"its run's stored {column} could not be read (written by hand): not sent"
        assert {(d.status, d.attempts, d.last_error) for d in found} == {("failed", 0, error)}
    for run in bad:
        said = [
            r.getMessage()
            for r in caplog.records
            if r.getMessage().startswith(f"run {run.run_id}: its stored")
        ]
        assert len(said) == 1 and "recorded failed, not sent" in said[0], said
    # A finish that sorts after every time is never between two floors: no sweep reads
    # it, nor can tell whether a runtime with a webhook held the run.
    assert left == []


# -- records the intake lets go ---------------------------------------------------------------


@contextlib.asynccontextmanager
async def deliveries_locked(postgres_url: str) -> AsyncIterator[None]:
    """Another connection holds ``lgs_deliveries`` in SHARE mode (what a ``CREATE INDEX``
    without ``CONCURRENTLY`` holds) until the block ends: reads go on, inserts wait."""
    import psycopg

    async with await psycopg.AsyncConnection.connect(postgres_url) as other:
        await other.execute("LOCK TABLE lgs_deliveries IN SHARE MODE")
        yield
        await other.rollback()


@contextlib.asynccontextmanager
async def deliveries_refused(postgres_url: str) -> AsyncIterator[None]:
    """``lgs_deliveries`` refuses every new row until the block ends (a check no row
    passes, not checked on the rows it holds): the database refuses the inserts, as it
    would a privilege revoked, rather than being out of reach."""
    import psycopg

    async with await psycopg.AsyncConnection.connect(postgres_url, autocommit=True) as admin:
        await admin.execute(
            "ALTER TABLE lgs_deliveries ADD CONSTRAINT lgs_refused CHECK (false) NOT VALID"
        )
        try:
            yield
        finally:
            await admin.execute("ALTER TABLE lgs_deliveries DROP CONSTRAINT lgs_refused")


def left_to_sweep(caplog: pytest.LogCaptureFixture, runs: list[TaskRunRecord]) -> list[str]:
    """The runs the log says were left for a later sweep, once per line naming them."""
    lines = [r.getMessage() for r in caplog.records if "a later sweep" in r.getMessage()]
    return [run.run_id for run in runs for line in lines if run.run_id in line]


async def test_runs_a_full_intake_lets_go_are_delivered_once_by_a_later_sweep(
    postgres_url: str,
    make_graph: Any,
    runtime_factory: Any,
    receivers: Any,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The intake holds 2 records here instead of 10,000, so that a few runs fill it.
    monkeypatch.setattr(webhooks, "_MAX_INTAKE", 2)
    ops = receivers()
    clock = FakeClock(FAKE_START)
    webhook = Webhook(url=ops.url, secret=SECRET)
    async with runtime_factory(
        make_graph(), database=postgres_url, clock=clock, webhook=webhook
    ) as rt:
        task = await standup(rt)
        # The intake's insert waits for the lock; the runs finished meanwhile fill the
        # intake, and those that find it full are let go.
        async with deliveries_locked(postgres_url):
            runs = [await rt.run_now(task.id) for _ in range(6)]
        let_go = left_to_sweep(caplog, runs)
        assert let_go, caplog.text
        for run in runs:
            if run.run_id not in let_go:
                await eventually(settled(rt, run.run_id))
        # Nothing in memory holds the runs let go: they wait in the database alone.
        assert [await rt.deliveries(run_id) for run_id in let_go] == [[] for _ in let_go]
        # The first sweep since comes five minutes later (as after a long outage, which
        # holds sweeps up): past the floor's margin, what the last sweep covered keeps
        # the floor below these runs.
        await clock.advance(300)
        found = [await eventually(settled(rt, run_id)) for run_id in let_go]

    assert all(d.status == "delivered" for (d,) in found)
    sent = [WebhookPayload.model_validate_json(r.body).run.run_id for r in ops.requests]
    assert sorted(sent) == sorted(run.run_id for run in runs)  # each once, none lost


async def test_runs_whose_deliveries_the_database_refuses_for_minutes_are_delivered_after(
    postgres_url: str,
    make_graph: Any,
    runtime_factory: Any,
    receivers: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    ops = receivers()
    clock = FakeClock(FAKE_START)
    webhook = Webhook(url=ops.url, secret=SECRET)
    async with runtime_factory(
        make_graph(), database=postgres_url, clock=clock, webhook=webhook
    ) as rt:
        task = await standup(rt)
        async with deliveries_refused(postgres_url):
            runs = [await rt.run_now(task.id) for _ in range(3)]
            ids = sorted(run.run_id for run in runs)

            async def refused(times: int) -> bool | None:
                return sorted(left_to_sweep(caplog, runs)) == sorted(ids * times) or None

            await eventually(lambda: refused(1))
            # A sweep finds the runs in the database, and the database refuses them again.
            await clock.advance(31)
            await eventually(lambda: refused(2))
        # More than the floor's margin later, the database takes deliveries again.
        await clock.advance(69)
        found = [await eventually(settled(rt, run_id)) for run_id in ids]

    assert all(d.status == "delivered" for (d,) in found)
    sent = [WebhookPayload.model_validate_json(r.body).run.run_id for r in ops.requests]
    assert sorted(sent) == ids


async def test_a_run_let_go_after_a_slow_finish_is_still_swept(
    postgres_url: str,
    runtime_factory: Any,
    make_graph: Any,
    receivers: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # A finish whose write waits for a lock is committed after a sweep has covered its
    # finish time; its run, let go by the intake afterwards, is found by the sweeps all
    # the same: the floor goes back to its finish.
    import psycopg

    # The runtime connects as a role of its own, so that it can lose a privilege.
    role = f"lgs_hooks_{uuid.uuid4().hex[:8]}"
    base, _, name = postgres_url.rpartition("/")
    admin_url = f"{base}/postgres"
    async with await psycopg.AsyncConnection.connect(admin_url, autocommit=True) as admin:
        await admin.execute(f'CREATE ROLE "{role}" LOGIN')
        await admin.execute(f'ALTER DATABASE "{name}" OWNER TO "{role}"')
    held = HeldGraph()
    ops = receivers()
    clock = FakeClock(FAKE_START)
    w = runtime_factory(
        held.graph,
        database=postgres_url.replace("postgres@", f"{role}@", 1),
        clock=clock,
        webhook=Webhook(url=ops.url, secret=SECRET),
    )
    n = runtime_factory(make_graph(), database=postgres_url, clock=clock)  # no webhook
    try:
        async with w, n, await psycopg.AsyncConnection.connect(postgres_url) as other:
            task = await standup(w)
            quiet = await n.create_task(
                name="quiet", schedule=Interval(hours=1), trigger="hi", thread_id="q"
            )
            witness = await n.run_now(quiet.id)  # owed a delivery that w's sweep finds
            await clock.advance(20)
            turn = asyncio.ensure_future(w.run_now(task.id))
            await asyncio.wait_for(held.entered.wait(), 10)
            # The finish's write waits for the run's row, which another transaction holds.
            await other.execute("SELECT 1 FROM lgs_runs WHERE outcome IS NULL FOR UPDATE")
            held.release.set()
            await eventually(lambda: _waiting_for_a_lock(admin_url, name))
            # w's sweep reads past the run's finish time before the run is committed,
            # and queues the witness: the sweep is over once the witness is delivered.
            await clock.advance(11)
            await eventually(settled(w, witness.run_id))
            async with await psycopg.AsyncConnection.connect(
                postgres_url, autocommit=True
            ) as grants:
                # The finish commits; the database refuses the run's deliveries, and
                # the intake lets the run go.
                await grants.execute(f'REVOKE INSERT ON lgs_deliveries FROM "{role}"')
                await other.rollback()
                run = await turn
                await eventually(lambda: _some(left_to_sweep(caplog, [run])))
                await grants.execute(f'GRANT INSERT ON lgs_deliveries TO "{role}"')
            # The next sweep, more than the floor's margin after the run's finish.
            await clock.advance(70)
            (delivery,) = await eventually(settled(w, run.run_id))
    finally:
        async with await psycopg.AsyncConnection.connect(postgres_url, autocommit=True) as conn:
            await conn.execute(f'REASSIGN OWNED BY "{role}" TO postgres')
            await conn.execute(f'DROP OWNED BY "{role}"')
        async with await psycopg.AsyncConnection.connect(admin_url, autocommit=True) as admin:
            await admin.execute(f'ALTER DATABASE "{name}" OWNER TO postgres')
            await admin.execute(f'DROP ROLE IF EXISTS "{role}"')

    assert delivery.status == "delivered"
    sent = [WebhookPayload.model_validate_json(r.body).run.run_id for r in ops.requests]
    assert sorted(sent) == sorted([witness.run_id, run.run_id])


async def _waiting_for_a_lock(admin_url: str, database: str) -> bool | None:
    import psycopg

    async with await psycopg.AsyncConnection.connect(admin_url, autocommit=True) as conn:
        cursor = await conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND wait_event_type = 'Lock'",
            (database,),
        )
        row = await cursor.fetchone()
    return True if row is not None and row[0] > 0 else None


# -- the store's statements, on every backend -------------------------------------------------


async def test_deliveries_are_stored_once_per_run_and_url_and_claimed_by_lease(
    database: str,
) -> None:
    t0 = datetime(2027, 3, 1, 12, 0, tzinfo=timezone.utc)
    admin = SchedulerRuntime(None, database=database, clock=FakeClock(t0))
    async with admin:
        task = await admin.create_task(
            name="t",
            schedule=Interval(hours=1),
            trigger="hi",
            options=TaskOptions(webhook_url="https://alice.example/hook"),
        )
    record = TaskRunRecord(
        run_id="run-1",
        task_id=task.id,
        attempt=1,
        trigger="manual",
        scheduled_for=t0,
        started_at=t0,
        finished_at=t0,
        outcome="success",
        summary="done",
    )
    lease = timedelta(seconds=60)
    store = open_store(database)
    try:
        await store.setup()
        queued = await store.queue_deliveries(
            [record], urls=["https://ops.example/hook"], now=t0, lease_until=t0 + lease, limit=1
        )
        again = await store.queue_deliveries(
            [record], urls=["https://ops.example/hook"], now=t0, lease_until=t0 + lease, limit=0
        )
        assert len(queued) == 1 and again == []
        assert len(await store.deliveries(run_id="run-1")) == 2  # not four

        (other,) = await store.claim_deliveries(now=t0, lease_until=t0 + lease, limit=10)
        assert {queued[0].url, other.url} == {
            "https://ops.example/hook",
            "https://alice.example/hook",
        }
        assert await store.claim_deliveries(now=t0, lease_until=t0 + lease, limit=10) == []
        # Their claimer died: once the lease has passed, another runtime takes them.
        later = t0 + lease + timedelta(seconds=1)
        retaken = await store.claim_deliveries(now=later, lease_until=later + lease, limit=10)
        assert len(retaken) == 2 and all(d.attempts == 0 for d in retaken)
        payload = WebhookPayload.model_validate_json(retaken[0].body)
        assert payload.run == record and payload.task_name == "t"

        assert await store.record_delivery(
            other.delivery_id, status="delivered", attempts=1, error=None, now=later
        )
        assert not await store.record_delivery(  # a delivered one stays delivered
            other.delivery_id, status="failed", attempts=2, error="late", now=later
        )
        await store.release_deliveries({queued[0].delivery_id: later})
        (due,) = await store.claim_deliveries(now=later, lease_until=later + lease, limit=10)
        assert due.delivery_id == queued[0].delivery_id

        # The run record is not in lgs_runs: the finished delivery goes, the pending stays.
        assert await store.purge_deliveries() == 1
        (left,) = await store.deliveries()
        assert left.status == "pending" and left.delivery_id == queued[0].delivery_id
    finally:
        await store.close()


async def test_a_page_ending_on_a_finish_that_is_no_time_is_followed_by_the_next(
    sqlite_url: str,
) -> None:
    # On SQLite a finish written by hand as text that starts like a time sorts among the
    # times. Read as the earliest time, it ended a page, and the next page started again
    # from year 1: a sweep with no URL for these runs read the same page for ever.
    t0 = datetime(2027, 3, 1, 12, 0, tzinfo=timezone.utc)
    runs = [
        {"run_id": f"r-{n}", "task_id": "t", "attempt": 1, "trigger": "manual",
         "scheduled_for": t0 + timedelta(seconds=n), "started_at": t0,
         "finished_at": t0 + timedelta(seconds=n), "outcome": "success"}
        for n in range(3)
    ]  # fmt: skip
    odd = f"UPDATE lgs_runs SET finished_at = '{t0:%Y-%m-%d %H:%M}:01 soon' WHERE run_id = 'r-1'"
    store = open_store(sqlite_url)
    try:
        await store.setup()
        await store.transaction(lambda conn: conn.execute(insert(runs_table), runs))
        await store.transaction(lambda conn: conn.exec_driver_sql(odd))
        read: list[str] = []
        after: tuple[datetime, str] | None = None
        for _ in range(4):
            page, after = await store.runs_without_deliveries(
                since=t0, until=t0 + timedelta(minutes=1), after=after, limit=2, urls=[], now=t0
            )
            read += [r.run_id for r in page]
            if after is None:
                break
    finally:
        await store.close()
    assert after is None and read == ["r-0", "r-2"]


async def test_the_runs_owed_a_delivery_are_read_by_page_and_floors_kept_per_runtime(
    database: str, make_graph: Any
) -> None:
    t0 = datetime(2027, 3, 1, 12, 0, tzinfo=timezone.utc)
    clock = FakeClock(t0)
    async with SchedulerRuntime(make_graph(), database=database, clock=clock) as rt:
        task = await rt.create_task(name="t", schedule=Interval(hours=1), trigger="hi")
        runs = []
        for _ in range(3):  # finished at t0, t0 + 10 s, t0 + 20 s
            runs.append(await rt.run_now(task.id))
            await clock.advance(10)
    ids = [run.run_id for run in runs]
    minutes = [t0 + timedelta(minutes=m) for m in range(4)]
    store = open_store(database)
    try:
        await store.setup()
        until = t0 + timedelta(seconds=25)
        hook: dict[str, Any] = {"urls": ["https://ops.example/hook"], "now": t0}
        page, after = await store.runs_without_deliveries(since=t0, until=until, limit=2, **hook)
        assert [r.run_id for r in page] == ids[:2] and after is not None
        rest, end = await store.runs_without_deliveries(
            since=t0, until=until, after=after, limit=2, **hook
        )
        assert [r.run_id for r in rest] == ids[2:] and end is None
        assert rest[0] == runs[2]
        narrow, _ = await store.runs_without_deliveries(
            since=t0 + timedelta(seconds=5), until=t0 + timedelta(seconds=15), limit=10, **hook
        )
        assert [r.run_id for r in narrow] == ids[1:2]
        # Delivered, and after the purge of deliveries, a run is never owed again.
        (queued,) = await store.queue_deliveries(
            runs[:1], urls=["https://ops.example/hook"], now=t0, lease_until=t0, limit=1
        )
        await store.record_delivery(
            queued.delivery_id, status="delivered", attempts=1, error=None, now=t0
        )
        assert await store.purge_deliveries() == 0
        owed, _ = await store.runs_without_deliveries(since=t0, until=until, limit=10, **hook)
        assert [r.run_id for r in owed] == ids[1:]

        await store.hold_delivery_floor("a", floor=t0, now=t0, expires_at=minutes[2])
        await store.hold_delivery_floor("b", floor=minutes[1], now=t0, expires_at=minutes[2])
        await store.hold_delivery_floor("a", floor=minutes[2], now=t0, expires_at=minutes[3])
        floors = await store.delivery_floors()
        assert [(f.holder, f.floor, f.expires_at) for f in floors] == [
            ("b", minutes[1], minutes[2]),
            ("a", minutes[2], minutes[3]),
        ]
        # A floor read as expired is dropped only if its holder has not written it since.
        assert not await store.drop_delivery_floor("a", expires_at=minutes[2])
        assert await store.drop_delivery_floor("a", expires_at=minutes[3])
        assert await store.drop_delivery_floor("b")
        assert await store.delivery_floors() == []
    finally:
        await store.close()


# -- configuration and safety ---------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    ["ftp://example.com/hook", "example.com/hook", "https://", "http://exa mple.com", "/hooks"],
)
def test_a_webhook_url_must_be_http_or_https_with_a_host(url: str) -> None:
    with pytest.raises(InvalidTask, match="invalid task options: field 'webhook_url': a webhook"):
        TaskOptions(webhook_url=url)
    with pytest.raises(InvalidTask, match="invalid webhook: field 'url': a webhook URL"):
        Webhook(url=url)


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://\u2603.net/hooks", "Invalid IDNA hostname"),
        ("http://m\u00fcnchen..de/hooks", "Invalid IDNA hostname"),
        ("http://hooks\u200b.example.com/hooks", "Invalid IDNA hostname"),
        ("http://xn--zz/hooks", "A-label"),
        ("http://[v7.abc]/hooks", "Invalid IPv6 address"),
        ("http://[::1]x/hooks", "Invalid port"),
        # Accepted by httpx: every delivery failed to connect, and was retried to the end.
        ("http://example.com:0/hooks", "port 0"),
        ("http://-bad-.com/hooks", "'-bad-' starts or ends with a hyphen"),
        ("https://hooks.example-.com:8443/hooks", "'example-' starts or ends with a hyphen"),
        ("http://hooks..example.com/hooks", "an empty label"),
        ("http://" + "a" * 64 + ".example.com/hooks", "label of 64 characters"),
    ],
)
def test_a_webhook_url_no_request_can_be_sent_to_is_refused_at_once(url: str, why: str) -> None:
    # These were accepted, and every delivery to them failed at once, unsent, with
    # httpx's InvalidURL or idna's IDNAError as its last error.
    with pytest.raises(InvalidTask, match=f"field 'webhook_url': .*cannot be sent to: .*{why}"):
        TaskOptions(webhook_url=url)
    with pytest.raises(InvalidTask, match=f"field 'url': .*cannot be sent to: .*{why}"):
        Webhook(url=url)


async def test_a_stored_url_no_request_can_be_sent_to_keeps_its_task_readable(
    sqlite_url: str, make_graph: Any, runtime_factory: Any
) -> None:
    # Written before these URLs were refused: the task is read, as it was stored.
    rt = runtime_factory(make_graph(), database=sqlite_url)
    async with rt:
        task = await standup(rt)
        for url in ("http://\u2603.net/hooks", "http://example.com:0/x", "http://-bad-.com/x"):
            options = task.options.model_dump(mode="json") | {"webhook_url": url}
            written = update(tasks_table).where(tasks_table.c.id == task.id).values(options=options)
            await rt.store.transaction(lambda conn, written=written: conn.execute(written))
            stored = await rt.get_task(task.id)
            assert stored.problem is None and stored.options.webhook_url == url


@pytest.mark.parametrize(
    "url",
    [
        "http://[::1]:8080/hooks",
        "https://b\u00fccher.example/hooks",
        "https://user:pw@hooks.example.com/hooks",
        "https://hooks.example.com:8443/" + "a" * 2000,
        "https://hooks.example.com./hooks",  # the root's empty label, written
        "https://" + "a" * 63 + ".x-1.example.com/hooks",
    ],
)
def test_ipv6_literals_non_ascii_hosts_and_userinfo_are_webhook_urls(url: str) -> None:
    assert TaskOptions(webhook_url=url).webhook_url == Webhook(url=url).url == url


@pytest.mark.parametrize(
    ("tail", "why"),
    [
        ("\u754c" * 1500, "at most 2048 bytes in UTF-8, got 4526 .1526 characters"),
        ("\udc80", "lone surrogate"),
    ],
)
def test_a_webhook_url_is_limited_in_bytes_a_database_can_index(tail: str, why: str) -> None:
    base = "https://hooks.example.com/"
    longest = base + "a" * (2048 - len(base))
    assert TaskOptions(webhook_url=longest).webhook_url == Webhook(url=longest).url == longest
    with pytest.raises(InvalidTask, match=why):
        TaskOptions(webhook_url=base + tail)
    with pytest.raises(InvalidTask, match=why):
        Webhook(url=base + tail)


async def test_deliveries_follow_the_proxy_the_environment_names(
    sqlite_url: str,
    make_graph: Any,
    runtime_factory: Any,
    receivers: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # httpx's default trust_env, as the README says: HTTP_PROXY routes each request.
    proxy = receivers()
    for name in ("NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy", "http_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", proxy.url.removesuffix("/hooks/scheduler"))
    url = "http://hooks.example.invalid/scheduler"
    webhook = Webhook(url=url, secret=SECRET)
    async with runtime_factory(make_graph(), database=sqlite_url, webhook=webhook) as rt:
        run = await rt.run_now((await standup(rt)).id)
        (delivery,) = await eventually(settled(rt, run.run_id))
    assert delivery.status == "delivered"
    assert [r.target for r in proxy.requests] == [url]  # sent to the proxy, in absolute form
    assert proxy.requests[0].headers["host"] == "hooks.example.invalid"


def test_the_runtime_takes_a_webhook_object_and_says_how(make_graph: Any) -> None:
    with pytest.raises(InvalidTask, match=r"webhook=Webhook\(url="):
        SchedulerRuntime(make_graph(), webhook="https://hooks.example.com")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("headers", "why"),
    [
        ({"Authorization": "Bearer abc\r\nX-Evil: 1"}, "line breaks"),
        ({"Authorization": "Bearer \u043a\u043b\u044e\u0447"}, "printable ASCII"),
        ({"Authorization": "Bearer caf\u00e9"}, "printable ASCII"),
        ({"Authorization": ""}, "not empty"),
        ({"Authorization": " Bearer abc"}, "surrounding spaces"),
        ({"Bad Name": "x"}, "not a valid HTTP header name"),
        ({"": "x"}, "not a valid HTTP header name"),
        ({"X-\u00e9": "x"}, "not a valid HTTP header name"),
        ({"content-type": "text/plain"}, "set by each webhook request"),
        ({"x-lgs-signature": "sha256=00"}, "set by each webhook request"),
        # Names are case-insensitive: this one went out beside the request's own
        # Accept-Encoding: identity, which keeps a refusal's body from being inflated.
        ({"accept-encoding": "gzip"}, "set by each webhook request"),
        ({"ACCEPT-ENCODING": "identity"}, "set by each webhook request"),
        ({"X-Tenant": "a", "x-tenant": "b"}, "'x-tenant' is given twice"),
    ],
)
def test_headers_no_request_can_carry_are_refused_at_once(
    headers: dict[str, str], why: str
) -> None:
    with pytest.raises(InvalidTask, match=why) as caught:
        Webhook(url="https://hooks.example.com", headers=headers)
    assert "abc" not in str(caught.value)  # a value may be a credential: never shown


async def test_a_request_that_cannot_be_sent_fails_at_once(
    sqlite_url: str, make_graph: Any, runtime_factory: Any, receivers: Any
) -> None:
    receiver = receivers()
    # Built past its checks, as a Webhook never is: the request fails on this side.
    webhook = Webhook.model_construct(
        url=receiver.url, headers={"Authorization": "Bearer abc\r\nX-Evil: 1"}, **FAST
    )
    async with runtime_factory(make_graph(), database=sqlite_url, webhook=webhook) as rt:
        run = await rt.run_now((await standup(rt)).id)
        (delivery,) = await eventually(settled(rt, run.run_id))

    assert (delivery.status, delivery.attempts) == ("failed", 1)
    assert delivery.last_error is not None and "LocalProtocolError" in delivery.last_error
    assert receiver.requests == []


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://hooks.example.com/in", "https://hooks.example.com/in"),
        ("https://alice:p%40ss@hooks.example.com/in", "https://***@hooks.example.com/in"),
        ("https://t0ken@hooks.example.com:8443/", "https://***@hooks.example.com:8443/"),
        (
            "https://hooks.slack.com/services/T0123/B0456/aBcDeFgHiJkLmNoPqRsTuVwX",
            "https://hooks.slack.com/services/T0123/B0456/***",
        ),
        (
            "https://discord.com/api/webhooks/112233445566778899/Zx-9" + "y" * 64,
            "https://discord.com/api/webhooks/***/***",
        ),
        ("https://h.example/in?token=abc&sig=&flag&&v=1", "https://h.example/in?token=***&sig=&***&&v=***"),
        ("https://h.example/in#s3cret", "https://h.example/in#***"),
        # Text that is no URL is shown the same way: an unclosed "[", no "//", a space.
        ("https://alice:p%40ss@[::1/in?token=abc#f", "https://***@[::1/in?token=***#***"),
        ("alice:p%40ss@hooks.example.com/in", "***@hooks.example.com/in"),
        ("https://alice:pw@hooks example.com/a b?k=v", "https://***@hooks example.com/a b?k=***"),
    ],
)  # fmt: skip
def test_a_webhook_url_is_shown_without_its_tokens(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def test_webhooks_are_told_apart_by_host_and_short_path() -> None:
    urls = [
        "https://hooks.slack.com/services/T0123/B0456/aBcDeFgHiJkLmNoPqRsTuVwX",
        "https://hooks.slack.com/services/T0123/B0789/aBcDeFgHiJkLmNoPqRsTuVwX",
        "https://hooks.example.com/services/T0123/B0456/aBcDeFgHiJkLmNoPqRsTuVwX",
    ]
    assert len({redact_url(url) for url in urls}) == len(urls)


async def test_secrets_stay_out_of_reprs_errors_and_views(
    sqlite_url: str, make_graph: Any, runtime_factory: Any
) -> None:
    url = secret_url("https://hooks.slack.com")
    webhook = Webhook(url=url, secret=SECRET, headers={"Authorization": "Bearer hdr-cr3d"})
    options = TaskOptions(webhook_url=url)
    async with runtime_factory(make_graph(), database=sqlite_url) as rt:
        task = await standup(rt, options=options)
    delivery = WebhookDelivery(
        delivery_id="d-1",
        run_id="r-1",
        task_id=task.id,
        url=url,
        status="failed",
        attempts=1,
        created_at=FAKE_START,
    )
    shown = [repr(webhook), str(webhook), repr(options), str(options), repr(task)]
    queued = QueuedDelivery(delivery_id="d-1", run_id="r-1", url=url, body="{}", attempts=0)
    shown += [repr(delivery), str(delivery), repr([delivery]), repr(queued)]
    shown += [json.dumps(task_json(task)), json.dumps(TaskList([task]).to_json())]
    table = io.StringIO()
    Console(file=table, width=200).print(TaskList([task]))
    shown += [table.getvalue(), TaskList([task])._repr_html_()]
    for text in shown:
        assert SECRET not in text and "hdr-cr3d" not in text
        assert_no_url_secret(text)
    for text in (repr(webhook), repr(options), repr(delivery), json.dumps(task_json(task))):
        assert shown_url("https://hooks.slack.com") in text
    # Still sent as given.
    assert options.webhook_url == webhook.url == delivery.url == url
    # Refused: another scheme; a space; a URL that does not parse (an unclosed "[").
    for bad in (
        url.replace("https", "ftp"),
        url.replace("slack", "sl ack"),
        url.replace("//", "//["),
    ):
        for refused, error in (
            (lambda url: Webhook(url=url), InvalidTask),
            (lambda url: TaskOptions(webhook_url=url), InvalidTask),
            (lambda url: Task.model_validate({"options": {"webhook_url": url}}), ValidationError),
        ):
            with pytest.raises(error) as caught:
                refused(bad)
            assert_no_url_secret(str(caught.value))
            assert "***@" in str(caught.value) and "/services/T0/B0/***" in str(caught.value)


async def test_the_tokens_of_a_webhook_url_stay_out_of_the_logs(
    sqlite_url: str,
    make_graph: Any,
    runtime_factory: Any,
    receivers: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="langgraph_scheduler")
    ops, alice = receivers(), receivers(410)
    webhook = Webhook(url=secret_url(ops.url), secret=SECRET)
    alices = TaskOptions(webhook_url=secret_url(alice.url))
    async with runtime_factory(make_graph(), database=sqlite_url, webhook=webhook) as rt:
        task = await standup(rt, options=alices)
        run = await rt.run_now(task.id)
        deliveries = await eventually(settled(rt, run.run_id, count=2))

    assert sorted(d.status for d in deliveries) == ["delivered", "failed"]
    delivered = f"delivered to {shown_url(ops.url)}"
    failed = f"delivery of run {run.run_id} to {shown_url(alice.url)} failed"
    assert delivered in caplog.text and failed in caplog.text
    assert_no_url_secret(caplog.text)
    assert_no_url_secret(repr(deliveries))
    # Still sent as given: user and password, path and query.
    (request,) = ops.requests
    assert request.headers["authorization"].startswith("Basic ")
    assert request.target == f"{SECRET_PATH}?{SECRET_QUERY}"


def test_signatures_expire() -> None:
    body = b'{"event":"run.finished"}'
    signature = sign(body, SECRET, 1_800_000_000)
    check: dict[str, Any] = {"secret": SECRET, "signature": signature, "timestamp": "1800000000"}
    assert verify_signature(body, **check, now=1_800_000_100)
    assert not verify_signature(body, **check, now=1_800_000_301)  # a replay, 5 min later
    assert not verify_signature(body, **{**check, "timestamp": "soon"}, now=1_800_000_000)


async def test_the_delivery_id_to_dedupe_on_is_the_signed_one_in_the_body(
    sqlite_url: str, make_graph: Any, runtime_factory: Any, receivers: Any
) -> None:
    # The signature covers the timestamp and the body, not the X-LGS-Delivery header: a
    # request replayed within the tolerance under a header naming a new delivery still
    # verifies, so a receiver deduping on the header (as the README told it to) took
    # the replay as a new delivery. The body's delivery_id is signed, and the same.
    receiver = receivers()
    webhook = Webhook(url=receiver.url, secret=SECRET)
    async with runtime_factory(make_graph(), database=sqlite_url, webhook=webhook) as rt:
        run = await rt.run_now((await standup(rt)).id)
        (delivery,) = await eventually(settled(rt, run.run_id))

    (request,) = receiver.requests
    replayed = Received({**request.headers, "x-lgs-delivery": uuid.uuid4().hex}, request.body, 0)
    assert signed_by(replayed, SECRET)
    payload = WebhookPayload.model_validate_json(replayed.body)
    assert payload.delivery_id == delivery.delivery_id == request.headers["x-lgs-delivery"]


_NOW = 1_800_000_000
_BODY = b'{"event":"run.finished"}'
_SIGNED = sign(_BODY, SECRET, _NOW)


@pytest.mark.parametrize(
    ("signature", "timestamp"),
    [
        (_SIGNED, None),  # a missing header
        (None, str(_NOW)),
        ("sha256=\u00e9", str(_NOW)),  # not ASCII: compare_digest refuses such text
        (b"sha256=\xc3\xa9", str(_NOW)),
        (_SIGNED.upper(), str(_NOW)),
        (_SIGNED.removeprefix("sha256="), str(_NOW)),
        ("", str(_NOW)),
        (_SIGNED, ""),
        (_SIGNED, "1" + "0" * 400),  # too large for a float
        (_SIGNED, "1" * 5000),  # too long for int()
        (_SIGNED, float("inf")),
        (_SIGNED, float("nan")),
        (_SIGNED, _NOW + 0.5),
        (_SIGNED, f" {_NOW} "),
        (_SIGNED, f"{_NOW}.0"),
        # Not the timestamp that was signed: it verified, read as the same number, while
        # the README's check (and any HMAC of the header as sent) refused it.
        (_SIGNED, f"0{_NOW}"),
        (_SIGNED, f"000{_NOW}"),
        (_SIGNED, f"{str(_NOW)[:4]}_{str(_NOW)[4:]}"),
        (
            _SIGNED,
            str(_NOW).translate(
                str.maketrans(
                    "0123456789", "\u0660\u0661\u0662\u0663\u0664\u0665\u0666\u0667\u0668\u0669"
                )
            ),
        ),
        (_SIGNED, -_NOW),
        (_SIGNED, True),
        (_SIGNED, 10**400),
        (["sha256=00"], str(_NOW)),
    ],
)
def test_a_malformed_or_forged_header_is_refused_never_raised(
    signature: Any, timestamp: Any
) -> None:
    assert not verify_signature(
        _BODY, secret=SECRET, signature=signature, timestamp=timestamp, now=_NOW
    )


def test_header_values_may_be_text_or_bytes() -> None:
    for signature in (_SIGNED, _SIGNED.encode()):
        for timestamp in (str(_NOW), str(_NOW).encode(), _NOW):
            assert verify_signature(
                _BODY, secret=SECRET, signature=signature, timestamp=timestamp, now=_NOW
            )
    assert not verify_signature(
        _BODY, secret=SECRET, signature=_SIGNED, timestamp=str(_NOW), now=float("nan")
    )


def test_no_tool_lets_a_model_set_a_webhook(make_graph: Any) -> None:
    rt = SchedulerRuntime(make_graph(), database="sqlite://")
    for tool in scheduler_tools(rt):
        seen_by_the_model = convert_to_openai_tool(tool)
        assert "webhook" not in json.dumps(seen_by_the_model).lower(), tool.name
        names = seen_by_the_model["function"]["parameters"].get("properties", {})
        assert not [n for n in names if "url" in n.lower() or "hook" in n.lower()], tool.name
