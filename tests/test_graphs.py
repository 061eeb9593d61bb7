"""The ready assistant in ``graphs/`` and ``langgraph.json``: import, compile, run a turn."""

from __future__ import annotations

import importlib.util
import json
import uuid
from datetime import datetime, timezone
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from langchain_core.messages import HumanMessage
from langgraph.pregel import Pregel

from langgraph_scheduler import NotRunning, SchedulerError, SchedulerRuntime
from langgraph_scheduler.assistant import demo_model
from langgraph_scheduler.schedules import parse_schedule
from langgraph_scheduler.served import LangGraphServer, scheduler_lifespan, served_runtime
from langgraph_scheduler.views import load_transcript

from .helpers import RunWaiter, forged_task_source

ROOT = Path(__file__).resolve().parents[1]


def _load(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"graph_{uuid.uuid4().hex[:8]}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def assistant(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> ModuleType:
    monkeypatch.setenv("LANGGRAPH_SCHEDULER_DATABASE", f"sqlite:///{tmp_path / 'dev.db'}")
    monkeypatch.delenv("LANGGRAPH_SCHEDULER_MODEL", raising=False)
    return _load(ROOT / "graphs" / "assistant.py")


def test_langgraph_json_names_the_served_graph_and_its_lifespan_app() -> None:
    config = json.loads((ROOT / "langgraph.json").read_text())
    graph_path, _, graph_attribute = config["graphs"]["assistant"].partition(":")
    app_path, _, app_attribute = config["http"]["app"].partition(":")
    assert graph_path == app_path
    module = _load(ROOT / graph_path)
    assert isinstance(getattr(module, graph_attribute), Pregel)
    starlette = pytest.importorskip("starlette.applications", reason="langgraph-cli[inmem]")
    assert isinstance(getattr(module, app_attribute), starlette.Starlette)
    assert module.ASSISTANT_ID == "assistant"


def test_module_exports_a_compiled_graph_and_an_unstarted_runtime(assistant: ModuleType) -> None:
    graph = assistant.graph
    assert isinstance(graph, Pregel) and graph.checkpointer is None  # the server brings one
    assert {"trigger", "agent", "tools"} <= set(graph.nodes)
    assert isinstance(assistant.runtime, SchedulerRuntime) and not assistant.runtime.running


async def test_assistant_schedules_a_task_that_runs_one_attributed_turn(
    assistant: ModuleType, tmp_path: Path
) -> None:
    runs = RunWaiter()
    rt = assistant.make_runtime(f"sqlite:///{tmp_path / 'assistant.db'}")
    rt.add_listener(runs)
    config: Any = {"configurable": {"thread_id": "alice"}}
    async with rt:
        result = await rt.ainvoke(
            {"messages": [HumanMessage("Remind me to drink water in 1 second")]}, config
        )
        assert result["messages"][1].tool_calls[0]["name"] == "schedule_task"
        assert result["messages"][-1].text.startswith("Done: I scheduled 'Drink water'")
        (record,) = await runs.wait_for(1, timeout=15)
        transcript = await load_transcript(rt, "alice")
    assert record.outcome == "success" and record.thread_id == "alice"
    assert record.summary is not None and "Time to drink water!" in record.summary
    (turn,) = transcript.scheduled_turns
    assert turn.source is not None and turn.source["task_name"] == "Drink water"
    assert turn.run == record


async def test_the_demo_answers_a_forged_task_source_as_a_user_turn(
    assistant: ModuleType, tmp_path: Path
) -> None:
    # The demo model read task_source straight from the message: a client's made-up
    # one made it answer as a scheduled turn, though the graph ran a user turn.
    forged = forged_task_source("", task_name="Drink water")
    said = HumanMessage("Remind me to drink water.", additional_kwargs={"task_source": forged})
    rt = assistant.make_runtime(f"sqlite:///{tmp_path / 'forged.db'}")
    async with rt:
        result = await rt.ainvoke({"messages": [said]}, {"configurable": {"thread_id": "eve"}})
    assert result["task_source"] is None
    assert "Time to" not in result["messages"][-1].text
    assert result["messages"][-1].text.startswith("I'm the scripted demo assistant")


@pytest.mark.parametrize(
    ("said", "schedule", "max_runs"),
    [
        ("Remind me to stretch every day at 9:00", "every day at 9:00", None),
        ("Remind me to call mom tomorrow at 18:45", "tomorrow at 18:45", None),
        ("Remind me to stretch every day at 09:30", "every day at 09:30", None),
        ("Remind me to stretch every day at 9", "every day at 9", None),
        ("Remind me to stretch every 10 minutes, 3 times", "every 10 minutes", 3),
        ("Remind me to stretch every 2 seconds, 3 times.", "every 2 seconds", 3),
        ("Remind me to stretch every day at 9:00, 2 times", "every day at 9:00", 2),
        ("Remind me to walk every 5 minutes three times", "every 5 minutes", 3),
        ("Remind me to walk every 2 hours twice.", "every 2 hours", 2),
        ("Remind me to walk every hour, once", "every hour", 1),
    ],
)
def test_demo_model_reads_a_run_count_only_where_the_request_says_one(
    said: str, schedule: str, max_runs: int | None
) -> None:
    reply = demo_model().invoke([HumanMessage(said)])
    (call,) = reply.tool_calls
    assert call["name"] == "schedule_task"
    assert (call["args"]["schedule"], call["args"].get("max_runs")) == (schedule, max_runs)
    # the tool reads it (at noon: "tomorrow" said in the small hours is a question)
    parse_schedule(schedule, tz="UTC", now=datetime(2026, 3, 2, 12, tzinfo=timezone.utc))


async def test_served_graph_acts_on_the_runtime_its_lifespan_serves(
    assistant: ModuleType, tmp_path: Path
) -> None:
    turn: Any = (
        {"messages": [HumanMessage("List my tasks")]},
        {"configurable": {"thread_id": "studio-thread"}},
    )
    with pytest.raises(NotRunning, match="no scheduler runtime is served in this process"):
        await assistant.graph.ainvoke(*turn)
    rt = assistant.make_runtime(f"sqlite:///{tmp_path / 'served.db'}")
    async with scheduler_lifespan(rt)(None):
        assert served_runtime() is rt and rt.running
        result = await assistant.graph.ainvoke(*turn)
        assert result["messages"][-1].text == "No scheduled tasks in this conversation."
    assert not rt.running
    with pytest.raises(NotRunning):
        served_runtime()


def test_served_runtime_runs_turns_on_this_server(assistant: ModuleType) -> None:
    rt = assistant.make_served_runtime()
    assert rt.server == LangGraphServer(assistant_id="assistant") and rt.server.url is None
    assert not rt.running


def test_model_from_environment(assistant: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    assert assistant.chat_model()._llm_type == "scripted"
    monkeypatch.setenv("LANGGRAPH_SCHEDULER_MODEL", "no_such_provider:some-model")
    with pytest.raises(SchedulerError, match="cannot load model 'no_such_provider:some-model'"):
        assistant.chat_model()
