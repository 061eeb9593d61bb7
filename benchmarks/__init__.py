"""Performance harness for langgraph-scheduler: ``python -m benchmarks`` (see BENCHMARKS.md).

Not part of the test suite. Each figure module exposes ``async run(*, quick, workdir)``
returning a :class:`~benchmarks.common.Figure`.
"""
