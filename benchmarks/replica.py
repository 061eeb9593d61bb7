"""One replica process for figure 6: ``python -m benchmarks.replica DATABASE_URL``.

Starts a runtime on the shared database (it builds its jobs from the stored tasks),
prints ``READY <holder>``, runs until a line ``stop`` or the end of stdin (the parent
went away), then stops the runtime and prints ``STOPPED cpu=<CPU seconds used>``. If
stopping (or a stuck start) takes longer than a minute after that, it exits hard.
"""

from __future__ import annotations

import asyncio
import os
import sys
import threading
import time

from langgraph_scheduler import SchedulerRuntime

from .common import trivial_graph

_HARD_EXIT_SECS = 60.0


def _watch_stdin(loop: asyncio.AbstractEventLoop, stop: asyncio.Event) -> None:
    for line in sys.stdin:
        if line.strip() == "stop":
            break
    loop.call_soon_threadsafe(stop.set)
    time.sleep(_HARD_EXIT_SECS)
    os._exit(3)


async def _main(database: str) -> None:
    stop = asyncio.Event()
    watcher = threading.Thread(
        target=_watch_stdin, args=(asyncio.get_running_loop(), stop), daemon=True
    )
    watcher.start()
    async with SchedulerRuntime(
        trivial_graph(), database=database, queue_size=100_000, drain_timeout_secs=10
    ) as rt:
        print(f"READY {rt.holder}", flush=True)
        await stop.wait()
    times = os.times()
    print(f"STOPPED cpu={times.user + times.system:.2f}", flush=True)


if __name__ == "__main__":
    asyncio.run(_main(sys.argv[1]))
