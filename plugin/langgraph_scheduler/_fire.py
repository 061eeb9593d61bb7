"""The decisions of a fire, as pure functions of (task, due times, now).

Nothing here reads a clock or a database: the store calls :func:`plan_fire` inside the
transaction that claims a due task, and :func:`after_run` inside the one that records an
outcome, with the task as it is stored at that moment.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from .models import RunOutcome, RunTrigger, Task, TaskEventKind
from .schedules import Interval, Schedule

__all__ = [
    "MAX_MISSED",
    "FireDecision",
    "RunConsequence",
    "after_run",
    "due_times",
    "next_after",
    "plan_fire",
    "settles_alone",
]

MAX_MISSED = 1000
"""Most missed occurrences counted in one ``missed`` record (older ones are summarised)."""

_FAILED: tuple[RunOutcome, ...] = ("error", "timeout")
"""Outcomes that count toward the failure streak."""

_RETRIED: tuple[RunOutcome, ...] = ("error", "timeout", "interrupted")
"""Outcomes of a scheduled attempt that get another attempt while retries are left."""


@dataclass(frozen=True)
class FireDecision:
    """What claiming a due task writes.

    Attributes:
        run_for: the occurrence to run now (None when every due occurrence is missed).
        missed: occurrences recorded ``missed`` (in one record), oldest first; when
            more than ``MAX_MISSED`` were missed, the first of them and the newest others.
        missed_more: True when more occurrences were missed than ``missed`` lists.
        next_run_at: the task's next due time, or None when it has none left.
        counts: the fire runs, so it adds one to the task's run count.
    """

    run_for: datetime | None
    missed: tuple[datetime, ...]
    missed_more: bool
    next_run_at: datetime | None
    counts: bool

    @property
    def completes(self) -> bool:
        """No fire time is left: the task becomes ``completed``."""
        return self.next_run_at is None


@dataclass(frozen=True)
class RunConsequence:
    """What a finished attempt does to its task.

    Attributes:
        retry_at: when the next attempt falls due (None: no retry).
        failure_streak: the task's new count of consecutive failed fires.
        event: ``auto_paused`` when the streak reached the limit, else None.
        reason: the event's explanation.
    """

    retry_at: datetime | None
    failure_streak: int
    event: TaskEventKind | None = None
    reason: str = ""


def next_after(schedule: Schedule, after: datetime) -> datetime | None:
    """The schedule's first fire time strictly after ``after`` (UTC), or None."""
    times = schedule.next_fire_times(1, after=after)
    return times[0].astimezone(timezone.utc) if times else None


def due_times(
    task: Task, as_of: datetime, *, limit: int = MAX_MISSED + 1
) -> tuple[list[datetime], datetime | None]:
    """The task's occurrences due at ``as_of`` (``next_run_at`` and every later fire time
    up to ``as_of``, oldest first, the newest ``limit`` of them) and the first fire time
    after them (None when the schedule has none left)."""
    schedule = task.schedule
    assert schedule is not None and task.next_run_at is not None
    times = [task.next_run_at]
    after = task.next_run_at
    chunk = 1  # the usual case: one occurrence due, the next one in the future
    jumped = False
    while True:
        following = [
            t.astimezone(timezone.utc) for t in schedule.next_fire_times(chunk, after=after)
        ]
        fresh = [t for t in following if t <= as_of]
        times.extend(fresh)
        if len(fresh) < len(following):
            return times[-limit:], following[len(fresh)]
        if not following:
            return times[-limit:], None
        after, chunk = fresh[-1], 64
        if len(times) > 2 * limit:
            # A long outage: go on from near its end, not through it all. (An interval
            # without a start counts from each occurrence: only walking keeps its phase.)
            if not jumped and not (isinstance(schedule, Interval) and schedule.start is None):
                jumped = True
                start = _window_start(schedule, times, as_of, limit)
                if start > after:
                    after, times = start, []
                    continue
            del times[:-limit]


def _window_start(
    schedule: Schedule, walked: list[datetime], as_of: datetime, limit: int
) -> datetime:
    """An instant after which more than ``limit`` occurrences come by ``as_of``, near
    the newest: a window ending at ``as_of``, doubled from the span ``limit`` of the
    ``walked`` ones took until it holds that many (the last walked, if none does)."""
    spacing = (walked[-1] - walked[0]) / (len(walked) - 1)
    span = max(spacing * (limit + 1), timedelta(seconds=1))
    while span < as_of - walked[-1]:  # (as_of - span could pass the earliest datetime)
        probe = schedule.next_fire_times(limit + 1, after=as_of - span)
        if len(probe) > limit and probe[-1].astimezone(timezone.utc) <= as_of:
            return as_of - span
        span *= 2
    return walked[-1]


def plan_fire(task: Task, *, as_of: datetime, started_at: datetime) -> FireDecision:
    """Decide a due task's fire: which occurrence runs, which are missed, what is next.

    At most one occurrence runs: the latest due one, unless it is later than the misfire
    grace, or the task's policy is ``misfire="skip"`` and it fell due before this runtime
    started (``started_at``). The others are recorded ``missed``.
    """
    assert task.schedule is not None and task.next_run_at is not None
    times, following = due_times(task, as_of, limit=MAX_MISSED + 2)
    latest = times[-1]
    options = task.options
    grace = options.grace_for(task.schedule.kind == "once")
    too_late = grace is not None and (as_of - latest).total_seconds() > grace
    while_down = latest < started_at
    runs = not (too_late or (options.misfire == "skip" and while_down))
    missed = times if not runs else times[:-1]
    if runs and task.max_runs is not None and task.run_count + 1 >= task.max_runs:
        following = None
    if not runs and task.max_runs is not None and task.run_count >= task.max_runs:
        following = None
    more = len(missed) > MAX_MISSED
    if more:  # the first one (when the outage began: the task's next_run_at), the newest others
        missed = [task.next_run_at, *missed[-(MAX_MISSED - 1) :]]
    return FireDecision(
        run_for=latest if runs else None,
        missed=tuple(missed),
        missed_more=more,
        next_run_at=following,
        counts=runs,
    )


def settles_alone(trigger: RunTrigger, outcome: RunOutcome) -> bool:
    """True when :func:`after_run` needs nothing of the task to decide: a manual run
    changes neither streak nor retries, and a scheduled success only resets the streak.
    Such an outcome is recorded without reading its task first."""
    return trigger != "schedule" or outcome == "success"


def after_run(
    task: Task,
    *,
    trigger: RunTrigger,
    attempt: int,
    outcome: RunOutcome,
    error: str | None,
    now: datetime,
    retry: bool = True,
    counted: bool = True,
) -> RunConsequence:
    """What a finished attempt of ``task`` does: a retry, the failure streak, a pause.

    Manual runs change neither. A scheduled success resets the streak; a failed or
    interrupted attempt is retried while ``options.retries`` allows and the task is not
    paused, unless ``retry`` is False (an interruption a client of the server chose); a
    fire whose attempts all failed adds one to the streak, and reaching
    ``options.pause_after_failures`` pauses the task, unless its last attempt is not
    ``counted`` (the LangGraph server could not be reached): the streak then stays as
    it was.
    """
    streak = task.failure_streak
    if trigger != "schedule":
        return RunConsequence(None, streak)
    if outcome == "success":
        return RunConsequence(None, 0)
    options = task.options
    retried = outcome in _RETRIED and retry
    if retried and attempt <= options.retries and task.state in _RETRY_STATES:
        delay = timedelta(seconds=options.retry_delay(attempt + 1))
        return RunConsequence(now + delay, streak)
    if outcome not in _FAILED or not counted:
        return RunConsequence(None, streak)
    streak += 1
    limit = options.pause_after_failures
    if limit is not None and streak >= limit and task.state == "active":
        reason = f"paused after {streak} consecutive failed fires; last error: {error}"
        return RunConsequence(None, streak, "auto_paused", reason)
    return RunConsequence(None, streak)


_RETRY_STATES = ("active", "completed")
"""A paused (or quarantined) task's failed attempts are not retried."""
