"""Tests for langgraph_scheduler.schedules: crontab(5) semantics, DST, parsing, storage."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime, timezone
from zoneinfo import ZoneInfo

import pytest
from apscheduler.triggers.combining import OrTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from langgraph_scheduler.errors import InvalidSchedule, SchedulerError
from langgraph_scheduler.schedules import (
    ACCEPTED_FORMS,
    Cron,
    Interval,
    Once,
    _OncePerWallTime,
    parse_schedule,
    schedule_from_dict,
    schedule_to_dict,
)

BERLIN = ZoneInfo("Europe/Berlin")
# Saturday, the day before Europe/Berlin springs forward (2026-03-29 02:00 -> 03:00).
SAT_BERLIN = "2026-03-28T12:00:00+01:00"


def _iso(times: list[datetime]) -> list[str]:
    return [t.isoformat() for t in times]


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text)


# --------------------------------------------------------------------------- crontab(5) table

CRON_CASES = [
    # weekday numbers and names: 1-5 = Monday-Friday, so from a Saturday the next is Monday
    ("0 9 * * 1-5", "Europe/Berlin", SAT_BERLIN,
     ["2026-03-30T09:00:00+02:00", "2026-03-31T09:00:00+02:00", "2026-04-01T09:00:00+02:00"]),
    ("0 9 * * MON-fri", "Europe/Berlin", SAT_BERLIN,
     ["2026-03-30T09:00:00+02:00", "2026-03-31T09:00:00+02:00", "2026-04-01T09:00:00+02:00"]),
    ("0 9 * * 0", "Europe/Berlin", SAT_BERLIN,
     ["2026-03-29T09:00:00+02:00", "2026-04-05T09:00:00+02:00"]),
    ("0 9 * * 7", "Europe/Berlin", SAT_BERLIN,
     ["2026-03-29T09:00:00+02:00", "2026-04-05T09:00:00+02:00"]),
    ("0 9 * * Sun", "Europe/Berlin", SAT_BERLIN,
     ["2026-03-29T09:00:00+02:00", "2026-04-05T09:00:00+02:00"]),
    ("0 9 * * 6", "Europe/Berlin", SAT_BERLIN,
     ["2026-04-04T09:00:00+02:00", "2026-04-11T09:00:00+02:00"]),
    ("0 9 * * 1,3,5", "America/New_York", "2026-03-02T10:00:00-05:00",
     ["2026-03-04T09:00:00-05:00", "2026-03-06T09:00:00-05:00", "2026-03-09T09:00:00-04:00"]),
    # weekday steps: */2 = sun,tue,thu,sat; 1-5/2 = mon,wed,fri
    ("0 0 * * */2", "UTC", "2026-03-02T12:00:00+00:00",
     ["2026-03-03T00:00:00+00:00", "2026-03-05T00:00:00+00:00", "2026-03-07T00:00:00+00:00",
      "2026-03-08T00:00:00+00:00"]),
    ("0 0 * * 1-5/2", "UTC", "2026-03-02T12:00:00+00:00",
     ["2026-03-04T00:00:00+00:00", "2026-03-06T00:00:00+00:00", "2026-03-09T00:00:00+00:00"]),
    # wrapping weekday ranges are allowed: fri-mon = fri,sat,sun,mon
    ("0 9 * * fri-mon", "UTC", "2026-03-02T12:00:00+00:00",
     ["2026-03-06T09:00:00+00:00", "2026-03-07T09:00:00+00:00", "2026-03-08T09:00:00+00:00",
      "2026-03-09T09:00:00+00:00"]),
    ("0 9 * * 5-1", "UTC", "2026-03-02T12:00:00+00:00",
     ["2026-03-06T09:00:00+00:00", "2026-03-07T09:00:00+00:00", "2026-03-08T09:00:00+00:00",
      "2026-03-09T09:00:00+00:00"]),
    # month names, lists and ranges
    ("0 12 1 jan,jul *", "America/New_York", "2026-03-01T00:00:00-05:00",
     ["2026-07-01T12:00:00-04:00", "2027-01-01T12:00:00-05:00", "2027-07-01T12:00:00-04:00"]),
    ("30 6 15 MAR-may *", "Asia/Tokyo", "2026-01-01T00:00:00+09:00",
     ["2026-03-15T06:30:00+09:00", "2026-04-15T06:30:00+09:00", "2026-05-15T06:30:00+09:00",
      "2027-03-15T06:30:00+09:00"]),
    # steps
    ("*/15 9 * * *", "Asia/Tokyo", "2026-05-10T09:20:00+09:00",
     ["2026-05-10T09:30:00+09:00", "2026-05-10T09:45:00+09:00", "2026-05-11T09:00:00+09:00"]),
    ("5/20 * * * *", "UTC", "2026-03-02T12:00:00+00:00",
     ["2026-03-02T12:05:00+00:00", "2026-03-02T12:25:00+00:00", "2026-03-02T12:45:00+00:00",
      "2026-03-02T13:05:00+00:00"]),
    ("0 8-18/5 * * *", "UTC", "2026-03-02T12:00:00+00:00",
     ["2026-03-02T13:00:00+00:00", "2026-03-02T18:00:00+00:00", "2026-03-03T08:00:00+00:00"]),
    # both day fields restricted: EITHER matches (every 13th and every Friday)
    ("0 0 13 * 5", "UTC", "2026-03-01T00:00:00+00:00",
     ["2026-03-06T00:00:00+00:00", "2026-03-13T00:00:00+00:00", "2026-03-20T00:00:00+00:00",
      "2026-03-27T00:00:00+00:00", "2026-04-03T00:00:00+00:00", "2026-04-10T00:00:00+00:00",
      "2026-04-13T00:00:00+00:00"]),
    # a field starting with "*" is "unrestricted" for that rule, so the fields AND:
    # the first Sunday of each month, and days 1/11/21/31 that are Mondays
    ("0 10 1-7 * */7", "UTC", "2026-03-01T00:00:00+00:00",
     ["2026-03-01T10:00:00+00:00", "2026-04-05T10:00:00+00:00", "2026-05-03T10:00:00+00:00"]),
    ("0 0 */10 * 1", "UTC", "2026-03-01T00:00:00+00:00",
     ["2026-05-11T00:00:00+00:00", "2026-06-01T00:00:00+00:00"]),
    # Feb 31 never exists, so only the Mondays of February fire
    ("0 0 31 2 1", "UTC", "2026-03-01T00:00:00+00:00",
     ["2027-02-01T00:00:00+00:00", "2027-02-08T00:00:00+00:00"]),
    ("0 22 * * 1-5", "Australia/Sydney", "2026-03-28T12:00:00+11:00",
     ["2026-03-30T22:00:00+11:00", "2026-03-31T22:00:00+11:00"]),
    # macros
    ("@hourly", "UTC", "2026-03-28T12:34:00+00:00",
     ["2026-03-28T13:00:00+00:00", "2026-03-28T14:00:00+00:00"]),
    ("@daily", "UTC", "2026-03-28T12:34:00+00:00",
     ["2026-03-29T00:00:00+00:00", "2026-03-30T00:00:00+00:00"]),
    ("@MIDNIGHT", "UTC", "2026-03-28T12:34:00+00:00",
     ["2026-03-29T00:00:00+00:00", "2026-03-30T00:00:00+00:00"]),
    ("@weekly", "UTC", "2026-03-28T12:34:00+00:00",
     ["2026-03-29T00:00:00+00:00", "2026-04-05T00:00:00+00:00"]),
    ("@monthly", "UTC", "2026-03-28T12:34:00+00:00",
     ["2026-04-01T00:00:00+00:00", "2026-05-01T00:00:00+00:00"]),
    ("@yearly", "UTC", "2026-03-28T12:34:00+00:00",
     ["2027-01-01T00:00:00+00:00", "2028-01-01T00:00:00+00:00"]),
    ("@annually", "UTC", "2026-03-28T12:34:00+00:00",
     ["2027-01-01T00:00:00+00:00", "2028-01-01T00:00:00+00:00"]),
]  # fmt: skip


@pytest.mark.parametrize(("expr", "tz", "now", "expected"), CRON_CASES)
def test_cron_next_fire_times(expr: str, tz: str, now: str, expected: list[str]) -> None:
    cron = Cron(expr, tz=tz)
    assert _iso(cron.next_fire_times(len(expected), after=_at(now))) == expected


def test_weekdays_reach_apscheduler_as_names() -> None:
    trigger = Cron("0 9 * * 1-5", tz="UTC").trigger()
    assert isinstance(trigger, _OncePerWallTime)  # fixed hour: DST repeats fire once
    assert isinstance(trigger.inner, CronTrigger)
    assert "day_of_week='mon,tue,wed,thu,fri'" in str(trigger.inner)


def test_hourly_lines_are_plain_cron_triggers() -> None:
    assert isinstance(Cron("*/15 * * * 1-5", tz="UTC").trigger(), CronTrigger)


def test_dom_or_dow_is_an_or_trigger() -> None:
    trigger = Cron("0 0 13 * 5", tz="UTC").trigger()
    assert isinstance(trigger, _OncePerWallTime)
    assert isinstance(trigger.inner, OrTrigger)
    assert len(trigger.inner.triggers) == 2


def test_trigger_kinds() -> None:
    assert isinstance(Interval(minutes=5, tz="UTC").trigger(), IntervalTrigger)
    assert isinstance(Once(datetime(2030, 1, 1), tz="UTC").trigger(), DateTrigger)


def test_equal_cron_schedules_share_one_trigger() -> None:
    start = datetime(2026, 3, 1, 12)
    first = Cron("0 9 * * 1-5", tz="Europe/Berlin", start=start)
    same = Cron("0 9 * * 1-5", tz="Europe/Berlin", start=start)
    shared = first.shared_trigger()
    assert same is not first and same.shared_trigger() is shared
    assert str(shared) == str(first.trigger())  # what trigger() builds, built once
    for other in (
        Cron("0 9 * * 1-5", tz="Europe/London", start=start),
        Cron("0 10 * * 1-5", tz="Europe/Berlin", start=start),
        Cron("0 9 * * 1-5", tz="Europe/Berlin"),
    ):
        assert other.shared_trigger() is not shared


def test_shared_cron_trigger_keeps_the_fold_of_a_naive_bound() -> None:
    # 02:30 happens twice on 2026-10-25 in Berlin; fold=1 means the second (winter) one.
    # The two schedules compare equal, but start an hour apart, so they share nothing.
    summer = Cron("30 * * * *", tz="Europe/Berlin", start=datetime(2026, 10, 25, 2, 30))
    winter = Cron("30 * * * *", tz="Europe/Berlin", start=datetime(2026, 10, 25, 2, 30, fold=1))
    assert summer == winter
    assert summer.shared_trigger() is not winter.shared_trigger()
    after = _at("2026-10-25T00:00:00+02:00")
    assert _iso(winter.next_fire_times(1, after=after)) == ["2026-10-25T02:30:00+01:00"]
    assert _iso(summer.next_fire_times(1, after=after)) == ["2026-10-25T02:30:00+02:00"]


def test_shared_trigger_of_cheap_kinds_is_built_fresh() -> None:
    every = Interval(hours=1, tz="UTC", start=datetime(2026, 3, 2, 9))
    once = Once(datetime(2030, 1, 1), tz="UTC")
    assert isinstance(every.shared_trigger(), IntervalTrigger)
    assert every.shared_trigger() is not every.shared_trigger()
    assert isinstance(once.shared_trigger(), DateTrigger)
    # Without a start an interval counts from ``now``, so its trigger cannot be shared.
    unpinned = Interval(hours=1, tz="UTC")
    now = _at("2026-03-02T09:00:00+00:00")
    fire = unpinned.shared_trigger(now=now).get_next_fire_time(None, now)
    assert fire.isoformat() == "2026-03-02T10:00:00+00:00"


def test_fire_times_are_strictly_after() -> None:
    cron = Cron("0 9 * * *", tz="UTC")
    assert _iso(cron.next_fire_times(1, after=_at("2026-03-02T09:00:00+00:00"))) == [
        "2026-03-03T09:00:00+00:00"
    ]
    every = Interval(hours=1, tz="UTC", start=datetime(2026, 3, 2, 9))
    assert _iso(every.next_fire_times(2, after=_at("2026-03-02T10:00:00+00:00"))) == [
        "2026-03-02T11:00:00+00:00",
        "2026-03-02T12:00:00+00:00",
    ]
    once = Once(datetime(2026, 3, 2, 9), tz="UTC")
    assert once.next_fire_times(1, after=_at("2026-03-02T09:00:00+00:00")) == []


# --------------------------------------------------------------------------- DST

DST_CASES = [
    # spring-forward gap: 02:30 does not exist that day -> fires once at 03:30 (new offset)
    ("Europe/Berlin", "30 2 * * *", "2026-03-28T12:00:00+01:00",
     ["2026-03-29T03:30:00+02:00", "2026-03-30T02:30:00+02:00"]),
    ("America/New_York", "30 2 * * *", "2026-03-07T12:00:00-05:00",
     ["2026-03-08T03:30:00-04:00", "2026-03-09T02:30:00-04:00"]),
    ("Australia/Sydney", "30 2 * * *", "2026-10-03T12:00:00+10:00",
     ["2026-10-04T03:30:00+11:00", "2026-10-05T02:30:00+11:00"]),
    # autumn overlap: the wall time happens twice -> fires once, at its first occurrence
    ("Europe/Berlin", "30 2 * * *", "2026-10-24T12:00:00+02:00",
     ["2026-10-25T02:30:00+02:00", "2026-10-26T02:30:00+01:00", "2026-10-27T02:30:00+01:00"]),
    ("America/New_York", "30 1 * * *", "2026-10-31T12:00:00-04:00",
     ["2026-11-01T01:30:00-04:00", "2026-11-02T01:30:00-05:00", "2026-11-03T01:30:00-05:00"]),
    ("Australia/Sydney", "30 2 * * *", "2026-04-04T12:00:00+11:00",
     ["2026-04-05T02:30:00+11:00", "2026-04-06T02:30:00+10:00", "2026-04-07T02:30:00+10:00"]),
    ("Europe/Berlin", "0,30 2 * * 0", "2026-10-24T12:00:00+02:00",
     ["2026-10-25T02:00:00+02:00", "2026-10-25T02:30:00+02:00", "2026-11-01T02:00:00+01:00"]),
    # hourly lines follow elapsed hours through both changes
    ("Europe/Berlin", "30 * * * *", "2026-03-29T00:45:00+01:00",
     ["2026-03-29T01:30:00+01:00", "2026-03-29T03:30:00+02:00", "2026-03-29T04:30:00+02:00"]),
    ("Europe/Berlin", "30 * * * *", "2026-10-25T01:45:00+02:00",
     ["2026-10-25T02:30:00+02:00", "2026-10-25T02:30:00+01:00", "2026-10-25T03:30:00+01:00"]),
    # times outside the change window keep their wall-clock time
    ("Australia/Sydney", "0 9 * * *", "2026-10-03T12:00:00+10:00",
     ["2026-10-04T09:00:00+11:00", "2026-10-05T09:00:00+11:00"]),
]  # fmt: skip


@pytest.mark.parametrize(("tz", "expr", "now", "expected"), DST_CASES)
def test_cron_dst_behaviour(tz: str, expr: str, now: str, expected: list[str]) -> None:
    cron = Cron(expr, tz=tz)
    assert _iso(cron.next_fire_times(len(expected), after=_at(now))) == expected


INTERVAL_DST_CASES = [
    # elapsed time: the wall-clock hour jumps with the change
    (Interval(hours=1, tz="Europe/Berlin", start=datetime(2026, 3, 29)),
     "2026-03-28T23:00:00+01:00",
     ["2026-03-29T00:00:00+01:00", "2026-03-29T01:00:00+01:00", "2026-03-29T03:00:00+02:00",
      "2026-03-29T04:00:00+02:00"]),
    (Interval(hours=1, tz="America/New_York", start=datetime(2026, 11, 1)),
     "2026-10-31T23:30:00-04:00",
     ["2026-11-01T00:00:00-04:00", "2026-11-01T01:00:00-04:00", "2026-11-01T01:00:00-05:00",
      "2026-11-01T02:00:00-05:00"]),
    (Interval(days=1, tz="Australia/Sydney", start=datetime(2026, 10, 3, 12)),
     "2026-10-03T00:00:00+10:00",
     ["2026-10-03T12:00:00+10:00", "2026-10-04T13:00:00+11:00"]),
]  # fmt: skip


@pytest.mark.parametrize(("schedule", "now", "expected"), INTERVAL_DST_CASES)
def test_interval_dst_is_elapsed_time(schedule: Interval, now: str, expected: list[str]) -> None:
    assert _iso(schedule.next_fire_times(len(expected), after=_at(now))) == expected


# --------------------------------------------------------------------------- parse_schedule

PARSE_CASES = [
    ("in 20 minutes", "Europe/Berlin", SAT_BERLIN, ["2026-03-28T12:20:00+01:00"]),
    ("in 2h", "Europe/Berlin", SAT_BERLIN, ["2026-03-28T14:00:00+01:00"]),
    ("in 90 seconds", "Europe/Berlin", SAT_BERLIN, ["2026-03-28T12:01:30+01:00"]),
    ("in 1 hour 30 minutes", "Europe/Berlin", SAT_BERLIN, ["2026-03-28T13:30:00+01:00"]),
    ("IN  1h30m", "Europe/Berlin", SAT_BERLIN, ["2026-03-28T13:30:00+01:00"]),
    ("in an hour", "Europe/Berlin", SAT_BERLIN, ["2026-03-28T13:00:00+01:00"]),
    # "in" is elapsed time, also across DST
    ("in 3 days", "Europe/Berlin", SAT_BERLIN, ["2026-03-31T13:00:00+02:00"]),
    ("in 2 hours", "Europe/Berlin", "2026-03-29T01:30:00+01:00", ["2026-03-29T04:30:00+02:00"]),
    # wall times
    ("tomorrow at 9:00", "Europe/Berlin", SAT_BERLIN, ["2026-03-29T09:00:00+02:00"]),
    ("tomorrow at 9am", "America/New_York", "2026-03-07T20:00:00-05:00",
     ["2026-03-08T09:00:00-04:00"]),
    ("tomorrow at 9", "Europe/Berlin", SAT_BERLIN, ["2026-03-29T09:00:00+02:00"]),
    ("tomorrow at 9:30pm", "Europe/Berlin", SAT_BERLIN, ["2026-03-29T21:30:00+02:00"]),
    ("tomorrow 7 p.m.", "Europe/Berlin", SAT_BERLIN, ["2026-03-29T19:00:00+02:00"]),
    ("tomorrow at 12am", "Europe/Berlin", SAT_BERLIN, ["2026-03-29T00:00:00+01:00"]),
    ("tomorrow at midnight", "Europe/Berlin", SAT_BERLIN, ["2026-03-29T00:00:00+01:00"]),
    ("tomorrow at 12pm", "Europe/Berlin", SAT_BERLIN, ["2026-03-29T12:00:00+02:00"]),
    ("tomorrow at noon", "Europe/Berlin", SAT_BERLIN, ["2026-03-29T12:00:00+02:00"]),
    ("tomorrow at 2:30", "Europe/Berlin", SAT_BERLIN, ["2026-03-29T03:30:00+02:00"]),  # DST gap
    ("today at 18:30", "Europe/Berlin", SAT_BERLIN, ["2026-03-28T18:30:00+01:00"]),
    ("at 17:00", "Europe/Berlin", SAT_BERLIN, ["2026-03-28T17:00:00+01:00"]),
    ("at 11:00", "Europe/Berlin", SAT_BERLIN, ["2026-03-29T11:00:00+02:00"]),
    # intervals start one interval after now
    ("every 2 hours", "Europe/Berlin", SAT_BERLIN,
     ["2026-03-28T14:00:00+01:00", "2026-03-28T16:00:00+01:00", "2026-03-28T18:00:00+01:00"]),
    ("every 30 minutes", "UTC", "2026-03-02T12:00:00+00:00",
     ["2026-03-02T12:30:00+00:00", "2026-03-02T13:00:00+00:00"]),
    ("every 5m", "UTC", "2026-03-02T12:00:00+00:00",
     ["2026-03-02T12:05:00+00:00", "2026-03-02T12:10:00+00:00"]),
    ("every hour", "Europe/Berlin", "2026-03-29T00:30:00+01:00",
     ["2026-03-29T01:30:00+01:00", "2026-03-29T03:30:00+02:00", "2026-03-29T04:30:00+02:00"]),
    ("every day", "Europe/Berlin", SAT_BERLIN,
     ["2026-03-29T13:00:00+02:00", "2026-03-30T13:00:00+02:00"]),
    # calendar rules (crontab weekday numbering underneath)
    ("every day at 18:30", "Europe/Berlin", SAT_BERLIN,
     ["2026-03-28T18:30:00+01:00", "2026-03-29T18:30:00+02:00"]),
    ("daily at 7am", "Australia/Sydney", "2026-04-04T12:00:00+11:00",
     ["2026-04-05T07:00:00+10:00", "2026-04-06T07:00:00+10:00"]),
    ("every weekday at 9:00", "Australia/Sydney", "2026-03-28T12:00:00+11:00",
     ["2026-03-30T09:00:00+11:00", "2026-03-31T09:00:00+11:00"]),
    ("  Every   WEEKDAY  at 9AM ", "Europe/Berlin", SAT_BERLIN, ["2026-03-30T09:00:00+02:00"]),
    ("every weekend at 10:00", "Europe/Berlin", SAT_BERLIN,
     ["2026-03-29T10:00:00+02:00", "2026-04-04T10:00:00+02:00"]),
    ("every monday at 8am", "Europe/Berlin", SAT_BERLIN,
     ["2026-03-30T08:00:00+02:00", "2026-04-06T08:00:00+02:00"]),
    ("every mon,wed,fri at 8:15", "Europe/Berlin", SAT_BERLIN,
     ["2026-03-30T08:15:00+02:00", "2026-04-01T08:15:00+02:00", "2026-04-03T08:15:00+02:00"]),
    ("every monday and thursday at 17:00", "America/New_York", "2026-03-02T12:00:00-05:00",
     ["2026-03-02T17:00:00-05:00", "2026-03-05T17:00:00-05:00", "2026-03-09T17:00:00-04:00"]),
    ("every sunday at 8am", "UTC", "2026-03-02T12:00:00+00:00", ["2026-03-08T08:00:00+00:00"]),
    ("every hour at :15", "UTC", "2026-03-02T12:20:00+00:00",
     ["2026-03-02T13:15:00+00:00", "2026-03-02T14:15:00+00:00"]),
    ("every month on the 1st at 9:00", "Europe/Berlin", SAT_BERLIN,
     ["2026-04-01T09:00:00+02:00", "2026-05-01T09:00:00+02:00"]),
    ("0 9 * * 1-5", "Europe/Berlin", SAT_BERLIN, ["2026-03-30T09:00:00+02:00"]),
    ("@weekly", "Europe/Berlin", SAT_BERLIN, ["2026-03-29T00:00:00+01:00"]),
    # ISO 8601: naive = wall time in tz, offsets as given
    ("2026-12-01T09:00", "Europe/Berlin", SAT_BERLIN, ["2026-12-01T09:00:00+01:00"]),
    ("2026-12-01 09:00", "Europe/Berlin", SAT_BERLIN, ["2026-12-01T09:00:00+01:00"]),
    ("2026-12-01T09:00+01:00", "Europe/Berlin", SAT_BERLIN, ["2026-12-01T09:00:00+01:00"]),
    ("2026-12-01T08:00Z", "Europe/Berlin", SAT_BERLIN, ["2026-12-01T09:00:00+01:00"]),
    ("2026-12-01T09:00:30-05:00", "Europe/Berlin", SAT_BERLIN, ["2026-12-01T15:00:30+01:00"]),
]  # fmt: skip


@pytest.mark.parametrize(("text", "tz", "now", "expected"), PARSE_CASES)
def test_parse_schedule_fire_times(text: str, tz: str, now: str, expected: list[str]) -> None:
    schedule = parse_schedule(text, tz=tz, now=_at(now))
    assert schedule.tz == tz
    assert _iso(schedule.next_fire_times(len(expected), after=_at(now))) == expected


PARSE_SHAPES = [
    ("every weekday at 9:00", Cron("0 9 * * 1-5", tz="Europe/Berlin")),
    ("every weekend at 10:00", Cron("0 10 * * 0,6", tz="Europe/Berlin")),
    ("every mon,wed,fri at 8:15", Cron("15 8 * * 1,3,5", tz="Europe/Berlin")),
    ("every Sunday and Saturday at 8am", Cron("0 8 * * 0,6", tz="Europe/Berlin")),
    ("every hour at :15", Cron("15 * * * *", tz="Europe/Berlin")),
    ("every month on the 1st at 9:00", Cron("0 9 1 * *", tz="Europe/Berlin")),
    ("every day at 18:30", Cron("30 18 * * *", tz="Europe/Berlin")),
    ("every 2 hours",
     Interval(seconds=7200, tz="Europe/Berlin", start=datetime(2026, 3, 28, 14, tzinfo=BERLIN))),
    ("in 20 minutes", Once(datetime(2026, 3, 28, 12, 20, tzinfo=BERLIN), tz="Europe/Berlin")),
]  # fmt: skip


@pytest.mark.parametrize(("text", "expected"), PARSE_SHAPES)
def test_parse_schedule_shapes(text: str, expected: Cron | Interval | Once) -> None:
    assert parse_schedule(text, tz="Europe/Berlin", now=_at(SAT_BERLIN)) == expected


def test_accepted_forms_is_short_and_has_examples() -> None:
    lines = ACCEPTED_FORMS.splitlines()
    assert len(lines) <= 10
    for example in ("in 20 minutes", "tomorrow at 9:00", "every weekday at 9am", "0 9 * * 1-5"):
        assert example in ACCEPTED_FORMS


# --------------------------------------------------------------------------- errors

ERROR_CASES: list[tuple[str, Callable[[], object], str]] = [
    ("4 fields", lambda: Cron("0 9 * *"),
     r"'0 9 \* \*' has 4 field.*minute hour day-of-month month day-of-week.*0 9 \* \* 1-5"),
    ("6 fields", lambda: Cron("0 0 9 * * 1"), r"has 6 field.*seconds and years"),
    ("weekday 8", lambda: Cron("0 9 * * 8"), r"'8' is not a valid day-of-week: allowed 0-7"),
    ("minute 60", lambda: Cron("60 * * * *"), r"'60' is not a valid minute: allowed 0-59"),
    ("hour 24", lambda: Cron("0 24 * * *"), r"'24' is not a valid hour: allowed 0-23"),
    ("day 32", lambda: Cron("0 0 32 * *"), r"'32' is not a valid day-of-month: allowed 1-31"),
    ("month 13", lambda: Cron("0 0 1 13 *"), r"'13' .*month: allowed 1-12 or jan-dec"),
    ("bad name", lambda: Cron("0 0 1 foo *"), r"'foo' .*month"),
    ("bad entry", lambda: Cron("0 0 1 1 1-"), r"'1-' is not a valid day-of-week entry"),
    ("step 0", lambda: Cron("*/0 * * * *"), r"step 0 in '\*/0'"),
    ("backwards", lambda: Cron("50-10 * * * *"), r"'50-10' \(minute\) goes backwards.*50-59,0-10"),
    ("never", lambda: Cron("0 0 30 2 *"), r"'0 0 30 2 \*' can never fire.*day 30"),
    ("reboot", lambda: Cron("@reboot"), r"@reboot is not supported.*@daily"),
    ("macro", lambda: Cron("@fortnightly"), r"unknown cron macro '@fortnightly'.*@daily"),
    ("zone typo", lambda: Cron("0 9 * * *", tz="Europe/Berln"),
     r"unknown timezone 'Europe/Berln'.*did you mean 'Europe/Berlin'"),
    ("zone", lambda: Cron("0 9 * * *", tz="Mars/Olympus"),
     r"unknown timezone 'Mars/Olympus'.*'Europe/Berlin'"),
    ("localtime", lambda: Once(datetime(2030, 1, 1), tz="localtime"), r"unknown timezone"),
    ("interval 0", lambda: Interval(seconds=0), r"interval of 0 seconds.*at least 1 second"),
    ("interval < 0", lambda: Interval(minutes=-5), r"interval of -300 seconds"),
    ("interval huge", lambda: Interval(days=400), r"at most 366 days"),
    ("interval type", lambda: Interval(minutes="five"),  # type: ignore[arg-type]
     r"minutes must be a number, got 'five'"),
    ("interval frac", lambda: Interval(minutes=0.01), r"whole number of seconds"),
    ("end <= start",
     lambda: Cron("0 9 * * *", start=datetime(2026, 3, 2), end=datetime(2026, 3, 1)),
     r"end 2026-03-01 00:00 is not after start 2026-03-02 00:00"),
    ("no zone", lambda: Once(datetime(2030, 1, 1)).zone, r"no timezone; call with_default_tz"),
    ("extra", lambda: Cron("0 9 * * *", color="red"), r"unknown field 'color'"),
    ("type", lambda: Cron(expr=5), r"expr: Input should be a valid string"),
    ("from_dict kind", lambda: schedule_from_dict({"kind": "weekly"}),
     r"'kind' must be 'cron', 'interval' or 'once'"),
    ("from_dict missing", lambda: schedule_from_dict({"kind": "cron"}),
     r"missing required field 'expr'"),
    ("from_dict semantic", lambda: schedule_from_dict({"kind": "cron", "expr": "0 9 * *"}),
     r"has 4 field"),
    ("from_dict interval", lambda: schedule_from_dict({"kind": "interval", "seconds": -1}),
     r"interval of -1 seconds"),
    ("with_default_tz", lambda: Cron("0 9 * * *").with_default_tz("Nowhere/City"),
     r"unknown timezone 'Nowhere/City'"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("make", "match"), [c[1:] for c in ERROR_CASES], ids=[c[0] for c in ERROR_CASES]
)
def test_invalid_schedules(make: Callable[[], object], match: str) -> None:
    with pytest.raises(InvalidSchedule, match=match):
        make()


PARSE_ERRORS = [
    ("blah", r"(?s)could not understand the schedule 'blah'.*every weekday at 9am"),
    ("every funday at 9", r"could not understand"),
    ("every monday", r"could not understand"),
    ("every day at 25:00", r"'25:00' is not a valid time.*09:00.*9am"),
    ("tomorrow at 13pm", r"'13pm' is not a valid time"),
    ("today at 11:00",
     r"2026-03-28 11:00 CET \(Europe/Berlin\) is in the past: it is now 2026-03-28 12:00 CET"),
    ("2026-01-01T09:00", r"2026-01-01 09:00 CET \(Europe/Berlin\) is in the past"),
    ("in 0 minutes", r"'in 0 minutes' is not in the future"),
    ("every 0 minutes", r"interval of 0 seconds"),
    ("every 400 days", r"at most 366 days"),
    ("every hour at :75", r"minute 75 is not valid"),
    ("every month on the 32nd at 9", r"day 32 of the month is not valid"),
    ("2026-13-01T09:00", r"'2026-13-01t09:00' is not a valid date-time"),
    ("0 9 * * 1-8", r"'8' \(in '1-8'\) is not a valid day-of-week"),
    ("in 999999 weeks", r"too far in the future"),
]  # fmt: skip


@pytest.mark.parametrize(("text", "match"), PARSE_ERRORS)
def test_parse_schedule_errors(text: str, match: str) -> None:
    with pytest.raises(InvalidSchedule, match=match):
        parse_schedule(text, tz="Europe/Berlin", now=_at(SAT_BERLIN))


def test_parse_schedule_rejects_unknown_zone() -> None:
    with pytest.raises(InvalidSchedule, match=r"unknown timezone 'Berlin'"):
        parse_schedule("in 5 minutes", tz="Berlin", now=_at(SAT_BERLIN))


def test_invalid_schedule_is_a_scheduler_and_value_error() -> None:
    with pytest.raises(InvalidSchedule) as info:
        Cron("nope")
    assert isinstance(info.value, SchedulerError)
    assert isinstance(info.value, ValueError)


# --------------------------------------------------------------------------- model behaviour


def test_conveniences() -> None:
    assert Cron("0 9 * * 1-5", tz="Europe/Berlin").expr == "0 9 * * 1-5"
    assert Once(datetime(2030, 1, 1)).at == datetime(2030, 1, 1)
    assert Interval(minutes=5).seconds == 300
    assert Interval(hours=2).seconds == 7200
    assert Interval(days=1).seconds == 86400
    assert Interval(hours=1, minutes=30).seconds == 5400
    with pytest.raises(TypeError):
        Cron("0 9 * * *", expr="0 10 * * *")


def test_models_are_frozen() -> None:
    cron = Cron("0 9 * * *", tz="UTC")
    with pytest.raises(ValueError):
        cron.expr = "0 10 * * *"


def test_with_default_tz() -> None:
    cron = Cron("0 9 * * *")
    filled = cron.with_default_tz("Europe/Berlin")
    assert isinstance(filled, Cron)
    assert (cron.tz, filled.tz, filled.expr) == (None, "Europe/Berlin", "0 9 * * *")
    assert filled.with_default_tz("UTC") is filled  # an explicit zone wins


def test_with_default_tz_revalidates_bounds() -> None:
    # naive start vs aware end can only be compared once the zone is known
    cron = Cron(
        "0 9 * * *",
        start=datetime(2026, 3, 2, 10),
        end=datetime(2026, 3, 2, 8, tzinfo=timezone.utc),
    )
    with pytest.raises(InvalidSchedule, match="is not after start"):
        cron.with_default_tz("UTC")


def test_next_fire_times_honours_start_and_end() -> None:
    cron = Cron("0 9 * * *", tz="UTC", start=datetime(2026, 3, 5), end=datetime(2026, 3, 7, 9))
    assert _iso(cron.next_fire_times(5, after=_at("2026-03-01T00:00:00+00:00"))) == [
        "2026-03-05T09:00:00+00:00",
        "2026-03-06T09:00:00+00:00",
        "2026-03-07T09:00:00+00:00",
    ]
    dual = Cron("0 0 13 * 5", tz="UTC", start=datetime(2026, 3, 10), end=datetime(2026, 3, 20))
    assert _iso(dual.next_fire_times(5, after=_at("2026-03-01T00:00:00+00:00"))) == [
        "2026-03-13T00:00:00+00:00",
        "2026-03-20T00:00:00+00:00",
    ]
    every = Interval(
        minutes=30, tz="UTC", start=datetime(2026, 3, 2, 12), end=datetime(2026, 3, 2, 13)
    )
    assert _iso(every.next_fire_times(5, after=_at("2026-03-01T00:00:00+00:00"))) == [
        "2026-03-02T12:00:00+00:00",
        "2026-03-02T12:30:00+00:00",
        "2026-03-02T13:00:00+00:00",
    ]


def test_naive_bounds_are_wall_time_aware_ones_as_given() -> None:
    naive = Cron("0 9 * * *", tz="Europe/Berlin", start=datetime(2026, 3, 5, 9))
    aware = Cron(
        "0 9 * * *", tz="Europe/Berlin", start=datetime(2026, 3, 5, 9, tzinfo=timezone.utc)
    )
    after = _at("2026-03-01T00:00:00+00:00")
    assert _iso(naive.next_fire_times(1, after=after)) == ["2026-03-05T09:00:00+01:00"]
    assert _iso(aware.next_fire_times(1, after=after)) == ["2026-03-06T09:00:00+01:00"]


def test_interval_without_start_counts_from_after() -> None:
    every = Interval(minutes=10, tz="UTC")
    assert _iso(every.next_fire_times(2, after=_at("2026-03-02T12:00:00+00:00"))) == [
        "2026-03-02T12:10:00+00:00",
        "2026-03-02T12:20:00+00:00",
    ]


def test_once_fires_once() -> None:
    once = Once(datetime(2026, 12, 1, 9), tz="Europe/Berlin")
    assert _iso(once.next_fire_times(3, after=_at(SAT_BERLIN))) == ["2026-12-01T09:00:00+01:00"]


def test_check() -> None:
    now = _at(SAT_BERLIN)
    Once(datetime(2026, 3, 28, 12, 1), tz="Europe/Berlin").check(now)
    Cron("0 9 * * *", tz="Europe/Berlin").check(now)
    with pytest.raises(InvalidSchedule, match=r"2026-03-28 12:00 CET .*is in the past"):
        Once(datetime(2026, 3, 28, 12), tz="Europe/Berlin").check(now)
    with pytest.raises(
        InvalidSchedule,
        match=r"end 2026-03-28 13:00 UTC is before the next fire time 2026-03-29 09:00 UTC",
    ):
        Cron("0 9 * * *", tz="UTC", end=datetime(2026, 3, 28, 13)).check(now)
    with pytest.raises(InvalidSchedule, match=r"end 2026-03-28 11:30 UTC is before"):
        Interval(hours=1, tz="UTC", end=datetime(2026, 3, 28, 11, 30)).check(now)


DESCRIPTIONS = [
    (Cron("0 9 * * 1-5", tz="Europe/Berlin"), "at 09:00 on Monday–Friday (Europe/Berlin)"),
    (Cron("0 8 * * 6,0", tz="UTC"), "at 08:00 on Saturday and Sunday (UTC)"),
    (Cron("15 8 * * 1,3,5", tz="UTC"), "at 08:15 on Monday, Wednesday and Friday (UTC)"),
    (Cron("0 9,17 * * *", tz="UTC"), "at 09:00 and 17:00 every day (UTC)"),
    (Cron("*/15 * * * *", tz="UTC"), "every 15 minutes (UTC)"),
    (Cron("15 * * * *", tz="UTC"), "every hour at :15 (UTC)"),
    (Cron("0 */6 * * *", tz="UTC"), "every 6 hours at :00 (UTC)"),
    (Cron("0 0 13 * 5", tz="UTC"), "at 00:00 on day 13 of every month or on Friday (UTC)"),
    (Cron("@monthly", tz="UTC"), "at 00:00 on day 1 of every month (UTC)"),
    (Cron("0 0 1,15 * */7", tz="UTC"),
     "at 00:00 on days 1 and 15 of every month if that is a Sunday (UTC)"),
    (Cron("0 9-17 * * 1-5", tz="UTC"), "cron '0 9-17 * * 1-5' (UTC)"),
    (Cron("0 9 * * *"), "at 09:00 every day (runtime default timezone)"),
    (Cron("0 9 * * *", tz="UTC", start=datetime(2026, 3, 1), end=datetime(2026, 4, 1)),
     "at 09:00 every day, starting 2026-03-01 00:00 UTC, until 2026-04-01 00:00 UTC (UTC)"),
    (Interval(hours=2, tz="UTC"), "every 2 hours (UTC)"),
    (Interval(minutes=90, tz="UTC"), "every 90 minutes (UTC)"),
    (Interval(seconds=45, tz="UTC"), "every 45 seconds (UTC)"),
    (Interval(days=1, tz="UTC"), "every day (UTC)"),
    (Once(datetime(2026, 12, 1, 9), tz="Europe/Berlin"),
     "once at 2026-12-01 09:00 CET (Europe/Berlin)"),
]  # fmt: skip


@pytest.mark.parametrize(("schedule", "text"), DESCRIPTIONS)
def test_describe(schedule: Cron | Interval | Once, text: str) -> None:
    assert schedule.describe() == text


ROUND_TRIP = [
    Cron("0 9 * * 1-5", tz="Europe/Berlin"),
    Cron("@daily"),
    Cron("0 0 13 * 5", tz="UTC", start=datetime(2026, 3, 1), end=datetime(2026, 12, 1, 8)),
    Interval(minutes=5, tz="UTC"),
    Interval(seconds=7200, tz="Asia/Tokyo", start=datetime(2026, 3, 1, 9, tzinfo=BERLIN)),
    Once(datetime(2026, 12, 1, 9), tz="Europe/Berlin"),
    Once(datetime(2026, 10, 25, 2, 30, fold=1, tzinfo=BERLIN), tz="Europe/Berlin"),
    Once(datetime(2026, 12, 1, 9, tzinfo=timezone.utc)),
]


@pytest.mark.parametrize("schedule", ROUND_TRIP)
def test_round_trip(schedule: Cron | Interval | Once) -> None:
    data = schedule_to_dict(schedule)
    stored = json.loads(json.dumps(data))
    restored = schedule_from_dict(stored)
    assert restored == schedule
    assert type(restored) is type(schedule)
    assert schedule_to_dict(restored) == data


def test_from_dict_accepts_interval_units() -> None:
    assert schedule_from_dict({"kind": "interval", "minutes": 5}) == Interval(seconds=300)


# --------------------------------------------------------------------------- fuzzing

_TOKENS = [
    "every", "in", "at", "on", "the", "today", "tomorrow", "daily", "hourly", "and", ",",
    "9", "09:00", "9:30", "25:00", "12", "0", "7", "60", "999999", "am", "pm", "noon",
    "midnight", "mon", "monday", "fri", "sundays", "weekday", "weekend", "day", "days",
    "hour", "h", "m", "s", "minutes", "weeks", "month", "1st", "31st", ":15", ":99",
    "*", "*/5", "*/0", "1-5", "5-1", "jan", "@daily", "@reboot", "@x",
    "2026-12-01T09:00", "2026-02-30T09:00", "9999-12-31T23:59-05:00", "0001-01-01T00:00+05:00",
    "z", "+01:00", "-", "/",
]  # fmt: skip
_TEXT = st.one_of(
    st.text(max_size=40),
    st.lists(st.sampled_from(_TOKENS), max_size=7).map(" ".join),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=_TEXT, tz=st.sampled_from(["UTC", "Europe/Berlin", "Australia/Sydney"]))
def test_parse_schedule_fuzz(text: str, tz: str) -> None:
    now = _at(SAT_BERLIN)
    try:
        schedule = parse_schedule(text, tz=tz, now=now)
    except InvalidSchedule:
        return
    times = schedule.next_fire_times(1, after=now)
    assert len(times) == 1 and times[0] > now
    assert isinstance(schedule.describe(), str)
    assert schedule_from_dict(schedule_to_dict(schedule)) == schedule


_FIELD = st.sampled_from(
    ["*", "*/2", "*/7", "0", "7", "13", "31", "1-5", "5-1", "fri-mon", "jan", "2", "1,15", "59"]
)


@settings(max_examples=200, deadline=None)
@given(fields=st.lists(_FIELD, min_size=5, max_size=5))
def test_cron_fuzz(fields: list[str]) -> None:
    try:
        cron = Cron(" ".join(fields), tz="UTC")
    except InvalidSchedule:
        return
    assert len(cron.next_fire_times(1, after=_at("2026-03-02T12:00:00+00:00"))) == 1
