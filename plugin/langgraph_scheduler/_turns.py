"""Conversation turns: the only code that invokes the graph for a scheduled fire.

A claimed fire becomes a :class:`ConversationRequest`; a :class:`TurnRunner` holds the
task and its thread (one turn per thread at a time, across replicas on PostgreSQL), runs
the turn under its deadline and answers with a :data:`ConversationResponse`.
:class:`GraphTurnRunner` runs ``graph.ainvoke`` in this process; its twin on a LangGraph
server, ``ServerTurnRunner``, lives in ``_remote``. These are the seed plan's message
types; they are internals, importable from the package for readers of the plan.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import types
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Literal

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import BaseCheckpointSaver, CheckpointTuple
from langgraph.graph.state import CompiledStateGraph
from langgraph.pregel import Pregel
from pydantic import ValidationError

from ._attribution import SOURCE_KEY, AttributionKey, triggers_run
from ._context import holding
from .errors import InvalidGraph, ThreadBusy
from .models import TaskRunRecord, TaskSource
from .store import Store, ThreadLocks

__all__ = [
    "ConversationRequest",
    "ConversationResponse",
    "Error",
    "GraphTurnRunner",
    "Interrupted",
    "PreparedTurn",
    "ServerRun",
    "Skipped",
    "Success",
    "Timeout",
    "TurnGate",
    "TurnRunner",
    "WAITING_FOR_INPUT",
    "turn_input",
    "turn_summary",
]

logger = logging.getLogger("langgraph_scheduler")


@dataclass(frozen=True)
class ServerRun:
    """The LangGraph server run a turn ran as (see ``ServerTurnRunner``)."""

    thread_id: str
    run_id: str
    timeout_secs: float | None = None
    """The turn's timeout the run began with, read from the server for a run to follow
    (see :meth:`TurnRunner.orphan_state`); None when not read, or not noted on it."""


@dataclass(frozen=True)
class Success:
    """The turn finished; ``text`` is the final AI message."""

    text: str
    checkpoint_id: str | None = None
    server_run: ServerRun | None = None

    def __repr__(self) -> str:
        return f"Success({_short(self.text)!r})"


@dataclass(frozen=True)
class Error:
    """The turn failed; ``message`` says why."""

    message: str
    server_run: ServerRun | None = None
    unreachable: bool = False
    """The LangGraph server could not be reached to make the turn's run: an outage of the
    server, not a failure of the task, so the fire counts toward no failure streak (it
    is retried as any error)."""

    def __repr__(self) -> str:
        return f"Error({_short(self.message)!r})"


@dataclass(frozen=True)
class Timeout:
    """The turn did not finish within ``after_secs`` and was cancelled."""

    after_secs: float
    server_run: ServerRun | None = None
    cancelled: bool = True
    """False for a server run whose cancel the server did not answer: it may go on."""

    def __repr__(self) -> str:
        return f"Timeout(after_secs={self.after_secs:g})"


@dataclass(frozen=True)
class Interrupted:
    """The turn was cancelled before it finished: the runtime stopped, or the server
    cancelled or interrupted its run."""

    reason: str
    server_run: ServerRun | None = None
    final: bool = False
    """A client of the server stopped the run (cancelled it, interrupted or rolled it
    back with a run of its own, deleted its thread): the user's decision, so the fire is
    not retried. False when the runtime's own causes cut the turn short."""

    def __repr__(self) -> str:
        return f"Interrupted({self.reason!r})"


@dataclass(frozen=True)
class Skipped:
    """The turn was not run: its thread or task stayed busy past the task's wait limit,
    or its thread waits for an answer to an ``interrupt()``."""

    reason: str

    def __repr__(self) -> str:
        return f"Skipped({self.reason!r})"


ConversationResponse = Success | Error | Timeout | Interrupted | Skipped
"""What a turn answers: ``Success | Error | Timeout | Interrupted | Skipped``."""

PreparedTurn = Callable[[], Awaitable[ConversationResponse]]
"""A turn built ahead and ready to run (see :meth:`TurnRunner._prepare`)."""

TurnGate = Callable[[], Awaitable[ConversationResponse | None]]
"""Awaited between building a turn and running it (see :meth:`TurnRunner.converse`)."""


@dataclass(frozen=True)
class ConversationRequest:
    """One scheduled turn to run."""

    task_id: str
    run_id: str
    thread_id: str
    prompt: str
    source: TaskSource
    owner: str = "default"
    system_addon: str | None = None
    timeout_secs: float = 300.0
    on_busy: Literal["wait", "skip"] = "wait"
    max_wait_secs: float = 300.0
    fresh_thread: bool = False
    """The thread is new to this run (an isolated task's): nobody else can hold it, so
    no thread lock is taken (on PostgreSQL that saves two round trips)."""
    context: Any = None
    """The turn's ``context`` (LangGraph's, for a graph with a ``context_schema``)."""

    def __repr__(self) -> str:
        return (
            f"ConversationRequest(task_id={self.task_id!r}, run_id={self.run_id!r}, "
            f"thread_id={self.thread_id!r}, prompt={_short(self.prompt)!r}, "
            f"timeout_secs={self.timeout_secs})"
        )


class TurnRunner:
    """Runs scheduled turns, one per thread and one per task at a time.

    Subclasses say how one turn runs (:meth:`_prepare`): :class:`GraphTurnRunner` in this
    process, ``ServerTurnRunner`` as a run of a LangGraph server.

    Args:
        store: provides the thread locks (across replicas on PostgreSQL).
        attribution: signs each turn's ``task_source``, so the graph can tell it from
            one a client wrote (see ``_attribution``).
        messages_key: the state key the graph keeps its conversation under: the
            trigger message is sent there, and the summary read from there.
    """

    runs_elsewhere = False
    """Turns run outside this process (a server): one may outlive its process, and
    :meth:`orphan_state` can say how it is doing."""

    def __init__(self, store: Store, attribution: AttributionKey, *, messages_key: str) -> None:
        self.store = store
        self.attribution = attribution
        self.messages_key = messages_key
        self._task_locks = ThreadLocks()

    async def open(self) -> None:
        """Acquire what turns need (a client); called once before the first turn."""

    async def orphan_state(self, record: TaskRunRecord) -> ConversationResponse | ServerRun | None:
        """Where the turn of ``record`` stands, its process having died or stopped
        renewing its claim: how it ended, if it ended without its runtime (a server run
        that finished); the server run itself while it still goes on (to be followed,
        see :meth:`follow`); None when that cannot be known, when it was cancelled on
        the server, or when it ran in a process (it died with it). Never raises."""
        return None

    async def follow(
        self, request: ConversationRequest, where: ServerRun, *, elapsed_secs: float
    ) -> ConversationResponse:
        """Follow to its end the server run ``where`` that another process made for the
        turn of ``request`` and left going (see :meth:`orphan_state`), begun
        ``elapsed_secs`` ago: under the turn's own deadline (the timeout ``where``
        began with, if known, else ``request``'s), cancelled past it or at a stop, as a
        turn of this runtime is. Never raises but ``CancelledError``."""
        raise NotImplementedError

    async def stop_orphan(self, record: TaskRunRecord) -> None:
        """Stop what may still run of the turn of ``record``, recorded ``interrupted``
        because the process running it died or stopped renewing its claim: its server
        run, if it named one. Nothing for turns run in a process. Never raises."""

    def cut_short(self, run_id: str) -> ServerRun | None:
        """The server run of the turn of ``run_id`` that was just cancelled (the runtime
        stopping), for its record; asked once, by whoever cancelled it. None for a turn
        run in this process, or cancelled before its server run was created."""
        return None

    async def close(self) -> None:
        """Release what :meth:`open` acquired; called after the last turn."""

    async def converse(
        self, request: ConversationRequest, *, begin: TurnGate | None = None
    ) -> ConversationResponse:
        """Run the request's turn; never raises but ``CancelledError``.

        Args:
            begin: for a turn prepared ahead of its instant: awaited once the turn is
                built, it waits for the instant and answers for a turn that must not
                begin after all (``Skipped``, ``Interrupted``), or None to begin it.
                The task and thread are taken after it, at the instant, as for any turn.
        """
        try:
            # Built before the instant: what is left after it is the locks and the turn.
            turn = self._prepare(request)
        except Exception as exc:
            logger.warning("turn of task %s could not be built: %r", request.task_id, exc)
            return Error(f"the turn could not be built: {exception_text(exc)}")
        if begin is not None:
            try:
                refused = await begin()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the wait for the instant failed: not begun
                logger.warning("turn of task %s could not wait: %r", request.task_id, exc)
                return Error(f"the turn could not wait for its instant: {exc!r}")
            if refused is not None:
                return refused
        wait = 0.0 if request.on_busy == "skip" else request.max_wait_secs
        waited = f" for more than {wait:g}s" if wait else ""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        try:
            async with self._task_locks.hold(request.task_id, timeout=wait):
                if request.fresh_thread:  # no lock to take, but a thread held all the same
                    with holding(self.store.lock_scope, request.thread_id, turn=True):
                        return await turn()
                remaining = max(deadline - loop.time(), 0.0) if wait else 0.0
                try:
                    async with self.store.thread_lock(
                        request.thread_id, timeout=remaining, run_id=request.run_id
                    ):
                        # Its nodes waiting for their own thread would wait for good:
                        # they are refused instead (see _context.holding).
                        with holding(self.store.lock_scope, request.thread_id, turn=True):
                            return await turn()
                except ThreadBusy:
                    return Skipped(
                        f"thread {request.thread_id!r} was busy with another turn{waited}"
                    )
        except ThreadBusy:
            return Skipped(f"the task's previous run was still going{waited}")
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a lock that could not be taken: a lost connection
            logger.warning("turn of task %s could not start: %r", request.task_id, exc)
            return Error(f"the turn could not start: {exception_text(exc)}")

    def _prepare(self, request: ConversationRequest) -> PreparedTurn:
        """What running the request's turn takes, built before its instant; the call
        returned runs it, its thread and task held, and never raises but
        ``CancelledError``."""
        raise NotImplementedError


class GraphTurnRunner(TurnRunner):
    """Runs scheduled turns as ``graph.ainvoke`` in this process.

    Args:
        graph: the compiled graph, with its checkpointer.
        store: provides the thread locks (across replicas on PostgreSQL).
        attribution: signs each turn's ``task_source``.
        messages_key: the state key the graph keeps its conversation under.

    Raises:
        InvalidGraph: the graph's input is known and has no channel ``messages_key``.
    """

    def __init__(
        self,
        graph: Pregel[Any, Any, Any, Any],
        store: Store,
        attribution: AttributionKey,
        *,
        messages_key: str,
    ) -> None:
        keys = _input_keys(graph)
        if keys is not None and messages_key not in keys:
            raise InvalidGraph(
                f"the graph has no {messages_key!r} key in its input (its keys: "
                f"{', '.join(map(repr, keys)) or 'none'}), so every scheduled turn's "
                f"message would be dropped: pass SchedulerRuntime(..., messages_key=...) "
                f"naming the key the graph keeps its conversation under, or add "
                f"{messages_key!r} to its state"
            )
        super().__init__(store, attribution, messages_key=messages_key)
        self.graph = graph
        self._turn_graph = _answering_known_reads(graph)
        self._serde = getattr(graph.checkpointer, "serde", None)
        """The serializer the interrupt guard's reads decode with (the checkpointer's)."""

    def _prepare(self, request: ConversationRequest) -> PreparedTurn:
        source = self.attribution.sign(request.source, request.thread_id, request.prompt)
        message = HumanMessage(
            content=request.prompt,
            additional_kwargs={"task_source": dict(source)},
        )
        config: RunnableConfig = {
            # The task's owner is the user of its turns: tools and memory keyed on
            # user_id see the same user as in the conversation that made the task.
            "configurable": {"thread_id": request.thread_id, "user_id": request.owner},
            "run_name": f"scheduled:{source['task_name']}",
            "run_id": uuid.UUID(request.run_id),
            "tags": ["langgraph-scheduler", f"task:{request.task_id}"],
            "metadata": turn_metadata(request),
        }
        payload = turn_input(message, source, self.messages_key)
        return _GraphTurn(self, request, payload, config)


@dataclass(slots=True)
class _GraphTurn:
    """A turn of :class:`GraphTurnRunner`, built and ready to run (a
    :data:`PreparedTurn`). One object, where a partial of a bound method and its
    arguments made several: a long turn keeps them alive (see
    ``benchmarks/analysis.md``, figure 4)."""

    runner: GraphTurnRunner
    request: ConversationRequest
    payload: dict[str, Any]
    config: RunnableConfig

    async def __call__(self) -> ConversationResponse:
        request, runner = self.request, self.runner
        secs = request.timeout_secs
        known = None
        try:
            if request.fresh_thread:
                saved = None  # a thread new to this run holds no checkpoint yet
            else:
                saved = await _latest_checkpoint(runner.graph, request.thread_id)
                if saved is not None and _waits_for_answer(saved):
                    return _unanswered(request.thread_id)
            known = _KNOWN_LATEST.set(_KnownLatest(request.thread_id, saved, runner._serde))
            running = _run_turn(runner._turn_graph, self.payload, self.config, request.context)
            ran = await _within(running, secs)
        except _TurnTimedOut:
            return Timeout(secs)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            turn = "manual run" if request.source["trigger"] == "manual" else "scheduled turn"
            logger.warning("%s of task %s failed: %r", turn, request.task_id, exc)
            return Error(exception_text(exc))
        finally:
            if known is not None:
                _KNOWN_LATEST.reset(known)
        result, checkpoint_id, waiting = ran
        summary = turn_summary(
            result, request.run_id, waiting=waiting, messages_key=runner.messages_key
        )
        return Success(summary, checkpoint_id=checkpoint_id)


_INTERRUPT_WRITES = "__interrupt__"
"""The channel of the pending writes an ``interrupt()`` leaves on a thread's latest
checkpoint (LangGraph stores it under this name; a subgraph's interrupt is written there
too, for the parent task that ran it)."""


def _unanswered(thread_id: str) -> Skipped:
    """The answer for a turn not run because its thread ``thread_id`` waits for an answer
    to an ``interrupt()`` (in this process or on a LangGraph server)."""
    return Skipped(
        f"thread {thread_id!r} is waiting for an answer to an interrupt() (a question to "
        "the user, an approval): a turn sent now would drop that question; once it is "
        "answered (Command(resume=...)), the task's fires run again"
    )


async def _latest_checkpoint(
    graph: Pregel[Any, Any, Any, Any], thread_id: str
) -> CheckpointTuple | None:
    """The latest checkpoint of thread ``thread_id`` (one checkpoint read); None when
    the thread has none or the graph keeps no checkpoints."""
    checkpointer = graph.checkpointer
    if not isinstance(checkpointer, BaseCheckpointSaver):
        return None
    return await checkpointer.aget_tuple(
        {"configurable": {"thread_id": thread_id, "checkpoint_ns": ""}}
    )


def _waits_for_answer(saved: CheckpointTuple) -> bool:
    """Whether checkpoint ``saved`` is held at an ``interrupt()``: new input would start
    the graph afresh and drop that pending question."""
    return any(channel == _INTERRUPT_WRITES for _, channel, _ in saved.pending_writes or [])


@dataclass(slots=True)
class _KnownLatest:
    """A thread's latest checkpoint as the runtime knows it before the turn, held for the
    turn: the interrupt guard's read of it, or none for a thread new to this run. The
    turn's own first read of it (LangGraph's) is answered with this, not by reading the
    same rows again (see :func:`_answering_known_reads`)."""

    thread_id: str
    saved: CheckpointTuple | None
    serde: Any
    """The serializer ``saved`` was read with."""
    taken: bool = False

    def answers(self, config: RunnableConfig, reader: BaseCheckpointSaver[Any]) -> bool:
        """Whether a read with ``config`` by ``reader`` is the turn's read of its thread's
        latest checkpoint at the graph's top level, not yet answered, by a checkpointer
        that reads as the guard's read did (LangGraph reads with another serializer under
        strict msgpack: that read is its own)."""
        conf = config.get("configurable") or {}
        return (
            not self.taken
            and conf.get("thread_id") == self.thread_id
            and not conf.get("checkpoint_ns")
            and not conf.get("checkpoint_id")
            and (self.saved is None or getattr(reader, "serde", None) is self.serde)
        )


_KNOWN_LATEST: ContextVar[_KnownLatest | None] = ContextVar(
    "langgraph_scheduler_known_latest", default=None
)
"""What the turn running in this context knows of its thread (set by ``_GraphTurn``)."""


def _answering_known_reads(graph: Pregel[Any, Any, Any, Any]) -> Pregel[Any, Any, Any, Any]:
    """The graph the turns run: ``graph`` with a shallow copy of its checkpointer (the
    same connection and lock) whose ``aget_tuple`` answers a turn's first read of its
    thread's latest checkpoint with what the runtime knows of it (:data:`_KNOWN_LATEST`),
    and reads as the checkpointer does otherwise: a fire that continues a thread reads
    its checkpoint once, not twice, and one in a fresh thread reads nothing. ``graph``
    itself when it keeps no checkpoints or its checkpointer cannot be copied so (the
    turn then reads as LangGraph does)."""
    saver = graph.checkpointer
    if not isinstance(saver, BaseCheckpointSaver):
        return graph
    try:
        twin = copy.copy(saver)
        saver_class = type(saver)
        if saver_class not in _TWIN_CLASSES:
            _TWIN_CLASSES[saver_class] = _answering_known_latest(saver_class)
        twin.__class__ = _TWIN_CLASSES[saver_class]
        return graph.copy(update={"checkpointer": twin})
    except (AttributeError, TypeError) as exc:
        logger.debug("turns read their thread's latest checkpoint again: %r", exc)
        return graph


_TWIN_CLASSES: dict[type[BaseCheckpointSaver[Any]], type[BaseCheckpointSaver[Any]]] = {}
"""Each checkpointer class's subclass made by :func:`_answering_known_latest`, made once."""


def _answering_known_latest(
    saver_class: type[BaseCheckpointSaver[Any]],
) -> type[BaseCheckpointSaver[Any]]:
    """A subclass of ``saver_class`` that answers a read :data:`_KNOWN_LATEST` holds and
    adds nothing to its instances (empty ``__slots__``: a copy of any such saver can take
    it on as its class). A subclass, not a method set on one saver, so that the copies
    LangGraph makes of the saver (``with_allowlist``) read through their own
    serializer."""

    async def aget_tuple(
        self: BaseCheckpointSaver[Any], config: RunnableConfig
    ) -> CheckpointTuple | None:
        held = _KNOWN_LATEST.get()
        if held is not None and held.answers(config, self):
            held.taken = True
            return held.saved
        return await saver_class.aget_tuple(self, config)

    return types.new_class(
        saver_class.__name__,
        (saver_class,),
        exec_body=lambda ns: ns.update(
            __slots__=(), __module__=saver_class.__module__, aget_tuple=aget_tuple
        ),
    )


def _input_keys(graph: Pregel[Any, Any, Any, Any]) -> list[str] | None:
    """The keys a graph's input is read from; None when any input is taken whole (a
    functional-API entrypoint, a graph on one input channel): nothing to check then."""
    if isinstance(graph, CompiledStateGraph):
        builder = graph.builder
        keys = list(builder.schemas[builder.input_schema])
        return None if keys == ["__root__"] else [k for k in keys if k in graph.channels]
    channels = graph.input_channels
    return None if isinstance(channels, str) else list(channels)


def turn_input(message: Any, source: Mapping[str, Any], messages_key: str) -> dict[str, Any]:
    """A scheduled turn's input: its trigger ``message`` under ``messages_key``, and
    its attribution as ``task_source`` (:data:`SOURCE_KEY`, which ``messages_key`` is
    never: see ``_attribution.check_messages_key``)."""
    return {messages_key: [message], SOURCE_KEY: source}


async def _run_turn(
    graph: Pregel[Any, Any, Any, Any],
    payload: dict[str, Any],
    config: RunnableConfig,
    context: Any = None,
) -> tuple[Any, str | None, bool]:
    """``graph.ainvoke``, also returning the id of the last checkpoint it saved and
    whether the run stopped before its end (at an interrupt): both taken from the run's
    own ``checkpoints`` stream instead of read back afterwards."""
    result: Any = None
    checkpoint_id: str | None = None
    waiting = False
    stream = graph.astream(payload, config, context=context, stream_mode=["values", "checkpoints"])
    chunk: Any
    async for mode, chunk in stream:
        if mode == "values":
            result = chunk
        else:
            checkpoint_id = chunk["config"]["configurable"].get("checkpoint_id")
            # A finished run's last checkpoint has nothing next; an interrupted one's
            # names the nodes that run on resume.
            waiting = bool(chunk["next"])
    return result, checkpoint_id, waiting


def turn_metadata(request: ConversationRequest) -> dict[str, Any]:
    """The attribution a turn carries in its run metadata (``source="scheduler"`` marks
    a task-triggered turn for the tools)."""
    return {
        "task_id": request.task_id,
        "task_name": request.source["task_name"],
        "run_id": request.run_id,
        "scheduled_for": request.source["scheduled_for"],
        "source": "scheduler",
    }


class _TurnTimedOut(Exception):
    """The turn's own deadline passed (not a TimeoutError raised inside the turn)."""


async def _within(awaitable: Awaitable[Any], secs: float) -> Any:
    """Await with a deadline; :class:`_TurnTimedOut` only when that deadline passed."""
    if hasattr(asyncio, "timeout"):  # Python 3.11+: no extra task per turn
        budget = asyncio.timeout(secs)
        try:
            async with budget:
                return await awaitable
        except TimeoutError:
            if budget.expired():
                raise _TurnTimedOut from None
            raise
    try:
        return await asyncio.wait_for(awaitable, secs)
    except asyncio.TimeoutError:
        raise _TurnTimedOut from None


WAITING_FOR_INPUT = "[waiting for input]"
"""Starts the summary of a turn that stopped at an interrupt (``interrupt()``, or
``interrupt_before``/``interrupt_after``): it waits for a resume on its thread."""

_AI_TYPES = frozenset({"ai", "AIMessage"})
_HUMAN_TYPES = frozenset({"human", "HumanMessage"})
_TOOL_TYPES = frozenset({"tool", "ToolMessage"})


def turn_summary(
    values: Any, run_id: str, *, waiting: bool = False, messages_key: str = "messages"
) -> str:
    """The summary of the run record of turn ``run_id``: the last AI message it wrote.

    ``values`` is the thread's state when the turn ended (messages, or their dicts as a
    server sends them): it holds the thread's earlier turns too, so only the messages
    after this turn's own trigger message (the human message whose ``task_source``
    names ``run_id``) count. A turn that wrote no AI message has an empty summary, not
    an earlier turn's reply nor its own prompt. A last AI message of tool calls alone
    is summarised by the tool answers after it: an agent's structured response
    (``response_format=ToolStrategy(...)``) ends so, as does a graph that ends at its
    tools. Walked back from the end, it stops at the first AI message or the trigger: a
    few messages, however long the thread. A graph that dropped the trigger message
    leaves no way to tell: its last AI message.

    Args:
        values: the turn's final state values; not a mapping for a graph whose output
            is no state (the functional API): that output, as text.
        run_id: the turn's run id.
        waiting: the turn stopped at an interrupt: the summary starts with
            :data:`WAITING_FOR_INPUT`.
        messages_key: the state key the messages are under.
    """
    if not isinstance(values, Mapping):
        text = "" if values is None else str(values)
    else:
        text = _own_reply(values.get(messages_key), run_id)
    if waiting:
        return f"{WAITING_FOR_INPUT} {text}" if text else WAITING_FOR_INPUT
    return text


def _own_reply(messages: Any, run_id: str) -> str:
    """The text of the last AI message after the trigger message of ``run_id``, or of
    the tool answers after it when it holds only tool calls."""
    if not isinstance(messages, Sequence) or isinstance(messages, str):
        return ""
    answers: list[str] = []  # the tool answers after the AI message, newest first
    for message in reversed(messages):
        if isinstance(message, BaseMessage):
            if isinstance(message, AIMessage):
                return message.text or "\n".join(reversed(answers))
            if isinstance(message, ToolMessage):
                answers.append(message.text)
            elif isinstance(message, HumanMessage) and triggers_run(
                message.additional_kwargs, run_id
            ):
                return ""
        elif isinstance(message, Mapping):
            kind = message.get("type")
            if kind in _AI_TYPES:
                return _content_text(message.get("content", "")) or "\n".join(reversed(answers))
            if kind in _TOOL_TYPES:
                answers.append(_content_text(message.get("content", "")))
            elif kind in _HUMAN_TYPES and triggers_run(message.get("additional_kwargs"), run_id):
                return ""
    return ""


def _content_text(content: Any) -> str:
    """The text of a message's content as a server sends it (a string, or blocks)."""
    try:  # langchain-core's reading of content blocks
        return AIMessage(content=content).text
    except ValidationError:
        return str(content)


def exception_text(exc: BaseException) -> str:
    """``Type: message`` of what a turn raised, as its record says it; the type alone
    when the message cannot be made (an exception's ``__str__`` that raises)."""
    try:
        text = str(exc)
    except Exception:
        return f"{type(exc).__name__} (its message could not be read)"
    return f"{type(exc).__name__}: {text}"


def _short(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
