"""Approvals (``require_approval``) through real graphs, resumed the way clients resume.

Both graph shapes: ``build_assistant`` (a ``ToolNode``: the calls of one model message run
in one LangGraph task and share its interrupts) and ``create_agent`` with
``SchedulerMiddleware`` (one task per call). Every call must be shown once with exactly
what will be stored, stored at most once and only after its own approval, whatever the
order in which LangGraph re-runs the tools.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from langchain.agents import create_agent
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langchain_core.runnables import RunnableConfig
from langgraph.types import Command
from sqlalchemy import func, select

from langgraph_scheduler import (
    Cron,
    Interval,
    NotAllowed,
    Once,
    SchedulerRuntime,
    TaskNotFound,
    TaskOptions,
)
from langgraph_scheduler._service import ToolCall
from langgraph_scheduler.assistant import build_assistant
from langgraph_scheduler.errors import InvalidTask, QuotaExceeded, TaskConflict
from langgraph_scheduler.middleware import SchedulerMiddleware
from langgraph_scheduler.scripted import ScriptedChatModel, tool_call
from langgraph_scheduler.store import Approval, approvals_table, open_store
from langgraph_scheduler.testing import FakeClock
from langgraph_scheduler.tools import APPROVAL_KIND, SchedulerLimits, scheduler_tools

from .helpers import until, until_lock_waiters

T: RunnableConfig = {"configurable": {"thread_id": "T", "user_id": "alice"}}
APPROVAL = SchedulerLimits(require_approval=True)
START = datetime(2027, 3, 14, 6, 0, tzinfo=timezone.utc)  # 07:00 in Berlin (CET)
KINDS = ["assistant", "agent"]

Answer = Callable[[dict[str, Any]], Any]


def calls(*specs: tuple[str, dict[str, Any]]) -> AIMessage:
    """One model message with several tool calls."""
    return AIMessage(
        content="",
        tool_calls=[
            {"name": name, "args": args, "id": f"call_{uuid.uuid4().hex[:12]}"}
            for name, args in specs
        ],
    )


def with_ids(message: AIMessage, *ids: str) -> AIMessage:
    """``message`` with its calls' ids replaced, in order: a provider may repeat an id."""
    return AIMessage(
        content="",
        tool_calls=[{**call, "id": i} for call, i in zip(message.tool_calls, ids, strict=True)],
    )


def call_ids(message: AIMessage) -> list[str]:
    return [str(call["id"]) for call in message.tool_calls]


def new_task(name: str, schedule: str) -> tuple[str, dict[str, Any]]:
    return "schedule_task", {"name": name, "schedule": schedule, "prompt": f"Do {name}."}


def make_runtime(
    kind: str,
    runtime_factory: Any,
    database: str,
    steps: list[Any],
    *,
    clock: FakeClock | None = None,
    limits: SchedulerLimits = APPROVAL,
) -> SchedulerRuntime:
    model = ScriptedChatModel(steps=steps)
    options: dict[str, Any] = {"database": database, "timezone": "Europe/Berlin"}
    if clock is not None:
        options["clock"] = clock
    if kind == "assistant":
        holder: list[SchedulerRuntime] = []
        rt: SchedulerRuntime = runtime_factory(
            build_assistant(lambda: holder[0], model=model, limits=limits), **options
        )
        holder.append(rt)
        return rt
    scheduler = SchedulerMiddleware(limits=limits)
    rt = runtime_factory(create_agent(model, tools=[], middleware=[scheduler]), **options)
    scheduler.bind(rt)
    return rt


def by_id(approve: Callable[[dict[str, Any]], bool] = lambda _: True) -> Answer:
    """A client that answers each approval by the tool call it shows."""

    def answer(request: dict[str, Any]) -> Any:
        return {"tool_call_id": request["tool_call_id"], "approved": approve(request)}

    return answer


async def resume_all(
    rt: SchedulerRuntime,
    out: dict[str, Any],
    answer: Answer,
    *,
    between: Callable[[], Any] | None = None,
    rounds: int = 12,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Answer interrupts as a client does until none is pending: one pending interrupt
    with a plain ``Command(resume=...)``, several with LangGraph's per-interrupt-id map.
    Returns the final state and every approval request shown, in order."""
    shown: list[dict[str, Any]] = []
    for _ in range(rounds):
        pending = out.get("__interrupt__")
        if not pending:
            return out, shown
        for item in pending:
            assert item.value["type"] == APPROVAL_KIND
            shown.append(item.value)
        if between is not None:
            await between()
        command: Command[Any]
        if len(pending) == 1:
            command = Command(resume=answer(pending[0].value))
        else:
            command = Command(resume={item.id: answer(item.value) for item in pending})
        out = await rt.ainvoke(command, T)
    raise AssertionError(f"still interrupted after {rounds} answers: {shown[-3:]}")


async def proposals(rt: SchedulerRuntime, count: int) -> None:
    """Wait (in real time, up to 30 s) until ``count`` approvals are stored."""
    query = select(func.count()).select_from(approvals_table)

    async def stored() -> bool:
        return bool(await rt.store.transaction(lambda conn: conn.scalar(query)) == count)

    await until(stored, f"{count} stored approvals")


def tool_messages(state: dict[str, Any]) -> list[ToolMessage]:
    return [m for m in state["messages"] if isinstance(m, ToolMessage)]


def ask(text: str = "Please schedule these.") -> dict[str, Any]:
    return {"messages": [HumanMessage(text)]}


async def test_the_approval_shows_a_run_a_clock_change_moves_and_the_answer_says_it_once(
    database: str, runtime_factory: Any
) -> None:
    clock = FakeClock(datetime(2027, 3, 26, 12, 0, tzinfo=timezone.utc))  # Berlin: 28th
    message = calls(new_task("Backup", "every day at 2:30"))
    rt = make_runtime("assistant", runtime_factory, database, [message, "Done."], clock=clock)
    async with rt:
        out, shown = await resume_all(rt, await rt.ainvoke(ask(), T), by_id())
        note = (
            "the clocks skip 02:30 on Sunday 2027-03-28 in Europe/Berlin: it runs at Sunday "
            "2027-03-28 03:00 CEST, when they jump"
        )
        (request,) = shown
        assert request["task"]["note"] == note
        assert "2027-03-28T03:00:00+02:00" in request["task"]["next_runs"]
        (answer,) = tool_messages(out)
        assert answer.status == "success" and answer.text.count(note) == 1, answer.text


# -- several calls in one message ------------------------------------------------------


@pytest.mark.parametrize("count", [2, 3])
@pytest.mark.parametrize("kind", KINDS)
async def test_each_call_of_a_message_is_shown_once_and_stored_once_after_its_approval(
    database: str, runtime_factory: Any, kind: str, count: int
) -> None:
    names = [f"Task {i}" for i in range(count)]
    message = calls(*(new_task(name, f"in {20 + i} minutes") for i, name in enumerate(names)))
    rt = make_runtime(kind, runtime_factory, database, [message, "Done."])
    async with rt:
        out = await rt.ainvoke(ask(), T)
        assert await rt.list_tasks() == []  # nothing before an approval
        out, shown = await resume_all(rt, out, by_id())

        tasks = await rt.list_tasks()
        assert sorted(t.name for t in tasks) == names  # each once, none twice
        ids = call_ids(message)
        assert sorted(r["tool_call_id"] for r in shown) == sorted(ids)  # each shown once
        for request in shown:
            (task,) = [t for t in tasks if t.name == request["task"]["name"]]
            assert request["task"]["next_runs"] == [_iso(task.next_run_at, task)]
        answers = tool_messages(out)
        assert sorted(m.tool_call_id for m in answers) == sorted(ids)
        assert all(m.status == "success" and m.text.startswith("Scheduled task") for m in answers)


@pytest.mark.parametrize("kind", KINDS)
async def test_an_answer_counts_only_for_the_call_it_names(
    sqlite_url: str, runtime_factory: Any, kind: str
) -> None:
    message = calls(*(new_task(name, "every day at 9:00") for name in ("A", "B", "C")))
    rt = make_runtime(kind, runtime_factory, sqlite_url, [message, "Done."])

    def answer(request: dict[str, Any]) -> Any:
        if request["task"]["name"] == "B":
            return {"tool_call_id": request["tool_call_id"], "approved": False, "reason": "No"}
        return {"tool_call_id": request["tool_call_id"], "approved": True}

    async with rt:
        out, _ = await resume_all(rt, await rt.ainvoke(ask(), T), answer)
        assert sorted(t.name for t in await rt.list_tasks()) == ["A", "C"]
        by_call = {m.tool_call_id: m.text for m in tool_messages(out)}
        rejected = by_call[call_ids(message)[1]]
        assert rejected.startswith("The task was not scheduled: a human rejected it")
        assert "Reason: No" in rejected


async def test_langgraph_interrupt_ids_route_plain_answers_to_their_calls(
    database: str, runtime_factory: Any
) -> None:
    # create_agent runs each call as its own task: plain values addressed by interrupt id.
    message = calls(*(new_task(name, "every day at 9:00") for name in ("Yes", "No", "Also")))
    rt = make_runtime("agent", runtime_factory, database, [message, "Done."])
    async with rt:
        out = await rt.ainvoke(ask(), T)
        pending = out["__interrupt__"]
        assert len(pending) == 3
        assert {p.value["tool_call_id"] for p in pending} == set(call_ids(message))
        out = await rt.ainvoke(
            Command(resume={p.id: p.value["task"]["name"] != "No" for p in pending}), T
        )
        assert "__interrupt__" not in out
        assert sorted(t.name for t in await rt.list_tasks()) == ["Also", "Yes"]


async def test_a_plain_answer_is_not_guessed_when_calls_share_a_step(
    database: str, runtime_factory: Any
) -> None:
    # ToolNode runs the calls of a message in one task, whose interrupts LangGraph answers
    # by position, in whatever order the calls reach them: a plain True could be anyone's.
    message = calls(new_task("First", "in 1 hour"), new_task("Second", "in 2 hours"))
    rt = make_runtime("assistant", runtime_factory, database, [message, "Done."])
    async with rt:
        out = await rt.ainvoke(ask(), T)
        # The call whose interrupt LangGraph did not show goes on proposing after the
        # first interrupt ends the step; a plain answer is refused once both exist (were
        # the shown call still alone in its step, the answer could only be its own).
        await proposals(rt, 2)
        for _ in range(3):
            (pending,) = out["__interrupt__"]
            out = await rt.ainvoke(Command(resume=True), T)
            assert await rt.list_tasks() == []
        (pending,) = out["__interrupt__"]
        request = pending.value
        assert "cannot tell the 2 approvals of this step apart" in request["problem"]
        assert request["tool_call_id"] in request["problem"]
        (other,) = request["waiting"]  # the call it could be confused with, and its values
        assert {request["task"]["name"], other["task"]["name"]} == {"First", "Second"}

        out, _ = await resume_all(rt, out, by_id())
        assert sorted(t.name for t in await rt.list_tasks()) == ["First", "Second"]


@pytest.mark.parametrize("kind", KINDS)
async def test_one_answer_can_decide_every_call_of_a_step(
    sqlite_url: str, runtime_factory: Any, kind: str
) -> None:
    message = calls(new_task("One", "in 1 hour"), new_task("Two", "in 2 hours"))
    rt = make_runtime(kind, runtime_factory, sqlite_url, [message, "Done."])
    one, two = call_ids(message)
    verdicts = {one: True, two: {"approved": False, "reason": "later"}}
    async with rt:
        out, shown = await resume_all(rt, await rt.ainvoke(ask(), T), lambda _: verdicts)
        assert [t.name for t in await rt.list_tasks()] == ["One"]
        assert "Reason: later" in {m.tool_call_id: m.text for m in tool_messages(out)}[two]
        assert len(shown) <= 2


@pytest.mark.parametrize("kind", KINDS)
async def test_an_answer_that_edits_or_says_neither_yes_nor_no_is_asked_again(
    sqlite_url: str, runtime_factory: Any, kind: str
) -> None:
    """A human who answers with changed fields (as other approval UIs allow) or with an
    ``approved`` that is not a boolean is asked again, saying why: the answer neither
    stores what was shown as if approved nor drops it as if rejected."""
    rt = make_runtime(
        kind, runtime_factory, sqlite_url, [calls(new_task("Plan", "in 1 hour")), "Done."]
    )
    unread: list[dict[str, Any]] = [
        {"approved": True, "name": "Edited", "schedule": "in 5 hours"},
        {"tool_call_id": None, "approved": True, "args": {"name": "Edited"}},
        {"approved": "true"},
    ]
    async with rt:
        out = await rt.ainvoke(ask(), T)
        for answer in unread:
            (request,) = [p.value for p in out["__interrupt__"]]
            if "tool_call_id" in answer:
                answer = {**answer, "tool_call_id": request["tool_call_id"]}
            out = await rt.ainvoke(Command(resume=answer), T)
            (again,) = [p.value for p in out["__interrupt__"]]
            assert again["tool_call_id"] == request["tool_call_id"]
            assert await rt.list_tasks() == []
        assert "'approved' must be true or false" in again["problem"]
        out = await rt.ainvoke(Command(resume=True), T)
        (task,) = await rt.list_tasks()
        assert task.name == "Plan"


TEXT_ANSWERS: dict[str, tuple[Any, str | None]] = {
    # answer: (status stored, reason stored and told to the model)
    "free text": ("  Please make it 10am instead \n", "Please make it 10am instead"),
    "long text": ("later " * 300, ("later " * 300).strip()[:999] + "…"),
    "text with a NUL": ("not\x00 now", "not\ufffd now"),
    "no": (" No ", None),
    "no, with a full stop": ("No.", None),
    "empty": ("  ", None),
    "number": (0, None),
}


@pytest.mark.parametrize("answer", TEXT_ANSWERS)
@pytest.mark.parametrize("kind", KINDS)
async def test_a_text_answer_rejects_with_the_text_as_the_reason(
    sqlite_url: str, runtime_factory: Any, kind: str, answer: str
) -> None:
    """A human who answers in words ("make it 10am instead") rejects the change, and the
    model is told what they wrote, as with a reason given in a dict; a no word, an empty
    text or a value that is not text rejects without a reason, as before."""
    value, reason = TEXT_ANSWERS[answer]
    plan = calls(new_task("Plan", "in 1 hour"))
    rt = make_runtime(kind, runtime_factory, sqlite_url, [plan, "Done."])
    async with rt:
        await rt.ainvoke(ask(), T)
        out = await rt.ainvoke(Command(resume=value), T)
        assert await rt.list_tasks() == []
        (message,) = tool_messages(out)
        assert message.text.startswith("The task was not scheduled: a human rejected it")
        query = select(approvals_table.c.status, approvals_table.c.reason)
        stored = await rt.store.transaction(lambda conn: conn.execute(query).all())
        assert [tuple(row) for row in stored] == [("rejected", reason)]
        if reason is None:
            assert "Reason:" not in message.text
        else:
            assert f"Reason: {reason} Tell the user" in message.text


@pytest.mark.parametrize("answer", ["yes", " Approve ", "Yes.", "yes!", True])
async def test_a_yes_word_approves(sqlite_url: str, runtime_factory: Any, answer: Any) -> None:
    plan = calls(new_task("Plan", "in 1 hour"))
    rt = make_runtime("agent", runtime_factory, sqlite_url, [plan, "Done."])
    async with rt:
        await rt.ainvoke(ask(), T)
        out = await rt.ainvoke(Command(resume=answer), T)
        (task,) = await rt.list_tasks()
        assert task.name == "Plan"
        assert tool_messages(out)[0].text.startswith("Scheduled task")


async def test_a_text_answer_naming_its_call_rejects_with_the_text_as_the_reason(
    sqlite_url: str, runtime_factory: Any
) -> None:
    message = calls(new_task("A", "in 1 hour"), new_task("B", "every day at 9:00"))
    rt = make_runtime("assistant", runtime_factory, sqlite_url, [message, "Done."])

    def answer(request: dict[str, Any]) -> Any:
        if request["task"]["name"] == "B":
            return {request["tool_call_id"]: "Only on weekdays, please"}
        return {request["tool_call_id"]: "yes"}

    async with rt:
        out, _ = await resume_all(rt, await rt.ainvoke(ask(), T), answer)
        assert [t.name for t in await rt.list_tasks()] == ["A"]
        by_call = {m.tool_call_id: m.text for m in tool_messages(out)}
        rejected = by_call[call_ids(message)[1]]
        assert "a human rejected it" in rejected
        assert "Reason: Only on weekdays, please" in rejected


@pytest.mark.parametrize("kind", KINDS)
async def test_rejecting_every_call_stores_nothing(
    database: str, runtime_factory: Any, kind: str
) -> None:
    message = calls(new_task("A", "in 1 hour"), new_task("B", "every day at 9:00"))
    rt = make_runtime(kind, runtime_factory, database, [message, "Done."])
    async with rt:
        out, _ = await resume_all(rt, await rt.ainvoke(ask(), T), by_id(lambda _: False))
        assert await rt.store.count_tasks(states=["active", "paused", "completed"]) == 0
        assert all("a human rejected it" in m.text for m in tool_messages(out))


# -- calls sharing an id (a provider's mistake) ---------------------------------------------

LIMITS = {"approval": APPROVAL, "no-approval": SchedulerLimits()}


async def approval_calls(rt: SchedulerRuntime) -> list[str]:
    """The tool call ids of every stored approval."""
    query = select(approvals_table.c.tool_call_id).order_by(approvals_table.c.tool_call_id)
    return list(await rt.store.transaction(lambda conn: conn.scalars(query).all()))


def refused(state: dict[str, Any], call_id: str, count: int) -> list[ToolMessage]:
    """The answers to the writing calls among the ``count`` sharing ``call_id``: each
    says so, and that nothing was done."""
    answers = [m for m in tool_messages(state) if m.tool_call_id == call_id]
    assert len(answers) == count
    writes = [m for m in answers if m.name not in ("list_tasks", "task_history")]
    for answer in writes:
        assert answer.status == "error", answer.text
        assert f"{count} calls of this message share the tool call id {call_id!r}" in answer.text
        assert "none of these changes was made" in answer.text
        assert "one tool call per message" in answer.text
    return writes


@pytest.mark.parametrize("limits", LIMITS)
@pytest.mark.parametrize("kind", KINDS)
async def test_schedule_calls_sharing_an_id_are_refused_and_the_others_stored_once(
    database: str, runtime_factory: Any, kind: str, limits: str
) -> None:
    # A resume re-runs every call of the message (ToolNode: all of them, once per
    # answer); each run refuses the sharing calls the same way and stores nothing of them.
    message = with_ids(
        calls(
            new_task("A", "in 1 hour"),
            new_task("B", "every day at 9:00"),
            new_task("C", "in 2 hours"),
            new_task("D", "every day at 18:00"),
        ),
        "dup",
        "dup",
        "own-c",
        "own-d",
    )
    rt = make_runtime(kind, runtime_factory, database, [message, "Done."], limits=LIMITS[limits])
    async with rt:
        out, shown = await resume_all(rt, await rt.ainvoke(ask(), T), by_id())

        assert sorted(t.name for t in await rt.list_tasks()) == ["C", "D"]
        asked = ["own-c", "own-d"] if limits == "approval" else []
        assert sorted(r["tool_call_id"] for r in shown) == asked  # the sharing ones never
        assert await approval_calls(rt) == asked
        (names,) = {m.text for m in refused(out, "dup", 2)}
        assert "(schedule_task, schedule_task)" in names
        own = [m for m in tool_messages(out) if m.tool_call_id != "dup"]
        assert sorted(m.tool_call_id for m in own) == ["own-c", "own-d"]
        assert all(m.status == "success" and m.text.startswith("Scheduled") for m in own)


@pytest.mark.parametrize("limits", LIMITS)
@pytest.mark.parametrize("kind", KINDS)
async def test_every_writing_tool_refuses_calls_sharing_an_id(
    database: str, runtime_factory: Any, kind: str, limits: str
) -> None:
    ids: dict[str, str] = {}
    steps: list[Any] = [
        lambda _: with_ids(
            calls(
                ("update_task", {"task_id": ids["plants"], "schedule": "in 20 minutes"}),
                ("update_task", {"task_id": ids["report"], "prompt": "Write it shorter."}),
                ("pause_task", {"task_id": ids["plants"]}),
                ("delete_task", {"task_id": ids["report"]}),
                ("run_task_now", {"task_id": ids["plants"]}),
                ("resume_task", {"task_id": ids["paused"]}),
                ("list_tasks", {}),
            ),
            *["dup"] * 2,
            *["again"] * 5,
        ),
        "Done.",
    ]
    rt = make_runtime(kind, runtime_factory, database, steps, limits=LIMITS[limits])
    async with rt:
        for name, key in (("Plants", "plants"), ("Report", "report"), ("Paused", "paused")):
            task = await rt.create_task(
                name=name, schedule=Cron("0 9 * * *"), trigger="Go.", thread_id="T", owner="alice"
            )
            ids[key] = task.id
        await rt.pause_task(ids["paused"])
        before = {t.id: t for t in await rt.list_tasks()}

        out, shown = await resume_all(rt, await rt.ainvoke(ask(), T), by_id())

        assert shown == [] and await approval_calls(rt) == []
        assert {t.id: t for t in await rt.list_tasks()} == before  # nothing changed
        assert await rt.history(ids["plants"]) == []  # and nothing run
        refused(out, "dup", 2)
        assert len(refused(out, "again", 5)) == 4
        # A reading call sharing the id is answered: it changes nothing.
        (listed,) = [m for m in tool_messages(out) if m.name == "list_tasks"]
        assert listed.status == "success" and listed.text.startswith("3 task(s)")


@pytest.mark.parametrize("limits", LIMITS)
@pytest.mark.parametrize("kind", KINDS)
async def test_refused_calls_sent_again_one_per_message_are_stored_once_each(
    database: str, runtime_factory: Any, kind: str, limits: str
) -> None:
    # The provider, not the model, picks ids, and may well pick the same one again: a
    # call alone in its message is never refused, whatever id it carries.
    a, b = new_task("A", "in 1 hour"), new_task("B", "every day at 9:00")
    steps: list[Any] = [with_ids(calls(a, b), "dup", "dup"), with_ids(calls(a), "dup")]
    steps += [with_ids(calls(b), "dup"), "Done."]
    rt = make_runtime(kind, runtime_factory, database, steps, limits=LIMITS[limits])
    async with rt:
        out, shown = await resume_all(rt, await rt.ainvoke(ask(), T), by_id())

        assert sorted(t.name for t in await rt.list_tasks()) == ["A", "B"]
        asked = ["dup", "dup"] if limits == "approval" else []
        assert [r["tool_call_id"] for r in shown] == asked
        assert await approval_calls(rt) == asked  # one per step
        answers = tool_messages(out)
        assert [m.status for m in answers] == ["error", "error", "success", "success"]
        assert [m.text.split("\n")[0] for m in answers[2:]] == [
            "Scheduled task 'A'. Confirm the next run and timezone to the user.",
            "Scheduled task 'B'. Confirm the next run and timezone to the user.",
        ]


# -- times are fixed at the preview ------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
async def test_relative_times_are_stored_as_shown_when_approved_later(
    database: str, runtime_factory: Any, kind: str
) -> None:
    clock = FakeClock(START)
    message = calls(new_task("Tea", "in 20 minutes"), new_task("Walk", "every 30 minutes"))
    rt = make_runtime(kind, runtime_factory, database, [message, "Done."], clock=clock)

    async def later() -> None:
        await clock.advance(45)  # the human takes a while to answer

    async with rt:
        out, shown = await resume_all(rt, await rt.ainvoke(ask(), T), by_id(), between=later)
        assert clock.now() >= START + timedelta(seconds=45)  # answered 45 s after shown
        # The first request was shown before the clock moved; under ToolNode the other
        # call's preview may be made later (its coroutine outlives the first interrupt),
        # but each is made once and stored as shown.
        first = shown[0]["task"]
        expected = {
            "Tea": ["2027-03-14T07:20:00+01:00"],
            "Walk": [
                "2027-03-14T07:30:00+01:00",
                "2027-03-14T08:00:00+01:00",
                "2027-03-14T08:30:00+01:00",
            ],
        }
        assert first["next_runs"] == expected[first["name"]]
        tasks = {t.name: t for t in await rt.list_tasks()}
        assert len(tasks) == 2
        for request in shown:
            task = tasks[request["task"]["name"]]
            times = await rt.next_run_times(task.id, 3)
            assert [_iso(t, task) for t in times] == request["task"]["next_runs"]
        if kind == "agent":  # both shown at once, before any answer
            assert [r["task"]["next_runs"] for r in shown] == [
                expected[r["task"]["name"]] for r in shown
            ]
            assert tasks["Tea"].schedule == Once(START + timedelta(minutes=20), tz="Europe/Berlin")
            assert tasks["Walk"].next_run_at == START + timedelta(minutes=30)


@pytest.mark.parametrize("kind", KINDS)
async def test_updates_are_applied_once_with_the_values_shown(
    database: str, runtime_factory: Any, kind: str
) -> None:
    clock = FakeClock(START)
    ids: dict[str, str] = {}
    steps: list[Any] = [
        lambda _: calls(
            ("update_task", {"task_id": ids["plants"], "schedule": "in 20 minutes"}),
            ("update_task", {"task_id": ids["report"], "prompt": "Write it shorter."}),
            ("update_task", {"task_id": ids["stretch"], "prompt": "Stretch less."}),
        ),
        "Done.",
    ]
    rt = make_runtime(kind, runtime_factory, database, steps, clock=clock)

    async def later() -> None:
        await clock.advance(30)

    def answer(request: dict[str, Any]) -> Any:
        approved = request["task"]["task_id"] != ids["stretch"]
        return {"tool_call_id": request["tool_call_id"], "approved": approved}

    async with rt:
        for name, key in (("Plants", "plants"), ("Report", "report"), ("Stretch", "stretch")):
            task = await rt.create_task(
                name=name, schedule=Cron("0 9 * * *"), trigger="Go.", thread_id="T", owner="alice"
            )
            ids[key] = task.id
        out, shown = await resume_all(rt, await rt.ainvoke(ask(), T), answer, between=later)
        assert len(shown) == 3
        plants = await rt.get_task(ids["plants"])
        (request,) = [r for r in shown if r["task"]["task_id"] == ids["plants"]]
        assert request["task"]["next_runs"] == [_iso(plants.next_run_at, plants)]
        assert isinstance(plants.schedule, Once) and plants.schedule.at == plants.next_run_at
        if kind == "agent":  # all three shown at once, before the clock moved
            assert plants.next_run_at == START + timedelta(minutes=20)
        report = await rt.get_task(ids["report"])
        assert report.trigger.prompt == "Write it shorter."
        assert (plants.version, report.version) == (1, 1)  # each change written once
        stretch = await rt.get_task(ids["stretch"])
        assert (stretch.trigger.prompt, stretch.version) == ("Go.", 0)
        texts = [m.text for m in tool_messages(out)]
        assert sum(t.startswith("Updated task") for t in texts) == 2
        assert any(t.startswith(f"Task {ids['stretch']} was not changed") for t in texts)


@pytest.mark.parametrize("kind", KINDS)
async def test_an_approved_update_writes_only_its_fields_and_shows_them_all(
    database: str, runtime_factory: Any, kind: str
) -> None:
    # While a prompt change waits for its approval, the timeout (which needs none) and
    # the system addon are changed: approving writes the prompt and the timeout it
    # asked for onto the trigger as it is then, not the whole trigger as it was.
    ids: dict[str, str] = {}
    steps: list[Any] = [
        lambda _: calls(
            ("update_task", {"task_id": ids["report"], "prompt": "Shorter.", "timeout_secs": 90})
        ),
        "Done.",
    ]
    rt = make_runtime(kind, runtime_factory, database, steps)
    async with rt:
        task = await rt.create_task(
            name="Report",
            schedule=Cron("0 9 * * *"),
            trigger={"prompt": "Write the report.", "timeout_secs": 100},
            thread_id="T",
            owner="alice",
        )
        ids["report"] = task.id

        async def meanwhile() -> None:
            await rt.update_task(task.id, timeout_secs=60)
            changed = await rt.get_task(task.id)
            addon = changed.trigger.to_payload() | {"system_addon": "Answer in French."}
            await rt.update_task(task.id, trigger=addon)

        out, shown = await resume_all(rt, await rt.ainvoke(ask(), T), by_id(), between=meanwhile)
        (request,) = shown
        assert {k: v for k, v in request["task"].items() if k not in ("name", "owner")} == {
            "task_id": task.id,
            "prompt": "Shorter.",
            "timeout_secs": 90,
        }
        stored = (await rt.get_task(task.id)).trigger
        assert tool_messages(out)[-1].text.startswith("Updated task")
    assert (stored.prompt, stored.timeout_secs) == ("Shorter.", 90)
    assert stored.system_addon == "Answer in French."  # changed meanwhile: kept


async def test_the_payload_names_the_call_and_what_will_be_stored(
    sqlite_url: str, runtime_factory: Any
) -> None:
    call = tool_call(
        "schedule_task",
        {"name": "Plants", "schedule": "every day at 9:00", "prompt": "Water the plants."},
    )
    rt = make_runtime("assistant", runtime_factory, sqlite_url, [call, "ok"])
    async with rt:
        (pending,) = (await rt.ainvoke(ask(), T))["__interrupt__"]
        request = pending.value
        assert [request["tool_call_id"]] == call_ids(call)
        assert request["action"] == "schedule_task" and "waiting" not in request
        assert request["task"]["prompt"] == "Water the plants."
        assert "tool_call_id" in request["how_to_answer"]
        # A plain answer is fine when the call is alone in its step.
        out = await rt.ainvoke(Command(resume="approve"), T)
        assert [t.name for t in await rt.list_tasks()] == ["Plants"]
        assert tool_messages(out)[-1].status == "success"


# -- the service: proposals, answers and applying them -------------------------------------


async def _service_runtime(make_graph: Any, runtime_factory: Any, database: str) -> Any:
    return runtime_factory(make_graph(), database=database, timezone="Europe/Berlin")


async def test_applying_an_approval_again_stores_nothing_more(
    database: str, make_graph: Any, runtime_factory: Any
) -> None:
    rt = await _service_runtime(make_graph, runtime_factory, database)
    async with rt:
        service = rt.tasks
        call = ToolCall("alice", "T|tools:1", "call-1")
        proposal = dict(
            preview={"name": "Tea"},
            name="Tea",
            schedule=Interval(minutes=30),
            trigger="Tea time.",
            thread_id="T",
        )
        approval = await service.propose_create(call, **proposal)
        again = await service.propose_create(call, **{**proposal, "name": "Coffee"})
        assert again.id == approval.id and again.change["name"] == "Tea"  # the first wins
        with pytest.raises(NotAllowed, match="pending"):
            await service.apply(approval)

        approval = await service.decide(approval, approved=True, reason=None)
        rejected_later = await service.decide(approval, approved=False, reason="too late")
        assert rejected_later.status == "approved"  # the first answer stands
        first = await service.apply(approval)
        second = await service.apply(approval)
        assert first.id == second.id == approval.task_id
        assert len(await rt.list_tasks()) == 1
        assert (await service.reread(approval)).status == "applied"

        await rt.delete_task(first.id)
        with pytest.raises(TaskNotFound):
            await service.apply(approval)  # carried out once: never made again
        assert await rt.list_tasks() == []

        # Another step may reuse the call id (some providers do): a new approval.
        other = await service.propose_create(replace(call, step="T|tools:2"), **proposal)
        assert other.id != approval.id and other.task_id != approval.task_id


async def test_an_approval_found_from_another_step_joins_the_step_its_call_runs_in(
    sqlite_url: str, make_graph: Any, runtime_factory: Any
) -> None:
    # A call run again from a new checkpoint (a crash lost the step's; a replay) finds its
    # proposal at its site, made in the lost step: it joins the step the call runs in
    # now, where its siblings propose, so an answer is still told apart among them.
    rt = await _service_runtime(make_graph, runtime_factory, sqlite_url)
    async with rt:
        service = rt.tasks
        proposal: dict[str, Any] = {
            "preview": {},
            "name": "A",
            "schedule": Cron("0 10 * * *"),
            "trigger": "A.",
        }
        lost = ToolCall("alice", "T|tools:lost", "call_A", site="T|message:m1")
        first = await service.propose_create(lost, **proposal)
        rerun = replace(lost, step="T|tools:new")
        found = await service.find_approval(rerun)
        assert found is not None and found.id == first.id and found.step != first.step
        sibling = await service.propose_create(
            ToolCall("alice", "T|tools:new", "call_B", site="T|message:m1"),
            **{**proposal, "name": "B"},
        )
        assert [a.id for a in await service.step_approvals(found)] == [first.id, sibling.id]
        again = await service.find_approval(rerun)
        assert again == found  # found in its step now: nothing moves


async def test_a_refused_apply_is_recorded_and_answered_the_same_again(
    sqlite_url: str, make_graph: Any, runtime_factory: Any
) -> None:
    rt = await _service_runtime(make_graph, runtime_factory, sqlite_url)
    async with rt:
        service = rt.tasks
        await rt.create_task(name="x", schedule=Cron("0 9 * * *"), trigger="x", owner="alice")
        approval = await service.propose_create(
            ToolCall("alice", "s", "c"),
            preview={},
            name="Tea",
            schedule=Cron("0 10 * * *"),
            trigger="Tea.",
        )
        approval = await service.decide(approval, approved=True, reason=None)
        with pytest.raises(QuotaExceeded, match="quota reached") as refused:
            await service.apply(approval, max_active=1)
        assert (await service.reread(approval)).status == "failed"
        with pytest.raises(InvalidTask, match="quota reached") as again:
            await service.apply(approval, max_active=5)
        assert str(again.value) == str(refused.value)
        rejected = await service.propose_create(
            ToolCall("alice", "s", "d"),
            preview={},
            name="No",
            schedule=Cron("0 10 * * *"),
            trigger="No.",
        )
        rejected = await service.decide(rejected, approved=False, reason="no")
        with pytest.raises(NotAllowed, match="rejected"):
            await service.apply(rejected)
        assert len(await rt.list_tasks()) == 1


async def test_an_update_approval_is_applied_once(
    database: str, make_graph: Any, runtime_factory: Any
) -> None:
    rt = await _service_runtime(make_graph, runtime_factory, database)
    async with rt:
        task = await rt.create_task(
            name="Plants", schedule=Cron("0 9 * * *"), trigger="Water.", owner="alice"
        )
        service = rt.tasks
        approval = await service.propose_update(
            task.id,
            ToolCall("alice", "s", "c"),
            preview={},
            trigger="Water less.",
            schedule=Interval(hours=1),
        )
        approval = await service.decide(approval, approved=True, reason=None)
        first = await service.apply(approval)
        await rt.update_task(task.id, name="Garden")  # a later change is kept
        second = await service.apply(approval)
        assert first.version == 1 and second.version == 2 and second.name == "Garden"
        assert second.trigger.prompt == "Water less."
        assert second.schedule == first.schedule  # the pinned first fire, not a new one
        with pytest.raises(TaskNotFound):
            await service.propose_update(
                task.id, ToolCall("bob", "s", "x"), preview={}, name="Mine"
            )


async def test_create_with_a_task_id_stores_one_task(
    database: str, make_graph: Any, runtime_factory: Any
) -> None:
    rt = await _service_runtime(make_graph, runtime_factory, database)
    async with rt:
        tea: dict[str, Any] = {
            "name": "Tea",
            "schedule": Cron("0 9 * * *", end=datetime(2030, 1, 1, tzinfo=timezone.utc)),
            "trigger": {"prompt": "t", "system_addon": "Be brief.", "timeout_secs": 90},
            "thread_id": "kitchen",
            "options": TaskOptions(on_busy="skip", retry_backoff_secs=2.5),
            "max_runs": 3,
            "owner": "a",
            "task_id": "tea-1",
        }
        made = [await rt.create_task(**tea) for _ in range(2)]  # read back from the store
        assert made[0] == made[1] and made[0].id == "tea-1"
        assert [t.id for t in await rt.list_tasks()] == ["tea-1"]
        with pytest.raises(TaskConflict, match="another options"):
            await rt.create_task(**(tea | {"options": TaskOptions(on_busy="skip")}))
        with pytest.raises(InvalidTask, match="is taken"):
            await rt.create_task(
                name="Tea", schedule=Cron("0 9 * * *"), trigger="t", owner="b", task_id="tea-1"
            )
        with pytest.raises(InvalidTask, match="task_id"):
            await rt.create_task(
                name="x", schedule=Cron("0 9 * * *"), trigger="t", task_id=" padded "
            )


# -- the store ---------------------------------------------------------------------------


async def test_store_approvals_conform_on_every_backend(database: str) -> None:
    store = open_store(database)
    await store.setup()
    try:
        now = START
        approval = Approval(
            id="a1",
            owner="alice",
            step="s1",
            tool_call_id="call-1",
            action="create",
            task_id="t1",
            change={"name": "x"},
            preview={"next_runs": ["2027-03-14T07:20:00+01:00"]},
            status="pending",
            created_at=now,
        )
        assert await store.add_approval(approval) == approval
        changed = Approval(**{**approval.__dict__, "change": {"name": "y"}})
        assert (await store.add_approval(changed)).change == {"name": "x"}
        assert await store.get_approval("nope") is None
        assert [a.id for a in await store.step_approvals("alice", "s1")] == ["a1"]
        assert await store.step_approvals("bob", "s1") == []

        assert await store.decide_approval("a1", status="approved", reason=None, now=now)
        assert not await store.decide_approval("a1", status="rejected", reason="x", now=now)
        stored = await store.get_approval("a1")
        assert stored is not None and (stored.status, stored.decided_at) == ("approved", now)
        approved = store.approved_approvals
        found = await approved("alice", action="create", task_id="t1", decided_since=now)
        assert [a.id for a in found] == ["a1"]
        assert await approved("alice", action="create", task_id="t2", decided_since=now) == []
        assert await approved("alice", action="update", task_id=None, decided_since=now) == []
        assert await approved("bob", action="create", task_id=None, decided_since=now) == []
        later_on = now + timedelta(seconds=1)
        assert await approved("alice", action="create", task_id=None, decided_since=later_on) == []

        waiting = Approval(**{**approval.__dict__, "id": "a2", "tool_call_id": "call-2"})
        await store.add_approval(waiting)
        later = now + timedelta(days=365)
        assert await store.purge_approvals(decided_before=now) == 0
        assert await store.purge_approvals(decided_before=later) == 1  # the answered one
        assert await store.get_approval("a1") is None
        assert await store.get_approval("a2") is not None  # still waiting for its answer
    finally:
        await store.close()


# -- the tools outside a graph -----------------------------------------------------------


async def test_tools_run_from_plain_arguments_and_say_when_approval_needs_a_call_id(
    sqlite_url: str, make_graph: Any, runtime_factory: Any
) -> None:
    rt = runtime_factory(make_graph(), database=sqlite_url, timezone="Europe/Berlin")
    args = {"name": "Tea", "schedule": "in 1 hour", "prompt": "Tea."}
    async with rt:
        plain = {t.name: t for t in scheduler_tools(rt)}
        assert (await plain["schedule_task"].ainvoke(args, config=T)).startswith("Scheduled")
        guarded = {t.name: t for t in scheduler_tools(rt, limits=APPROVAL)}
        message = await guarded["schedule_task"].ainvoke(args, config=T)
        assert "kept under the tool call's id" in message and "full tool call" in message
        assert len(await rt.list_tasks()) == 1
        for tool in guarded.values():  # the model never sees what the call fills in
            schema = tool.tool_call_schema.model_json_schema()  # type: ignore[union-attr]
            assert not {"tool_call_id", "messages"} & schema["properties"].keys(), tool.name


def _iso(value: datetime | None, task: Any) -> str:
    assert value is not None
    return value.astimezone(task.zone).replace(microsecond=0).isoformat()


async def test_a_human_reason_any_database_can_store(database: str, runtime_factory: Any) -> None:
    # A reason with a NUL (which PostgreSQL refuses) or a lone surrogate (which no UTF-8
    # encoder takes), or a very long one, is kept and shown made storable and cut short:
    # the human's answer counts all the same, and no proposal stays pending.
    message = calls(*(new_task(name, "every day at 9:00") for name in ("A", "B", "C")))
    rt = make_runtime("agent", runtime_factory, database, [message, "Done."])
    reasons = {"A": "ok\x00 fine", "B": "not \ud83d now", "C": "long " * 1_000}

    def answer(request: dict[str, Any]) -> Any:
        name = request["task"]["name"]
        call = request["tool_call_id"]
        return {"tool_call_id": call, "approved": name != "B", "reason": reasons[name]}

    async with rt:
        out, _ = await resume_all(rt, await rt.ainvoke(ask(), T), answer)
        assert sorted(t.name for t in await rt.list_tasks()) == ["A", "C"]
        by_call = {m.tool_call_id: m.text for m in tool_messages(out)}
        a, b, c = (by_call[i] for i in call_ids(message))
        assert a.startswith("Scheduled task") and c.startswith("Scheduled task")
        assert b.startswith("The task was not scheduled") and "Reason: not \ufffd now" in b
        query = select(approvals_table.c.status, approvals_table.c.reason)
        stored = await rt.store.transaction(lambda conn: conn.execute(query).all())
        assert sorted(status for status, _ in stored) == ["applied", "applied", "rejected"]
        assert {reason for _, reason in stored} == {
            "ok\ufffd fine",
            "not \ufffd now",
            ("long " * 1_000)[:999] + "…",
        }


# -- a change approved but not stored, asked for again ---------------------------------


async def _plants(rt: SchedulerRuntime, owner: str = "alice", thread_id: str | None = None) -> Any:
    return await rt.create_task(
        name="Plants",
        schedule=Cron("0 9 * * *"),
        trigger="Water.",
        thread_id=thread_id,
        owner=owner,
    )


async def _approved_update(
    rt: SchedulerRuntime, owner: str = "alice", prompt: str = "Water less."
) -> tuple[Any, Approval, dict[str, Any]]:
    """A task of ``owner``, and an approved change of its prompt not yet stored (the
    database failed when it was applied); returns the proposal's arguments too."""
    task = await _plants(rt, owner)
    proposal: dict[str, Any] = {
        "preview": {"task_id": task.id, "name": "Plants", "prompt": prompt},
        "trigger_changes": {"prompt": prompt},
    }
    first = await rt.tasks.propose_update(task.id, ToolCall(owner, "s1", "call-1"), **proposal)
    return task, await rt.tasks.decide(first, approved=True, reason=None), proposal


@contextlib.asynccontextmanager
async def _approved_plants(
    make_graph: Any, runtime_factory: Any, database: str
) -> AsyncIterator[tuple[SchedulerRuntime, FakeClock, Any, Approval, dict[str, Any]]]:
    """A running runtime on a fake clock, with :func:`_approved_update` made in it."""
    clock = FakeClock(START)
    rt = runtime_factory(make_graph(), database=database, clock=clock)
    async with rt:
        yield (rt, clock, *await _approved_update(rt))


async def test_a_new_call_for_an_approved_change_not_stored_is_carried_out_under_it(
    database: str, make_graph: Any, runtime_factory: Any
) -> None:
    given = _approved_plants(make_graph, runtime_factory, database)
    async with given as (rt, clock, task, approved, proposal):
        await clock.advance(600)  # ten minutes after the answer
        service = rt.tasks
        retry = await service.propose_update(task.id, ToolCall("alice", "s2", "call-2"), **proposal)
        assert (retry.id, retry.status) == (approved.id, "approved")  # not asked again
        updated = await service.apply(retry)
        assert (updated.trigger.prompt, updated.version) == ("Water less.", 1)
        assert (await service.reread(approved)).status == "applied"
        # Carried out: the same change asked for again is a new change, asked for anew.
        again = await service.propose_update(task.id, ToolCall("alice", "s3", "call-3"), **proposal)
        assert again.id != approved.id and again.status == "pending"

        # A create too: its new task is the one the approval fixed.
        call = ToolCall("alice", "s4", "call-4")
        tea: dict[str, Any] = {
            "preview": {"name": "Tea"},
            "name": "Tea",
            "schedule": Cron("0 10 * * *"),
            "trigger": "Tea.",
        }
        made = await service.decide(
            await service.propose_create(call, **tea), approved=True, reason=None
        )
        retried = await service.propose_create(ToolCall("alice", "s5", "call-5"), **tea)
        assert retried.id == made.id
        assert (await service.apply(retried)).id == made.task_id
        assert [t.name for t in await rt.list_tasks(owner="alice")] == ["Plants", "Tea"]


async def test_an_approval_is_not_used_for_another_owner_change_task_or_preview(
    database: str, make_graph: Any, runtime_factory: Any
) -> None:
    given = _approved_plants(make_graph, runtime_factory, database)
    async with given as (rt, _, task, approved, proposal):
        service = rt.tasks
        other, _, _ = await _approved_update(rt, prompt="Water more.")
        bobs, _, _ = await _approved_update(rt, owner="bob")

        def call(owner: str = "alice") -> ToolCall:
            return ToolCall(owner, "s2", f"call-{uuid.uuid4().hex}")

        asked = [
            # Another change of the same task, shown otherwise.
            await service.propose_update(
                task.id,
                call(),
                preview={**proposal["preview"], "prompt": "Water more."},
                trigger_changes={"prompt": "Water more."},
            ),
            # The same change shown otherwise (the task changed meanwhile).
            await service.propose_update(
                task.id, call(), **{**proposal, "preview": {**proposal["preview"], "name": "X"}}
            ),
            # The same values, another field.
            await service.propose_update(task.id, call(), preview=proposal["preview"], name="x"),
            # Another task of the owner with a change of its own approved.
            await service.propose_update(other.id, call(), **proposal),
            # The same change and preview by another owner, for their own task.
            await service.propose_update(bobs.id, call("bob"), **proposal),
            # The same change, asked for beside the approved one (its step): not a retry.
            await service.propose_update(task.id, replace(call(), step="s1"), **proposal),
        ]
        assert [a.status for a in asked] == ["pending"] * len(asked)
        assert approved.id not in {a.id for a in asked}
        assert len({a.id for a in asked}) == len(asked)
        # Nor a create's approval for another owner, the change and preview the same.
        tea: dict[str, Any] = {
            "preview": {"name": "Tea"},
            "name": "Tea",
            "schedule": Cron("0 10 * * *"),
            "trigger": "Tea.",
        }
        alices = await service.propose_create(call(), **tea)
        await service.decide(alices, approved=True, reason=None)
        assert (await service.propose_create(call("bob"), **tea)).status == "pending"
        # Nor an update's for a create of the same values, nor a create's for an update.
        assert (await service.propose_create(call(), **{**tea, "name": "x"})).status == "pending"
        assert (await service.reread(approved)).status == "approved"  # nothing was used


@pytest.mark.parametrize("kind", KINDS)
async def test_an_answer_sent_as_another_user_approves_nothing(
    database: str, runtime_factory: Any, kind: str
) -> None:
    # Alice is shown her task; Bob answers on her thread: the call runs again as Bob, and
    # his "yes" stored a task of his that nobody was shown.
    message = calls(new_task("Tea", "every day at 10:00"))
    rt = make_runtime(kind, runtime_factory, database, [message, "Done."])
    bob: RunnableConfig = {"configurable": {"thread_id": "T", "user_id": "bob"}}
    async with rt:
        out = await rt.ainvoke(ask(), T)
        (pending,) = out["__interrupt__"]
        assert pending.value["task"]["owner"] == "alice"
        out = await rt.ainvoke(Command(resume=by_id()(pending.value)), bob)

        assert await rt.list_tasks() == []
        (answer,) = tool_messages(out)
        assert answer.status == "error"
        assert "asked of another user" in answer.text and "alice" not in answer.text


@pytest.mark.parametrize("ended", ["rejected", "applied", "failed", "too old"])
async def test_an_approval_rejected_carried_out_failed_or_old_is_not_used_again(
    database: str, make_graph: Any, runtime_factory: Any, ended: str
) -> None:
    given = _approved_plants(make_graph, runtime_factory, database)
    async with given as (rt, clock, task, approved, proposal):
        service = rt.tasks
        if ended == "rejected":
            await rt.store.transaction(  # answered no, as if it had been all along
                lambda conn: conn.execute(
                    approvals_table.update().values(status="rejected", reason="no")
                )
            )
        elif ended == "applied":
            await service.apply(approved)
        elif ended == "failed":  # as apply records a change the store refused
            await rt.store.decide_approval(
                approved.id, status="failed", reason="x", now=clock.now(), expected="approved"
            )
        else:
            await clock.advance(3600 + 1)
        retry = await service.propose_update(task.id, ToolCall("alice", "s3", "call-3"), **proposal)
        assert retry.id != approved.id and retry.status == "pending"
        stored = await service.reread(approved)
        assert stored.status == {"too old": "approved"}.get(ended, ended)
        version = (await rt.get_task(task.id)).version
        assert version == (1 if ended == "applied" else 0)


def _hold_row(postgres_url: str, task_id: str) -> Any:
    """Another session holding the task's row locked, as a DBA's open transaction does;
    its ``rollback()`` frees it. (Every apply of a change to it then ends in TaskBusy.)"""
    import psycopg

    holder = psycopg.connect(postgres_url)
    holder.execute("SELECT id FROM lgs_tasks WHERE id = %s FOR UPDATE", (task_id,))
    return holder


def _refuse_task_writes(postgres_url: str, *, on: bool) -> None:
    """Make the database refuse every change of a task as a read-only one does (a
    failover onto a standby): the store reports it unavailable. ``on=False`` undoes it."""
    import psycopg

    with psycopg.connect(postgres_url, autocommit=True) as conn:
        if on:
            conn.execute(
                "CREATE FUNCTION lgs_test_read_only() RETURNS trigger LANGUAGE plpgsql AS "
                "$$ BEGIN RAISE EXCEPTION 'read-only' USING ERRCODE = '25006'; END $$"
            )
            conn.execute(
                "CREATE TRIGGER lgs_test_read_only BEFORE UPDATE ON lgs_tasks "
                "FOR EACH ROW EXECUTE FUNCTION lgs_test_read_only()"
            )
        else:
            conn.execute("DROP TRIGGER lgs_test_read_only ON lgs_tasks")


@pytest.mark.parametrize("failure", ["row held", "read-only"])
@pytest.mark.parametrize("kind", KINDS)
async def test_a_retry_of_an_approved_update_the_database_refused_is_not_asked_again(
    postgres_url: str, runtime_factory: Any, kind: str, failure: str
) -> None:
    # The human approves a change; storing it fails for a while (another session holds
    # the task's row, or the database is read-only), and the tool tells the model to try
    # again. Its retry is a new tool call, which asked the human again for what they had
    # just approved. It is now carried out under that approval, without asking; the
    # change is written once.
    ids: dict[str, str] = {}

    def update() -> AIMessage:
        return calls(("update_task", {"task_id": ids["plants"], "prompt": "Water less."}))

    steps: list[Any] = [
        lambda _: update(),
        "The scheduler could not store it; I will try again.",
        lambda _: update(),
        "Done.",
    ]
    rt = make_runtime(kind, runtime_factory, postgres_url, steps)
    async with rt:
        task = await _plants(rt, thread_id="T")
        ids["plants"] = task.id
        out = await rt.ainvoke(ask("Water the plants less."), T)
        (shown,) = out["__interrupt__"]
        if failure == "row held":
            with _hold_row(postgres_url, task.id) as holder:
                out = await rt.ainvoke(Command(resume=by_id()(shown.value)), T)
                holder.rollback()
        else:
            _refuse_task_writes(postgres_url, on=True)
            out = await rt.ainvoke(Command(resume=by_id()(shown.value)), T)
            _refuse_task_writes(postgres_url, on=False)
        (refused,) = tool_messages(out)
        assert refused.status == "error"
        assert ("try again shortly" if failure == "row held" else "cannot be reached") in (
            refused.text
        )
        assert (await rt.get_task(task.id)).version == 0  # nothing written yet

        out = await rt.ainvoke(ask("Try again."), T)
        assert "__interrupt__" not in out  # the human is not asked again
        retried = tool_messages(out)[-1]
        assert retried.status == "success" and retried.text.startswith("Updated task 'Plants'")
        assert "prompt: Water less." in retried.text
        stored = await rt.get_task(task.id)
        assert (stored.trigger.prompt, stored.version) == ("Water less.", 1)  # written once
        statuses = await rt.store.transaction(
            lambda conn: conn.execute(select(approvals_table.c.status)).scalars().all()
        )
        assert statuses == ["applied"]  # one approval: the one the human gave


async def test_calls_racing_to_carry_out_one_approval_write_once_and_both_say_it_is_done(
    postgres_url: str, make_graph: Any, runtime_factory: Any
) -> None:
    # Two retries of an approved change find its approval while the task's row is held;
    # once it is free, one writes it and the other finds it carried out: it writes
    # nothing and answers with the task as changed, not as it read it before.
    given = _approved_plants(make_graph, runtime_factory, postgres_url)
    async with given as (rt, _, task, approved, proposal):
        retries = [
            await rt.tasks.propose_update(task.id, ToolCall("alice", "s2", f"call-{i}"), **proposal)
            for i in (2, 3)
        ]
        assert {a.id for a in retries} == {approved.id}
        with _hold_row(postgres_url, task.id) as holder:
            applying = [asyncio.ensure_future(rt.tasks.apply(a)) for a in retries]
            await until_lock_waiters(postgres_url, 2)  # each read the task, then waited
            holder.rollback()
            results = await asyncio.gather(*applying)
        stored = await rt.get_task(task.id)
    assert (stored.trigger.prompt, stored.version) == ("Water less.", 1)
    assert [(t.trigger.prompt, t.version) for t in results] == [("Water less.", 1)] * 2


@pytest.mark.parametrize("kind", KINDS)
async def test_an_answer_whose_inner_tool_call_id_names_another_call_is_asked_again(
    sqlite_url: str, runtime_factory: Any, kind: str
) -> None:
    """The several-calls form keyed by one call but naming another inside contradicts
    itself: it decides nothing, and the request comes again saying why."""
    message = calls(new_task("One", "in 1 hour"), new_task("Two", "in 2 hours"))
    rt = make_runtime(kind, runtime_factory, sqlite_url, [message, "Done."])
    one, two = call_ids(message)
    contradictory = {one: {"approved": True, "tool_call_id": two}, two: True}
    async with rt:
        out = await rt.ainvoke(ask(), T)
        await proposals(rt, 2)
        for _ in range(2):
            pending = out["__interrupt__"]
            resume = contradictory if len(pending) == 1 else {p.id: contradictory for p in pending}
            out = await rt.ainvoke(Command(resume=resume), T)
            assert await rt.list_tasks() == []
            problems = [p.value["problem"] for p in out["__interrupt__"]]
            assert problems and all(
                f"the answer for {one!r} names tool call {two!r}" in p for p in problems
            )
        out, _ = await resume_all(rt, out, by_id())
        assert sorted(t.name for t in await rt.list_tasks()) == ["One", "Two"]


@pytest.mark.parametrize("kind", KINDS)
async def test_an_answer_naming_another_call_does_not_decide_the_call_it_reaches(
    sqlite_url: str, runtime_factory: Any, kind: str
) -> None:
    """``{"tool_call_id": "x", "approved": True}`` sent to call y (a plain resume for a
    ``ToolNode``, by the interrupt's id for ``create_agent``) does not approve y."""
    rt = make_runtime(
        kind, runtime_factory, sqlite_url, [calls(new_task("Plan", "in 1 hour")), "Done."]
    )
    async with rt:
        out = await rt.ainvoke(ask(), T)
        (pending,) = out["__interrupt__"]
        wrong = {"tool_call_id": "call_elsewhere", "approved": True}
        resume = wrong if kind == "assistant" else {pending.id: wrong}
        out = await rt.ainvoke(Command(resume=resume), T)
        (again,) = [p.value for p in out["__interrupt__"]]
        assert again["tool_call_id"] == pending.value["tool_call_id"]
        assert "the last answer named ['call_elsewhere']" in again["problem"]
        assert await rt.list_tasks() == []
        out = await rt.ainvoke(Command(resume=True), T)
        assert [t.name for t in await rt.list_tasks()] == ["Plan"]


@pytest.mark.parametrize("kind", KINDS)
async def test_none_sent_by_the_interrupts_id_rejects(
    sqlite_url: str, runtime_factory: Any, kind: str
) -> None:
    """``None`` reaches an approval only by the interrupt's id (LangGraph takes
    ``Command(resume=None)`` for no resume and raises before any tool runs)."""
    message = calls(new_task("Plan", "in 1 hour"))
    rt = make_runtime(kind, runtime_factory, sqlite_url, [message, "Done."])
    async with rt:
        out = await rt.ainvoke(ask(), T)
        (pending,) = out["__interrupt__"]
        out = await rt.ainvoke(Command(resume={pending.id: None}), T)
        assert "__interrupt__" not in out
        assert await rt.list_tasks() == []
        (answer,) = tool_messages(out)
        assert answer.text.startswith("The task was not scheduled: a human rejected it")
        assert "Reason:" not in answer.text
