"""Tasks from LangGraph's crons: ``client.crons.create(...)`` fields onto ``create_task``.

LangGraph's server runs crons (``client.crons.create`` for a new thread per run,
``client.crons.create_for_thread`` for one thread). :func:`task_from_cron` takes the same
field names and creates the equivalent task; :func:`trigger_from_input` is the pure part
that turns a cron's graph ``input`` into the task's ``ConversationTrigger``.

=====================  =========================================================
LangGraph cron field   here
=====================  =========================================================
``schedule``           ``Cron(schedule, tz=..., end=end_time)``
``timezone``           the ``Cron``'s ``tz``; None means UTC, as on LangGraph's server
``input``              the trigger: its one user message is the prompt, system
                       messages the ``system_addon``
``thread_id``          a ``continue`` task on that thread; None (a stateless cron) an
                       isolated task, a fresh thread for every fire
``end_time``           the ``Cron``'s ``end``; a naive one is UTC, as on LangGraph's server
``enabled=False``      the task is created paused
``webhook``            ``TaskOptions.webhook_url`` (sent by a runtime given
                       ``webhook=Webhook(...)``, signed with its secret)
``metadata``           not stored; its ``"name"``, when a string, names the task
``on_run_completed``   checked, nothing else: isolated threads are always kept;
                       refused with ``thread_id`` (``create_for_thread`` has none)
``multitask_strategy`` with ``thread_id``, ``TaskOptions.on_busy``: ``"enqueue"`` waits,
                       ``"reject"`` skips the fire; ``"interrupt"``/``"rollback"`` are
                       refused. Checked, nothing else, for a stateless cron
``cron_id``            ``task_id``: creating again with the same id and fields returns
                       the stored task (a line written otherwise that fires alike is
                       the same); other fields raise ``TaskConflict``
=====================  =========================================================

The SDK's run options (``assistant_id``, ``config``, ``context``, ``checkpoint_during``
and ``durability``, ``interrupt_before``/``interrupt_after``, ``stream_*``) and its
request's ``headers``/``params`` have no counterpart: the graph is the runtime's (or its
``LangGraphServer``'s assistant), the runtime makes every turn's config over the graph's
own (``graph.with_config(...)``) and gives its context (``SchedulerRuntime(context=...)``),
every turn runs with LangGraph's default durability and stops where its graph does, and
no client reads its stream. Each is accepted as None (the SDK's default) and otherwise
refused with ``InvalidTask`` saying what to do instead.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, tzinfo
from datetime import timezone as dt_timezone
from typing import TYPE_CHECKING, Any, Literal

from ._cron import DAY_OF_MONTH, DAY_OF_WEEK, selects_all
from ._validated import kind_of, with_article
from .errors import InvalidPayload, InvalidSchedule, InvalidTask, TaskNotFound
from .models import Task, TaskOptions, check_webhook_url
from .schedules import Cron, zone_name
from .trigger import ConversationTrigger

if TYPE_CHECKING:
    from .runtime import SchedulerRuntime

__all__ = ["cron_schedule", "task_from_cron", "trigger_from_input"]

_USER_ROLES = frozenset({"user", "human"})
_SYSTEM_ROLES = frozenset({"system", "developer"})
# The roles LangChain reads a message in (besides "remove", which deletes one): those of
# earlier turns are refused as a conversation; any other role fails the cron's runs.
_ROLES = ("user", "human", "system", "developer", "assistant", "ai", "tool", "function")
_INPUT_EXAMPLE = '{"messages": [{"role": "user", "content": "Summarise my inbox"}]}'
# LangGraph's multitask strategies a task has: wait for the thread's turn, or skip the fire.
_ON_BUSY: dict[str, Literal["wait", "skip"]] = {"enqueue": "wait", "reject": "skip"}
_STRATEGIES = ("reject", "interrupt", "rollback", "enqueue")

_DURABILITY = (
    "every turn runs with LangGraph's default durability, 'async' (a checkpoint after each "
    "step, written while the next one runs; on a LangGraph server, the server's default), "
    "the same for every task; drop it"
)
_INTERRUPT = (
    "a turn stops only where its graph does (an interrupt() in a node, or the graph's "
    "compile({name}=...)), recorded 'success' with the summary '[waiting for input]' "
    "while its thread waits for a resume; drop it, or pass it to the graph's compile() to "
    "stop every turn there"
)
_STREAM = (
    "a task's turns stream to no client: a fire's outcome is its run record "
    "(SchedulerRuntime.history(task_id), on_run listeners, the task's webhook); drop it"
)
_REQUEST = (
    "an HTTP option of the SDK's request creating the cron, and creating a task sends no "
    "request (a runtime's requests to its LangGraph server carry "
    "LangGraphServer(headers=...)); drop it"
)
# The keywords of the SDK's crons.create / create_for_thread that a task has no
# counterpart for, each refused (unless None) with why and what to do instead.
# tests/test_crons.py checks that every keyword of the installed SDK is taken.
_NO_COUNTERPART: dict[str, str] = {
    name: f"{name} has no counterpart in a task: {reason.format(name=name)}"
    for name, reason in {
        "assistant_id": (
            "a task runs its runtime's graph (SchedulerRuntime(graph), or "
            "LangGraphServer(assistant_id=...)'s), as every task on that runtime's database "
            "does; drop it (tasks of another graph need a runtime of that graph, on a "
            "database of its own)"
        ),
        "config": (
            "the runtime makes each turn's config (configurable thread_id and user_id: the "
            "task's thread and owner, and the task's attribution as metadata) over the "
            "graph's own (on a LangGraph server, the assistant's); drop it and set what the "
            "turns need there: graph.with_config(...) for the graph given to "
            "SchedulerRuntime, assistants.create(config=...) on a server, or, in-process, "
            "SchedulerRuntime(context=...) for a value per task"
        ),
        "context": (
            "each turn's context is the runtime's, SchedulerRuntime(context=...): a value, "
            "or a function of the task for one per task (on a LangGraph server, the "
            "assistant's context); drop it and give the context there"
        ),
        "checkpoint_during": f"it is the SDK's older durability, and {_DURABILITY}",
        "durability": _DURABILITY,
        "interrupt_before": _INTERRUPT,
        "interrupt_after": _INTERRUPT,
        "stream_mode": _STREAM,
        "stream_subgraphs": _STREAM,
        "stream_resumable": _STREAM,
        "headers": f"it is {_REQUEST}",
        "params": f"it is {_REQUEST}",
    }.items()
}


async def task_from_cron(
    runtime: SchedulerRuntime,
    *,
    schedule: str,
    input: Mapping[str, Any] | str | None = None,
    thread_id: str | None = None,
    timezone: str | tzinfo | None = None,
    end_time: datetime | None = None,
    enabled: bool | None = True,
    webhook: str | None = None,
    metadata: Mapping[str, Any] | None = None,
    on_run_completed: Literal["delete", "keep"] | None = None,
    multitask_strategy: Literal["reject", "interrupt", "rollback", "enqueue"] | None = None,
    name: str | None = None,
    owner: str = "default",
    task_id: str | None = None,
    options: TaskOptions | None = None,
    max_runs: int | None = None,
    # The SDK's run options, which a task has none of: None (the SDK's default) or refused.
    assistant_id: None = None,
    config: None = None,
    context: None = None,
    checkpoint_during: None = None,
    interrupt_before: None = None,
    interrupt_after: None = None,
    stream_mode: None = None,
    stream_subgraphs: None = None,
    stream_resumable: None = None,
    durability: None = None,
    headers: None = None,
    params: None = None,
) -> Task:
    """Create the task that does what a LangGraph cron with these fields does.

    The keywords are ``client.crons.create`` / ``create_for_thread``'s own, so a call
    ported from the SDK keeps its arguments. Its run options, ``assistant_id`` to
    ``params``, have no counterpart: None is accepted, any other value refused, saying
    what to do instead. A keyword the SDK does not have either raises ``TypeError``.

    Args:
        runtime: the runtime to create the task in.
        schedule: the crontab line, e.g. ``"0 9 * * 1-5"``.
        input: the graph input each run receives: ``{"messages": [...]}`` in
            LangGraph's message shape (dicts with ``role``/``type`` and ``content``,
            ``(role, content)`` pairs, or message objects) or a plain string. See
            :func:`trigger_from_input`.
        thread_id: the thread of a ``create_for_thread`` cron: the task continues that
            conversation. None, as for a stateless ``create`` cron, makes an isolated
            task: every fire runs in a fresh thread.
        timezone: IANA zone name or ``ZoneInfo`` for the line. None means UTC, as on
            LangGraph's server (not the runtime's ``timezone``), so a ported cron fires
            at the same instants. A tzinfo naming no IANA zone (``ZoneInfo.from_file``,
            a fixed offset) is refused (``InvalidSchedule``).
        end_time: no fire after this moment. A naive value is UTC, as LangGraph's server
            stores it (not the cron's ``timezone``). One already past is refused
            (``InvalidSchedule``): such a cron never runs.
        enabled: False creates the task paused (``resume_task`` enables it). None, as
            the SDK's default, means enabled.
        webhook: POST every finished run record to this http(s) URL
            (``TaskOptions.webhook_url``). Unlike LangGraph's, the request is signed and
            retried, and only a runtime given ``webhook=Webhook(secret=...)`` sends it.
        metadata: LangGraph attaches it to the cron's runs; tasks have no metadata, so
            it is not stored. Its ``"name"`` key, when a non-empty string and ``name``
            is not given, becomes the task's name; every other key is dropped. (Run
            records and served runs carry the task's id and name instead.)
        on_run_completed: for stateless crons LangGraph deletes (``"delete"``, its
            default) or keeps (``"keep"``) each run's thread. Isolated tasks' threads
            are always kept, in the runtime's checkpointer (or on the server), so both
            values create the same task; anything else is refused, and so is any value
            with ``thread_id``: LangGraph's ``create_for_thread`` takes no
            ``on_run_completed`` (its thread is the conversation, never deleted).
        multitask_strategy: what a fire does while its thread is busy. With
            ``thread_id``, ``"enqueue"`` (LangGraph's default) waits for the running turn
            and ``"reject"`` records the fire ``skipped`` (``TaskOptions.on_busy``
            ``"wait"``/``"skip"``, overriding ``options``); ``"interrupt"`` and
            ``"rollback"``, which cancel the running turn, are refused. Without
            ``thread_id`` each fire has a fresh thread that nothing else keeps busy, so any
            of the four creates the same task, as on LangGraph's server.
        name: the task's label; default ``metadata["name"]``, else ``"cron <schedule>"``
            (or the stored task's such name, for a line written otherwise that fires alike).
        owner: whose task it is.
        task_id: the task's id, e.g. the cron's ``cron_id``: creating again with the
            same id (and owner) and the same fields returns the stored task, so a
            migration can be re-run; with other fields (an edited ``schedule``, say) it
            raises ``TaskConflict`` instead of keeping the old ones silently (see
            ``SchedulerRuntime.create_task``).
        options: further ``TaskOptions``; ``webhook`` overrides its ``webhook_url``.
        max_runs: stop after this many fires (LangGraph's crons have no such limit).
        assistant_id: like ``config``, ``context``, ``checkpoint_during``,
            ``interrupt_before``, ``interrupt_after``, ``stream_mode``,
            ``stream_subgraphs``, ``stream_resumable``, ``durability``, ``headers`` and
            ``params``: an SDK keyword a task has no counterpart for (see the module's
            docstring). None, the SDK's default, is accepted, so a ported call may keep
            passing it; any other value raises ``InvalidTask`` naming the keyword, why,
            and what to do instead. Typed ``None``, so a type checker flags a value too.

    Raises:
        InvalidPayload: ``input`` cannot be a prompt (no user message or several, extra
            state keys, non-text content, ...).
        InvalidSchedule: a bad line or zone, or an ``end_time`` already past.
        InvalidTask: a bad ``webhook``, ``on_run_completed`` (or one with ``thread_id``),
            ``multitask_strategy`` (or one that cancels a turn, with ``thread_id``), name
            or thread id; an SDK run option (``assistant_id``, ``config``, ...) not None.
        TaskConflict: ``task_id`` is stored with other fields; ``update_task`` changes it.
    """
    _refuse_run_options(
        assistant_id=assistant_id,
        config=config,
        context=context,
        checkpoint_during=checkpoint_during,
        interrupt_before=interrupt_before,
        interrupt_after=interrupt_after,
        stream_mode=stream_mode,
        stream_subgraphs=stream_subgraphs,
        stream_resumable=stream_resumable,
        durability=durability,
        headers=headers,
        params=params,
    )
    trigger = trigger_from_input(input)
    if enabled is not None and not isinstance(enabled, bool):
        raise InvalidTask(f"enabled must be True, False or None, got {enabled!r}")
    if metadata is not None and not isinstance(metadata, Mapping):
        raise InvalidTask(
            f"metadata must be a dict (its 'name' names the task), got {kind_of(metadata)}"
        )
    if on_run_completed not in (None, "delete", "keep"):
        raise InvalidTask(f"on_run_completed must be 'delete' or 'keep', got {on_run_completed!r}")
    if on_run_completed is not None and thread_id is not None:
        raise InvalidTask(
            f"on_run_completed={on_run_completed!r} applies to stateless crons only (no "
            "thread_id): a cron on a thread (LangGraph's create_for_thread, which takes no "
            "on_run_completed) runs in that thread and keeps it; drop on_run_completed"
        )
    options = _with_strategy(options, multitask_strategy, thread_id)
    if webhook is not None:
        if not isinstance(webhook, str):
            raise InvalidTask(
                "webhook must be an http(s) URL such as 'https://hooks.example.com/cron', "
                f"got {kind_of(webhook)}"
            )
        try:
            check_webhook_url(webhook)
        except ValueError as exc:
            raise InvalidTask(str(exc)) from None
        options = (options or TaskOptions()).model_copy(update={"webhook_url": webhook})
    cron = cron_schedule(schedule, timezone=timezone, end_time=end_time)
    if name is None:
        name = await _default_name(runtime, schedule, cron, metadata, task_id=task_id, owner=owner)
    return await runtime.create_task(
        name=name,
        schedule=cron,
        trigger=trigger,
        thread_id=thread_id,
        owner=owner,
        max_runs=max_runs,
        options=options,
        paused=enabled is False,
        task_id=task_id,
    )


def _refuse_run_options(**given: object) -> None:
    """Refuse the SDK's run options given a value other than None, all at once, each
    saying why a task has no counterpart and what to do (never showing the value: a
    header may hold a key)."""
    refused = [_NO_COUNTERPART[name] for name, value in given.items() if value is not None]
    if refused:
        raise InvalidTask("\n".join(refused))


def _with_strategy(
    options: TaskOptions | None, strategy: str | None, thread_id: str | None
) -> TaskOptions | None:
    """``options`` with the ``on_busy`` that LangGraph's ``multitask_strategy`` stands for
    on a thread; a stateless cron's runs never share a thread, so there it changes nothing."""
    if strategy is None:
        return options
    if strategy not in _STRATEGIES:
        raise InvalidTask(
            f"multitask_strategy must be {', '.join(map(repr, _STRATEGIES[:-1]))} or "
            f"{_STRATEGIES[-1]!r}, got {strategy!r}"
        )
    if thread_id is None:
        return options
    if strategy not in _ON_BUSY:
        raise InvalidTask(
            f"multitask_strategy={strategy!r} has no counterpart: a fire never cancels the "
            "thread's running turn; use 'enqueue' (wait for it) or 'reject' (skip the fire)"
        )
    return (options or TaskOptions()).model_copy(update={"on_busy": _ON_BUSY[strategy]})


def cron_schedule(
    schedule: str, *, timezone: str | tzinfo | None = None, end_time: datetime | None = None
) -> Cron:
    """The ``Cron`` for a LangGraph cron's ``schedule``, ``timezone`` and ``end_time``.

    A ``timezone`` of None is UTC, as LangGraph's server reads it; a tzinfo naming no IANA
    zone is refused. A naive ``end_time`` (or ISO text without an offset) is UTC too,
    whatever the zone: the SDK sends it without an offset and the server stores it as UTC.

    Example:
        >>> cron_schedule("0 9 * * *", timezone="Europe/Berlin").describe()
        'at 09:00 every day (Europe/Berlin)'

    Raises:
        InvalidSchedule: the line, zone or end cannot be used.
    """
    if not isinstance(schedule, str):
        raise InvalidSchedule(
            f"schedule must be a cron line such as '0 9 * * 1-5', got {kind_of(schedule)}"
        )
    zone = "UTC" if timezone is None else zone_name(timezone)
    cron = Cron(_langgraph_day_rule(schedule), tz=zone, end=end_time)
    if cron.end is not None and cron.end.tzinfo is None:
        cron = Cron(cron.expr, tz=zone, end=cron.end.replace(tzinfo=dt_timezone.utc))
    return cron


def _langgraph_day_rule(schedule: str) -> str:
    """The line with LangGraph's day rule written out. Its server (croniter) fires on a
    day matching either day field whenever neither field is exactly ``*``; crontab(5),
    which :class:`Cron` follows, only when neither starts with ``*``. So a stepped day
    field (``*/2``) beside a restricted other one is written as the range it stands for
    (``1-31/2``; ``0-6/2`` for the day of the week), which crontab(5) reads the same way.
    A day field ``?`` (croniter's "no specific value") is ``*``, as croniter reads it, and
    a stepped day of the week from a start (``1/2``) runs up to Saturday (``1-6/2``), as in
    croniter, not to crontab(5)'s 7 (Sunday again). A day field that holds every day
    (``*/1``, ``0-6``) is ``*`` when the other one has a ``*`` in it, as croniter reads it:
    the other field alone then decides."""
    parts = schedule.split()
    if len(parts) == 5:
        parts[2] = "*" if parts[2] == "?" else parts[2]
        parts[4] = "*" if parts[4] == "?" else ",".join(map(_to_saturday, parts[4].split(",")))
        dom, dow = parts[2], parts[4]
        if "*" in dow and selects_all(dom, DAY_OF_MONTH):
            parts[2] = "*"
        if "*" in dom and selects_all(dow, DAY_OF_WEEK):
            parts[4] = "*"
        schedule = " ".join(parts)
    if len(parts) != 5 or "*" in (parts[2], parts[4]):
        return schedule  # a macro, a malformed line (Cron says why), or no day rule
    for index, full in ((2, "1-31"), (4, "0-6")):
        items = parts[index].split(",")
        parts[index] = ",".join(full + item[1:] if item.startswith("*") else item for item in items)
    return " ".join(parts)


_WEEKDAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")


def _to_saturday(item: str) -> str:
    """A day-of-week item ``N/step`` as croniter reads it: ``N-6/step`` (7 is Sunday, 0)."""
    start, slash, step = item.partition("/")
    if not slash or "-" in start or start == "*":
        return item
    lowered = start.lower()
    if lowered in _WEEKDAYS:
        day = _WEEKDAYS.index(lowered)
    elif start.isdigit() and int(start) <= 7:
        day = int(start) % 7
    else:
        return item  # Cron says why it is not a day
    return f"{day}-6/{step}"


def trigger_from_input(
    input: Mapping[str, Any] | str | None, *, timeout_secs: int | None = None
) -> ConversationTrigger:
    """The ``ConversationTrigger`` saying what a LangGraph cron's ``input`` says.

    ``input`` is a string (the prompt) or ``{"messages": [...]}``, whose messages are
    dicts with ``role`` (``user``/``human``, ``system``/``developer``, ...) or LangChain's
    ``type``, ``(role, content)`` pairs, plain strings (user messages) or message
    objects. The one user message is the prompt and system messages, joined, the
    ``system_addon`` (which reaches the model through ``SchedulerMiddleware``,
    ``build_assistant`` or ``scheduler_system_message`` only). A scheduled turn sends
    one message, so a second user message or an earlier turn (an assistant or tool
    message), which LangGraph would give the graph, is refused, not dropped. A role
    LangChain does not read a message in (``"sytem"``) is refused, not skipped. Content
    is a string or a list of text blocks.

    Example:
        >>> trigger_from_input({"messages": [{"role": "user", "content": "Hi!"}]}).prompt
        'Hi!'

    Raises:
        InvalidPayload: no input, no user message or more than one, an assistant or
            tool message, state keys other than ``messages``, an unknown role, or
            content that is not text.
    """
    if isinstance(input, str):
        return _trigger(input, None, timeout_secs)
    if input is None:
        raise InvalidPayload(
            "a cron without input cannot become a task: a task needs the message to send, "
            f"e.g. input={_INPUT_EXAMPLE}"
        )
    if not isinstance(input, Mapping):
        raise InvalidPayload(
            f"cron input must be a dict or a string, got {kind_of(input)}; e.g. {_INPUT_EXAMPLE}"
        )
    extra = sorted(str(key) for key in input if key != "messages")
    if extra:
        raise InvalidPayload(
            f"cron input has state keys a task cannot set: {', '.join(extra)}; a task sends "
            f"one user message, e.g. {_INPUT_EXAMPLE}"
        )
    messages = input.get("messages")
    if isinstance(messages, (str, Mapping)) or _is_message_object(messages):
        messages = [messages]
    if not isinstance(messages, Sequence) or not messages:
        raise InvalidPayload(f"cron input has no messages; expected e.g. {_INPUT_EXAMPLE}")
    prompt: str | None = None
    system: list[str] = []
    for index, message in enumerate(messages):
        role, content = _role_and_content(message, index)
        if role in _SYSTEM_ROLES:
            system.append(_text(content, index))
            continue
        what = "a second user" if role in _USER_ROLES else with_article(role)
        if prompt is not None or role not in _USER_ROLES:
            raise InvalidPayload(
                f"cron input message {index} is {what} message: a task sends one user "
                "message per fire (and system instructions), not a conversation; put what "
                "the other messages say into that one"
            )
        prompt = _text(content, index)
    if prompt is None:
        raise InvalidPayload(
            "cron input has no user message to send when the task fires; "
            f"expected e.g. {_INPUT_EXAMPLE}"
        )
    return _trigger(prompt, "\n\n".join(system) or None, timeout_secs)


def _trigger(
    prompt: str, system_addon: str | None, timeout_secs: int | None
) -> ConversationTrigger:
    payload: dict[str, Any] = {"prompt": prompt, "system_addon": system_addon}
    if timeout_secs is not None:
        payload["timeout_secs"] = timeout_secs
    return ConversationTrigger.from_task_payload(payload)


def _is_message_object(value: Any) -> bool:
    return isinstance(getattr(value, "type", None), str) and hasattr(value, "content")


def _role_and_content(message: Any, index: int) -> tuple[str, Any]:
    """The message's role, lower-cased and one of ``_ROLES``, and its content. A role
    outside them is refused: skipping it would drop a misspelt ``"sytem"`` silently."""
    if isinstance(message, str):
        return "user", message
    if isinstance(message, Mapping):
        role = message.get("role", message.get("type"))
        if not isinstance(role, str) or "content" not in message:
            raise InvalidPayload(
                f"cron input message {index} needs a 'role' (or 'type') and 'content', "
                f"got keys {sorted(map(str, message))}"
            )
        content = message["content"]
    elif isinstance(message, (tuple, list)) and len(message) == 2 and isinstance(message[0], str):
        role, content = message
    elif _is_message_object(message):
        role, content = message.type.removesuffix("MessageChunk"), message.content
        if role.lower() == "chat":  # a ChatMessage says its role in ``role``
            role = str(getattr(message, "role", role))
    else:
        raise InvalidPayload(
            f"cron input message {index} is {kind_of(message)}; expected a dict with "
            "'role' and 'content', a (role, content) pair or a message"
        )
    if role.lower() not in _ROLES:
        raise InvalidPayload(
            f"cron input message {index} has the role {role!r}; expected user, human, "
            "system or developer"
        )
    return role.lower(), content


def _text(content: Any, index: int) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, Sequence) and not isinstance(content, (bytes, bytearray)):
        parts: list[str] = []
        for block in content:
            if isinstance(block, str):
                parts.append(block)
            elif isinstance(block, Mapping) and block.get("type") == "text":
                parts.append(str(block.get("text", "")))
            else:
                what = (
                    f"a {block.get('type')!r} content block"
                    if isinstance(block, Mapping)
                    else f"{kind_of(block)} among its content blocks"
                )
                raise InvalidPayload(
                    f"cron input message {index} has {what}; a task's prompt is text only"
                )
        return "".join(parts)
    raise InvalidPayload(
        f"cron input message {index} has {kind_of(content)} as its content; "
        "expected text or a list of text blocks"
    )


async def _default_name(
    runtime: SchedulerRuntime,
    schedule: str,
    cron: Cron,
    metadata: Mapping[str, Any] | None,
    *,
    task_id: str | None,
    owner: str,
) -> str:
    """``metadata["name"]``, else ``"cron <schedule>"`` (its fields one space apart, as
    a tab or a trailing newline cannot be in a name); but the stored name of the task
    ``task_id`` when it is that of a line written otherwise that fires alike, so a re-run
    with the line respelled (``MON`` for ``1``) returns the task instead of a conflict."""
    label = metadata.get("name") if metadata else None
    if isinstance(label, str) and label.strip():
        return label
    name = f"cron {' '.join(schedule.split())}"
    if task_id is None:
        return name
    try:
        stored = await runtime.get_task(task_id, owner=owner)
        stored_line = stored.name.removeprefix("cron ")
        same = stored_line != stored.name and cron.same_as(
            cron_schedule(stored_line, timezone=cron.tz, end_time=cron.end)
        )
    except (InvalidSchedule, InvalidTask, TaskNotFound):  # no task, or another kind of name
        return name
    return stored.name if same else name
