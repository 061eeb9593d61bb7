"""Helpers shared by the tests: a one-node graph on a model, and a run-record waiter."""

from __future__ import annotations

import asyncio
from typing import Any

from langchain_core.language_models import BaseChatModel
from langgraph.graph import START, StateGraph

from langgraph_scheduler import TaskRunRecord
from langgraph_scheduler.state import SchedulerState


def build_graph(model: BaseChatModel) -> StateGraph[Any, Any, Any, Any]:
    """A one-node coordinator: the model answers the conversation so far."""

    async def call_model(state: SchedulerState) -> dict[str, Any]:
        return {"messages": [await model.ainvoke(state["messages"])]}

    builder = StateGraph(SchedulerState)
    builder.add_node("model", call_model)
    builder.add_edge(START, "model")
    return builder


class RunWaiter:
    """Collects finished run records and waits for the ones a test expects."""

    def __init__(self) -> None:
        self.records: list[TaskRunRecord] = []
        self._changed = asyncio.Event()

    def __call__(self, record: TaskRunRecord) -> None:
        self.records.append(record)
        self._changed.set()

    async def wait_for(
        self, count: int, *, task_id: str | None = None, timeout: float = 20.0
    ) -> list[TaskRunRecord]:
        async def _wait() -> list[TaskRunRecord]:
            while True:
                found = [r for r in self.records if task_id is None or r.task_id == task_id]
                if len(found) >= count:
                    return found
                self._changed.clear()
                await self._changed.wait()

        return await asyncio.wait_for(_wait(), timeout)
