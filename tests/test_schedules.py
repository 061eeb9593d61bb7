"""Tests for langgraph_scheduler.schedules: crontab(5) fields, triggers, zones, storage.

Daylight-saving behaviour is in test_cron_dst.py, the phrases people say in test_phrases.py.
"""

from __future__ import annotations

import json
import pickle
import re
from collections.abc import Callable
from datetime import datetime, timedelta, timezone, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger
from hypothesis import given, settings
from hypothesis import strategies as st

from langgraph_scheduler.errors import InvalidSchedule, SchedulerError
from langgraph_scheduler.runtime import SchedulerRuntime
from langgraph_scheduler.schedules import (
    Cron,
    Interval,
    Once,
    check_timezone,
    parse_schedule,
    schedule_from_dict,
    schedule_to_dict,
    zone_notice,
)

BERLIN = ZoneInfo("Europe/Berlin")
_WEST_14 = timezone(-timedelta(hours=14))
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


@pytest.mark.parametrize("n", [-1, 2.5, "3", True, None])
def test_next_fire_times_takes_a_whole_count(n: Any) -> None:
    schedule = Interval(seconds=60, tz="UTC")

    with pytest.raises(InvalidSchedule, match="n must be a whole number of fire times, 0 or more"):
        schedule.next_fire_times(n, after=_at("2026-03-01T00:00:00+00:00"))
    assert schedule.next_fire_times(0, after=_at("2026-03-01T00:00:00+00:00")) == []


def test_cron_trigger_is_an_apscheduler_trigger() -> None:
    trigger = Cron("0 9 * * 1-5", tz="Europe/Berlin").trigger()
    assert isinstance(trigger, BaseTrigger)
    assert str(trigger) == "cron['0 9 * * 1-5', Europe/Berlin]"
    now = _at(SAT_BERLIN)
    first = trigger.get_next_fire_time(None, now)
    assert first.isoformat() == "2026-03-30T09:00:00+02:00"
    # Job stores that persist triggers pickle them.
    copy = pickle.loads(pickle.dumps(trigger))
    assert copy.get_next_fire_time(None, now) == first


def test_cron_trigger_counts_missed_fires_as_apscheduler_does() -> None:
    trigger = Cron("0 9 * * *", tz="UTC").trigger()
    previous = _at("2026-03-02T09:00:00+00:00")
    now = _at("2026-03-05T12:00:00+00:00")  # the scheduler was down for three days
    missed = []
    fire = trigger.get_next_fire_time(previous, now)
    while fire is not None and fire <= now:
        missed.append(fire)
        fire = trigger.get_next_fire_time(fire, now)
    assert _iso(missed) == [
        "2026-03-03T09:00:00+00:00",
        "2026-03-04T09:00:00+00:00",
        "2026-03-05T09:00:00+00:00",
    ]
    assert fire is not None and fire.isoformat() == "2026-03-06T09:00:00+00:00"
    # Without a previous fire: the first at or after now.
    exact = _at("2026-03-06T09:00:00+00:00")
    assert trigger.get_next_fire_time(None, exact) == exact


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


def test_a_bound_in_the_second_pass_is_a_different_schedule() -> None:
    # 02:30 happens twice on 2026-10-25 in Berlin; fold=1 means the second (winter) one,
    # kept as a fixed offset so that storage keeps it.
    summer = Cron("30 * * * *", tz="Europe/Berlin", start=datetime(2026, 10, 25, 2, 30))
    winter = Cron("30 * * * *", tz="Europe/Berlin", start=datetime(2026, 10, 25, 2, 30, fold=1))
    assert summer != winter
    assert summer.shared_trigger() is not winter.shared_trigger()
    after = _at("2026-10-25T00:00:00+02:00")
    assert _iso(winter.next_fire_times(1, after=after)) == ["2026-10-25T02:30:00+01:00"]
    assert _iso(summer.next_fire_times(1, after=after)) == ["2026-10-25T02:30:00+02:00"]


_BERLIN_END = datetime(2027, 1, 1, 12)


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("0 9 * * 1", "0  9 * * 1"),
        ("0 9 * * 1", "0 9 * * MON"),
        ("0 9 * * mon", "\t0 9 * * Mon "),
        ("@daily", "0 0 * * *"),
        ("@weekly", "0 0 * * 7"),
        ("0 9 * * 0", "0 9 * * sun"),
        ("0 9 * * 1-5", "0 9 * * mon,tue,wed,thu,fri"),
        ("0 9 * * fri-mon", "0 9 * * 0,1,5,6"),
        ("*/15 * * * *", "*/15 * * * 0-7"),
        ("*/15 * * * *", "*/00015 * * * *"),  # a step's leading zeros, however many
        ("1-59/5 9 * * *", "1-59/0000005 9 * * *"),
        ("0 9 * * 1", "000000 00009 * * 01"),
        ("0 9 1-31 * *", "0 9 * * *"),  # '*' in day-of-week: both fields must match
        ("0 9 * * 0-6", "0 9 * * *"),
        ("0 9 1-31 * 1", "0 9 * * *"),  # both restricted: either matches, so every day
        ("0 9 15 * 1-7", "0 9 * * *"),
        ("0 9 30 2,3 *", "0 9 30 3 *"),  # February never has a 30th
    ],
)
def test_a_cron_line_written_otherwise_is_the_same_schedule(first: str, second: str) -> None:
    mine = Cron(first, tz="Europe/Berlin", end=_BERLIN_END)
    theirs = Cron(second, tz="Europe/Berlin", end=_BERLIN_END)
    assert mine.same_as(theirs) and theirs.same_as(mine)
    assert mine.next_fire_times(40, after=_at("2026-02-01T00:00:00+01:00")) == (
        theirs.next_fire_times(40, after=_at("2026-02-01T00:00:00+01:00"))
    )


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("0 9 * * 1", "0 9 1-31 * 1"),  # crontab(5): Mondays, against every day
        ("0 9 1 * *", "0 9 1 * 0-6"),  # the 1st, against every day
        ("0 9 1 * 1", "0 9 1 * *"),  # the 1st or a Monday, against the 1st
        ("0 9 */2 * 1", "0 9 1-31/2 * 1"),  # odd days that are Mondays, against either
        ("0 * * * *", "0 0-23 * * *"),  # same times, but wildcard and fixed-time DST rules
        ("* 9 * * *", "0-59 9 * * *"),
        ("0 9 * * 1", "0 9 * * 2"),
        ("0 9 * * 1", "0 10 * * 1"),
        ("0 9 * 1 *", "0 9 * 2 *"),
    ],
)
def test_a_cron_line_firing_otherwise_is_another_schedule(first: str, second: str) -> None:
    mine, theirs = Cron(first, tz="UTC"), Cron(second, tz="UTC")
    assert not mine.same_as(theirs) and not theirs.same_as(mine)


def test_a_cron_schedule_is_the_same_only_in_its_zone_and_bounds() -> None:
    line = "0 9 * * 1"
    base = Cron(line, tz="Europe/Berlin", end=_BERLIN_END)
    aware_end = _BERLIN_END.replace(tzinfo=BERLIN).astimezone(timezone.utc)
    assert base.same_as(Cron("0 9 * * MON", tz="Europe/Berlin", end=aware_end))
    assert base != Cron(line, tz="Europe/Berlin", end=aware_end)  # == stays field by field
    for other in (
        Cron("0 9 * * MON", tz="Europe/London", end=_BERLIN_END),
        Cron("0 9 * * MON", tz="Europe/Berlin"),
        Cron("0 9 * * MON", tz="Europe/Berlin", end=_BERLIN_END + timedelta(minutes=1)),
        Cron("0 9 * * MON", tz="Europe/Berlin", end=_BERLIN_END, start=datetime(2026, 3, 2)),
        Interval(days=7, tz="Europe/Berlin", start=datetime(2026, 3, 2, 9), end=_BERLIN_END),
    ):
        assert not base.same_as(other)
    start = datetime(2026, 3, 2, 8)
    stride = Cron("0 9 * * *", tz="UTC", start=start, every_days=2)
    assert stride.same_as(Cron("0 9 1-31 * *", tz="UTC", start=start, every_days=2))
    assert not stride.same_as(Cron("0 9 * * *", tz="UTC", start=start, every_days=3))
    assert not stride.same_as(Cron("0 9 * * *", tz="UTC", start=start, every_weeks=2))
    summer = Cron("30 * * * *", tz="Europe/Berlin", start=datetime(2026, 10, 25, 2, 30))
    winter = Cron("30 * * * *", tz="Europe/Berlin", start=datetime(2026, 10, 25, 2, 30, fold=1))
    assert not summer.same_as(winter)


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


# --------------------------------------------------------------------------- intervals and DST

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
    # the system tz database's variants: one spelling per zone, the civil one
    ("right/", lambda: Cron("0 9 * * *", tz="right/Europe/Paris"),
     r"'right/Europe/Paris' is the leap-second variant of 'Europe/Paris': .*27 s.*"
     r"use 'Europe/Paris'$"),
    ("posix/", lambda: check_timezone("posix/America/New_York"),
     r"'posix/America/New_York' is a copy of 'America/New_York'.*use 'America/New_York'$"),
    ("posix/ default", lambda: Once(datetime(2030, 1, 1)).with_default_tz("posix/UTC"),
     r"use 'UTC'$"),
    ("right/ unknown", lambda: check_timezone("right/Nowhere"),
     r"^unknown timezone 'right/Nowhere': use an IANA zone name"),
    ("interval 0", lambda: Interval(seconds=0), r"interval of 0 seconds.*at least 1 second"),
    ("interval < 0", lambda: Interval(minutes=-5), r"interval of -300 seconds"),
    ("interval huge", lambda: Interval(days=400), r"at most 366 days"),
    ("interval type", lambda: Interval(minutes="five"),  # type: ignore[arg-type]
     r"minutes must be a number, got 'five'"),
    ("interval frac", lambda: Interval(minutes=0.01), r"whole number of seconds, got 0\.6$"),
    ("interval nan", lambda: Interval(hours=float("nan")), r"hours must be a finite number"),
    # a time whose instant is outside the calendar a datetime holds
    ("once year 1", lambda: Once(datetime(1, 1, 1), tz="Europe/Berlin"),
     r"0001-01-01T00:00:00 is too close to the ends of the calendar"),
    ("start past 9999",
     lambda: Interval(seconds=60, start=datetime(9999, 12, 31, 23, 0, tzinfo=_WEST_14)),
     r"9999-12-31T23:00:00-14:00 is too close to the ends of the calendar"),
    ("end past 9999",
     lambda: Cron("0 9 * * *", tz="America/New_York", end=datetime(9999, 12, 31, 23)),
     r"9999-12-31T23:00:00 is too close to the ends of the calendar"),
    # an instant the schedule's zone cannot show on its clock (describe() raised
    # OverflowError)
    ("end past 9999 in the zone",
     lambda: Cron(
         "0 9 * * *", tz="Asia/Tokyo", end=datetime(9999, 12, 31, 23, tzinfo=timezone.utc)
     ),
     r"9999-12-31T23:00:00\+00:00 is too close to the ends of the calendar"),
    ("start before year 1 in the zone",
     lambda: Interval(
         seconds=60, tz="America/New_York", start=datetime(1, 1, 1, tzinfo=timezone.utc)
     ),
     r"0001-01-01T00:00:00\+00:00 is too close to the ends of the calendar"),
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
    # abbreviations and offsets are no zone names: say which zone they most likely mean
    ("PST", lambda: check_timezone("PST"), r"'PST' is an abbreviation.*'America/Los_Angeles'"),
    ("IST", lambda: check_timezone("IST"), r"did you mean 'Asia/Kolkata'"),
    ("Z", lambda: check_timezone("Z"), r"did you mean 'UTC'"),
    ("+05:30", lambda: check_timezone("+05:30"),
     r"'\+05:30' is a fixed UTC offset.*daylight saving.*'Asia/Kolkata'"),
    ("UTC+5:30", lambda: check_timezone("UTC+5:30"), r"fixed UTC offset.*'Asia/Kolkata'"),
    # strides
    ("stride needs start", lambda: Cron("0 8 * * *", tz="UTC", every_days=2),
     r"every_days counts from start: give start"),
    ("stride 1", lambda: Cron("0 8 * * *", start=datetime(2026, 3, 2), every_days=1),
     r"every_days=1 is not allowed: use 2 to 366"),
    ("stride both",
     lambda: Cron("0 8 * * *", start=datetime(2026, 3, 2), every_days=2, every_weeks=2),
     r"every_days or every_weeks, not both"),
    ("stride days",
     lambda: Cron("0 8 * * 1", start=datetime(2026, 3, 2), every_days=2),
     r"every_days picks the days itself.*day-of-week must be '\*', got '0 8 \* \* 1'"),
    ("stride weeks",
     lambda: Cron("0 8 1 * 1", start=datetime(2026, 3, 2), every_weeks=2),
     r"every_weeks picks the days itself.*day-of-month and month must be '\*'"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("make", "match"), [c[1:] for c in ERROR_CASES], ids=[c[0] for c in ERROR_CASES]
)
def test_invalid_schedules(make: Callable[[], object], match: str) -> None:
    with pytest.raises(InvalidSchedule, match=match):
        make()


# A cron field or value quoted as typed, capitals kept (names are read in any case): it was
# quoted lower-cased, 'foo' (in 'mon-foo').
CRON_FIELDS_AS_WRITTEN = [
    ("0 9 * * MON-FOO",
     "'FOO' (in 'MON-FOO') is not a valid day-of-week: allowed 0-7 or sun-sat"),
    ("0 0 1 Foo *", "'Foo' is not a valid month: allowed 1-12 or jan-dec"),
    ("MON 9 * * *", "'MON' is not a valid minute: allowed 0-59"),
    ("0 9 * * MON--FRI",
     "'MON--FRI' is not a valid day-of-week entry: use a value (0-7 or sun-sat), a range like "
     "1-5, a list like 1,3,5 or a step like */15"),
    ("0 9 * * Mon-Fri/0", "step 0 in 'Mon-Fri/0' (day-of-week): a step must be 1 or more"),
    ("0 9 * * *-FRI", "'*-FRI' is not valid (day-of-week): write '*' or a range"),
    ("0 9 * DEC-Jan *",
     "range 'DEC-Jan' (month) goes backwards: write the smaller value first, or split it into "
     "two ranges such as 'DEC-12,1-Jan'"),
]  # fmt: skip


@pytest.mark.parametrize(("line", "refusal"), CRON_FIELDS_AS_WRITTEN)
def test_a_cron_field_is_quoted_as_written(line: str, refusal: str) -> None:
    with pytest.raises(InvalidSchedule) as refused:
        Cron(line, tz="UTC")
    assert str(refused.value) == refusal


def test_cron_names_are_read_in_any_case() -> None:
    # the split a refusal proposes is a line that reads
    assert Cron("0 9 * DEC-12,1-Jan *").same_as(Cron("0 9 * 1,12 *"))
    assert Cron("0 9 * * Mon-FRI").same_as(Cron("0 9 * * 1-5"))
    assert Cron("0 9 * * FRI-mon").same_as(Cron("0 9 * * 0,1,5,6"))
    assert Cron("@Daily").same_as(Cron("0 0 * * *"))


def _unnamed_zone() -> ZoneInfo:
    with open("/usr/share/zoneinfo/Europe/Berlin", "rb") as file:
        return ZoneInfo.from_file(file)


ZONE_TAKERS: list[tuple[str, Callable[[Any], object]]] = [
    ("Cron", lambda tz: Cron("0 9 * * *", tz=tz).tz),
    ("Interval", lambda tz: Interval(hours=1, tz=tz).tz),
    ("Once", lambda tz: Once(datetime(2030, 1, 1), tz=tz).tz),
    ("with_tz", lambda tz: Cron("0 9 * * *", tz="UTC").with_tz(tz).tz),
    ("with_default_tz", lambda tz: Cron("0 9 * * *").with_default_tz(tz).tz),
    ("parse_schedule", lambda tz: parse_schedule("daily at 9", tz=tz, now=datetime(2026, 1, 1)).tz),
    ("check_timezone", lambda tz: check_timezone(tz).key),
    ("SchedulerRuntime", lambda tz: SchedulerRuntime(None, timezone=tz, database="sqlite://").timezone),
]  # fmt: skip


@pytest.mark.parametrize("take", [t[1] for t in ZONE_TAKERS], ids=[t[0] for t in ZONE_TAKERS])
def test_every_zone_argument_takes_named_zones_and_refuses_the_rest(
    take: Callable[[Any], object],
) -> None:
    assert take("Europe/Berlin") == "Europe/Berlin"
    assert take(ZoneInfo("Europe/Berlin")) == "Europe/Berlin"
    assert take(timezone.utc) == "UTC"
    refused = [
        (_unnamed_zone(), r"a ZoneInfo without a key \(read with ZoneInfo.from_file\)"),
        (timezone(timedelta(hours=2)), r"a fixed offset \(UTC\+02:00\)"),
    ]
    for zone, what in refused:
        with pytest.raises(InvalidSchedule, match=f"^the timezone is {what}.*names no IANA zone"):
            take(zone)
    with pytest.raises(InvalidSchedule, match="an IANA zone name or a ZoneInfo, got an int"):
        take(5)


class _Eastern(tzinfo):
    """A zone of another library: a fixed UTC-05:00 without a name."""

    def utcoffset(self, dt: datetime | None) -> timedelta:
        return timedelta(hours=-5)

    def dst(self, dt: datetime | None) -> timedelta:
        return timedelta(0)

    def tzname(self, dt: datetime | None) -> str:
        return "EST"

    def __str__(self) -> str:
        return "EST"


@pytest.mark.parametrize(
    ("module", "said"),
    [("example.zones", "an example.zones._Eastern ('EST')"), ("pytz", "a pytz._Eastern ('EST')")],
)
def test_a_zone_of_another_library_is_named_with_its_article(module: str, said: str) -> None:
    # It read "a example.zones._Eastern": "a" written whatever the name began with.
    zone = type("_Eastern", (_Eastern,), {"__module__": module})()
    with pytest.raises(InvalidSchedule) as refused:
        check_timezone(zone)
    assert str(refused.value).startswith(f"the timezone is {said}, which names no IANA zone")


@pytest.mark.parametrize(("zone", "said"), [(5, "an int"), (1.5, "a float"), (None, "None")])
def test_a_zone_argument_of_another_type_is_named_with_its_article(zone: Any, said: str) -> None:
    # It read "got int" and "got NoneType", unlike the package's other type refusals.
    with pytest.raises(InvalidSchedule) as refused:
        check_timezone(zone)
    assert str(refused.value) == (
        f"timezone must be an IANA zone name or a ZoneInfo, got {said}: use an IANA zone name "
        "such as 'Europe/Berlin', 'America/New_York' or 'UTC'"
    )


ZONE_HINTS = [
    # path tricks: no zone is suggested for a name that walks the tz database's folders
    ("Europe/../UTC", r"'Europe/\.\./UTC' is not a zone name: .*no '\.' or '\.\.'$"),
    ("./UTC", r"is not a zone name: .*no '\.' or '\.\.'$"),
    ("Europe//Berlin", r"one '/' between parts; did you mean 'Europe/Berlin'\?$"),
    ("Europe\\Berlin", r"one '/' between parts; did you mean 'Europe/Berlin'\?$"),
    # invisible characters are named; the name without them is the zone it means
    ("Europe/Berlin\u200b", r"'Europe/Berlin\\u200b' is not a zone name: it contains an "
                             r"invisible character U\+200B ZERO WIDTH SPACE; did you mean "
                             r"'Europe/Berlin'\?$"),
    ("E\u200bST", r"invisible character U\+200B.*did you mean 'America/New_York'\?$"),
    ("\u200eUTC", r"U\+200E LEFT-TO-RIGHT MARK; did you mean 'UTC'\?$"),
    ("Europe/Berlin\n", r"invisible character U\+000A; did you mean 'Europe/Berlin'\?$"),
    # a look-alike letter (Cyrillic, Greek) is named, and the zone it is drawn like suggested
    ("\u0415urope/Berlin", r"zone names are ASCII, and it contains 'Е' \(U\+0415 CYRILLIC"
                            r" CAPITAL LETTER IE\); did you mean 'Europe/Berlin'\?$"),
    ("Europe/\u0412erlin", r"U\+0412 CYRILLIC CAPITAL LETTER VE\); did you mean "
                            r"'Europe/Berlin'\?$"),
    ("\u0410sia/Tokyo", r"U\+0410 CYRILLIC CAPITAL LETTER A\); did you mean 'Asia/Tokyo'\?$"),
    ("\u0391sia/T\u03bfky\u03bf", r"U\+0391 GREEK CAPITAL LETTER ALPHA\); did you mean "
                                  r"'Asia/Tokyo'\?$"),
    ("Europe/\u041c\u043e\u0441\u043a\u0432\u0430", r"U\+041C CYRILLIC CAPITAL LETTER EM\)$"),
    # Etc/GMT±N: its range, never a neighbour with other digits
    ("Etc/GMT+13", r"Etc/GMT zones run from 'Etc/GMT-14' to 'Etc/GMT\+12'.*place$"),
    ("Etc/GMT-15", r"Etc/GMT zones run from"),
    ("Etc/GMT+05", r"did you mean 'Etc/GMT\+5'\?$"),
    # offsets: a place at every offset in use, none outside them
    ("+14", r"fixed UTC offset.*did you mean 'Pacific/Kiritimati'\?$"),
    ("UTC-11", r"did you mean 'Pacific/Pago_Pago'\?$"),
    ("-12", r"fixed UTC offset.*: give the zone of the place$"),
    ("+15", r"'\+15' is no UTC offset a place uses: they run from UTC-12:00 to UTC\+14:00$"),
    # near spellings: the same zone respelled, or the place in its own area
    ("Europe/Berln", r"did you mean 'Europe/Berlin'\?$"),
    ("america/new york", r"did you mean 'America/New_York'\?$"),
    ("Asia/Berlin", r"did you mean 'Europe/Berlin'\?$"),
    ("Mars/Olympus", r"'America/New_York' or 'UTC'$"),
]  # fmt: skip


@pytest.mark.parametrize(("name", "match"), ZONE_HINTS, ids=[repr(h[0]) for h in ZONE_HINTS])
def test_unknown_zones_say_why_and_suggest_only_the_same_zone(name: str, match: str) -> None:
    with pytest.raises(InvalidSchedule, match=match) as caught:
        Cron("0 9 * * *", tz=name)
    assert str(caught.value).startswith(f"unknown timezone {name!r}: use an IANA zone name")


@pytest.mark.parametrize("name", ["", "  ", "\t\n"])
def test_an_empty_zone_is_refused_as_empty_not_as_unknown(name: str) -> None:
    empty = (
        "the timezone is empty: leave it out to use the default, or use an IANA zone name such "
        "as 'Europe/Berlin', 'America/New_York' or 'UTC'"
    )
    with pytest.raises(InvalidSchedule) as caught:
        Cron("0 9 * * *", tz=name)
    assert str(caught.value) == empty
    assert zone_notice(name) == empty
    assert zone_notice(name, default="Asia/Tokyo") == empty.replace(
        "the default", "the default ('Asia/Tokyo')"
    )


def test_another_librarys_zone_is_refused_naming_it() -> None:
    dateutil_tz = pytest.importorskip("dateutil.tz")  # present with the dev extra (nbclient)
    with pytest.raises(InvalidSchedule, match=r"^the timezone is a dateutil\..*tzfile.*Berlin"):
        Cron("0 9 * * *", tz=dateutil_tz.gettz("Europe/Berlin"))


def test_zone_notice_of_an_unnamed_zone_says_it_names_none() -> None:
    assert zone_notice(ZoneInfo("UTC")) is None
    notice = zone_notice(_unnamed_zone())
    assert notice is not None and "names no IANA zone" in notice


ZONE_NOTICES = [
    ("EST", r"'EST' is a fixed offset \(UTC-05:00\) with no daylight saving time.*"
            r"did you mean 'America/New_York'\?"),
    ("MST", r"UTC-07:00.*'America/Denver'"),
    ("HST", r"'Pacific/Honolulu'"),
    ("Etc/GMT+5", r"'Etc/GMT\+5' is a fixed offset \(UTC-05:00\).*'America/New_York'"),
    ("Etc/GMT-14", r"UTC\+14:00.*did you mean 'Pacific/Kiritimati'\? Pass the IANA zone"),
    ("Etc/GMT+12", r"UTC-12:00.*no daylight saving time.*; pass the IANA zone of the place"),
    ("PST", r"unknown timezone 'PST'.*'America/Los_Angeles'"),
    ("+05:30", r"unknown timezone '\+05:30'.*'Asia/Kolkata'"),
    ("right/UTC", r"leap-second variant of 'UTC'.*use 'UTC'"),
]  # fmt: skip


@pytest.mark.parametrize(("name", "match"), ZONE_NOTICES)
def test_zone_notice_names_the_zone_to_use(name: str, match: str) -> None:
    notice = zone_notice(name)
    assert notice is not None
    assert re.search(match, notice), notice


@pytest.mark.parametrize(
    "name", ["Europe/Berlin", "America/New_York", "Asia/Kolkata", "CET", "UTC", "Etc/UTC", "GMT"]
)
def test_zone_notice_is_silent_for_place_zones_and_utc(name: str) -> None:
    assert zone_notice(name) is None


def test_fixed_offset_zones_still_load() -> None:
    # Tasks stored with them keep working; only the tools refuse them for new schedules.
    assert Cron("0 9 * * *", tz="EST").next_fire_times(1, after=_at("2026-07-01T00:00:00+00:00"))


def test_parse_schedule_is_exported_here() -> None:
    assert parse_schedule("0 9 * * *", tz="UTC", now=_at(SAT_BERLIN)) == Cron("0 9 * * *", tz="UTC")


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


@pytest.mark.parametrize("zone", ["UTC", "Pacific/Kiritimati"])
def test_interval_without_start_past_the_calendar_is_refused_typed(zone: str) -> None:
    """An interval whose first fire from ``after`` is past year 9999 is refused with
    InvalidSchedule saying what to do, in a zone ahead of UTC too (there the message's
    time, read in the zone, was past the calendar as well: OverflowError escaped)."""
    every = Interval(hours=3, tz=zone)
    after = _at("9999-12-31T22:00:00+00:00")
    said = (
        rf"^schedule every 3 hours \({zone}\) has no fire time after 9999-12-31 22:00 UTC: "
        r"one interval later is past the end of the calendar \(year 9999\); use a shorter "
        r"interval$"
    )
    for attempt in (
        lambda: every.next_fire_times(1, after=after),
        lambda: every.check(after),
        lambda: every.first_fire_from(after),
    ):
        with pytest.raises(InvalidSchedule, match=said):
            attempt()


def test_once_fires_once() -> None:
    once = Once(datetime(2026, 12, 1, 9), tz="Europe/Berlin")
    assert _iso(once.next_fire_times(3, after=_at(SAT_BERLIN))) == ["2026-12-01T09:00:00+01:00"]


def test_check() -> None:
    now = _at(SAT_BERLIN)
    Once(datetime(2026, 3, 28, 12, 1), tz="Europe/Berlin").check(now)
    Cron("0 9 * * *", tz="Europe/Berlin").check(now)
    with pytest.raises(InvalidSchedule, match=r"2026-03-28 12:00 CET .*is in the past"):
        Once(datetime(2026, 3, 28, 12), tz="Europe/Berlin").check(now)
    with pytest.raises(InvalidSchedule, match=r"^2026-03-28 10:00 \(UTC\) is in the past"):
        Once(datetime(2026, 3, 28, 10), tz="UTC").check(now)
    with pytest.raises(
        InvalidSchedule,
        match=r"end 2026-03-28 13:00 UTC is before the next fire time 2026-03-29 09:00 \(UTC\);",
    ):
        Cron("0 9 * * *", tz="UTC", end=datetime(2026, 3, 28, 13)).check(now)
    with pytest.raises(InvalidSchedule, match=r"end 2026-03-28 11:30 UTC is before"):
        Interval(hours=1, tz="UTC", end=datetime(2026, 3, 28, 11, 30)).check(now)
    # an end the clocks skip is said as the jump, not as the instant before it (01:59:59)
    with pytest.raises(
        InvalidSchedule,
        match=r"its end, just before 2026-03-29 03:00 CEST, when the clocks jump, is before "
        r"the next fire time 2026-03-29 03:00 CEST \(Europe/Berlin\);",
    ):
        Cron("30 2 * * *", tz="Europe/Berlin", end=datetime(2026, 3, 29, 2, 45)).check(now)


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
    (Cron("0 9-17 * * 1-5", tz="UTC"), "every hour from 09:00 to 17:00 on Monday–Friday (UTC)"),
    # within a day: steps, windows (also across midnight, but only every day)
    (Cron("*/30 * * * 1-5", tz="UTC"), "every 30 minutes on Monday–Friday (UTC)"),
    (Cron("*/15 9-16 * * *", tz="UTC"), "every 15 minutes from 09:00 to 16:45 every day (UTC)"),
    (Cron("*/15 9 * * *", tz="UTC"), "every 15 minutes from 09:00 to 09:45 every day (UTC)"),
    (Cron("0 */2 * * 1-5", tz="UTC"), "every 2 hours at :00 on Monday–Friday (UTC)"),
    (Cron("30 8-18/2 * * *", tz="UTC"), "every 2 hours from 08:30 to 18:30 every day (UTC)"),
    (Cron("*/15 22-23,0-5 * * *", tz="UTC"),
     "every 15 minutes from 22:00 to 05:45 every day (UTC)"),
    (Cron("*/15 22-23,0-5 * * 5", tz="UTC"), "cron '*/15 22-23,0-5 * * 5' (UTC)"),
    (Cron("*/15 8-18/2 * * *", tz="UTC"), "cron '*/15 8-18/2 * * *' (UTC)"),
    # Both day fields restricted, one listing every day: either matches, so every day.
    (Cron("0 9 1-31 * 1", tz="UTC"), "at 09:00 every day (UTC)"),
    (Cron("0 9 15 * 0-6", tz="UTC"), "at 09:00 every day (UTC)"),
    (Cron("0 9 1-31 1 mon-fri", tz="UTC"), "at 09:00 every day in January (UTC)"),
    (Cron("0 9 * * 5/1", tz="UTC"), "at 09:00 on Friday–Sunday (UTC)"),
    (Cron("0 9 * * 7/2", tz="UTC"), "at 09:00 on Sunday (UTC)"),
    (Cron("0 * * * *", tz="UTC"), "every hour at :00 (UTC)"),
    (Cron("0 8 * * *", tz="UTC", every_days=2, start=datetime(2026, 3, 2, 8)),
     "at 08:00 every other day, starting 2026-03-02 08:00 (UTC)"),
    (Cron("0 8 * * *", tz="UTC", every_days=3, start=datetime(2026, 3, 2, 8)),
     "at 08:00 every 3 days, starting 2026-03-02 08:00 (UTC)"),
    (Cron("0 9 * * 1", tz="UTC", every_weeks=2, start=datetime(2026, 3, 2, 9)),
     "at 09:00 on Monday every other week, starting 2026-03-02 09:00 (UTC)"),
    (Cron("0 9 * * *"), "at 09:00 every day (runtime default timezone)"),
    (Cron("0 9 * * *", tz="UTC", start=datetime(2026, 3, 1), end=datetime(2026, 4, 1)),
     "at 09:00 every day, starting 2026-03-01 00:00, until 2026-04-01 00:00 (UTC)"),
    # an abbreviation that is the zone's name is said once; one that is not stays
    (Cron("0 9 * * *", tz="UTC", start=datetime(2026, 1, 1, tzinfo=timezone.utc)),
     "at 09:00 every day, starting 2026-01-01 00:00 (UTC)"),
    (Once(datetime(2026, 12, 1, 9), tz="UTC"), "once at 2026-12-01 09:00 (UTC)"),
    (Once(datetime(2026, 12, 1, 9), tz="GMT"), "once at 2026-12-01 09:00 (GMT)"),
    (Interval(hours=1, tz="EST", start=datetime(2026, 12, 1, 9)),
     "every hour, starting 2026-12-01 09:00 (EST)"),
    (Once(datetime(2026, 12, 1, 9), tz="Etc/UTC"), "once at 2026-12-01 09:00 UTC (Etc/UTC)"),
    (Once(datetime(2026, 12, 1, 9, tzinfo=timezone.utc)),
     "once at 2026-12-01 09:00 UTC (runtime default timezone)"),
    # a year below 1000 in four digits
    (Cron("0 9 * * *", tz="UTC", start=datetime(1, 1, 1, tzinfo=timezone.utc),
          end=datetime(1, 3, 1, 12, tzinfo=timezone.utc)),
     "at 09:00 every day, starting 0001-01-01 00:00, until 0001-03-01 12:00 (UTC)"),
    (Interval(hours=2, tz="Europe/Berlin", start=datetime(999, 12, 7, 8),
              end=datetime(999, 12, 11, 23, 59, 59)),
     "every 2 hours, starting 0999-12-07 08:00 LMT, through 0999-12-11 (Europe/Berlin)"),
    (Once(datetime(5, 12, 1, 9), tz="UTC"), "once at 0005-12-01 09:00 (UTC)"),
    # an end on a day's last second (set from a day: "until friday") is that day, included
    (Cron("0 9 * * *", tz="Europe/Berlin", end=datetime(2026, 12, 11, 23, 59, 59, 999999)),
     "at 09:00 every day, through 2026-12-11 (Europe/Berlin)"),
    (Interval(hours=2, tz="Europe/Berlin", start=datetime(2026, 12, 7, 8),
              end=datetime(2026, 12, 11, 23, 59, 59)),
     "every 2 hours, starting 2026-12-07 08:00 CET, through 2026-12-11 (Europe/Berlin)"),
    (Cron("0 9 * * *", tz="Europe/Berlin",  # the day of the schedule's zone, not of the end's
          end=datetime(2026, 12, 11, 22, 59, 59, 999999, tzinfo=timezone.utc)),
     "at 09:00 every day, through 2026-12-11 (Europe/Berlin)"),
    (Cron("0 9 * * *", tz="Europe/Berlin",
          end=datetime(2026, 12, 11, 23, 59, 59, tzinfo=timezone.utc)),
     "at 09:00 every day, until 2026-12-12 00:59:59 CET (Europe/Berlin)"),
    (Cron("0 9 * * *", tz="Europe/Berlin", end=datetime(2026, 12, 11, 18)),
     "at 09:00 every day, until 2026-12-11 18:00 CET (Europe/Berlin)"),
    (Cron("0 9 * * *", tz="Europe/Berlin", end=datetime(2026, 12, 11, 23, 59)),
     "at 09:00 every day, until 2026-12-11 23:59 CET (Europe/Berlin)"),
    (Interval(hours=2, tz="UTC"), "every 2 hours (UTC)"),
    (Interval(minutes=90, tz="UTC"), "every 90 minutes (UTC)"),
    (Interval(seconds=45, tz="UTC"), "every 45 seconds (UTC)"),
    (Interval(days=1, tz="UTC"), "every 24 hours (UTC)"),
    (Interval(days=14, tz="UTC"), "every 336 hours (UTC)"),
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
    Once(datetime(2026, 10, 25, 2, 30, fold=1), tz="Europe/Berlin"),  # naive, second pass
    Cron("0 8 * * *", tz="Europe/Berlin", every_days=2, start=datetime(2026, 3, 2, 8)),
    Cron("0 9 * * 1", tz="UTC", every_weeks=3, start=datetime(2026, 3, 2, 9)),
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


def test_plain_cron_lines_store_without_strides() -> None:
    assert schedule_to_dict(Cron("0 9 * * 1-5", tz="Europe/Berlin")) == {
        "kind": "cron", "expr": "0 9 * * 1-5", "tz": "Europe/Berlin", "start": None, "end": None
    }  # fmt: skip


def test_with_tz_keeps_everything_but_the_zone() -> None:
    cron = Cron("0 8 * * *", tz="Europe/Berlin", every_days=2, start=datetime(2026, 3, 2, 8))
    moved = cron.with_tz("America/New_York")
    assert moved == cron.model_copy(update={"tz": "America/New_York"})
    assert _iso(moved.next_fire_times(2, after=_at("2026-03-01T00:00:00-05:00"))) == [
        "2026-03-02T08:00:00-05:00",
        "2026-03-04T08:00:00-05:00",
    ]


def test_from_dict_accepts_interval_units() -> None:
    assert schedule_from_dict({"kind": "interval", "minutes": 5}) == Interval(seconds=300)


def test_interval_units_are_read_as_the_decimals_written() -> None:
    # 1.1 * 3600 is 3960.0000000000005 in binary floating point: still 3960 seconds.
    assert Interval(hours=1.1).seconds == 3960
    assert Interval(hours=1, minutes=0.1).seconds == 3606


# --------------------------------------------------------------------------- fuzzing

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


def test_an_end_at_the_calendars_last_instant_is_described() -> None:
    """Nothing comes after 9999-12-31 23:59:59.999999 UTC: the end is said as it is
    (describe() raised OverflowError looking for the instant after it)."""
    last = datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=timezone.utc)
    schedule = Interval(seconds=60, end=last, tz="America/New_York")
    assert schedule.describe() == ("every minute, until 9999-12-31 18:59:59 EST (America/New_York)")


_UTC_CRON = "0 9 * * *"


@pytest.mark.parametrize(
    ("make", "said"),
    [
        (
            lambda: Cron(_UTC_CRON, tz="UTC", end="tomorrow"),
            r"end: 'tomorrow' is no date or time \(input is too short\)",
        ),
        (
            lambda: Interval(hours=1, tz="UTC", start="2027-13-01"),
            r"start: '2027-13-01' is no date or time \(month value is outside",
        ),
        (lambda: Once(at="noon", tz="UTC"), r"at: 'noon' is no date or time"),
        (
            lambda: Cron(_UTC_CRON, tz="UTC", end=[2027, 3, 14]),
            r"end: got a list, which is no date or time",
        ),
        (lambda: Cron(_UTC_CRON, tz="UTC", end=True), r"end: got a bool, which is no date"),
        (lambda: Cron(_UTC_CRON, tz="UTC", end="x" * 500), r"end: 'x{55}\.\.\.' is no date"),
        (lambda: schedule_from_dict({"kind": "once", "at": "later"}), r"'later' is no date"),
    ],
)
def test_a_bound_or_time_that_is_no_date_is_quoted_with_the_form_to_use(
    make: Callable[[], Any], said: str
) -> None:
    # pydantic's own words ("Input should be a valid datetime or date, input is too
    # short") quoted nothing and named no form: a caller passing text could not tell
    # which value or what to write instead.
    with pytest.raises(InvalidSchedule, match=said) as refused:
        make()
    assert str(refused.value).endswith(
        ": give a datetime, a date, or ISO 8601 text such as '2027-03-14T09:00+01:00'"
    )
    assert "Input should be" not in str(refused.value)
