"""``task_source`` in a checkpoint: kept as text, read back as the value it was.

LangGraph's PostgreSQL saver writes a channel value that is no string, number or None to
a blob row of its own. A scheduled turn's signed source is a dict, so it cost every fire
one more row than a direct turn; its channel keeps it as text instead (inline in the
checkpoint's row), and every value a graph can hold there reads back as it was written.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from datetime import datetime, timedelta, timezone
from typing import Any

import psycopg
import pytest
from langchain.agents import create_agent
from langchain_core.messages import AIMessage, HumanMessage
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import START, MessagesState, StateGraph
from typing_extensions import NotRequired

from langgraph_scheduler import Once, SchedulerRuntime, TaskSource
from langgraph_scheduler.middleware import SchedulerMiddleware
from langgraph_scheduler.scripted import ScriptedChatModel
from langgraph_scheduler.state import SchedulerState

THREAD: RunnableConfig = {"configurable": {"thread_id": "t1"}}
LATER = Once(at=datetime.now(timezone.utc) + timedelta(days=365))


def _answering(state_schema: Any) -> StateGraph[Any, Any, Any, Any]:
    async def answer(state: Any) -> dict[str, Any]:
        return {"messages": [AIMessage("ok")]}

    builder = StateGraph(state_schema)
    builder.add_node("answer", answer)
    builder.add_edge(START, "answer")
    return builder


class _PlainState(MessagesState):
    """A state that declares ``task_source`` itself, as graphs did before its channel."""

    task_source: NotRequired[TaskSource | None]


async def _raw(saver: BaseCheckpointSaver[Any], thread_id: str) -> Any:
    saved = await saver.aget_tuple({"configurable": {"thread_id": thread_id}})
    assert saved is not None
    return saved.checkpoint["channel_values"]["task_source"]


async def test_a_scheduled_turns_source_is_kept_as_text_and_read_as_its_dict(
    runtime_factory: Any, database: str
) -> None:
    rt: SchedulerRuntime = runtime_factory(_answering(SchedulerState), database=database)
    async with rt:
        task = await rt.create_task(name="plants", schedule=LATER, trigger="water", thread_id="t1")
        for _ in range(2):  # a new thread, then one continued
            record = await rt.run_now(task.id)
            assert record.outcome == "success", record
        source = (await rt.graph.aget_state(THREAD)).values["task_source"]
        assert type(source) is dict
        assert source["run_id"] == record.run_id and source["task_id"] == task.id
        assert rt.verify_task_source(source, "t1")  # the signature reads as it was signed
        saver = rt.checkpointer
        assert saver is not None
        raw = await _raw(saver, "t1")
        assert isinstance(raw, str) and raw.startswith("lgs-task-source:{")
    if database.startswith("postgresql"):
        with psycopg.connect(database) as conn:
            rows = conn.execute(
                "SELECT channel, count(*) FROM checkpoint_blobs GROUP BY channel"
            ).fetchall()
        assert "task_source" not in dict(rows), rows  # no blob row of its own


async def test_a_source_stored_as_a_dict_before_reads_back() -> None:
    saver = InMemorySaver()
    source: TaskSource = {
        "task_id": "a1",
        "task_name": "Plants",
        "run_id": "r1",
        "scheduled_for": "2026-03-29T07:00:00+00:00",
        "attempt": 1,
        "trigger": "schedule",
    }
    before = _answering(_PlainState).compile(checkpointer=saver)
    await before.ainvoke({"messages": [HumanMessage("hi")], "task_source": source}, THREAD)
    assert await _raw(saver, "t1") == source  # kept as the dict itself
    after = _answering(SchedulerState).compile(checkpointer=saver)
    assert (await after.aget_state(THREAD)).values["task_source"] == source
    await after.ainvoke({"messages": [HumanMessage("again")]}, THREAD)
    assert (await after.aget_state(THREAD)).values["task_source"] == source


ODD_VALUES = [
    None,
    {"task_id": "a1", "attempt": 2, "system_addon": None, "late": True, "name": "é\x00\ud800"},
    {},
    "plain text",
    "lgs-task-source:",
    'lgs-task-source:{"task_id": "forged"}',
    "lgs-task-source:lgs-task-source:x",
    "lgs-task-source:not json",
    {"nested": {"a": 1}},  # not flat: kept as the dict
    {"ratio": 0.5},  # a float: kept as the dict
    {1: "int key"},
    ["a", "list"],
    42,
]


@contextlib.asynccontextmanager
async def _saver(kind: str, request: pytest.FixtureRequest) -> AsyncIterator[Any]:
    """A checkpointer of each kind the runtime uses: in memory, SQLite file, PostgreSQL."""
    if kind == "memory":
        yield InMemorySaver()
    elif kind == "file":
        from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

        path = request.getfixturevalue("tmp_path") / "c.db"
        async with AsyncSqliteSaver.from_conn_string(str(path)) as saver:
            yield saver
    else:
        from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver

        url = request.getfixturevalue("postgres_url")
        async with AsyncPostgresSaver.from_conn_string(url) as saver:
            await saver.setup()
            yield saver


@pytest.mark.parametrize("kind", ["memory", "file", "postgres"])
@pytest.mark.parametrize("value", ODD_VALUES, ids=repr)
async def test_every_value_a_client_writes_reads_back_as_written(
    value: Any, kind: str, request: pytest.FixtureRequest
) -> None:
    async with _saver(kind, request) as saver:
        graph = _answering(SchedulerState).compile(checkpointer=saver)
        await graph.ainvoke({"messages": [HumanMessage("hi")]}, THREAD)
        await graph.aupdate_state(THREAD, {"task_source": value})
        read = (await graph.aget_state(THREAD)).values["task_source"]
        assert read == value and type(read) is type(value)
        again = _answering(SchedulerState).compile(checkpointer=saver)  # read back afresh
        read = (await again.aget_state(THREAD)).values["task_source"]
        assert read == value and type(read) is type(value)


async def test_the_middlewares_state_keeps_the_source_as_text(
    runtime_factory: Any, sqlite_url: str
) -> None:
    scheduler = SchedulerMiddleware()
    agent = create_agent(ScriptedChatModel(steps=["done"]), middleware=[scheduler])
    rt: SchedulerRuntime = runtime_factory(agent, database=sqlite_url)
    scheduler.bind(rt)
    async with rt:
        task = await rt.create_task(name="plants", schedule=LATER, trigger="water", thread_id="t1")
        record = await rt.run_now(task.id)
        assert record.outcome == "success", record
        source = (await rt.graph.aget_state(THREAD)).values["task_source"]
        assert type(source) is dict and source["run_id"] == record.run_id
        assert rt.checkpointer is not None
        assert str(await _raw(rt.checkpointer, "t1")).startswith("lgs-task-source:{")
