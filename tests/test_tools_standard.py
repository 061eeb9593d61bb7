"""Every scheduler tool passes LangChain's standard tool unit tests (langchain-tests)."""

from __future__ import annotations

from typing import Any

from langchain_core.tools import BaseTool
from langchain_tests.unit_tests import ToolsUnitTests

from langgraph_scheduler import SchedulerRuntime
from langgraph_scheduler.state import SchedulerState
from langgraph_scheduler.tools import TOOL_NAMES, scheduler_tools

# The standard unit tests build and inspect tools but never run them, so a runtime that
# is never started is enough (and keeps these tests free of I/O).


def _tools() -> dict[str, BaseTool]:
    from langgraph.graph import START, StateGraph

    builder = StateGraph(SchedulerState)
    builder.add_node("model", lambda state: {})
    builder.add_edge(START, "model")
    runtime = SchedulerRuntime(builder, database="sqlite://", timezone="Europe/Berlin")
    return {tool.name: tool for tool in scheduler_tools(runtime)}


TOOLS = _tools()
TASK_ID = {"task_id": "3f2a9c1d0e4b5a6c"}


class _SchedulerToolTests(ToolsUnitTests):
    name: str
    example: dict[str, Any] = TASK_ID

    @property
    def tool_constructor(self) -> BaseTool:
        return TOOLS[self.name]

    @property
    def tool_invoke_params_example(self) -> dict[str, Any]:
        return self.example


class TestScheduleTask(_SchedulerToolTests):
    name = "schedule_task"
    example = {
        "name": "Ticket summary",
        "schedule": "every weekday at 9:00",
        "prompt": "Summarise my open tickets.",
        "timezone": "America/New_York",
        "thread": "continue",
        "system_addon": "Five bullet points at most.",
    }


class TestListTasks(_SchedulerToolTests):
    name = "list_tasks"
    example = {"state": "active", "limit": 10}


class TestUpdateTask(_SchedulerToolTests):
    name = "update_task"
    example = {**TASK_ID, "schedule": "every weekday at 8:30"}


class TestPauseTask(_SchedulerToolTests):
    name = "pause_task"


class TestResumeTask(_SchedulerToolTests):
    name = "resume_task"


class TestDeleteTask(_SchedulerToolTests):
    name = "delete_task"


class TestRunTaskNow(_SchedulerToolTests):
    name = "run_task_now"


class TestTaskHistory(_SchedulerToolTests):
    name = "task_history"
    example = {**TASK_ID, "limit": 3}


def test_every_tool_has_a_standard_test_class() -> None:
    covered = {cls.name for cls in _SchedulerToolTests.__subclasses__()}
    assert covered == set(TOOL_NAMES) == set(TOOLS)


def test_model_facing_schemas_hide_the_injected_config() -> None:
    for tool in TOOLS.values():
        schema = tool.tool_call_schema.model_json_schema()  # type: ignore[union-attr]
        assert "config" not in schema["properties"], tool.name
        assert "owner" not in schema["properties"], tool.name
        for field, spec in schema["properties"].items():
            assert spec.get("description"), f"{tool.name}.{field} has no description"
