"""Scheduled turns as runs of a LangGraph server (``langgraph dev``, the Agent Server).

:class:`LangGraphServer` names the server and the assistant; :class:`ServerTurnRunner`
runs each turn through ``langgraph-sdk`` as a background run on the task's thread, so the
turn lands in the thread's state and history, in ``runs.list`` and in Studio, with the
task's attribution in the run's metadata. It is the twin of
:class:`~._turns.GraphTurnRunner`: the same locks and the same answers.
"""

from __future__ import annotations

import ast
import asyncio
import dataclasses
import functools
import json
import logging
import math
import re
import ssl
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

import httpx
from pydantic import ConfigDict, Field, field_validator
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    wait_chain,
    wait_fixed,
)

from ._attribution import AttributionKey
from ._turns import (
    ConversationRequest,
    ConversationResponse,
    Error,
    Interrupted,
    PreparedTurn,
    ServerRun,
    Skipped,
    Success,
    Timeout,
    TurnRunner,
    _TurnTimedOut,
    _unanswered,
    _within,
    turn_input,
    turn_metadata,
    turn_summary,
)
from ._validated import Validated
from .errors import SchedulerError
from .models import (
    TaskRunRecord,
    check_header_name,
    check_header_value,
    check_http_url,
    redact_url,
    redacted_url_args,
)
from .store import Store

if TYPE_CHECKING:
    from langgraph_sdk.client import LangGraphClient
    from langgraph_sdk.schema import MultitaskStrategy

__all__ = ["LangGraphServer", "ServerTurnRunner", "server_thread_id"]

_T = TypeVar("_T")

logger = logging.getLogger("langgraph_scheduler")

CANCEL_TIMEOUT_SECS = 10.0
"""How long a timed-out or interrupted turn waits for its server run to stop (and a
look-up for a run whose creation was not answered waits for the server)."""

_LOOKUP_RUNS = 100
"""How many of a thread's newest runs are searched for a run whose creation was not
answered (it is among the newest: it was just made)."""

_JOIN_AGAIN_SECS = (1.0, 2.0, 4.0, 5.0, 5.0)
"""The waits before each new join of a server run whose join (or a read of how it ended)
was cut off or refused for a while (a server restarting), as langgraph-sdk's
``runs.join`` reconnects; then the last one again, till the turn's deadline."""

_FORGOTTEN = (
    "the server no longer knew its run when the connection to it came back (it restarted "
    "without it, say)"
)

_NO_SERVER = "no LangGraph server answers there: check url's host, port and path"
"""What a record says to check when what answers at the server's URL is another service."""

_THREAD_NAMESPACE = uuid.UUID("4f1c7a52-9d0e-5b6a-8c3e-2f7d1a9b6e40")
"""Namespace of the UUIDs given to thread ids that are not UUIDs (see
:func:`server_thread_id`)."""


class LangGraphServer(Validated):
    """Run scheduled turns on a LangGraph server instead of in this process.

    Every turn becomes a run of ``assistant_id`` on the task's thread (created if
    needed). Its input is the trigger message and ``task_source``; its metadata the
    attribution: ``task_id``, ``task_name``, ``task_run_id`` (the server keeps
    ``run_id`` for its own id), ``scheduled_for`` and ``source="scheduler"``, and the
    turn's ``timeout_secs`` (which bounds the run whoever follows it). It queues
    behind the user's own runs on that thread (``multitask_strategy="enqueue"``), never
    interleaving with them; a task with ``on_busy="skip"`` is recorded ``skipped``
    instead when the thread is busy. A turn continuing a thread that waits for an answer
    to an ``interrupt()`` is recorded ``skipped``, as in-process: a run sent there would
    drop the question (one queued behind a user's run that then stops at an interrupt
    runs after it all the same). The turn's timeout cancels the server run. A run a
    client of the server stops (``runs.cancel``, a run of its own sent with
    ``multitask_strategy="interrupt"`` or ``"rollback"``, its thread deleted) is recorded
    ``interrupted`` and not retried: the user chose to stop it (a run the server no
    longer knows once the connection to it is back, lost by a restart, is retried). A
    fire whose run could not be made because the server could not be reached (down,
    restarting, or frozen: its create unanswered within the turn's timeout) is recorded
    ``error``, saying so, and retried, but counts toward no ``pause_after_failures``: an
    outage of the server pauses no task (a ``url`` where something else answers, no
    HTTP or no TLS, counts). The run record keeps the server's ``server_thread_id`` and
    ``server_run_id``. A create whose answer never came is looked for by its
    ``task_run_id``: followed if the server made the run, cancelled if the deadline
    passed or the runtime is stopping. A server run
    whose runtime died (or stopped renewing its claim) goes on: the runtime that takes
    over the lapsed claim records how it ended, or follows it to its end under the
    timeout it began with while it still runs; it is cancelled and recorded ``interrupted``
    only when the server cannot say.

    Example:
        >>> runtime = SchedulerRuntime(
        ...     None,
        ...     server=LangGraphServer(url="http://127.0.0.1:2024", assistant_id="agent"),
        ...     database="sqlite:///scheduler.db",
        ... )

    Note:
        A server names threads by UUID. A task whose thread id is not one (an isolated
        task's fresh thread, or a name you chose) runs on a UUID derived from it; the
        record's ``server_thread_id`` says which. The timeout includes the time a run
        waits in the thread's queue behind the user's runs. A bad field raises
        ``InvalidTask`` when it is made, a ``url`` without ``http://`` or ``https://``
        too, rather than failing every turn.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)
    """Errors never show what was given: an api key, a header value, a URL's tokens."""
    called = "LangGraphServer"

    assistant_id: str = Field(
        min_length=1,
        description="The assistant to run: an assistant id, or a graph id from the "
        "server's langgraph.json (its default assistant).",
    )
    url: str | None = Field(
        default=None,
        description="The server's URL, e.g. http://127.0.0.1:2024. None: the server this "
        "process serves, reached in-process (a runtime started by the server's lifespan, "
        "see langgraph_scheduler.served).",
    )
    api_key: str | None = Field(
        default=None,
        repr=False,
        description="Sent as x-api-key. None: LANGGRAPH_API_KEY or LANGSMITH_API_KEY from "
        "the environment, as langgraph-sdk does.",
    )
    headers: dict[str, str] = Field(
        default_factory=dict, repr=False, description="Extra HTTP headers for every call."
    )

    @field_validator("url")
    @classmethod
    def _check_url(cls, url: str | None) -> str | None:
        if url is None:
            return None
        return check_http_url(url, what="a server URL", example="http://127.0.0.1:2024")

    @field_validator("api_key")
    @classmethod
    def _check_api_key(cls, key: str | None) -> str | None:
        return None if key is None else check_header_value("x-api-key", key)

    @field_validator("headers")
    @classmethod
    def _check_headers(cls, headers: dict[str, str]) -> dict[str, str]:
        for name, value in headers.items():
            check_header_value(check_header_name(name), value)
        return headers

    @property
    def where(self) -> str:
        """The server, for messages (kept in run records, logged): its URL with any token
        in it hidden, or "the LangGraph server of this process"."""
        return redact_url(self.url) if self.url else "the LangGraph server of this process"

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        return redacted_url_args(super().__repr_args__(), "url")


def server_thread_id(thread_id: str) -> str:
    """The server thread a task thread runs on: the id itself when it is a UUID, else
    a UUID derived from it (the same one every time)."""
    try:
        return str(uuid.UUID(thread_id))
    except ValueError:
        return str(uuid.uuid5(_THREAD_NAMESPACE, thread_id))


class ServerTurnRunner(TurnRunner):
    """Runs scheduled turns as background runs of a LangGraph server.

    Args:
        server: which server and assistant.
        store: provides the thread locks (across replicas on PostgreSQL).
        attribution: signs each turn's ``task_source`` (see ``_attribution``).
        messages_key: the state key the served graph keeps its conversation under.
    """

    runs_elsewhere = True

    def __init__(
        self,
        server: LangGraphServer,
        store: Store,
        attribution: AttributionKey,
        *,
        messages_key: str,
    ) -> None:
        super().__init__(store, attribution, messages_key=messages_key)
        self.server = server
        self._client: LangGraphClient | None = None
        self._cut_short: dict[str, ServerRun] = {}
        """Server runs of turns cancelled and not yet asked for (see :meth:`cut_short`)."""

    async def open(self) -> None:
        """Make the SDK client.

        Raises:
            SchedulerError: ``url`` is None outside a LangGraph server process, or the
                api key the environment gives cannot be sent.
        """
        if self.server.url is None and "langgraph_api.server" not in sys.modules:
            raise SchedulerError(
                "LangGraphServer(url=None) runs turns on the LangGraph server of this "
                "process, and none runs here: start the runtime from the server's lifespan "
                "(langgraph_scheduler.served.scheduler_app, named by http.app in "
                "langgraph.json), or pass url='http://host:port' of your server"
            )
        from langgraph_sdk import get_client

        try:
            self._client = get_client(
                url=self.server.url,
                # No read timeout: a turn may run for long, and its own deadline bounds it.
                timeout=(5.0, None, 30.0, 5.0),
                headers=self.server.headers or None,
                **({"api_key": self.server.api_key} if self.server.api_key else {}),
            )
        except (UnicodeError, ValueError, httpx.InvalidURL) as exc:
            # What was given is checked when LangGraphServer is made: an api key taken
            # from the environment is not (httpx refuses text that is not ASCII).
            raise SchedulerError(
                f"cannot make the client of {self.server.where}: {type(exc).__name__} "
                "(its api key, from api_key= or else the environment: LANGGRAPH_API_KEY, "
                "LANGSMITH_API_KEY or LANGCHAIN_API_KEY, must be printable ASCII)"
            ) from None

    async def close(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            await client.aclose()

    def _prepare(self, request: ConversationRequest) -> PreparedTurn:
        return functools.partial(self._invoke, request)

    async def _invoke(self, request: ConversationRequest) -> ConversationResponse:
        client = self._client
        if client is None:
            return Error("the server turn runner is not open")
        thread_id = server_thread_id(request.thread_id)
        # Signed for the thread the served graph sees (the server's id of the thread).
        source = dict(self.attribution.sign(request.source, thread_id, request.prompt))
        message = {
            "type": "human",
            "content": request.prompt,
            "additional_kwargs": {"task_source": source},
        }
        run_input = turn_input(message, source, self.messages_key)
        # Never interleave with the user's runs on the thread: queue behind them, or
        # (on_busy="skip") be refused while one runs.
        strategy: MultitaskStrategy = "reject" if request.on_busy == "skip" else "enqueue"
        started = time.monotonic()
        created = await self._create(client, request, thread_id, run_input, strategy)
        if not isinstance(created, ServerRun):
            return created
        return await self._follow(client, request, created, started=started, new=True)

    async def follow(
        self, request: ConversationRequest, where: ServerRun, *, elapsed_secs: float
    ) -> ConversationResponse:
        client = self._client
        if client is None:
            return Error("the server turn runner is not open")
        if where.timeout_secs is not None:
            # The timeout the run began with, not the task's current one: a trigger
            # changed since must neither cut the run short nor let it run longer.
            request = dataclasses.replace(request, timeout_secs=where.timeout_secs)
        return await self._follow(client, request, where, started=time.monotonic() - elapsed_secs)

    async def _follow(
        self,
        client: LangGraphClient,
        request: ConversationRequest,
        where: ServerRun,
        *,
        started: float,
        new: bool = False,
    ) -> ConversationResponse:
        """Follow the turn's server run ``where`` to its end, within the turn's timeout
        from ``started`` (monotonic): cancelled past it (``Timeout``) and when the
        runtime stops (the record names it, see :meth:`cut_short`). A server that cannot
        be reached meanwhile, before or after the run ended, is waited for (see
        :class:`_Reach`), never taken for a lost run: past the deadline, a ``Timeout``
        too. ``new``: this runtime just created it, and names it on the running record
        first."""
        reach = _Reach()
        try:
            if new:
                await self._note(request, where)  # in here: a stop meanwhile cancels the run
            remaining = request.timeout_secs - (time.monotonic() - started)
            final, state, outside = await _within(self._ended(client, where, reach), remaining)
        except _TurnTimedOut:
            cancelled = await self._cancel(where)
            return Timeout(request.timeout_secs, server_run=where, cancelled=cancelled)
        except asyncio.CancelledError:
            # The runtime is stopping: the server run must not go on without us (the
            # next runtime retries the fire). Shielded, so the cancel call itself is sent.
            # The record still names the server run (see cut_short).
            self._cut_short[request.run_id] = where
            await asyncio.shield(self._cancel(where))
            raise
        except Exception as exc:
            if _status(exc) == 404 and reach.lost:  # the server lost it: retried
                return Interrupted(_FORGOTTEN, server_run=where)
            if _status(exc) == 404:  # rolled back, or its thread deleted, by a client
                return Interrupted(await _gone(client, where), server_run=where, final=True)
            logger.warning("following server run %s failed: %r", where.run_id, exc)
            await self._cancel(where)
            return Error(f"lost the server run: {_describe(exc)}", server_run=where)
        return _answer(
            final,
            state,
            where,
            run_id=request.run_id,
            elapsed=time.monotonic() - started,
            outside=outside,
            messages_key=self.messages_key,
        )

    async def _ended(
        self, client: LangGraphClient, where: ServerRun, reach: _Reach
    ) -> tuple[Mapping[str, Any], Mapping[str, Any] | None, Mapping[str, Any] | None]:
        """Wait for the server run ``where`` to end (``runs.join``), then read how it
        ended: the run (``runs.get``), its own last state and its error outside its
        nodes (see :func:`_error_outside_nodes`). Every call goes through ``reach``: the
        run is known made, so a server cut off for a while is waited for (the caller's
        deadline bounds it)."""
        # Its values are the thread's when the run ended before the join reached the
        # server: only its error is used, and only if it is the run's own (see
        # _error_outside_nodes). The server answers a join of a run it does not know at
        # all the same as one that ended.
        joined = await reach(
            client.http.get, f"/threads/{where.thread_id}/runs/{where.run_id}/join"
        )
        # Asked together: no more time than the status alone. One failing for good stops
        # the other, which would otherwise go on asking a server that is down.
        run = asyncio.ensure_future(reach(client.runs.get, where.thread_id, where.run_id))
        own = asyncio.ensure_future(reach(_own_state, client, where))
        try:
            final, state = await asyncio.gather(run, own)
        finally:
            run.cancel()
            own.cancel()
        outside = await _error_outside_nodes(client, where, final, state, joined, reach=reach)
        return final, state, outside

    async def _create(
        self,
        client: LangGraphClient,
        request: ConversationRequest,
        thread_id: str,
        run_input: dict[str, Any],
        strategy: MultitaskStrategy,
    ) -> ServerRun | ConversationResponse:
        """Create the turn's server run: the run, or the answer for a turn that did not
        start.

        A create whose answer never came (the connection lost after the request was
        sent, the server failing as it answered, the turn's deadline, a stop) may have
        created the run all the same. It is looked for on the thread by its
        ``task_run_id``: followed when only the answer was lost, cancelled when the
        deadline passed or the runtime is stopping. So a turn never goes on on the
        server unrecorded, and a retried fire does not run twice.
        """
        try:
            run = await _within(
                self._create_on_thread(
                    client,
                    thread_id,
                    continues=not request.fresh_thread,
                    input=run_input,
                    metadata=_server_metadata(request),
                    # The task's owner is the user of its turns, as in GraphTurnRunner.
                    config={"configurable": {"user_id": request.owner}},
                    multitask_strategy=strategy,
                    if_not_exists="create",
                ),
                request.timeout_secs,
            )
        except _TurnTimedOut:
            return await self._unanswered_create(request)
        except asyncio.CancelledError:
            await self._stopped_while_creating(request)
            raise
        except Exception as exc:
            if _status(exc) == 409:
                return Skipped(f"thread {thread_id} was busy with another run on the server")
            if not _maybe_created(exc):
                return self._not_made(request, exc)
            try:
                found = await self._created(request)
            except asyncio.CancelledError:
                await self._stopped_while_creating(request)
                raise
            except Exception as lookup:
                logger.warning(
                    "server run of task %s not confirmed: %r; looking for it failed: %r",
                    request.task_id,
                    exc,
                    lookup,
                )
                if _unreachable(lookup):
                    return self._out_of_reach(
                        f"{_describe(exc)}; whether it started the run anyway could not be "
                        f"checked: {_describe(lookup)}"
                    )
                return Error(
                    f"{self._refused(exc)}; whether it started one anyway could not be "
                    f"checked: {_describe(lookup)}"
                )
            if found is None:
                return self._not_made(request, exc)
            logger.warning(
                "the answer creating server run %s of run %s was lost (%r); following it",
                found.run_id,
                request.run_id,
                exc,
            )
            return found
        if run is None:
            return _unanswered(request.thread_id)
        run_id = run.get("run_id") if isinstance(run, Mapping) else None
        if not isinstance(run_id, str) or not run_id:  # another service's answer
            return Error(
                f"{self.server.where} did not start the run: it answered without a run id; "
                f"{_NO_SERVER}"
            )
        return ServerRun(thread_id=thread_id, run_id=run_id)

    async def _create_on_thread(
        self, client: LangGraphClient, thread_id: str, *, continues: bool, **run: Any
    ) -> Any:
        """``runs.create`` on the thread, made first if needed; None, creating nothing,
        when the turn ``continues`` the thread and it waits for an answer to an
        ``interrupt()`` (see :func:`_held_at_interrupt`).

        The thread is made apart, without the turn's metadata: a thread the server makes
        for a run takes that run's metadata, and every later run on it inherits it, so a
        user's own runs there would carry ``source="scheduler"`` and pass for scheduled
        turns. The server answers that call with the thread, which says whether it waits
        at an interrupt: the check costs no request of its own."""
        thread = await client.threads.create(thread_id=thread_id, if_exists="do_nothing")
        if continues and _held_at_interrupt(thread):
            return None
        return await client.runs.create(thread_id, self.server.assistant_id, **run)

    async def _unanswered_create(self, request: ConversationRequest) -> Error | Timeout:
        """Cancel the server run a create left unanswered (past the turn's deadline, or
        at a stop) made, if it made one; the answer for such a turn: a timeout naming
        that run. If it made none, or the look-up for it cannot reach the server either
        (frozen, say), no run is known made: the server could not be reached, as when it
        is down. Never raises."""
        try:
            found = await self._created(request)
        except Exception as lookup:
            logger.warning(
                "looking for an unconfirmed server run of run %s failed: %r", request.run_id, lookup
            )
            if _unreachable(lookup):
                return self._out_of_reach(
                    f"it did not answer within {request.timeout_secs:g}s, nor the look-up "
                    f"for the run it may have made ({_describe(lookup)}); if it made one, "
                    "that run may still go on there"
                )
            return Timeout(request.timeout_secs, cancelled=False)
        if found is None:
            return self._out_of_reach(
                f"it did not answer within {request.timeout_secs:g}s, and made no run"
            )
        return Timeout(request.timeout_secs, server_run=found, cancelled=await self._cancel(found))

    async def _stopped_while_creating(self, request: ConversationRequest) -> None:
        """The runtime stops before the create was answered: the run it may have made
        must not go on without us. Shielded, so the look-up and the cancel are sent
        while the stop goes on; the record names the run (see :meth:`cut_short`)."""
        stopped = (await asyncio.shield(self._unanswered_create(request))).server_run
        if stopped is not None:
            self._cut_short[request.run_id] = stopped

    async def _created(self, request: ConversationRequest) -> ServerRun | None:
        """The server run made for the turn of ``request``, found on its thread by its
        ``task_run_id``; None if there is none.

        Raises:
            Exception: the server could not be asked (from ``langgraph-sdk``).
        """
        client = self._client
        if client is None:
            raise SchedulerError("the server turn runner is not open")
        thread_id = server_thread_id(request.thread_id)
        try:
            runs = await asyncio.wait_for(
                client.runs.list(thread_id, limit=_LOOKUP_RUNS), CANCEL_TIMEOUT_SECS
            )
        except Exception as exc:
            if _status(exc) == 404:  # no such thread: nothing was created on it
                return None
            raise
        for run in runs:
            metadata = run.get("metadata") or {}
            if metadata.get("task_run_id") == request.run_id:
                return ServerRun(thread_id=thread_id, run_id=str(run["run_id"]))
        return None

    def cut_short(self, run_id: str) -> ServerRun | None:
        return self._cut_short.pop(run_id, None)

    async def orphan_state(self, record: TaskRunRecord) -> ConversationResponse | ServerRun | None:
        client = self._client
        if client is None or record.server_thread_id is None or record.server_run_id is None:
            return None
        where = ServerRun(thread_id=record.server_thread_id, run_id=record.server_run_id)
        try:
            return await asyncio.wait_for(
                self._state(client, where, record.run_id), CANCEL_TIMEOUT_SECS
            )
        except Exception as exc:
            logger.warning("asking for server run %s failed: %r", where.run_id, exc)
            return None

    async def _state(
        self, client: LangGraphClient, where: ServerRun, run_id: str
    ) -> ConversationResponse | ServerRun | None:
        """How the server run ``where`` of the turn ``run_id`` ended; itself while it
        is still going; None if it was cancelled on the server (or has a status unknown
        here)."""
        run = await client.runs.get(where.thread_id, where.run_id)
        status = run.get("status")
        if status in ("pending", "running"):
            return dataclasses.replace(where, timeout_secs=_timeout_of(run))
        if status not in ("success", "error", "timeout"):
            return None
        state = await _own_state(client, where)
        outside = await _error_outside_nodes(client, where, run, state)
        return _answer(
            run,
            state,
            where,
            run_id=run_id,
            elapsed=_run_secs(run),
            outside=outside,
            messages_key=self.messages_key,
        )

    async def stop_orphan(self, record: TaskRunRecord) -> None:
        if record.server_thread_id is None or record.server_run_id is None:
            return
        orphan = ServerRun(thread_id=record.server_thread_id, run_id=record.server_run_id)
        logger.info("stopping server run %s of interrupted run %s", orphan.run_id, record.run_id)
        await self._cancel(orphan, wait=False)

    async def _note(self, request: ConversationRequest, where: ServerRun) -> None:
        """Name the server run on the running record (best effort: the finish names it
        too; only a process dying mid-turn needs it before)."""
        try:
            await self.store.note_server_run(
                request.run_id, thread_id=where.thread_id, server_run_id=where.run_id
            )
        except Exception as exc:
            logger.warning(
                "naming server run %s on run %s failed: %r", where.run_id, request.run_id, exc
            )

    async def _cancel(self, where: ServerRun, *, wait: bool = True) -> bool:
        """Cancel a server run and (with ``wait``) wait a little until it stopped; whether
        the server answered (a refusal too: a run that already ended). Never raises."""
        client = self._client
        if client is None:
            return False
        try:
            await asyncio.wait_for(
                client.runs.cancel(where.thread_id, where.run_id, wait=wait),
                CANCEL_TIMEOUT_SECS,
            )
        except Exception as exc:
            logger.warning("cancelling server run %s failed: %r", where.run_id, exc)
            return _status(exc) is not None
        return True

    def _not_made(self, request: ConversationRequest, exc: BaseException) -> Error:
        """The answer for a turn whose create raised ``exc`` and made no run: the server
        out of reach (the way to it failed), or its refusal."""
        logger.warning("server run of task %s not created: %r", request.task_id, exc)
        if _unreachable(exc):
            return self._out_of_reach(f"{_describe(exc)}; it did not start the run")
        return Error(self._refused(exc))

    def _out_of_reach(self, why: str) -> Error:
        """The answer for a turn whose run the server could not be reached to make:
        an outage of the server, not the task's failure (see ``Error.unreachable``)."""
        server = self.server
        named = f"the LangGraph server at {server.where}" if server.url else server.where
        return Error(f"{named} could not be reached: {why}", unreachable=True)

    def _refused(self, exc: BaseException) -> str:
        status = _status(exc)
        text = f"{self.server.where} did not start the run: {_describe(exc)}"
        if status == 404:  # no such route (a URL with a path too many), or assistant
            text += (
                f"; check url (the server's base URL, as langgraph-sdk takes it) and "
                f"assistant_id={self.server.assistant_id!r} (an assistant id, or a graph id "
                "from the server's langgraph.json)"
            )
        elif status in (401, 403):
            text += (
                "; check the api key it was sent (LangGraphServer(api_key=...), else "
                "LANGGRAPH_API_KEY, LANGSMITH_API_KEY or LANGCHAIN_API_KEY) and headers"
            )
        elif (check := _misdirected(exc)) is not None:
            text += f"; {check}"
        return text


class _Reach:
    """Calls the server about a run known made, again after a lost connection, a 429 or
    a 5xx (see :func:`_join_again`), waiting as langgraph-sdk's ``runs.join`` reconnects
    (``_JOIN_AGAIN_SECS``, then its last wait again), for as long as the caller's
    deadline lets it: a run that may have ended is never given up for a server that is
    down or restarting for a while (given up, its fire would be retried, and its turn
    run twice). Notes whether it had to (:attr:`lost`): a server run unknown (404) after
    that is one a restarted server lost (unsaved), not one a client rolled back or whose
    thread it deleted."""

    def __init__(self) -> None:
        self.lost = False
        """The connection was lost (or the server refused for a while) on the way."""

    async def __call__(self, call: Callable[..., Awaitable[_T]], *args: Any, **kwargs: Any) -> _T:
        reaching = AsyncRetrying(
            retry=retry_if_exception(_join_again),
            wait=wait_chain(*(wait_fixed(secs) for secs in _JOIN_AGAIN_SECS)),
            before_sleep=self._lose,
            reraise=True,
        )
        return await reaching(call, *args, **kwargs)

    def _lose(self, state: RetryCallState) -> None:
        self.lost = True


def _join_again(exc: BaseException) -> bool:
    """Whether a call about a run known made (its join, the reads of its end) that
    failed so is tried again: the connection lost, or the server refusing for a while
    (429, 5xx)."""
    status = _status(exc) or 0
    return isinstance(exc, httpx.TransportError) or status == 429 or status >= 500


async def _gone(client: LangGraphClient, where: ServerRun) -> str:
    """Why the server no longer knows the run ``where``: its thread was deleted, or the
    run was rolled back (cancelled with ``action="rollback"``, or by a client's run sent
    with ``multitask_strategy="rollback"``). Never raises."""
    try:
        await asyncio.wait_for(client.threads.get(where.thread_id), CANCEL_TIMEOUT_SECS)
    except Exception as exc:
        if _status(exc) == 404:
            return f"the server run's thread {where.thread_id} was deleted on the server"
    return "the server run was rolled back"


def _held_at_interrupt(thread: Any) -> bool:
    """Whether a server thread, as ``threads.create`` or ``threads.get`` answer it, waits
    for an answer to an ``interrupt()``: a run with new input would start its graph
    afresh and drop the pending question, as in-process (see ``_turns._waits_for_answer``).

    Read from its ``interrupts`` (the interrupts of its last checkpoint's tasks), not its
    status: the server says ``"interrupted"`` of any thread whose last checkpoint has
    nodes next, one whose run was cancelled midway (a turn timed out) too, and such a
    thread holds no question. Not while it is ``"busy"``: its interrupts are then those
    from before the run on it, which answers (or drops) them before a turn queued behind
    it starts. A run on the thread that stops at an ``interrupt()`` after this check (a
    user's run the turn is queued behind) is not foreseen: the turn runs after it and
    drops that question. A server that does not report ``interrupts`` is not checked."""
    if not isinstance(thread, Mapping) or thread.get("status") == "busy":
        return False
    interrupts = thread.get("interrupts")
    return isinstance(interrupts, Mapping) and any(interrupts.values())


def _maybe_created(exc: BaseException) -> bool:
    """Whether a create that raised ``exc`` may have created its run all the same: its
    request went out but no answer came, or the server failed while answering (a
    refusal, 4xx, and a connection never made created nothing)."""
    status = _status(exc)
    if status is not None:
        return status >= 500
    return not isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout))


_GATEWAY_DOWN = (502, 503, 504)
"""What a proxy in front of a server (or the server shutting down) answers while the
server is down or restarting."""


def _unreachable(exc: BaseException) -> bool:
    """Whether a call that raised ``exc`` failed on the way to the server rather than
    at it: the connection failed or timed out (its host name unresolved too), or a
    gateway said the server is down. Only used where the run is known not made (or
    cannot be known): a 5xx of the server itself (500) is its answer, and so is an
    answer that shows the URL wrong (see :func:`_misdirected`)."""
    if _misdirected(exc) is not None:
        return False
    if isinstance(exc, (httpx.TransportError, asyncio.TimeoutError)):
        return True
    return _status(exc) in _GATEWAY_DOWN


_TLS_CUT = (ssl.SSLEOFError, ssl.SSLZeroReturnError)


def _misdirected(exc: BaseException) -> str | None:
    """What to check when a call that raised ``exc`` reached something at the server's
    URL that answered, but not as a LangGraph server over the scheme asked: the TLS
    handshake failed (https:// to a plain http port, a certificate refused), the answer
    was no HTTP (another service on that port), or no JSON (a web page). None if it
    failed otherwise. Such a URL fails every call: it is no outage of the server."""
    cause: BaseException | None = exc
    for _ in range(8):  # httpx's error, httpcore's, then the one they were raised from
        if cause is None:
            break
        # A TLS connection cut short (EOF) is a lost connection, not a refused handshake.
        if isinstance(cause, ssl.SSLError) and not isinstance(cause, _TLS_CUT):
            return (
                "check url's scheme (https:// to a server serving plain http?) and the "
                "server's certificate"
            )
        # h11 (under httpx) names an answer that is no HTTP so, and a connection closed
        # mid-answer too: that one is a lost connection.
        named = f"{type(cause).__module__}.{type(cause).__name__}"
        if named.startswith("h11.") and named.endswith(".RemoteProtocolError"):
            if not str(cause).startswith("peer closed connection"):
                return "what answers there does not speak HTTP: check url's host and port"
        if isinstance(cause, json.JSONDecodeError):  # orjson's, as the SDK reads answers
            return _NO_SERVER
        cause = cause.__cause__ or cause.__context__
    return None


def _server_metadata(request: ConversationRequest) -> dict[str, Any]:
    # The server keeps ``run_id`` in run metadata for its own id: ours is task_run_id.
    metadata = turn_metadata(request)
    metadata["task_run_id"] = metadata.pop("run_id")
    # For a runtime that follows the run after this one died (see _timeout_of).
    metadata["timeout_secs"] = request.timeout_secs
    return metadata


def _timeout_of(run: Mapping[str, Any]) -> float | None:
    """The turn's timeout a server run began with, from its metadata; None for a run
    made by a version that did not note it (its task's current trigger says then)."""
    metadata = run.get("metadata")
    value = metadata.get("timeout_secs") if isinstance(metadata, Mapping) else None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) and value > 0 else None


async def _own_state(client: LangGraphClient, where: ServerRun) -> Mapping[str, Any] | None:
    """The state the server run ``where`` ended with: its own last checkpoint (None if
    it saved none). Not the thread's current values, which ``runs.join`` answers for a
    run that ended before it was joined: a later run on the thread (a user's, queued
    behind it) may have changed them."""
    states = await client.threads.get_history(
        where.thread_id, limit=1, metadata={"run_id": where.run_id}
    )
    return states[0] if states else None


async def _error_outside_nodes(
    client: LangGraphClient,
    where: ServerRun,
    run: Mapping[str, Any],
    state: Mapping[str, Any] | None,
    joined: Any = None,
    *,
    reach: _Reach | None = None,
) -> Mapping[str, Any] | None:
    """The error of the failed server run ``where`` (``run``, as ``runs.get`` answered)
    when it failed outside its nodes (a recursion limit, say), so that no task of its
    own last checkpoint ``state`` holds it; None otherwise, or when the server no
    longer knows it. Its calls go through ``reach`` when given (asked once each
    otherwise). Never raises (bar a cancellation: the caller's deadline).

    The server keeps no error on the run, only one on its thread: the last failed
    run's. What ``runs.join`` answered (``joined``) is that one when the run ended
    before the join reached the server. So an error is taken (from ``joined``, else
    from the thread) only while no run made after this one on the thread failed, and
    the thread's own only while none ended at all (a run ending clears it).
    """
    if run.get("status") != "error" or _task_errors(state):
        return None
    call = reach if reach is not None else _once
    try:
        runs = await call(client.runs.list, where.thread_id, limit=_LOOKUP_RUNS)
        ids = [str(r.get("run_id")) for r in runs]
        if where.run_id not in ids:  # more runs made since than are listed: unknown
            return None
        later = runs[: ids.index(where.run_id)]
        if any(r.get("status") == "error" for r in later):
            return None
        error = joined.get("__error__") if isinstance(joined, Mapping) else None
        if error is None and all(r.get("status") in ("pending", "running") for r in later):
            error = (await call(client.threads.get, where.thread_id)).get("error")
    except Exception as exc:
        logger.warning("asking why server run %s failed failed: %r", where.run_id, exc)
        return None
    return error if isinstance(error, Mapping) else None


async def _once(call: Callable[..., Awaitable[_T]], *args: Any, **kwargs: Any) -> _T:
    """Make ``call`` once (where no :class:`_Reach` tries it again)."""
    return await call(*args, **kwargs)


def _answer(
    run: Mapping[str, Any],
    state: Mapping[str, Any] | None,
    where: ServerRun,
    *,
    run_id: str,
    elapsed: float,
    outside: Mapping[str, Any] | None = None,
    messages_key: str,
) -> ConversationResponse:
    """The response for a finished server run (``runs.get``) of the turn ``run_id``,
    its own final state (its conversation under ``messages_key``) and, for a run that
    failed outside its nodes, its error as :func:`_error_outside_nodes` found it."""
    status = run.get("status")
    if status == "success":
        # A run that stopped at an interrupt() ends "success" too; its last checkpoint
        # names the nodes that run on resume.
        values, waiting = (state.get("values"), bool(state.get("next"))) if state else (None, False)
        summary = turn_summary(values, run_id, waiting=waiting, messages_key=messages_key)
        return Success(summary, server_run=where)
    if status == "error":
        return Error(_failure(state, outside), server_run=where)
    if status == "timeout":  # the server's own limit (BG_JOB_TIMEOUT_SECS)
        return Timeout(round(elapsed, 1), server_run=where)
    if status == "interrupted":
        # Only a cancel request ends a run so: a client's (runs.cancel, a run sent with
        # multitask_strategy="interrupt"), never the server's own stop or crash (langgraph
        # dev puts the run back in its queue). The runtime's own cancels (its timeout,
        # its stop) never get here.
        reason = run.get("cancel_reason") or "cancelled on the server"
        return Interrupted(
            f"the server run was interrupted ({reason})", server_run=where, final=True
        )
    return Error(f"the server run ended with status {status!r}", server_run=where)


def _run_secs(run: Mapping[str, Any]) -> float:
    """How long a server run took, from its creation and last update (0 if unknown)."""
    try:
        began = datetime.fromisoformat(str(run["created_at"]))
        ended = datetime.fromisoformat(str(run["updated_at"]))
    except (KeyError, TypeError, ValueError):
        return 0.0
    return max((ended - began).total_seconds(), 0.0)


_UNKNOWN_FAILURE = (
    "the server run failed outside its nodes (a recursion limit, say), and the server no "
    "longer says why: it keeps only its thread's last error, which a later run on the thread "
    "may have replaced"
)

_EXCEPTION_REPR = re.compile(r"([A-Za-z_][\w.]*)\((.*)\)", re.DOTALL)


def _task_errors(state: Mapping[str, Any] | None) -> list[str]:
    """The errors the tasks of a run's own last checkpoint ``state`` failed with."""
    tasks = state.get("tasks") if state else None
    return [str(t["error"]) for t in tasks or () if isinstance(t, Mapping) and t.get("error")]


def _failure(state: Mapping[str, Any] | None, outside: Mapping[str, Any] | None = None) -> str:
    """What failed a server run, as the server's error events say it
    (``ExceptionType: message``): the task its own final ``state`` says failed; else
    ``outside``, its error outside its tasks (see :func:`_error_outside_nodes`)."""
    errors = _task_errors(state)
    if not errors:
        if outside is not None:
            return f"{outside.get('error', 'Error')}: {outside.get('message', '')}".rstrip(": ")
        return _UNKNOWN_FAILURE
    error = errors[0]
    # The checkpoint keeps the exception's repr, ``ValueError('message')``.
    call = _EXCEPTION_REPR.fullmatch(error)
    try:
        message = ast.literal_eval(call.group(2) or "''") if call else None
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        message = None
    if call is None or not isinstance(message, str):
        return error
    if call.group(1) == "KeyError":  # whose str() is its key's repr, as a turn here says it
        return f"KeyError: {message!r}"
    return f"{call.group(1)}: {message}".rstrip(": ")


def _status(exc: BaseException) -> int | None:
    response = getattr(exc, "response", None)
    status = getattr(response, "status_code", None)
    return status if isinstance(status, int) else None


def _describe(exc: BaseException) -> str:
    """``exc`` for a record: its status and text for an answer, else its kind and text
    (its kind alone when it says nothing, as a timeout often does)."""
    status = _status(exc)
    text = str(exc)
    if status is not None:
        return f"{status} {text or type(exc).__name__}"
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
