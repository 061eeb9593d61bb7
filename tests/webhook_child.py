"""A runtime with a webhook in its own process, for crash tests:
``python -m tests.webhook_child DB URL``.

It runs a task once. Its synchronous ``on_run`` listener prints ``FINISHED <run id>`` and
then holds the event loop (as a slow listener would: an e-mail sent in place, say), so
the run is recorded but its delivery is never stored; it waits to be killed.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time

from langgraph_scheduler import Interval, SchedulerRuntime, TaskRunRecord
from langgraph_scheduler.scripted import ScriptedChatModel
from langgraph_scheduler.webhooks import Webhook

from .helpers import build_graph


def hold_the_loop(record: TaskRunRecord) -> None:
    print("FINISHED", record.run_id, flush=True)
    parent = os.getppid()
    while os.getppid() == parent:  # until killed, or orphaned by a dead test run
        time.sleep(0.2)


async def main(database: str, url: str) -> None:
    graph = build_graph(ScriptedChatModel(steps=["done"]))
    async with SchedulerRuntime(
        graph, database=database, webhook=Webhook(url=url), on_run=hold_the_loop
    ) as rt:
        task = await rt.create_task(
            name="orphan", schedule=Interval(hours=1), trigger="hi", thread_id="t"
        )
        await rt.run_now(task.id)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
