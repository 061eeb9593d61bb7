"""``python -m langgraph_scheduler`` and the ``langgraph-scheduler`` command.

Light on purpose (as the package's ``__init__`` is): the command's modules (LangChain,
LangSmith, LangGraph) take a second or more to import, and a Ctrl-C meanwhile must end
the command as a later one does, exit 130 with one line, not with a traceback.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line (:func:`langgraph_scheduler.cli.main`); returns the exit code.

    Args:
        argv: the arguments after the program name (default ``sys.argv[1:]``).
    """
    try:
        from .cli import main as run

        return run(argv)
    except KeyboardInterrupt:  # while the command's modules import
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
