"""A runtime in its own process, for crash tests: ``python -m tests.crash_child DB [exit]``.

It creates an hourly task whose first fire is due at once, on a model that never
answers, prints ``RUNNING <task id> <next run>`` once the turn is under way, and waits to
be killed. With ``exit``, the task may be retried once and its model calls
``sys.exit(3)`` instead: the process ends there, as asyncio lets ``SystemExit`` out of
the event loop.
"""

from __future__ import annotations

import asyncio
import os
import sys
from datetime import datetime, timedelta, timezone

from langgraph_scheduler import Interval, SchedulerRuntime, TaskOptions
from langgraph_scheduler.scripted import HANG, ScriptedChatModel

from .helpers import build_graph


async def main(database: str, exits: bool) -> None:
    started = asyncio.Event()

    def on_start(messages: object) -> str:
        started.set()
        if exits:
            sys.exit(3)
        return HANG

    graph = build_graph(ScriptedChatModel(steps=[on_start]))
    async with SchedulerRuntime(graph, database=database, lease_secs=60) as rt:
        first = datetime.now(timezone.utc) + timedelta(seconds=0.2)
        task = await rt.create_task(
            name="doomed",
            schedule=Interval(hours=1, start=first),
            trigger="hi",
            thread_id="t",
            options=TaskOptions(retries=1 if exits else 0, retry_backoff_secs=1),
        )
        await asyncio.wait_for(started.wait(), 20)
        await asyncio.sleep(0.2)  # let the claim's task update commit
        current = await rt.get_task(task.id)
        assert current.next_run_at is not None
        print("RUNNING", task.id, current.next_run_at.isoformat(), flush=True)
        parent = os.getppid()
        while os.getppid() == parent:  # until killed, or orphaned by a dead test run
            await asyncio.sleep(1.0)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2:] == ["exit"]))
