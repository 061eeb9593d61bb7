"""The test clock: bad moves are refused with a clear error, and it can be moved from
the thread that runs a test while the runtime sleeps on a loop of its own."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from langgraph.graph import START, StateGraph

from langgraph_scheduler import Interval, SchedulerState, SyncSchedulerRuntime
from langgraph_scheduler.testing import FakeClock

START_AT = datetime(2027, 3, 1, 8, 0, tzinfo=timezone.utc)


@pytest.mark.parametrize(
    ("secs", "message"),
    [
        (-1, r"cannot go back: advance\(-1\)"),
        (float("nan"), r"advance\(nan\) is not a number of seconds"),
        (float("inf"), r"advance\(inf\) is not a number of seconds"),
        (1e15, "moves the clock past the year 9999"),
    ],
)
async def test_a_move_it_cannot_make_is_refused_and_the_clock_stays(
    secs: float, message: str
) -> None:
    clock = FakeClock(START_AT)
    with pytest.raises(ValueError, match=message):
        await clock.advance(secs)
    assert clock.now() == START_AT


async def test_advance_takes_a_timedelta_as_the_schedules_do() -> None:
    # It raised math's "must be real number, not datetime.timedelta".
    clock = FakeClock(START_AT)
    await clock.advance(timedelta(hours=1, seconds=30))
    assert clock.now() == START_AT + timedelta(hours=1, seconds=30)
    with pytest.raises(ValueError, match=r"cannot go back: advance\(-1 day, 23:59:59\)"):
        await clock.advance(timedelta(seconds=-1))
    with pytest.raises(ValueError, match="past the year 9999"):
        await clock.advance(timedelta.max)


@pytest.mark.parametrize(
    ("secs", "shown"), [("60", "a str '60'"), (None, "None"), (True, "a bool True")]
)
async def test_advance_by_no_number_of_seconds_is_refused_by_name(secs: object, shown: str) -> None:
    clock = FakeClock(START_AT)
    with pytest.raises(TypeError) as refused:
        await clock.advance(secs)  # type: ignore[arg-type]
    assert str(refused.value) == (
        f"FakeClock.advance takes seconds (a number) or a timedelta, got {shown}"
    )
    assert clock.now() == START_AT


async def test_set_refuses_a_naive_time_as_the_constructor_does() -> None:
    # A naive time was read in the machine's zone: an hour off UTC in Berlin, silently.
    clock = FakeClock(START_AT)
    with pytest.raises(ValueError, match="aware"):
        await clock.set(datetime(2027, 3, 1, 9, 0))
    with pytest.raises(TypeError) as refused:
        await clock.set("2027-03-01T09:00:00Z")  # type: ignore[arg-type]
    assert str(refused.value) == (
        "FakeClock.set needs an aware time: a datetime, got a str '2027-03-01T09:00:00Z'"
    )
    assert clock.now() == START_AT


async def test_a_time_of_the_wrong_type_is_named_with_its_article() -> None:
    # It read "got int 5" and "got NoneType None".
    with pytest.raises(TypeError) as refused:
        FakeClock(5)  # type: ignore[arg-type]
    assert str(refused.value) == "FakeClock needs an aware start time: a datetime, got an int 5"
    clock = FakeClock(START_AT)
    with pytest.raises(TypeError) as refused:
        await clock.set(None)  # type: ignore[arg-type]
    assert str(refused.value) == "FakeClock.set needs an aware time: a datetime, got None"
    assert clock.now() == START_AT


async def test_a_sleep_too_long_to_end_waits_for_good() -> None:
    clock = FakeClock(START_AT)
    sleeper = asyncio.ensure_future(clock.sleep(1e15))
    await clock.advance(3600 * 24 * 365 * 100)
    assert not sleeper.done()
    sleeper.cancel()
    with pytest.raises(ValueError, match=r"sleep\(nan\)"):
        await clock.sleep(float("nan"))


@pytest.fixture
def other_loop() -> Iterator[asyncio.AbstractEventLoop]:
    """A loop on a thread of its own, in debug mode: a call made on it from another
    thread without ``call_soon_threadsafe`` raises instead of going unnoticed."""
    loop = asyncio.new_event_loop()
    loop.set_debug(True)
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    yield loop
    loop.call_soon_threadsafe(loop.stop)
    thread.join()
    loop.close()


def test_the_clock_moved_from_another_thread_wakes_a_sleeper_safely(
    other_loop: asyncio.AbstractEventLoop,
) -> None:
    clock = FakeClock(START_AT)
    slept = asyncio.run_coroutine_threadsafe(clock.sleep(60), other_loop)
    asyncio.run_coroutine_threadsafe(asyncio.sleep(0), other_loop).result()  # it sleeps
    asyncio.run(clock.advance(60))  # from this thread, as a sync test does
    assert slept.result(timeout=30) is None


def _answer(state: SchedulerState) -> dict[str, Any]:
    return {"messages": [("ai", "done")]}


def test_a_sync_runtime_on_the_fake_clock() -> None:
    builder = StateGraph(SchedulerState)
    builder.add_node("answer", _answer)
    builder.add_edge(START, "answer")
    clock = FakeClock(START_AT)
    with SyncSchedulerRuntime(builder, database="sqlite://", clock=clock) as rt:
        task = rt.create_task(name="hourly", schedule=Interval(hours=1), trigger="hi")
        asyncio.run(clock.advance(3600))
        rt.run_due()
        rt.wait_idle()
        (run,) = rt.history(task.id)
        assert run.outcome == "success" and run.lateness.total_seconds() == 0
