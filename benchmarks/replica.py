"""One replica process for figure 6: ``python -m benchmarks.replica DATABASE_URL``.

Starts a runtime with default settings on the shared database (it loads the due times
within its window from the task table), prints ``READY <holder>``, runs until a line
``stop`` or the end of stdin (the parent went away), then stops the runtime and prints
``STOPPED cpu=<CPU seconds> claims=<claim transactions> rows=<claimed rows>
runs=<claimed runs> empty=<claims that found nothing> failed=<claims that raised>
claim_secs=<seconds in claims> turns=<the graph's node starts of fires>``.
The claim counts come from wrapping ``Store.claim_due``, the one call through which the
runtime claims due fires. If stopping (or a stuck start) takes longer than a minute
after that, it exits hard.
"""

from __future__ import annotations

import asyncio
import os
import sys
import threading
import time
from typing import Any

from langgraph_scheduler import SchedulerRuntime
from langgraph_scheduler.state import SchedulerState
from langgraph_scheduler.store import Claimed, Store

from .common import trivial_graph

_HARD_EXIT_SECS = 60.0

COUNTS = {
    "claims": 0,
    "rows": 0,
    "runs": 0,
    "empty": 0,
    "failed": 0,
    "claim_secs": 0.0,
    "turns": 0,
}
"""What this process's claims did (printed at exit)."""


def _count_claims() -> None:
    """Wrap ``Store.claim_due`` (every twin inherits it) to count transactions and rows."""
    claim_due = Store.claim_due

    async def counted(self: Store, **kwargs: Any) -> list[Claimed]:
        start = time.perf_counter()
        try:
            claimed = await claim_due(self, **kwargs)
        except BaseException:  # a store error (retried by the bridge) or cancellation
            COUNTS["failed"] += 1
            raise
        finally:
            COUNTS["claim_secs"] += time.perf_counter() - start
            COUNTS["claims"] += 1
        COUNTS["rows"] += len(claimed)
        COUNTS["runs"] += sum(c.run is not None for c in claimed)
        COUNTS["empty"] += not claimed
        return claimed

    Store.claim_due = counted  # type: ignore[method-assign]


def _turn_started(state: SchedulerState) -> None:
    """Count the graph's node starts of fires (the turns this replica really ran)."""
    if state.get("task_source"):
        COUNTS["turns"] += 1


def _watch_stdin(loop: asyncio.AbstractEventLoop, stop: asyncio.Event) -> None:
    for line in sys.stdin:
        if line.strip() == "stop":
            break
    loop.call_soon_threadsafe(stop.set)
    time.sleep(_HARD_EXIT_SECS)
    os._exit(3)


async def _main(database: str) -> None:
    _count_claims()
    stop = asyncio.Event()
    watcher = threading.Thread(
        target=_watch_stdin, args=(asyncio.get_running_loop(), stop), daemon=True
    )
    watcher.start()
    async with SchedulerRuntime(trivial_graph(on_start=_turn_started), database=database) as rt:
        print(f"READY {rt.holder}", flush=True)
        await stop.wait()
    times = os.times()
    counts = " ".join(
        f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}" for k, v in COUNTS.items()
    )
    print(f"STOPPED cpu={times.user + times.system:.2f} {counts}", flush=True)


if __name__ == "__main__":
    asyncio.run(_main(sys.argv[1]))
