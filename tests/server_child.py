"""A runtime whose turns run on a LangGraph server, in its own process, for crash tests:
``python -m tests.server_child DB SERVER_URL [PROMPT [RETRIES [TIMEOUT_SECS [LEASE_SECS]]]]``.

It runs a task of the server's ``sleepy`` assistant (by default one that never answers,
``hang on``; no retries; the default timeout; a lease of 60 s), prints
``RUNNING <run id> <server thread id> <server run id>`` once the record names its server
run, and waits to be killed.
"""

from __future__ import annotations

import asyncio
import os
import sys
from datetime import datetime, timezone

from langgraph_scheduler import ConversationTrigger, Once, SchedulerRuntime, TaskOptions
from langgraph_scheduler.served import LangGraphServer


async def main(
    database: str,
    url: str,
    prompt: str = "hang on",
    retries: str = "0",
    timeout: str = "",
    lease: str = "60",
) -> None:
    server = LangGraphServer(url=url, assistant_id="sleepy")
    async with SchedulerRuntime(
        None, server=server, database=database, lease_secs=float(lease)
    ) as rt:
        task = await rt.create_task(
            name="orphaned",
            schedule=Once(datetime(2099, 1, 1, tzinfo=timezone.utc)),
            trigger=ConversationTrigger(
                prompt=prompt, timeout_secs=int(timeout) if timeout else None
            ),
            thread_id="orphan",
            options=TaskOptions(retries=int(retries)),
        )
        running = await rt.run_now(task.id, wait=False)
        for _ in range(200):
            record = await rt.get_run(running.run_id)
            if record is not None and record.server_run_id is not None:
                break
            await asyncio.sleep(0.1)
        else:
            raise SystemExit("the record never named its server run")
        print("RUNNING", record.run_id, record.server_thread_id, record.server_run_id, flush=True)
        parent = os.getppid()
        while os.getppid() == parent:  # until killed, or orphaned by a dead test run
            await asyncio.sleep(1.0)


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:]))
