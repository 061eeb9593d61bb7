"""One replica in its own process, for scale-out tests: ``python -m tests.replica_child DB``.

Runs a runtime on the shared database until SIGTERM (a clean stop) or SIGKILL. Prompts
"hang" never get an answer on their first attempt, so a test can kill a replica mid-turn.
Prints ``READY <holder>`` once started.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from typing import Any

from langchain_core.messages import BaseMessage, HumanMessage

from langgraph_scheduler import SchedulerRuntime
from langgraph_scheduler.scripted import HANG, ScriptedChatModel

from .helpers import build_graph


def _answer(messages: list[BaseMessage]) -> Any:
    last = messages[-1]
    source = last.additional_kwargs.get("task_source") if isinstance(last, HumanMessage) else None
    if last.text == "hang" and source and source["attempt"] == 1:
        return HANG
    return f"done: {last.text}"


async def main(database: str) -> None:
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    graph = build_graph(ScriptedChatModel(steps=[_answer], cycle=True))
    async with SchedulerRuntime(
        graph,
        database=database,
        lease_secs=5.0,
        max_concurrency=4,
        sync_interval_secs=1.0,
    ) as rt:
        print("READY", rt.holder, flush=True)
        await _until_stopped_or_orphaned(stop)


async def _until_stopped_or_orphaned(stop: asyncio.Event) -> None:
    """Wait for SIGTERM; exit too if the test process died without stopping us."""
    parent = os.getppid()
    while not stop.is_set() and os.getppid() == parent:
        try:
            await asyncio.wait_for(stop.wait(), 1.0)
        except asyncio.TimeoutError:
            pass


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
