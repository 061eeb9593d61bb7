"""Command line: ``langgraph-scheduler demo`` (more commands arrive with the CLI work)."""

from __future__ import annotations

import argparse
import asyncio
import tempfile
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from pathlib import Path

from rich.console import Console
from rich.table import Table

from .runtime import SchedulerRuntime
from .schedules import Interval
from .scripted import ScriptedChatModel

__all__ = ["main"]


async def _demo(folder: Path, console: Console) -> None:
    from langgraph.graph import START, StateGraph

    from .state import SchedulerState

    model = ScriptedChatModel(
        steps=[lambda msgs: f"Reminder #{sum(m.type == 'human' for m in msgs)}: stretch your legs!"],
        cycle=True,
    )

    async def assistant(state: SchedulerState) -> dict[str, object]:
        return {"messages": [await model.ainvoke(state["messages"])]}

    builder = StateGraph(SchedulerState)
    builder.add_node("assistant", assistant)
    builder.add_edge(START, "assistant")

    database = f"sqlite:///{folder / 'demo.db'}"
    console.print(f"[bold]langgraph-scheduler demo[/] — database {database}")
    done = asyncio.Event()
    seen: list[str] = []

    def on_run(record: object) -> None:
        seen.append(getattr(record, "run_id", ""))
        if len(seen) >= 3:
            done.set()

    async with SchedulerRuntime(builder, database=database, on_run=on_run) as rt:
        start = datetime.now(timezone.utc) + timedelta(seconds=1)
        task = await rt.create_task(
            name="stretch reminder",
            schedule=Interval(seconds=1, start=start),
            trigger="Remind me to stretch",
            thread_id="demo-thread",
            max_runs=3,
        )
        console.print(f"scheduled [cyan]{task.name}[/] ({task.schedule.describe()}), 3 runs")
        await asyncio.wait_for(done.wait(), 30)
        state = await rt.graph.aget_state({"configurable": {"thread_id": "demo-thread"}})
        for message in state.values["messages"]:
            source = message.additional_kwargs.get("task_source")
            if source:
                console.print(
                    f"[magenta]⏰ {source['task_name']} @ {source['scheduled_for']}[/] "
                    f"{message.text}"
                )
            else:
                console.print(f"[green]assistant[/] {message.text}")
        table = Table("run", "scheduled for", "outcome", "summary", title="run history")
        for record in reversed(await rt.history(task.id)):
            table.add_row(
                record.run_id[:8],
                record.scheduled_for.isoformat(timespec="seconds"),
                record.outcome or "running",
                record.summary or record.error or "",
            )
        console.print(table)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="langgraph-scheduler")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="run an offline demo on a SQLite file")
    demo.add_argument("--dir", type=Path, default=None, help="folder for the demo database")
    args = parser.parse_args(argv)
    console = Console()
    if args.command == "demo":
        if args.dir is not None:
            args.dir.mkdir(parents=True, exist_ok=True)
            asyncio.run(_demo(args.dir, console))
        else:
            with tempfile.TemporaryDirectory() as folder:
                asyncio.run(_demo(Path(folder), console))
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
