"""Scheduled turns inside LangGraph's server (``langgraph dev``, the Agent Server).

The server starts and stops the runtime with its own lifespan (a custom app named by
``http.app`` in ``langgraph.json``), and every scheduled turn is a run of the server on
the task's thread, visible in Studio, in ``threads.get_state`` and in ``runs.list``. The
scheduler tools inside the served graph find that runtime through
:func:`served_runtime`.

Example:
    ``langgraph.json``::

        {
          "dependencies": ["."],
          "graphs": {"agent": "./agent.py:graph"},
          "http": {"app": "./agent.py:app"}
        }

    ``agent.py``::

        from langchain.agents import create_agent
        from langgraph_scheduler import SchedulerMiddleware, SchedulerRuntime
        from langgraph_scheduler.served import LangGraphServer, scheduler_app, served_runtime

        graph = create_agent(model, middleware=[SchedulerMiddleware(served_runtime)])
        app = scheduler_app(
            lambda: SchedulerRuntime(
                None,
                server=LangGraphServer(assistant_id="agent"),
                database="sqlite:///scheduler.db",
            )
        )
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any

from ._remote import LangGraphServer
from ._validated import kind_of
from .errors import NotRunning, SchedulerError
from .runtime import SchedulerRuntime
from .store import is_in_memory, parse_database_url

if TYPE_CHECKING:
    from starlette.applications import Starlette

__all__ = ["LangGraphServer", "scheduler_app", "scheduler_lifespan", "served_runtime"]

logger = logging.getLogger("langgraph_scheduler")

RuntimeFactory = SchedulerRuntime | Callable[[], SchedulerRuntime]
"""A runtime, or a function making one when the server starts."""

_served: SchedulerRuntime | None = None


def served_runtime() -> SchedulerRuntime:
    """The runtime the server's lifespan started in this process.

    Give it to the tools of a served graph (``scheduler_tools(served_runtime)``,
    ``SchedulerMiddleware(served_runtime)``, ``build_assistant(served_runtime)``): they
    call it when they run, so the graph may be built before the server starts.

    Raises:
        NotRunning: no runtime is served here (yet).
    """
    if _served is None:
        raise NotRunning(
            "no scheduler runtime is served in this process: name an app made by "
            "langgraph_scheduler.served.scheduler_app in langgraph.json "
            '("http": {"app": "./module.py:app"}) and run the graph on that server'
        )
    return _served


def scheduler_lifespan(
    runtime: RuntimeFactory,
) -> Callable[[Any], contextlib.AbstractAsyncContextManager[None]]:
    """A Starlette lifespan that starts the runtime with the server and stops it with it.

    Use it in an app of your own (``FastAPI(lifespan=scheduler_lifespan(...))``); or
    take :func:`scheduler_app`.

    Args:
        runtime: the runtime to serve, or a function making it (called at each start).

    Raises:
        SchedulerError: at the server's start, when its database is in memory
            (``sqlite://``): a served runtime needs a SQLite file or PostgreSQL.
    """

    @contextlib.asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[None]:
        global _served
        if _served is not None:
            raise SchedulerError(
                "a scheduler runtime is already served in this process; name one "
                "scheduler_app in langgraph.json"
            )
        rt = runtime if isinstance(runtime, SchedulerRuntime) else runtime()
        if not isinstance(rt, SchedulerRuntime):
            raise SchedulerError(
                f"scheduler_app needs a SchedulerRuntime or a function returning one, got "
                f"{kind_of(rt)}"
            )
        if is_in_memory(parse_database_url(rt.database)):
            # Its statements run on the event loop, which the server refuses (langgraph
            # dev raises on blocking calls): no fire would ever be claimed.
            raise SchedulerError(
                "an in-memory database (sqlite://) cannot be served: it runs its "
                "statements on the server's event loop, which LangGraph's server refuses, "
                "and its tasks would end with the server; give the runtime a file "
                '(database="sqlite:///scheduler.db") or PostgreSQL'
            )
        await rt.start()
        _served = rt
        try:
            yield
        finally:
            try:
                # Still served while it stops: the turns it drains call its tools.
                await rt.stop()
            finally:
                _served = None

    return lifespan


def scheduler_app(runtime: RuntimeFactory) -> Starlette:
    """A Starlette app with no routes whose lifespan serves ``runtime``: name it by
    ``http.app`` in ``langgraph.json``.

    Args:
        runtime: the runtime to serve, or a function making it (called when the server
            starts). Give it ``server=LangGraphServer(assistant_id=...)`` so its turns run
            as runs of this server.

    Raises:
        SchedulerError: Starlette is missing (it comes with ``langgraph-cli[inmem]`` and
            the server).
    """
    try:
        from starlette.applications import Starlette
    except ImportError:
        raise SchedulerError(
            'the served mode runs inside LangGraph\'s server: pip install "langgraph-cli[inmem]"'
        ) from None
    return Starlette(lifespan=scheduler_lifespan(runtime))
