"""``python -m langgraph_scheduler``."""

from .cli import main

raise SystemExit(main())
