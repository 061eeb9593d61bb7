"""Every scheduler tool passes LangChain's standard tool tests (langchain-tests): the unit
tests, and the integration tests (sync and async) against a running runtime."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from langchain_core.messages import ToolCall
from langchain_core.tools import BaseTool
from langchain_tests.integration_tests import ToolsIntegrationTests
from langchain_tests.unit_tests import ToolsUnitTests

from langgraph_scheduler import Cron, SchedulerRuntime, SyncSchedulerRuntime
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


# -- LangChain's standard integration tests: the tools run, sync and async -------------
# Against a started runtime: SyncSchedulerRuntime runs it on a loop of its own, so the
# sync tests call the tools from a thread without a loop and the async ones await them on
# pytest's loop; either way the work is handed to the runtime's loop.

OWNER: Any = {"configurable": {"thread_id": "alice"}}


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SyncSchedulerRuntime]:
    from langgraph.graph import START, StateGraph

    builder = StateGraph(SchedulerState)
    builder.add_node("model", lambda state: {"messages": [("ai", "Done.")]})
    builder.add_edge(START, "model")
    database = f"sqlite:///{tmp_path_factory.mktemp('standard') / 'tools.db'}"
    with SyncSchedulerRuntime(builder, database=database, timezone="Europe/Berlin") as rt:
        yield rt


class _ServedToolTests(ToolsIntegrationTests):
    name: str
    example: dict[str, Any] = {}

    @pytest.fixture(autouse=True)
    def _task(self, served: SyncSchedulerRuntime) -> Iterator[None]:
        """A task of the caller's to act on, and a clean slate afterwards."""
        task = served.create_task(
            name="Ticket summary", schedule=Cron("0 9 * * 1-5"), trigger="Summarise.", owner="alice"
        )
        needs_id = self.name not in ("schedule_task", "list_tasks")
        self.example = {**type(self).example, **({"task_id": task.id} if needs_id else {})}
        self._tools = {
            t.name: t.with_config(OWNER) for t in scheduler_tools(lambda: served.runtime)
        }
        yield
        served.wait_idle()
        for leftover in served.list_tasks(owner="alice"):
            served.delete_task(leftover.id)

    @pytest.fixture
    def tool(self, _task: None) -> Any:
        """The tool bound to the caller's config (the owner comes from the run config)."""
        return self._tools[self.name]

    @property
    def tool_constructor(self) -> BaseTool:
        return TOOLS[self.name]

    @property
    def tool_invoke_params_example(self) -> dict[str, Any]:
        return self.example

    def test_a_sync_call_succeeds(self, tool: BaseTool) -> None:
        call = ToolCall(name=self.name, args=self.example, id="sync-1", type="tool_call")
        message = tool.invoke(call)
        assert message.status == "success", message.content

    async def test_an_async_call_succeeds(self, tool: BaseTool) -> None:
        call = ToolCall(name=self.name, args=self.example, id="async-1", type="tool_call")
        message = await tool.ainvoke(call)
        assert message.status == "success", message.content


class TestScheduleTaskServed(_ServedToolTests):
    name = "schedule_task"
    example = TestScheduleTask.example


class TestListTasksServed(_ServedToolTests):
    name = "list_tasks"
    example = TestListTasks.example


class TestUpdateTaskServed(_ServedToolTests):
    name = "update_task"
    example = {"schedule": "every weekday at 8:30"}


class TestPauseTaskServed(_ServedToolTests):
    name = "pause_task"


class TestResumeTaskServed(_ServedToolTests):
    name = "resume_task"


class TestDeleteTaskServed(_ServedToolTests):
    name = "delete_task"


class TestRunTaskNowServed(_ServedToolTests):
    name = "run_task_now"


class TestTaskHistoryServed(_ServedToolTests):
    name = "task_history"
    example = {"limit": 3}


def test_every_tool_runs_the_standard_integration_tests() -> None:
    covered = {cls.name for cls in _ServedToolTests.__subclasses__()}
    assert covered == set(TOOL_NAMES)
