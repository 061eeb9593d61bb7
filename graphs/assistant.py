"""The ready assistant: ``langgraph dev`` serves it (see ``langgraph.json``), ``serve`` runs it.

Offline by default (a scripted stand-in for an LLM). Environment variables:

* ``LANGGRAPH_SCHEDULER_MODEL=provider:model`` -- a real chat model through
  ``init_chat_model`` (needs ``langchain`` and the provider package, e.g.
  ``pip install langchain-openai`` and ``OPENAI_API_KEY``).
* ``LANGGRAPH_SCHEDULER_DATABASE`` -- where tasks, runs and the runtime's checkpoints live
  (default ``sqlite:///langgraph-scheduler.db``).
* ``LANGGRAPH_SCHEDULER_TZ`` -- default timezone of schedules (default ``UTC``).

Exports:

* ``make_graph`` -- the factory ``langgraph.json`` names: it starts the shared ``runtime``
  in the server's event loop (once) and returns ``graph``.
* ``graph`` -- the compiled assistant, without a checkpointer (the server brings one).
* ``runtime`` -- a ``SchedulerRuntime`` on the same assistant, not started:
  ``langgraph-scheduler serve --graph graphs/assistant.py:runtime``.
* ``make_runtime()`` -- a fresh runtime on a fresh assistant (tests, notebooks).
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from langchain_core.language_models import BaseChatModel
from langgraph.pregel import Pregel

from langgraph_scheduler import SchedulerRuntime
from langgraph_scheduler.assistant import build_assistant, demo_model, load_chat_model
from langgraph_scheduler.cli import DATABASE_ENV, TIMEZONE_ENV
from langgraph_scheduler.runtime import DEFAULT_DATABASE

MODEL_ENV = "LANGGRAPH_SCHEDULER_MODEL"


def chat_model() -> BaseChatModel:
    """``$LANGGRAPH_SCHEDULER_MODEL`` through ``init_chat_model``, else the scripted one."""
    spec = os.environ.get(MODEL_ENV, "").strip()
    return load_chat_model(spec) if spec else demo_model()


def make_runtime(
    database: str | None = None, *, model: BaseChatModel | None = None
) -> SchedulerRuntime:
    """A new, not yet started runtime whose graph is a new assistant bound to it."""
    holder: list[SchedulerRuntime] = []
    builder = build_assistant(lambda: holder[0], model=model or chat_model())
    rt = SchedulerRuntime(
        builder,
        database=database or os.environ.get(DATABASE_ENV) or DEFAULT_DATABASE,
        timezone=os.environ.get(TIMEZONE_ENV) or "UTC",
    )
    holder.append(rt)
    return rt


runtime = make_runtime()
graph = build_assistant(lambda: runtime, model=chat_model()).compile()
_start_lock: asyncio.Lock | None = None


async def make_graph() -> Pregel[Any, Any, Any, Any]:
    """The graph, with the shared runtime started in this (the server's) event loop.

    ``langgraph dev`` calls this factory for every run and state read; the first call
    starts the runtime, so tasks fire once the server has been used after a start.
    """
    global _start_lock
    if not runtime.running:
        _start_lock = _start_lock or asyncio.Lock()
        async with _start_lock:
            if not runtime.running:
                await runtime.start()
    return graph
