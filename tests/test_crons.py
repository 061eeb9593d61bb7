"""LangGraph cron fields mapped onto tasks: each field, and the inputs that cannot map."""

from __future__ import annotations

import inspect
import uuid
from collections.abc import AsyncIterator
from datetime import datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from langchain_core.messages import (
    AIMessage,
    ChatMessage,
    HumanMessage,
    HumanMessageChunk,
    SystemMessage,
)

from langgraph_scheduler import (
    ConversationTrigger,
    Cron,
    InvalidPayload,
    InvalidSchedule,
    InvalidTask,
    SchedulerRuntime,
    TaskConflict,
    TaskOptions,
)
from langgraph_scheduler.crons import cron_schedule, task_from_cron, trigger_from_input
from langgraph_scheduler.testing import FakeClock

NOW = datetime(2027, 3, 1, 6, 0, tzinfo=timezone.utc)  # a Monday
HELLO = {"messages": [{"role": "user", "content": "hello!"}]}
EXAMPLE = '{"messages": [{"role": "user", "content": "Summarise my inbox"}]}'  # in refusals


@pytest.fixture
async def rt() -> AsyncIterator[SchedulerRuntime]:
    # The runtime's own zone is not UTC: a cron without timezone must still be UTC.
    async with SchedulerRuntime(
        None, database="sqlite://", clock=FakeClock(NOW), timezone="Europe/Berlin"
    ) as runtime:
        yield runtime


# --- the pure helpers -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("cron_input", "prompt"),
    [
        ("Summarise my inbox", "Summarise my inbox"),
        (HELLO, "hello!"),
        ({"messages": [{"type": "human", "content": "hi"}]}, "hi"),
        ({"messages": [("user", "a pair")]}, "a pair"),
        ({"messages": ["a bare string"]}, "a bare string"),
        ({"messages": {"role": "user", "content": "one message"}}, "one message"),
        ({"messages": [HumanMessage("an object")]}, "an object"),
        ({"messages": [ChatMessage(role="user", content="a chat message")]}, "a chat message"),
        ({"messages": [HumanMessageChunk(content="a chunk")]}, "a chunk"),
        (
            {"messages": [{"role": "user", "content": [{"type": "text", "text": "blocks"}, "!"]}]},
            "blocks!",
        ),
    ],
)
def test_input_shapes_become_the_prompt(cron_input: Any, prompt: str) -> None:
    trigger = trigger_from_input(cron_input)
    assert trigger == ConversationTrigger(prompt=prompt)


def test_system_messages_become_the_system_addon() -> None:
    trigger = trigger_from_input(
        {
            "messages": [
                {"role": "system", "content": "Be brief."},
                SystemMessage("Answer in French."),
                {"role": "user", "content": "Résumé"},
            ]
        },
        timeout_secs=60,
    )
    assert trigger == ConversationTrigger(
        prompt="Résumé", system_addon="Be brief.\n\nAnswer in French.", timeout_secs=60
    )


@pytest.mark.parametrize(
    ("cron_input", "message"),
    [
        (None, "without input"),
        ({"message": "Daily update"}, "state keys a task cannot set: message"),
        ({"messages": [], "user_id": "u1"}, "state keys a task cannot set: user_id"),
        ({"messages": []}, "no messages"),
        ({"messages": [{"role": "system", "content": "x"}]}, "no user message"),
        ({"messages": [{"role": "tool", "content": "x"}]}, "message 0 is a tool message"),
        ({"messages": [{"content": "x"}]}, "needs a 'role'"),
        ({"messages": [42]}, "message 0 is an int"),
        ({"messages": [object()]}, "message 0 is an object"),
        ({"messages": [uuid.UUID(int=1)]}, "message 0 is a UUID"),
        (
            {"messages": [{"role": "user", "content": [{"type": "image", "url": "u"}]}]},
            "'image' content block",
        ),
        ({"messages": [{"role": "user", "content": 3}]}, "message 0 has an int as its content"),
        ({"messages": [{"role": "user", "content": None}]}, "message 0 has None as its content"),
        ({"messages": [None]}, "message 0 is None;"),
        # A misspelt role was skipped: the system text was lost without a word.
        (
            {"messages": [{"role": "sytem", "content": "Be brief."}, ("user", "hi")]},
            "message 0 has the role 'sytem'; expected user, human, system or developer",
        ),
        ({"messages": [("Bot", "x"), ("user", "hi")]}, "message 0 has the role 'Bot'"),
        ({"messages": [{"role": "user", "content": "  "}]}, "prompt"),
        (["not", "a", "dict"], "must be a dict or a string"),
        ("", "prompt"),
    ],
)
def test_input_that_cannot_map_is_refused(cron_input: Any, message: str) -> None:
    with pytest.raises(InvalidPayload, match=message):
        trigger_from_input(cron_input)


@pytest.mark.parametrize(
    ("messages", "said"),
    [
        (
            [("user", "first"), ("assistant", "ok"), ("user", "last")],
            "cron input message 1 is an assistant message",
        ),
        ([AIMessage("ok"), "go"], "cron input message 0 is an ai message"),
        ([("user", "a"), ("user", "b")], "cron input message 1 is a second user message"),
        # ("system", "Be brief.") as the messages themselves: two user messages, as the
        # SDK sends a tuple (a JSON list of two strings) and LangGraph reads it.
        (("system", "Be brief."), "cron input message 1 is a second user message"),
    ],
)
def test_turns_a_task_cannot_carry_are_refused(messages: Any, said: str) -> None:
    # LangGraph gives the graph every input message; a task sends one user message and
    # system instructions per fire. The others were dropped without a word: the model
    # saw "last" alone, without the exchange before it.
    with pytest.raises(InvalidPayload) as refused:
        trigger_from_input({"messages": messages})
    assert str(refused.value).startswith(said)
    assert "one user message per fire" in str(refused.value)


@pytest.mark.parametrize(
    ("cron_input", "said"),
    [
        (5, f"cron input must be a dict or a string, got an int; e.g. {EXAMPLE}"),
        (["hi"], f"cron input must be a dict or a string, got a list; e.g. {EXAMPLE}"),
        (
            {"messages": [{"role": "user", "content": 3}]},
            "cron input message 0 has an int as its content; expected text or a list of "
            "text blocks",
        ),
        (
            {"messages": [{"role": "user", "content": ["hi", 5]}]},
            "cron input message 0 has an int among its content blocks; a task's prompt is "
            "text only",
        ),
        (
            {"messages": [None]},
            "cron input message 0 is None; expected a dict with 'role' and 'content', a "
            "(role, content) pair or a message",
        ),
    ],
)
def test_input_of_the_wrong_type_is_named_with_its_article(cron_input: Any, said: str) -> None:
    # It read "got int", "content of type int", "a 'int' content block", "is a NoneType".
    with pytest.raises(InvalidPayload) as refused:
        trigger_from_input(cron_input)
    assert str(refused.value) == said


@pytest.mark.parametrize(("schedule", "got"), [(None, "None"), (900, "an int")])
def test_a_schedule_of_the_wrong_type_is_named_with_its_article(schedule: Any, got: str) -> None:
    with pytest.raises(InvalidSchedule) as refused:
        cron_schedule(schedule)
    assert str(refused.value) == f"schedule must be a cron line such as '0 9 * * 1-5', got {got}"


@pytest.mark.parametrize(
    ("line", "stored"),
    [
        ("0 9 */2 * 1", "0 9 1-31/2 * 1"),  # odd days or Mondays, as LangGraph's server fires
        ("0 9 1-7 * */2", "0 9 1-7 * 0-6/2"),
        ("0 9 */2 * */3", "0 9 1-31/2 * 0-6/3"),
        ("0 9 */2 * *", "0 9 */2 * *"),  # no day rule to carry over
        ("0 9 * * */2", "0 9 * * */2"),
        ("0 9 1,15 * 1", "0 9 1,15 * 1"),
        ("0 9 ? * 1", "0 9 * * 1"),  # croniter reads "?" as "*": Mondays only
        ("0 9 1 * ?", "0 9 1 * *"),
        ("0 9 ? * ?", "0 9 * * *"),
        # croniter steps a day of the week from N up to 6 (Saturday), crontab(5) up to 7
        # (Sunday again): "1/2" is Monday, Wednesday, Friday, not Sunday too.
        ("0 9 * * 1/2", "0 9 * * 1-6/2"),
        ("0 9 * * MON/2", "0 9 * * 1-6/2"),
        ("0 9 * * 7/2", "0 9 * * 0-6/2"),  # 7 is Sunday: 0
        ("0 9 * * 1,5/1", "0 9 * * 1,5-6/1"),
        ("0 9 * * 1-7/2", "0 9 * * 1-7/2"),  # a range is read alike
        # croniter reads a day field that holds every day as "*" when the other field has
        # a "*" in it: the other field alone decides, no day rule.
        ("0 9 */1 * */2", "0 9 * * */2"),
        ("0 9 1-31 * 1,*/3", "0 9 * * 1,*/3"),
        ("0 9 */2 * 0-6", "0 9 */2 * *"),
        ("0 9 1-31 * 1", "0 9 1-31 * 1"),  # no "*" beside it: every day, as in crontab(5)
    ],
)
def test_cron_schedule_keeps_langgraphs_day_rule(line: str, stored: str) -> None:
    # LangGraph's server ORs the day fields whenever neither is exactly "*"; crontab(5)
    # only when neither starts with "*": a stepped day field is written as its range.
    schedule = cron_schedule(line)
    assert schedule.expr == stored
    either = schedule.next_fire_times(6, after=datetime(2027, 2, 1, tzinfo=timezone.utc))
    if line == "0 9 */2 * 1":
        assert [t.day for t in either] == [1, 3, 5, 7, 8, 9]  # 8: a Monday
    if line == "0 9 * * 1/2":
        assert {t.strftime("%a") for t in either} == {"Mon", "Wed", "Fri"}


def test_cron_schedule_defaults_to_utc_like_langgraph() -> None:
    end = datetime(2027, 6, 1, tzinfo=timezone.utc)
    assert cron_schedule("0 9 * * *") == Cron("0 9 * * *", tz="UTC")
    assert cron_schedule("0 9 * * *", timezone=timezone.utc).tz == "UTC"
    assert cron_schedule("0 9 * * *", timezone=ZoneInfo("America/New_York")).tz == (
        "America/New_York"
    )
    assert cron_schedule("0 9 * * *", timezone="Asia/Tokyo", end_time=end) == Cron(
        "0 9 * * *", tz="Asia/Tokyo", end=end
    )
    with pytest.raises(InvalidSchedule, match="IANA zone"):
        cron_schedule("0 9 * * *", timezone=timezone(timedelta(hours=2)))
    with pytest.raises(InvalidSchedule, match="unknown timezone"):
        cron_schedule("0 9 * * *", timezone="Mars/Olympus")
    with pytest.raises(InvalidSchedule, match="expected 5 fields"):
        cron_schedule("0 0 9 * * *")


@pytest.mark.parametrize("end_time", [datetime(2027, 3, 2, 12, 0), "2027-03-02T12:00:00"])
def test_a_naive_end_time_is_utc_as_on_langgraphs_server(end_time: Any) -> None:
    # The SDK sends end_time.isoformat(), with no offset for a naive value, and the server
    # stores it as UTC whatever the cron's timezone. It was read in the cron's zone: here
    # 12:00 in New York, five hours later, so the cron also fired on 2 March.
    schedule = cron_schedule("0 9 * * *", timezone="America/New_York", end_time=end_time)
    assert schedule.end == datetime(2027, 3, 2, 12, 0, tzinfo=timezone.utc)
    fires = schedule.next_fire_times(3, after=datetime(2027, 3, 1, tzinfo=timezone.utc))
    assert fires == [datetime(2027, 3, 1, 14, 0, tzinfo=timezone.utc)]  # 09:00 EST


def test_a_faulty_field_is_quoted_as_the_client_wrote_it() -> None:
    # it was quoted lower-cased: 'foo' (in 'mon-foo')
    with pytest.raises(InvalidSchedule) as refused:
        cron_schedule("0 9 * * MON-FOO")
    assert str(refused.value) == (
        "'FOO' (in 'MON-FOO') is not a valid day-of-week: allowed 0-7 or sun-sat"
    )


# --- task_from_cron ---------------------------------------------------------------------


async def test_a_zone_without_a_name_is_refused_not_replaced(rt: SchedulerRuntime) -> None:
    # A ZoneInfo read from a file has no key: it used to become tz=None, the runtime's
    # Europe/Berlin, so the cron silently fired an hour off UTC.
    with open("/usr/share/zoneinfo/America/New_York", "rb") as file:
        unnamed = ZoneInfo.from_file(file)
    with pytest.raises(InvalidSchedule, match=r"ZoneInfo without a key.*names no IANA zone"):
        await task_from_cron(rt, schedule="0 9 * * *", input=HELLO, timezone=unnamed)
    assert await rt.list_tasks() == []


async def test_a_stateless_cron_becomes_an_isolated_task(rt: SchedulerRuntime) -> None:
    task = await task_from_cron(rt, schedule="0 9 * * *", input=HELLO)
    assert task.thread_mode == "isolated"
    assert task.thread_id is None
    assert task.state == "active"
    assert task.name == "cron 0 9 * * *"
    assert task.owner == "default"
    assert task.payload == {"prompt": "hello!"}
    assert task.schedule == Cron("0 9 * * *", tz="UTC")  # not the runtime's Europe/Berlin
    assert task.next_run_at == datetime(2027, 3, 1, 9, 0, tzinfo=timezone.utc)
    assert task.options == TaskOptions()


async def test_a_thread_cron_continues_its_thread(rt: SchedulerRuntime) -> None:
    task = await task_from_cron(
        rt,
        thread_id="thread-123",
        schedule="27 15 * * 1-5",
        input="Daily update",
        timezone="America/New_York",
        owner="alice",
        name="daily update",
    )
    assert (task.thread_mode, task.thread_id) == ("continue", "thread-123")
    assert (task.owner, task.name) == ("alice", "daily update")
    assert task.schedule == Cron("27 15 * * 1-5", tz="America/New_York")
    assert task.next_run_at == datetime(2027, 3, 1, 20, 27, tzinfo=timezone.utc)  # EST


async def test_end_time_enabled_and_webhook(rt: SchedulerRuntime) -> None:
    end = NOW + timedelta(days=30)
    task = await task_from_cron(
        rt,
        schedule="0 9 * * *",
        input=HELLO,
        end_time=end,
        enabled=False,
        webhook="https://hooks.example.com/cron",
        options=TaskOptions(retries=0, webhook_url="https://replaced.example.com"),
    )
    assert task.schedule == Cron("0 9 * * *", tz="UTC", end=end)
    assert task.state == "paused"
    assert task.options == TaskOptions(retries=0, webhook_url="https://hooks.example.com/cron")
    resumed = await rt.resume_task(task.id)
    assert resumed.state == "active"
    # The SDK's default enabled=None means enabled.
    assert (await task_from_cron(rt, schedule="0 9 * * *", input=HELLO, enabled=None)).state == (
        "active"
    )


@pytest.mark.parametrize("line", ["0\t9 * * *", " 0 9  * * * ", "0 9 * * *\n"])
async def test_the_default_name_spaces_the_line_as_the_schedule_does(
    rt: SchedulerRuntime, line: str
) -> None:
    # LangGraph's server splits a line on any whitespace; a tab made the default name
    # "cron 0<TAB>9 * * *", refused as a task name with a control character.
    task = await task_from_cron(rt, schedule=line, input=HELLO)
    assert task.name == "cron 0 9 * * *"
    assert task.schedule == Cron("0 9 * * *", tz="UTC")


async def test_metadata_names_the_task_and_is_not_stored(rt: SchedulerRuntime) -> None:
    task = await task_from_cron(
        rt, schedule="@daily", input=HELLO, metadata={"name": "my_run", "team": "ops"}
    )
    assert task.name == "my_run"
    assert "ops" not in task.model_dump_json()
    unnamed = await task_from_cron(rt, schedule="@daily", input=HELLO, metadata={"name": 3})
    assert unnamed.name == "cron @daily"
    explicit = await task_from_cron(
        rt, schedule="@daily", input=HELLO, metadata={"name": "my_run"}, name="mine"
    )
    assert explicit.name == "mine"


@pytest.mark.parametrize("behaviour", ["delete", "keep", None])
async def test_on_run_completed_changes_nothing(rt: SchedulerRuntime, behaviour: Any) -> None:
    task = await task_from_cron(rt, schedule="0 9 * * *", input=HELLO, on_run_completed=behaviour)
    assert task.thread_mode == "isolated"


def test_on_run_completed_is_a_stateless_cron_field_in_the_sdk() -> None:
    """The premise of refusing it with a thread_id: should LangGraph's SDK take it for
    thread crons one day, this fails and task_from_cron follows."""
    from langgraph_sdk.client import CronClient

    assert "on_run_completed" in inspect.signature(CronClient.create).parameters
    assert "on_run_completed" not in inspect.signature(CronClient.create_for_thread).parameters


async def test_cron_id_as_task_id_makes_a_rerun_idempotent(rt: SchedulerRuntime) -> None:
    fields: dict[str, Any] = {
        "schedule": "0 9 * * *",
        "input": HELLO,
        "task_id": "cron-abc",
        "timezone": "America/New_York",
        "webhook": "https://example.com/hook",
        "end_time": NOW + timedelta(days=30),
    }
    first = await task_from_cron(rt, **fields)
    await rt.pause_task(first.id)
    again = await task_from_cron(rt, **fields)
    assert first.id == again.id == "cron-abc" and again.state == "paused"
    assert len(await rt.list_tasks()) == 1


async def test_a_rerun_with_an_edited_cron_is_refused(rt: SchedulerRuntime) -> None:
    first = await task_from_cron(rt, schedule="0 9 * * *", input=HELLO, task_id="cron-abc")

    with pytest.raises(TaskConflict, match="another name, schedule: .* update_task"):
        await task_from_cron(rt, schedule="0 10 * * *", input=HELLO, task_id="cron-abc")
    with pytest.raises(TaskConflict, match="another trigger"):
        await task_from_cron(rt, schedule="0 9 * * *", input="other", task_id="cron-abc")
    assert await rt.get_task("cron-abc") == first


@pytest.mark.parametrize("line", ["0  9 * * 1", "0 9 * * MON", "0 9 * * mon", "0 9 * * 1-1"])
async def test_a_rerun_with_the_cron_line_written_otherwise_returns_the_task(
    rt: SchedulerRuntime, line: str
) -> None:
    first = await task_from_cron(rt, schedule="0 9 * * 1", input=HELLO, task_id="cron-abc")
    named = await task_from_cron(rt, schedule="@daily", input=HELLO, task_id="cron-d")

    assert await task_from_cron(rt, schedule=line, input=HELLO, task_id="cron-abc") == first
    assert await task_from_cron(rt, schedule="0 0 * * *", input=HELLO, task_id="cron-d") == named
    assert first.name == "cron 0 9 * * 1" and named.name == "cron @daily"
    tuesday: dict[str, Any] = {"schedule": "0 9 * * 2", "name": first.name}  # a name given
    with pytest.raises(TaskConflict, match="another schedule: "):
        await task_from_cron(rt, input=HELLO, task_id="cron-abc", **tuesday)
    with pytest.raises(TaskConflict, match="another name, schedule: "):
        await task_from_cron(rt, schedule="0 9 1-31 * 1", input=HELLO, task_id="cron-abc")


@pytest.mark.parametrize(
    ("strategy", "given", "on_busy"),
    [("enqueue", "skip", "wait"), ("reject", "wait", "skip"), (None, "skip", "skip")],
)
async def test_multitask_strategy_on_a_thread_is_on_busy(
    rt: SchedulerRuntime, strategy: Any, given: Any, on_busy: Any
) -> None:
    # LangGraph's server queues a cron's run behind the thread's running one ("enqueue",
    # its default) or drops it ("reject"); a task waits or records the fire 'skipped'.
    # It was refused as an unexpected keyword argument (TypeError).
    task = await task_from_cron(
        rt,
        schedule="0 9 * * *",
        input=HELLO,
        thread_id="thread-123",
        multitask_strategy=strategy,
        options=TaskOptions(on_busy=given, retries=0),
    )
    assert task.options == TaskOptions(on_busy=on_busy, retries=0)


@pytest.mark.parametrize("strategy", ["enqueue", "reject", "interrupt", "rollback"])
async def test_multitask_strategy_of_a_stateless_cron_changes_nothing(
    rt: SchedulerRuntime, strategy: Any
) -> None:
    # Each run of a stateless cron has a new thread, which no other run can keep busy.
    task = await task_from_cron(rt, schedule="0 9 * * *", input=HELLO, multitask_strategy=strategy)
    assert task.options == TaskOptions()


async def test_max_runs_passes_through(rt: SchedulerRuntime) -> None:
    task = await task_from_cron(rt, schedule="0 9 * * *", input=HELLO, max_runs=3)
    assert task.max_runs == 3


@pytest.mark.parametrize(
    ("fields", "error", "message"),
    [
        ({"input": {"message": "Daily update"}}, InvalidPayload, "state keys"),
        ({"input": None}, InvalidPayload, "without input"),
        ({"webhook": "ftp://example.com"}, InvalidTask, "http:// or https://"),
        ({"on_run_completed": "archive"}, InvalidTask, "'delete' or 'keep'"),
        (
            {"on_run_completed": "keep", "thread_id": "thread-123"},
            InvalidTask,
            "stateless crons only .* drop on_run_completed",
        ),
        ({"on_run_completed": "delete", "thread_id": "thread-123"}, InvalidTask, "stateless"),
        ({"schedule": "every day"}, InvalidSchedule, "expected 5 fields"),
        ({"timezone": "Nowhere"}, InvalidSchedule, "unknown timezone"),
        ({"timezone": ZoneInfo("right/Europe/Paris")}, InvalidSchedule, "use 'Europe/Paris'"),
        ({"end_time": NOW - timedelta(days=1)}, InvalidSchedule, "never fires"),
        ({"name": " "}, InvalidTask, "name"),
        ({"schedule": None}, InvalidSchedule, "schedule must be a cron line .* got None$"),
        ({"schedule": ["0 9 * * *"]}, InvalidSchedule, "must be a cron line .* got a list$"),
        ({"metadata": "daily"}, InvalidTask, "metadata must be a dict .* got a str$"),
        ({"enabled": 0}, InvalidTask, "enabled must be True, False or None, got 0"),
        ({"enabled": "no"}, InvalidTask, "enabled must be True, False or None"),
        ({"thread_id": 123}, InvalidTask, "thread_id must be a string .* got an int$"),
        (
            {"multitask_strategy": "interrupt", "thread_id": "thread-123"},
            InvalidTask,
            "multitask_strategy='interrupt' has no counterpart: a fire never cancels the "
            "thread's running turn; use 'enqueue' .* or 'reject'",
        ),
        (
            {"multitask_strategy": "rollback", "thread_id": "thread-123"},
            InvalidTask,
            "multitask_strategy='rollback' has no counterpart",
        ),
        (
            {"multitask_strategy": "queue"},
            InvalidTask,
            "multitask_strategy must be 'reject', 'interrupt', 'rollback' or 'enqueue', "
            "got 'queue'",
        ),
        # it raised AttributeError: 'int' object has no attribute 'encode'
        ({"webhook": 5}, InvalidTask, "webhook must be an http\\(s\\) URL .* got an int$"),
        ({"webhook": b"https://example.com"}, InvalidTask, "webhook must be .* got a bytes$"),
    ],
)
async def test_fields_that_cannot_map_are_refused(
    rt: SchedulerRuntime, fields: dict[str, Any], error: type[Exception], message: str
) -> None:
    kwargs: dict[str, Any] = {"schedule": "0 9 * * *", "input": HELLO, **fields}
    with pytest.raises(error, match=message):
        await task_from_cron(rt, **kwargs)
    assert len(await rt.list_tasks()) == 0


# --- the SDK's run options, which a task has none of ------------------------------------


def _sdk_cron_keywords() -> dict[str, str]:
    """Every keyword of the installed SDK's ``crons.create`` / ``create_for_thread``
    (async and sync clients), each with the method it was read from."""
    from langgraph_sdk.client import CronClient, SyncCronClient

    keywords: dict[str, str] = {}
    for client in (CronClient, SyncCronClient):
        for method in (client.create, client.create_for_thread):
            for parameter in list(inspect.signature(method).parameters)[1:]:  # not self
                keywords.setdefault(parameter, method.__qualname__)
    return keywords


# The SDK's keywords task_from_cron maps onto a task (see test_fields_that_cannot_map_...).
_MAPPED = {
    "schedule",
    "input",
    "thread_id",
    "timezone",
    "end_time",
    "enabled",
    "webhook",
    "metadata",
    "on_run_completed",
    "multitask_strategy",
}
_SDK_ONLY = sorted(set(_sdk_cron_keywords()) - _MAPPED)


def test_every_sdk_cron_keyword_is_taken() -> None:
    """A keyword a new SDK adds is noticed here, not met as a bare TypeError by a porter:
    map it, or add it to the refused run options (crons._NO_COUNTERPART)."""
    ours = inspect.signature(task_from_cron).parameters
    missing = {name: where for name, where in _sdk_cron_keywords().items() if name not in ours}
    assert missing == {}, f"SDK keywords task_from_cron does not take: {missing}"
    assert _MAPPED <= set(ours)


@pytest.mark.parametrize("keyword", _SDK_ONLY)
async def test_an_sdk_run_option_is_refused_by_name(rt: SchedulerRuntime, keyword: str) -> None:
    # It raised Python's bare "unexpected keyword argument", saying neither why nor what
    # to do; a keyword of a newer SDK still does (test_every_sdk_cron_keyword_is_taken).
    kwargs: dict[str, Any] = {"schedule": "0 9 * * *", "input": HELLO, keyword: "x"}
    with pytest.raises(InvalidTask, match=rf"^{keyword} has no counterpart in a task: .*; drop"):
        await task_from_cron(rt, **kwargs)
    assert await rt.list_tasks() == []


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        (
            {"assistant_id": "agent"},
            r"assistant_id has no counterpart in a task: .* runtime's graph "
            r"\(SchedulerRuntime\(graph\), or LangGraphServer\(assistant_id=\.\.\.\)'s\)",
        ),
        (
            {"config": {"recursion_limit": 50}},
            r"config has no counterpart .* thread_id .* user_id\b.* graph\.with_config\(\.\.\.\)"
            r" .* assistants\.create\(config=\.\.\.\)",
        ),
        (
            {"context": {"user_id": "alice"}},
            r"context has no counterpart .* SchedulerRuntime\(context=\.\.\.\)",
        ),
        ({"durability": "exit"}, r"durability has no counterpart .* 'async'"),
        ({"checkpoint_during": False}, r"checkpoint_during has no counterpart .* 'async'"),
        (
            {"interrupt_before": ["tools"]},
            r"interrupt_before has no counterpart .* compile\(interrupt_before=\.\.\.\)",
        ),
        ({"stream_mode": "updates"}, r"stream_mode has no counterpart .* on_run"),
        # Header values may hold keys: the refusal never shows a value.
        ({"headers": {"x-api-key": "sk-secret"}}, r"^headers has no counterpart [^\n]*$"),
    ],
    ids=lambda value: next(iter(value)) if isinstance(value, dict) else "why",
)
async def test_an_sdk_run_option_says_why_and_what_to_do(
    rt: SchedulerRuntime, fields: dict[str, Any], message: str
) -> None:
    with pytest.raises(InvalidTask, match=message) as refused:
        await task_from_cron(rt, schedule="0 9 * * *", input=HELLO, **fields)
    assert "sk-secret" not in str(refused.value) and "recursion_limit" not in str(refused.value)


async def test_several_sdk_run_options_are_refused_together(rt: SchedulerRuntime) -> None:
    kwargs: dict[str, Any] = {"assistant_id": "agent", "config": {}, "stream_subgraphs": True}
    with pytest.raises(InvalidTask) as refused:
        await task_from_cron(rt, schedule="0 9 * * *", input=HELLO, **kwargs)
    lines = str(refused.value).splitlines()
    assert [line.split()[0] for line in lines] == ["assistant_id", "config", "stream_subgraphs"]


async def test_sdk_run_options_given_as_none_are_accepted(rt: SchedulerRuntime) -> None:
    # A ported call often passes the SDK's defaults along: None asks for nothing.
    kwargs: dict[str, Any] = dict.fromkeys(_SDK_ONLY)
    task = await task_from_cron(rt, schedule="0 9 * * *", input=HELLO, task_id="c", **kwargs)
    assert task == await task_from_cron(rt, schedule="0 9 * * *", input=HELLO, task_id="c")
    assert task.options == TaskOptions() and task.thread_mode == "isolated"


@pytest.mark.parametrize("keyword", ["assistant", "schedul", "cron_id", "recursion_limit"])
async def test_a_keyword_neither_ours_nor_the_sdks_is_a_type_error(
    rt: SchedulerRuntime, keyword: str
) -> None:
    kwargs: dict[str, Any] = {"schedule": "0 9 * * *", "input": HELLO, keyword: "x"}
    with pytest.raises(TypeError, match=f"unexpected keyword argument '{keyword}'"):
        await task_from_cron(rt, **kwargs)
