"""A runtime whose turns run on a LangGraph server, in its own process, for crash tests:
``python -m tests.server_child DB SERVER_URL [PROMPT [RETRIES [TIMEOUT_SECS [LEASE_SECS
[HOW]]]]]``.

It runs a task of the server's ``sleepy`` assistant (by default one that never answers,
``hang on``; no retries; the default timeout; a lease of 60 s) by hand, or as a
scheduled fire due at once when ``HOW`` is ``scheduled``, prints
``RUNNING <run id> <server thread id> <server run id>`` once the record names its server
run, then ``HEARD <run id> <outcome>`` for each record its listeners hear of and
``IDLE`` once no turn of it is in flight, and waits to be killed.
"""

from __future__ import annotations

import asyncio
import os
import sys
from datetime import datetime, timedelta, timezone

from langgraph_scheduler import (
    ConversationTrigger,
    Once,
    SchedulerRuntime,
    TaskOptions,
    TaskRunRecord,
)
from langgraph_scheduler.served import LangGraphServer


def _heard(record: TaskRunRecord) -> None:
    print("HEARD", record.run_id, record.outcome, flush=True)


async def main(
    database: str,
    url: str,
    prompt: str = "hang on",
    retries: str = "0",
    timeout: str = "",
    lease: str = "60",
    how: str = "manual",
) -> None:
    server = LangGraphServer(url=url, assistant_id="sleepy")
    async with SchedulerRuntime(
        None, server=server, database=database, lease_secs=float(lease), on_run=_heard
    ) as rt:
        due = datetime(2099, 1, 1, tzinfo=timezone.utc)
        if how == "scheduled":
            due = datetime.now(timezone.utc) + timedelta(seconds=0.5)
        task = await rt.create_task(
            name="orphaned",
            schedule=Once(due),
            trigger=ConversationTrigger(
                prompt=prompt, timeout_secs=int(timeout) if timeout else None
            ),
            thread_id="orphan",
            options=TaskOptions(retries=int(retries)),
        )
        if how != "scheduled":
            await rt.run_now(task.id, wait=False)
        for _ in range(200):
            named = [r for r in await rt.history(task.id) if r.server_run_id is not None]
            if named:
                break
            await asyncio.sleep(0.1)
        else:
            raise SystemExit("the record never named its server run")
        (record,) = named
        print("RUNNING", record.run_id, record.server_thread_id, record.server_run_id, flush=True)
        await rt.wait_idle()
        print("IDLE", flush=True)
        parent = os.getppid()
        while os.getppid() == parent:  # until killed, or orphaned by a dead test run
            await asyncio.sleep(1.0)


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:]))
