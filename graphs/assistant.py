"""The ready assistant: ``langgraph dev`` serves it (see ``langgraph.json``), ``serve`` runs it.

Offline by default (a scripted stand-in for an LLM). Environment variables:

* ``LANGGRAPH_SCHEDULER_MODEL=provider:model`` -- a real chat model through
  ``init_chat_model`` (needs ``langchain`` and the provider package, e.g.
  ``pip install langchain-openai`` and ``OPENAI_API_KEY``).
* ``LANGGRAPH_SCHEDULER_DATABASE`` -- where tasks and runs live (default
  ``sqlite:///langgraph-scheduler.db``; embedded runtimes keep their checkpoints there too).
* ``LANGGRAPH_SCHEDULER_TZ`` -- default timezone of schedules (default ``UTC``).

Exports:

* ``graph`` -- the compiled assistant the server runs, without a checkpointer (the server
  brings one). Its tools act on the runtime the server's lifespan started.
* ``app`` -- the custom app ``langgraph.json`` names (``http.app``): its lifespan starts
  that runtime with the server and stops it with the server; the runtime runs every
  scheduled turn as a run of this server's ``assistant`` on the task's thread.
* ``runtime`` -- an embedded ``SchedulerRuntime`` on its own assistant, not started:
  ``langgraph-scheduler serve --graph graphs/assistant.py:runtime``.
* ``make_runtime()`` -- a fresh embedded runtime on a fresh assistant (tests, notebooks).
* ``make_served_runtime()`` -- the runtime ``app`` serves (made when the server starts).
"""

from __future__ import annotations

import os
from typing import Any

from langchain_core.language_models import BaseChatModel

from langgraph_scheduler import SchedulerRuntime
from langgraph_scheduler.assistant import build_assistant, demo_model, load_chat_model
from langgraph_scheduler.cli import DATABASE_ENV, TIMEZONE_ENV
from langgraph_scheduler.runtime import DEFAULT_DATABASE
from langgraph_scheduler.served import LangGraphServer, scheduler_app, served_runtime

MODEL_ENV = "LANGGRAPH_SCHEDULER_MODEL"

ASSISTANT_ID = "assistant"
"""The graph id ``langgraph.json`` gives ``graph``: scheduled turns run on it."""


def chat_model() -> BaseChatModel:
    """``$LANGGRAPH_SCHEDULER_MODEL`` through ``init_chat_model``, else the scripted one."""
    spec = os.environ.get(MODEL_ENV, "").strip()
    return load_chat_model(spec) if spec else demo_model()


def _database() -> str:
    return os.environ.get(DATABASE_ENV) or DEFAULT_DATABASE


def _timezone() -> str:
    return os.environ.get(TIMEZONE_ENV) or "UTC"


def make_runtime(
    database: str | None = None, *, model: BaseChatModel | None = None
) -> SchedulerRuntime:
    """A new, not yet started runtime whose graph is a new assistant bound to it."""
    holder: list[SchedulerRuntime] = []
    builder = build_assistant(lambda: holder[0], model=model or chat_model())
    rt = SchedulerRuntime(builder, database=database or _database(), timezone=_timezone())
    holder.append(rt)
    return rt


def make_served_runtime() -> SchedulerRuntime:
    """The runtime of the server this module is served by: no graph of its own, its
    turns run as runs of the server's ``assistant``."""
    return SchedulerRuntime(
        None,
        server=LangGraphServer(assistant_id=ASSISTANT_ID),
        database=_database(),
        timezone=_timezone(),
    )


graph = build_assistant(served_runtime, model=chat_model()).compile()
runtime = make_runtime()


def __getattr__(name: str) -> Any:
    # ``app`` is a Starlette app, and Starlette comes with the server
    # (langgraph-cli[inmem]): it is made when the server asks for it, so ``graph`` and
    # ``runtime`` import without it.
    if name == "app":
        return scheduler_app(make_served_runtime)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
