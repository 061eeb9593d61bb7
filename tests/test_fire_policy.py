"""The fire policy (`_fire`) as pure functions of a task, its due times and a fixed now."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from langgraph_scheduler import Cron, Interval, Once, TaskOptions
from langgraph_scheduler._fire import (
    MAX_MISSED,
    RunConsequence,
    after_run,
    due_times,
    next_after,
    plan_fire,
    settles_alone,
)
from langgraph_scheduler.models import Task

T0 = datetime(2027, 3, 1, 12, 0, tzinfo=timezone.utc)
EVERY_MINUTE = Interval(seconds=60, start=T0, tz="UTC")


def at(secs: float) -> datetime:
    """The instant ``secs`` seconds after T0."""
    return T0 + timedelta(seconds=secs)


def make_task(schedule: Any = EVERY_MINUTE, **changes: Any) -> Task:
    """An active task whose next fire is T0 (created an hour before)."""
    values: dict[str, Any] = {
        "id": "t1",
        "name": "tick",
        "owner": "alice",
        "schedule": schedule,
        "payload": {"prompt": "tick"},
        "thread_mode": "isolated",
        "thread_id": None,
        "state": "active",
        "next_run_at": T0,
        "created_at": at(-3600),
        "updated_at": at(-3600),
    }
    return Task(**(values | changes))


def failed(
    task: Task,
    *,
    attempt: int = 1,
    outcome: Any = "error",
    trigger: Any = "schedule",
    **flags: bool,
) -> RunConsequence:
    """What an attempt of ``task`` finishing at T0 + 100 s (error "boom" by default) does
    (``flags``: ``retry``, ``counted``)."""
    return after_run(
        task, trigger=trigger, attempt=attempt, outcome=outcome, error="boom", now=at(100), **flags
    )


# -- due times ----------------------------------------------------------------------


def test_next_after_is_strictly_after_and_none_past_the_end() -> None:
    assert next_after(EVERY_MINUTE, T0) == at(60)
    assert next_after(EVERY_MINUTE, at(59)) == at(60)
    assert next_after(Once(at(60), tz="UTC"), at(60)) is None


def test_due_times_lists_every_occurrence_up_to_as_of_and_the_one_after() -> None:
    assert due_times(make_task(), at(0)) == ([T0], at(60))
    assert due_times(make_task(), at(150)) == ([T0, at(60), at(120)], at(180))


def test_due_times_of_a_finished_schedule_have_nothing_after() -> None:
    assert due_times(make_task(Once(T0, tz="UTC")), at(3600)) == ([T0], None)


def test_due_times_keeps_only_the_newest_occurrences_beyond_the_limit() -> None:
    times, following = due_times(make_task(), at(60 * 5000 + 30))

    assert len(times) == MAX_MISSED + 1
    assert (times[-1], following) == (at(60 * 5000), at(60 * 5001))


# -- plan_fire: which occurrence runs -------------------------------------------------


def test_an_on_time_fire_runs_and_moves_to_the_next_occurrence() -> None:
    decision = plan_fire(make_task(), as_of=T0, started_at=at(-60))

    assert decision.run_for == T0
    assert decision.missed == ()
    assert decision.next_run_at == at(60)
    assert decision.counts and not decision.completes


def test_catch_up_runs_the_latest_occurrence_and_records_the_rest_missed() -> None:
    decision = plan_fire(make_task(), as_of=at(185), started_at=at(170))

    assert decision.run_for == at(180)
    assert decision.missed == (T0, at(60), at(120))
    assert not decision.missed_more
    assert decision.next_run_at == at(240)


def test_skip_records_every_occurrence_due_while_the_runtime_was_down() -> None:
    task = make_task(options=TaskOptions(misfire="skip"))

    decision = plan_fire(task, as_of=at(185), started_at=at(181))

    assert decision.run_for is None and not decision.counts
    assert decision.missed == (T0, at(60), at(120), at(180))
    assert decision.next_run_at == at(240)


def test_skip_still_runs_an_occurrence_due_while_the_runtime_was_up() -> None:
    task = make_task(options=TaskOptions(misfire="skip"))

    decision = plan_fire(task, as_of=at(185), started_at=at(150))

    assert decision.run_for == at(180)
    assert decision.missed == (T0, at(60), at(120))


def test_an_occurrence_later_than_the_grace_is_missed_with_the_others() -> None:
    task = make_task(options=TaskOptions(misfire_grace_secs=10))

    decision = plan_fire(task, as_of=at(150), started_at=at(-60))

    assert decision.run_for is None and not decision.counts
    assert decision.missed == (T0, at(60), at(120))
    assert decision.next_run_at == at(180)


def test_recurring_tasks_have_an_hour_of_grace_by_default() -> None:
    daily = make_task(Interval(days=1, start=T0, tz="UTC"))

    assert plan_fire(daily, as_of=at(3600), started_at=T0).run_for == T0
    late = plan_fire(daily, as_of=at(3601), started_at=T0)

    assert late.run_for is None
    assert (late.missed, late.next_run_at) == ((T0,), at(86400))


def test_a_once_task_runs_however_late_and_completes() -> None:
    task = make_task(Once(T0, tz="UTC"))

    decision = plan_fire(task, as_of=at(86400 * 30), started_at=at(86400 * 30))

    assert decision.run_for == T0
    assert decision.next_run_at is None and decision.completes


def test_exactly_max_missed_occurrences_are_not_flagged_as_more() -> None:
    decision = plan_fire(make_task(), as_of=at(60 * MAX_MISSED), started_at=T0)

    assert decision.run_for == at(60 * MAX_MISSED)
    assert len(decision.missed) == MAX_MISSED
    assert not decision.missed_more  # "1000 occurrence(s) missed", not "more than 1000"


def test_more_missed_occurrences_than_recorded_are_flagged() -> None:
    decision = plan_fire(make_task(), as_of=at(60 * 5000), started_at=T0)

    assert decision.run_for == at(60 * 5000)
    assert len(decision.missed) == MAX_MISSED
    # The span starts where the outage did (the first missed), not 1000 back from the end.
    assert decision.missed[0] == T0
    assert decision.missed[1] == at(60 * (5000 - MAX_MISSED + 1))
    assert decision.missed[-1] == at(60 * 4999)
    assert decision.missed_more


def _every_occurrence(task: Task, as_of: datetime) -> tuple[list[datetime], datetime | None]:
    """Every occurrence due at ``as_of`` and the next, one at a time (the reference)."""
    assert task.schedule is not None and task.next_run_at is not None
    times, t = [], task.next_run_at
    while True:
        times.append(t)
        (t,) = [x.astimezone(timezone.utc) for x in task.schedule.next_fire_times(1, after=t)]
        if t > as_of:
            return times, t


@pytest.mark.parametrize(
    ("schedule", "down"),
    [
        (Interval(seconds=7, start=T0, tz="UTC"), timedelta(days=1)),
        (Interval(seconds=61, tz="UTC"), timedelta(days=3)),  # no start: walked, in phase
        (Cron("*/5 9-17 * * 1-5", tz="America/New_York"), timedelta(days=120)),  # DST in
        (Cron("* * * * *", tz="Europe/Berlin"), timedelta(days=9)),
    ],
)
def test_a_long_outage_gives_the_same_decision_as_walking_every_occurrence(
    schedule: Any, down: timedelta
) -> None:
    task = make_task(schedule, next_run_at=schedule.next_fire_times(1, after=T0)[0])
    every, following = _every_occurrence(task, T0 + down)
    as_of = every[-1] + timedelta(seconds=1)  # the latest just due: it runs (any grace)
    assert len(every) > 3 * MAX_MISSED  # long enough to take the jump

    times, after = due_times(task, as_of, limit=MAX_MISSED + 2)
    decision = plan_fire(task, as_of=as_of, started_at=T0)

    assert (times, after) == (every[-(MAX_MISSED + 2) :], following)
    assert decision.run_for == every[-1] and decision.next_run_at == following
    assert decision.missed == (every[0], *every[-MAX_MISSED:-1]) and decision.missed_more


def test_a_year_down_is_planned_without_walking_through_it(monkeypatch: Any) -> None:
    # A per-second task down for a year: 31.5 million occurrences. The plan asks the
    # schedule for a few thousand (the fire path must not hold the event loop for long).
    asked: list[int] = []
    original = Interval.next_fire_times

    def counted(self: Interval, n: int, *, after: datetime) -> list[datetime]:
        asked.append(n)
        return original(self, n, after=after)

    monkeypatch.setattr(Interval, "next_fire_times", counted)
    task = make_task(Interval(seconds=1, start=T0, tz="UTC"))
    as_of = T0 + timedelta(days=365)

    decision = plan_fire(task, as_of=as_of, started_at=T0)

    assert decision.run_for == as_of and decision.next_run_at == as_of + timedelta(seconds=1)
    assert decision.missed[0] == T0 and decision.missed[-1] == as_of - timedelta(seconds=1)
    assert sum(asked) < 50_000


# -- plan_fire: max_runs --------------------------------------------------------------


@pytest.mark.parametrize(("run_count", "completes"), [(1, False), (2, True)])
def test_the_run_that_reaches_max_runs_completes_the_task(run_count: int, completes: bool) -> None:
    task = make_task(max_runs=3, run_count=run_count)

    decision = plan_fire(task, as_of=T0, started_at=T0)

    assert decision.run_for == T0 and decision.counts
    assert decision.completes is completes
    assert decision.next_run_at == (None if completes else at(60))


def test_a_missed_fire_does_not_count_toward_max_runs() -> None:
    task = make_task(max_runs=3, run_count=2, options=TaskOptions(misfire_grace_secs=0))

    decision = plan_fire(task, as_of=at(5), started_at=T0)

    assert decision.run_for is None and not decision.counts
    assert decision.next_run_at == at(60)


def test_a_cron_task_moves_to_its_next_wall_time() -> None:
    friday_9am_berlin = datetime(2027, 3, 5, 8, 0, tzinfo=timezone.utc)
    task = make_task(Cron("0 9 * * 1-5", tz="Europe/Berlin"), next_run_at=friday_9am_berlin)

    decision = plan_fire(task, as_of=friday_9am_berlin, started_at=T0)

    assert decision.run_for == friday_9am_berlin
    assert decision.next_run_at == datetime(2027, 3, 8, 8, 0, tzinfo=timezone.utc)  # Monday


# -- after_run: retries, streak, auto-pause -----------------------------------------


def test_failed_attempts_are_retried_with_doubling_backoff() -> None:
    task = make_task(options=TaskOptions(retries=3, retry_backoff_secs=10))

    delays = [failed(task, attempt=n).retry_at for n in (1, 2, 3)]

    assert delays == [at(110), at(120), at(140)]
    assert failed(task, attempt=1).failure_streak == 0


def test_timeouts_and_interruptions_are_retried_too() -> None:
    task = make_task(options=TaskOptions(retries=1, retry_backoff_secs=5))

    assert failed(task, outcome="timeout").retry_at == at(105)
    assert failed(task, outcome="interrupted").retry_at == at(105)
    assert failed(task, outcome="skipped").retry_at is None


def test_an_interruption_a_client_of_the_server_chose_is_neither_retried_nor_counted() -> None:
    # A client cancelled, interrupted or rolled back the turn's server run: final. A
    # plain interruption (the runtime stopped, its process died) is still retried.
    options = TaskOptions(retries=2, retry_backoff_secs=5, pause_after_failures=4)
    task = make_task(options=options, failure_streak=3)

    stopped = failed(task, outcome="interrupted", retry=False)

    assert stopped == RunConsequence(None, 3)
    assert failed(task, outcome="interrupted") == RunConsequence(at(105), 3)


def test_an_error_of_a_server_that_could_not_be_reached_is_retried_but_never_counted() -> None:
    # The LangGraph server was down: an outage of the executor, not the task's failure.
    # Retried as any error; its fire's last attempt leaves the streak as it was, neither
    # one more (which would pause the task at the limit) nor reset.
    options = TaskOptions(retries=1, retry_backoff_secs=5, pause_after_failures=4)
    task = make_task(options=options, failure_streak=3)

    assert failed(task, counted=False) == RunConsequence(at(105), 3)
    assert failed(task, attempt=2, counted=False) == RunConsequence(None, 3)
    assert failed(task, attempt=2, outcome="timeout", counted=False) == RunConsequence(None, 3)
    # Reached and failed there: counted, and the task pauses at the limit.
    assert failed(task, attempt=2).event == "auto_paused"
    assert failed(task, attempt=2, counted=False, trigger="manual") == RunConsequence(None, 3)


def test_the_last_failed_attempt_adds_one_to_the_streak() -> None:
    task = make_task(options=TaskOptions(retries=2), failure_streak=1)

    consequence = failed(task, attempt=3)

    assert consequence.retry_at is None
    assert consequence.failure_streak == 2
    assert consequence.event is None


def test_an_interruption_without_retries_left_does_not_count_as_a_failure() -> None:
    task = make_task(options=TaskOptions(retries=0), failure_streak=1)

    consequence = failed(task, outcome="interrupted")

    assert (consequence.retry_at, consequence.failure_streak) == (None, 1)


def test_reaching_pause_after_failures_auto_pauses_with_the_last_error() -> None:
    task = make_task(options=TaskOptions(retries=0, pause_after_failures=3), failure_streak=2)

    consequence = failed(task)

    assert consequence.failure_streak == 3
    assert consequence.event == "auto_paused"
    assert consequence.reason == "paused after 3 consecutive failed fires; last error: boom"


def test_no_auto_pause_when_pause_after_failures_is_none() -> None:
    options = TaskOptions(retries=0, pause_after_failures=None)
    consequence = failed(make_task(options=options, failure_streak=99))

    assert (consequence.failure_streak, consequence.event) == (100, None)


def test_a_success_resets_the_streak() -> None:
    task = make_task(failure_streak=4)

    consequence = after_run(
        task, trigger="schedule", attempt=2, outcome="success", error=None, now=at(100)
    )

    assert (consequence.retry_at, consequence.failure_streak, consequence.event) == (None, 0, None)


@pytest.mark.parametrize("outcome", ["error", "success", "timeout"])
def test_manual_runs_change_nothing(outcome: Any) -> None:
    task = make_task(options=TaskOptions(retries=2, pause_after_failures=1), failure_streak=3)

    consequence = failed(task, outcome=outcome, trigger="manual")

    assert (consequence.retry_at, consequence.failure_streak, consequence.event) == (None, 3, None)


@pytest.mark.parametrize("trigger", ["schedule", "manual"])
@pytest.mark.parametrize("outcome", ["success", "error", "timeout", "interrupted", "skipped"])
@pytest.mark.parametrize("state", ["active", "completed", "paused"])
def test_settled_outcomes_need_nothing_of_the_task_but_its_streak(
    trigger: Any, outcome: Any, state: Any
) -> None:
    # The store records these without reading the task: after_run must agree.
    options = TaskOptions(retries=2, pause_after_failures=1)
    task = make_task(options=options, failure_streak=3, state=state)

    consequence = failed(task, outcome=outcome, trigger=trigger)

    settled = settles_alone(trigger, outcome)
    assert settled == (trigger == "manual" or outcome == "success")
    if settled:
        streak = 0 if trigger == "schedule" else 3
        assert consequence == RunConsequence(None, streak)


def test_a_paused_tasks_failure_is_not_retried_nor_paused_again() -> None:
    options = TaskOptions(retries=2, pause_after_failures=1)
    task = make_task(state="paused", next_run_at=None, options=options)

    consequence = failed(task)

    assert consequence.retry_at is None
    assert (consequence.failure_streak, consequence.event) == (1, None)


def test_a_completed_tasks_last_fire_is_still_retried() -> None:
    task = make_task(state="completed", next_run_at=None, options=TaskOptions(retries=1))

    assert failed(task).retry_at == at(110)
