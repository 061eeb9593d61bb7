"""Cron across daylight-saving changes: Debian cron's rules, by table and by property.

The rules (README, "Time zones and daylight saving"): a *fixed-time* line (minute and hour
fields not starting with ``*``) whose time falls in a spring gap fires once, when the clock
jumps; a *wildcard* line's times inside the gap do not fire; in an autumn repeated hour a
fixed-time line fires once (first pass) and a wildcard line in both passes; no day is ever
skipped; fire times strictly increase.

The property tests compare the engine with a brute-force reference written straight from
those rules (every minute of a window, in UTC), in zones with unusual changes, 2026-2035.
"""

from __future__ import annotations

import functools
import itertools
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from apscheduler.triggers.base import BaseTrigger
from cronsim import CronSim
from hypothesis import given, settings
from hypothesis import strategies as st

from langgraph_scheduler.schedules import (
    Cron,
    Interval,
    Once,
    schedule_from_dict,
    schedule_to_dict,
)

UTC = timezone.utc
ZONES = [
    "America/New_York",
    "Europe/Berlin",
    "Australia/Sydney",
    "Australia/Lord_Howe",  # 30-minute change
    "Pacific/Chatham",  # +12:45 / +13:45, changes at 02:45
    "America/Sao_Paulo",  # no DST since 2019
    "Europe/Dublin",  # "negative" DST in the tz database
    "Asia/Kolkata",  # no DST, +05:30
]


def _iso(times: list[datetime]) -> list[str]:
    return [t.isoformat() for t in times]


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text)


# --------------------------------------------------------------------------- the table

DST_CASES = [
    # No day is skipped after a spring change (APScheduler 3.11's CronTrigger skipped these).
    ("0 0 * * *", "America/New_York", "2027-03-13T12:00:00-05:00",
     ["2027-03-14T00:00:00-05:00", "2027-03-15T00:00:00-04:00", "2027-03-16T00:00:00-04:00"]),
    ("@daily", "Europe/Berlin", "2026-03-28T12:00:00+01:00",
     ["2026-03-29T00:00:00+01:00", "2026-03-30T00:00:00+02:00", "2026-03-31T00:00:00+02:00"]),
    ("@monthly", "Europe/Berlin", "2026-03-15T12:00:00+01:00",
     ["2026-04-01T00:00:00+02:00", "2026-05-01T00:00:00+02:00"]),
    ("@monthly", "America/New_York", "2027-03-20T12:00:00-04:00",
     ["2027-04-01T00:00:00-04:00", "2027-05-01T00:00:00-04:00"]),
    ("@monthly", "Australia/Sydney", "2026-10-15T12:00:00+11:00",
     ["2026-11-01T00:00:00+11:00", "2026-12-01T00:00:00+11:00"]),
    ("0 0 * * 1", "Europe/Berlin", "2026-03-27T12:00:00+01:00",
     ["2026-03-30T00:00:00+02:00", "2026-04-06T00:00:00+02:00"]),
    ("30 0 * * mon", "Australia/Sydney", "2029-10-05T12:00:00+10:00",
     ["2029-10-08T00:30:00+11:00", "2029-10-15T00:30:00+11:00"]),
    ("@yearly", "Australia/Sydney", "2026-06-15T12:00:00+10:00",
     ["2027-01-01T00:00:00+11:00", "2028-01-01T00:00:00+11:00"]),
    # Spring gap, fixed-time: once, when the clock jumps (02:00 -> 03:00).
    ("30 2 * * *", "America/New_York", "2027-03-13T12:00:00-05:00",
     ["2027-03-14T03:00:00-04:00", "2027-03-15T02:30:00-04:00"]),
    ("30 2 * * *", "Europe/Berlin", "2026-03-28T12:00:00+01:00",
     ["2026-03-29T03:00:00+02:00", "2026-03-30T02:30:00+02:00"]),
    ("30 2 * * *", "Australia/Sydney", "2026-10-03T12:00:00+10:00",
     ["2026-10-04T03:00:00+11:00", "2026-10-05T02:30:00+11:00"]),
    # ... distinct instants when the line also names the hour after the gap ...
    ("30 2,3 * * *", "America/New_York", "2027-03-13T12:00:00-05:00",
     ["2027-03-14T03:00:00-04:00", "2027-03-14T03:30:00-04:00", "2027-03-15T02:30:00-04:00"]),
    # ... and several times in the gap are one fire. (Debian runs the job once per time, all
    # at the jump; here a fire is one instant, (task, scheduled_for), so they are one run.)
    ("0,30 2 * * *", "America/New_York", "2027-03-13T12:00:00-05:00",
     ["2027-03-14T03:00:00-04:00", "2027-03-15T02:00:00-04:00", "2027-03-15T02:30:00-04:00"]),
    # Jumps of 3 hours or more follow the same rules (Debian takes them for the clock being
    # set and skips the fixed-time jobs in the gap): Casey, 2009-10-18 02:00 -> 05:00 ...
    ("0,30 3 * * *", "Antarctica/Casey", "2009-10-17T12:00:00+08:00",
     ["2009-10-18T05:00:00+11:00", "2009-10-19T03:00:00+11:00", "2009-10-19T03:30:00+11:00"]),
    ("*/30 3 * * *", "Antarctica/Casey", "2009-10-17T12:00:00+08:00",
     ["2009-10-19T03:00:00+11:00", "2009-10-19T03:30:00+11:00"]),
    # ... and Kwajalein, which skipped 1993-08-21 whole (-12:00 -> +12:00).
    ("0 8 * * *", "Pacific/Kwajalein", "1993-08-19T12:00:00-12:00",
     ["1993-08-20T08:00:00-12:00", "1993-08-22T00:00:00+12:00", "1993-08-22T08:00:00+12:00"]),
    ("15 2 * * *", "Australia/Lord_Howe", "2026-10-03T12:00:00+10:30",  # 02:00 -> 02:30
     ["2026-10-04T02:30:00+11:00", "2026-10-05T02:15:00+11:00"]),
    ("0 3 * * *", "Pacific/Chatham", "2026-09-26T12:00:00+12:45",  # 02:45 -> 03:45
     ["2026-09-27T03:45:00+13:45", "2026-09-28T03:00:00+13:45"]),
    ("30 1 * * *", "Europe/Dublin", "2026-03-28T12:00:00+00:00",  # 01:00 -> 02:00
     ["2026-03-29T02:00:00+01:00", "2026-03-30T01:30:00+01:00"]),
    # Spring gap, wildcard: the times in the gap do not fire.
    ("*/20 2 * * *", "America/New_York", "2027-03-13T12:00:00-05:00",
     ["2027-03-15T02:00:00-04:00", "2027-03-15T02:20:00-04:00"]),
    ("30 * * * *", "Europe/Berlin", "2026-03-29T00:45:00+01:00",
     ["2026-03-29T01:30:00+01:00", "2026-03-29T03:30:00+02:00", "2026-03-29T04:30:00+02:00"]),
    ("*/15 3 * * *", "Pacific/Chatham", "2026-09-27T00:00:00+12:45",
     ["2026-09-27T03:45:00+13:45", "2026-09-28T03:00:00+13:45"]),
    # Autumn overlap, fixed-time: once, in the first pass.
    ("30 2 * * *", "Europe/Berlin", "2026-10-24T12:00:00+02:00",
     ["2026-10-25T02:30:00+02:00", "2026-10-26T02:30:00+01:00"]),
    ("30 1 * * *", "America/New_York", "2026-10-31T12:00:00-04:00",
     ["2026-11-01T01:30:00-04:00", "2026-11-02T01:30:00-05:00"]),
    ("0,30 2 * * 0", "Europe/Berlin", "2026-10-24T12:00:00+02:00",
     ["2026-10-25T02:00:00+02:00", "2026-10-25T02:30:00+02:00", "2026-11-01T02:00:00+01:00"]),
    ("45 1 * * *", "Australia/Lord_Howe", "2026-04-04T12:00:00+11:00",  # 02:00 -> 01:30
     ["2026-04-05T01:45:00+11:00", "2026-04-06T01:45:00+10:30"]),
    ("30 1 * * *", "Europe/Dublin", "2026-10-24T12:00:00+01:00",  # 02:00 -> 01:00
     ["2026-10-25T01:30:00+01:00", "2026-10-26T01:30:00+00:00"]),
    # Autumn overlap, wildcard: both passes.
    ("*/20 2 * * *", "Europe/Berlin", "2026-10-24T12:00:00+02:00",
     ["2026-10-25T02:00:00+02:00", "2026-10-25T02:20:00+02:00", "2026-10-25T02:40:00+02:00",
      "2026-10-25T02:00:00+01:00", "2026-10-25T02:20:00+01:00", "2026-10-25T02:40:00+01:00",
      "2026-10-26T02:00:00+01:00"]),
    ("0 * * * *", "America/New_York", "2026-11-01T00:30:00-04:00",
     ["2026-11-01T01:00:00-04:00", "2026-11-01T01:00:00-05:00", "2026-11-01T02:00:00-05:00"]),
    ("0,30 * * * *", "Australia/Lord_Howe", "2026-04-05T00:45:00+11:00",
     ["2026-04-05T01:00:00+11:00", "2026-04-05T01:30:00+11:00", "2026-04-05T01:30:00+10:30",
      "2026-04-05T02:00:00+10:30"]),
    # Wildcard lines keep whole hours after Lord Howe's 30-minute change (cronsim alone loses
    # 05:00-05:29 here, see test_cronsim_alone_loses_half_an_hour_at_lord_howe).
    ("*/30 5 * * *", "Australia/Lord_Howe", "2026-04-05T00:00:00+11:00",
     ["2026-04-05T05:00:00+10:30", "2026-04-05T05:30:00+10:30", "2026-04-06T05:00:00+10:30"]),
    # A task created inside the repeated hour (second pass, 02:10 CET): the fixed-time line's
    # 02:30 already passed in the first pass; the wildcard line's next one is in this pass.
    ("30 2 * * *", "Europe/Berlin", "2026-10-25T02:10:00+01:00",
     ["2026-10-26T02:30:00+01:00", "2026-10-27T02:30:00+01:00"]),
    ("*/20 2 * * *", "Europe/Berlin", "2026-10-25T02:10:00+01:00",
     ["2026-10-25T02:20:00+01:00", "2026-10-25T02:40:00+01:00", "2026-10-26T02:00:00+01:00"]),
    # ... and one created in the first pass, for comparison.
    ("30 2 * * *", "Europe/Berlin", "2026-10-25T02:10:00+02:00",
     ["2026-10-25T02:30:00+02:00", "2026-10-26T02:30:00+01:00"]),
    # Zones without DST just keep their wall time.
    ("0 0 * * *", "America/Sao_Paulo", "2026-10-31T12:00:00-03:00",
     ["2026-11-01T00:00:00-03:00", "2026-11-02T00:00:00-03:00"]),
    ("30 2 * * *", "Asia/Kolkata", "2026-03-28T12:00:00+05:30",
     ["2026-03-29T02:30:00+05:30", "2026-03-30T02:30:00+05:30"]),
]  # fmt: skip


@pytest.mark.parametrize(("expr", "tz", "after", "expected"), DST_CASES)
def test_dst_case(expr: str, tz: str, after: str, expected: list[str]) -> None:
    cron = Cron(expr, tz=tz)
    assert _iso(cron.next_fire_times(len(expected), after=_at(after))) == expected
    # The engine asks for one fire at a time, after the previous one: the same times.
    stepped: list[datetime] = []
    previous = _at(after)
    for _ in expected:
        (previous,) = cron.next_fire_times(1, after=previous)
        stepped.append(previous)
    assert _iso(stepped) == expected


STRIDE_CASES = [
    # every other day at 02:30 in New York: the gap day fires when the clock jumps
    (Cron("30 2 * * *", tz="America/New_York", every_days=2, start=datetime(2027, 3, 12)),
     "2027-03-11T00:00:00-05:00",
     ["2027-03-12T02:30:00-05:00", "2027-03-14T03:00:00-04:00", "2027-03-16T02:30:00-04:00"]),
    # every 2 weeks on Monday at 00:00 in Berlin, across the spring change
    (Cron("0 0 * * 1", tz="Europe/Berlin", every_weeks=2, start=datetime(2026, 3, 16)),
     "2026-03-01T00:00:00+01:00",
     ["2026-03-16T00:00:00+01:00", "2026-03-30T00:00:00+02:00", "2026-04-13T00:00:00+02:00"]),
    # A day the zone skips whole (Samoa went from 2011-12-29 23:59:59 to 2011-12-31 00:00):
    # the day on the stride fires when the clock jumps, and the stride goes on from it ...
    (Cron("0 8 * * *", tz="Pacific/Apia", every_days=2, start=datetime(2011, 12, 28)),
     "2011-12-27T00:00:00-10:00",
     ["2011-12-28T08:00:00-10:00", "2011-12-31T00:00:00+14:00", "2012-01-01T08:00:00+14:00"]),
    # ... and the day off the stride does not fire at the jump.
    (Cron("0 8 * * *", tz="Pacific/Apia", every_days=2, start=datetime(2011, 12, 29)),
     "2011-12-27T00:00:00-10:00",
     ["2011-12-29T08:00:00-10:00", "2011-12-31T08:00:00+14:00", "2012-01-02T08:00:00+14:00"]),
    # The same for weeks, where the jump crosses into Monday (Berlin, 1916-04-30 23:00 ->
    # 1916-05-01 00:00): Sunday's 23:30 belongs to the week it was due in.
    (Cron("30 23 * * 0", tz="Europe/Berlin", every_weeks=2, start=datetime(1916, 4, 24)),
     "1916-04-20T00:00:00+01:00",
     ["1916-05-01T00:00:00+02:00", "1916-05-14T23:30:00+02:00", "1916-05-28T23:30:00+02:00"]),
    (Cron("30 23 * * 0", tz="Europe/Berlin", every_weeks=2, start=datetime(1916, 4, 17)),
     "1916-04-20T00:00:00+01:00",
     ["1916-04-23T23:30:00+01:00", "1916-05-07T23:30:00+02:00", "1916-05-21T23:30:00+02:00"]),
]  # fmt: skip


@pytest.mark.parametrize(("cron", "after", "expected"), STRIDE_CASES)
def test_strides_across_dst(cron: Cron, after: str, expected: list[str]) -> None:
    assert _iso(cron.next_fire_times(len(expected), after=_at(after))) == expected
    # The scheduler's trigger, asked after each fire, gives the same times.
    assert _trigger_times(cron.trigger(), _at(after), _at(expected[-1])) == expected


def test_once_in_the_repeated_hour_keeps_its_fold_in_storage() -> None:
    second = Once(datetime(2026, 10, 25, 2, 30, fold=1), tz="Europe/Berlin")
    first = Once(datetime(2026, 10, 25, 2, 30), tz="Europe/Berlin")
    stored = schedule_from_dict(schedule_to_dict(second))
    assert schedule_to_dict(second)["at"] == "2026-10-25T02:30:00+01:00"
    assert stored == second and stored != first
    assert _iso(stored.next_fire_times(1, after=_at("2026-10-25T00:00:00+02:00"))) == [
        "2026-10-25T02:30:00+01:00"
    ]
    assert _iso(first.next_fire_times(1, after=_at("2026-10-25T00:00:00+02:00"))) == [
        "2026-10-25T02:30:00+02:00"
    ]
    # Bounds keep their fold too.
    cron = Cron("*/20 * * * *", tz="Europe/Berlin", start=datetime(2026, 10, 25, 2, 30, fold=1))
    restored = schedule_from_dict(schedule_to_dict(cron))
    assert _iso(restored.next_fire_times(1, after=_at("2026-10-25T00:00:00+02:00"))) == [
        "2026-10-25T02:40:00+01:00"
    ]


def test_once_in_the_spring_gap_fires_when_the_clock_jumps() -> None:
    once = Once(datetime(2027, 3, 14, 2, 30), tz="America/New_York")
    assert _iso(once.next_fire_times(1, after=_at("2027-03-14T00:00:00-05:00"))) == [
        "2027-03-14T03:00:00-04:00"
    ]
    assert once.describe() == "once at 2027-03-14 03:00 EDT (America/New_York)"


# --------------------------------------------------------------------------- cronsim, checked


@pytest.mark.parametrize("start", [*range(8), "mon", "sat", "sun"])
@pytest.mark.parametrize("step", range(1, 8))
def test_a_weekday_start_with_a_step_runs_to_sunday_as_cronsim_reads_it(
    start: int | str, step: int
) -> None:
    # "5/1" is "5-7/1": Friday to Sunday (7), as cronsim reads it; "7/2" is Sunday.
    expr = f"0 9 * * {start}/{step}"
    after = datetime(2027, 1, 4, tzinfo=timezone.utc)
    expected = list(itertools.islice(CronSim(expr, after.replace(tzinfo=None)), 10))
    ours = Cron(expr, tz="UTC").next_fire_times(10, after=after)
    assert [t.replace(tzinfo=None) for t in ours] == expected


def test_cronsim_alone_loses_half_an_hour_at_lord_howe() -> None:
    """Why wall time -> instants is ours: cronsim's DST walk steps whole elapsed hours.

    If this starts failing, cronsim fixed it, and ``_cron`` could lean on its DST mode.
    """
    lord_howe = ZoneInfo("Australia/Lord_Howe")
    fire = next(CronSim("*/30 5 * * *", datetime(2026, 4, 5, 0, 0, tzinfo=lord_howe)))
    assert fire.isoformat() == "2026-04-05T05:30:00+10:30"  # 05:00 exists, and is lost


def test_cronsim_alone_answers_before_a_start_in_the_second_pass() -> None:
    berlin = ZoneInfo("Europe/Berlin")
    after = datetime(2026, 10, 25, 2, 10, fold=1, tzinfo=berlin)  # 01:10 UTC
    fire = next(CronSim("30 2 * * *", after))
    assert fire.isoformat() == "2026-10-25T02:30:00+02:00"  # 00:30 UTC: before `after`


@settings(max_examples=40, deadline=None)
@given(
    minute=st.integers(0, 59),
    hour=st.integers(0, 3),
    zone=st.sampled_from(ZONES),
    year=st.integers(2026, 2035),
)
def test_fixed_time_lines_agree_with_cronsim_own_dst_mode(
    minute: int, hour: int, zone: str, year: int
) -> None:
    """Where cronsim's Debian emulation applies (fixed-time lines), we give its answers."""
    tz = ZoneInfo(zone)
    expr = f"{minute} {hour} * * *"
    start = _window_start(zone, year, 0.5)
    ours = Cron(expr, tz=zone).next_fire_times(6, after=start)
    theirs = CronSim(expr, start.astimezone(tz))
    assert _iso(ours) == _iso([next(theirs) for _ in ours])


# --------------------------------------------------------------------------- reference


def _expand(field: str, low: int, high: int, names: tuple[str, ...] = ()) -> set[int]:
    """The values of one crontab field (the syntax the strategies below produce)."""
    values: set[int] = set()
    for item in field.split(","):
        body, _, step_text = item.partition("/")
        step = int(step_text or 1)
        if body == "*":
            first, last = low, high
        else:
            first_text, _, last_text = body.partition("-")
            first = names.index(first_text) if first_text in names else int(first_text)
            last = (
                (names.index(last_text) if last_text in names else int(last_text))
                if (last_text)
                else (high if step_text else first)
            )
        values |= set(range(first, last + 1, step))
    return values


_DOW_NAMES = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")


@dataclass(frozen=True)
class _Line:
    """A crontab line as the rules read it: which wall times match, and is it fixed-time."""

    fields: tuple[str, ...]

    @functools.cached_property
    def _values(self) -> tuple[set[int], ...]:
        minute, hour, dom, month, dow = self.fields
        return (
            _expand(minute, 0, 59),
            _expand(hour, 0, 23),
            _expand(dom, 1, 31),
            _expand(month, 1, 12),
            {d % 7 for d in _expand(dow, 0, 7, _DOW_NAMES)},
        )

    @property
    def fixed(self) -> bool:
        return not (self.fields[0].startswith("*") or self.fields[1].startswith("*"))

    def matches(self, wall: datetime) -> bool:
        minutes, hours, doms, months, dows = self._values
        if wall.minute not in minutes or wall.hour not in hours or wall.month not in months:
            return False
        dom, dow = wall.day in doms, wall.isoweekday() % 7 in dows
        if self.fields[2].startswith("*") or self.fields[4].startswith("*"):
            return dom and dow
        return dom or dow  # both restricted: either day field


def _reference(line: _Line, zone: ZoneInfo, start: datetime, end: datetime) -> list[datetime]:
    """Every fire in (start, end], minute by minute in UTC, straight from Debian cron's rules."""
    fires: list[datetime] = []
    instant = start.astimezone(UTC).replace(second=0, microsecond=0) + timedelta(minutes=1)
    previous_wall = (instant - timedelta(minutes=1)).astimezone(zone).replace(tzinfo=None)
    while instant <= end:
        local = instant.astimezone(zone)
        wall = local.replace(tzinfo=None, fold=0)
        if not line.fixed:
            fire = line.matches(wall)  # every real instant: both passes of a repeated hour
        else:
            fire = line.matches(wall) and local.fold == 0  # the first pass only
            skipped = previous_wall + timedelta(minutes=1)
            while not fire and skipped < wall:  # the clock jumped: skipped fixed times run now
                fire = line.matches(skipped)
                skipped += timedelta(minutes=1)
        if fire:
            fires.append(instant)
        previous_wall = wall
        instant += timedelta(minutes=1)
    return fires


@functools.cache
def _transitions(zone_name: str, year: int) -> tuple[datetime, ...]:
    """The instants (UTC, to the minute) at which the zone's UTC offset changes in ``year``."""
    zone = ZoneInfo(zone_name)
    found: list[datetime] = []
    hour = datetime(year, 1, 1, tzinfo=UTC)
    while hour.year == year:
        following = hour + timedelta(hours=1)
        if hour.astimezone(zone).utcoffset() != following.astimezone(zone).utcoffset():
            low, high = hour, following
            while high - low > timedelta(minutes=1):
                middle = low + (high - low) / 2
                middle = middle.replace(second=0, microsecond=0)
                if middle.astimezone(zone).utcoffset() == low.astimezone(zone).utcoffset():
                    low = middle
                else:
                    high = middle
            found.append(high)
        hour = following
    return tuple(found)


def _window_start(zone: str, year: int, fraction: float, which: int = 0) -> datetime:
    """A start within 36 hours before one of the year's changes (mid-year without DST)."""
    changes = _transitions(zone, year)
    anchor = changes[which % len(changes)] if changes else datetime(year, 6, 15, tzinfo=UTC)
    return (anchor - timedelta(hours=36 * fraction)).astimezone(ZoneInfo(zone))


def _preview(cron: Cron, start: datetime, end: datetime) -> list[datetime]:
    """The preview's fire times in (start, end]."""
    times: list[datetime] = []
    after = start
    while True:
        (fire,) = cron.next_fire_times(1, after=after)
        if fire.astimezone(UTC) > end.astimezone(UTC):
            return times
        times.append(fire)
        after = fire


def _trigger_times(trigger: BaseTrigger, after: datetime, end: datetime) -> list[str]:
    """Fire times as the scheduler asks for them: from ``after``, then after each fire.

    (Arithmetic in UTC: ``aware + timedelta`` is wall-clock arithmetic and drops ``fold``.)
    """
    times: list[str] = []
    fire = trigger.get_next_fire_time(None, after.astimezone(UTC) + timedelta(microseconds=1))
    while fire is not None and fire.astimezone(UTC) <= end.astimezone(UTC):
        times.append(fire.isoformat())
        fire = trigger.get_next_fire_time(fire, fire.astimezone(UTC) + timedelta(seconds=1))
    return times


_MINUTES = st.one_of(
    st.sampled_from(["*", "*/15", "*/20", "0,30", "15-45/15", "0-59/7", "*/7,3"]),
    st.integers(0, 59).map(str),
)
_HOURS = st.one_of(
    st.sampled_from(["*", "*/2", "*/3", "1,2", "2-3", "0-3", "1-4/2", "23", "0,2"]),
    st.integers(0, 3).map(str),
)
_DOMS = st.sampled_from(["*", "*", "*", "1", "1-7", "*/2", "13,31", "15-20"])
_DOWS = st.sampled_from(["*", "*", "*", "0", "7", "1-5", "sat,sun", "*/2", "mon"])
_LINES = st.tuples(_MINUTES, _HOURS, _DOMS, st.sampled_from(["*", "*", "*", "3,4,10,11"]), _DOWS)


@settings(max_examples=60, deadline=None)
@given(
    fields=_LINES,
    zone=st.sampled_from(ZONES),
    year=st.integers(2026, 2035),
    which=st.integers(0, 1),
    fraction=st.floats(0, 1),
)
@pytest.mark.slow
def test_fires_follow_debian_cron(
    fields: tuple[str, ...], zone: str, year: int, which: int, fraction: float
) -> None:
    """Fires match the reference, strictly increase, and the trigger gives the same times.

    Each fire matches the fields, or is a fixed-time line's jump out of a spring gap.
    """
    line, tz, expr = _Line(fields), ZoneInfo(zone), " ".join(fields)
    start = _window_start(zone, year, fraction, which)
    end = start.astimezone(UTC) + timedelta(days=3)
    cron = Cron(expr, tz=zone)
    preview = _preview(cron, start, end)
    instants = [t.astimezone(UTC) for t in preview]
    assert instants == sorted(set(instants))  # strictly increasing
    for fire in preview:
        wall = fire.replace(tzinfo=None)
        a_minute_earlier = (fire.astimezone(UTC) - timedelta(minutes=1)).astimezone(tz)
        a_minute_earlier = a_minute_earlier.replace(tzinfo=None)
        jumped = a_minute_earlier != wall - timedelta(minutes=1)
        assert line.matches(wall) or (line.fixed and jumped), fire
    assert instants == _reference(line, tz, start, end)
    assert _trigger_times(cron.trigger(), start, end) == _iso(preview)
    assert _trigger_times(cron.shared_trigger(), start, end) == _iso(preview)


@settings(max_examples=40, deadline=None)
@given(
    minute=st.integers(0, 59),
    hour=st.integers(0, 23),
    zone=st.sampled_from(ZONES),
    year=st.integers(2026, 2035),
    which=st.integers(0, 1),
)
def test_daily_lines_fire_every_day(
    minute: int, hour: int, zone: str, year: int, which: int
) -> None:
    tz = ZoneInfo(zone)
    start = _window_start(zone, year, 1, which)  # 36 hours before a change
    fires = Cron(f"{minute} {hour} * * *", tz=zone).next_fire_times(6, after=start)
    days = [fire.astimezone(tz).date() for fire in fires]
    first: date = days[0]
    assert days == [first + timedelta(days=i) for i in range(6)]


@settings(max_examples=30, deadline=None)
@given(
    expr=st.sampled_from(["@monthly", "@weekly", "@yearly", "0 0 1 * *", "30 2 1 * *"]),
    zone=st.sampled_from(ZONES),
    year=st.integers(2026, 2034),
)
def test_monthly_weekly_and_yearly_lines_skip_nothing(expr: str, zone: str, year: int) -> None:
    tz = ZoneInfo(zone)
    start = datetime(year, 1, 1, tzinfo=tz) - timedelta(days=1)
    count = {"@weekly": 60, "@yearly": 3}.get(expr, 24)
    days = [fire.date() for fire in Cron(expr, tz=zone).next_fire_times(count, after=start)]
    if expr == "@weekly":
        assert all(b - a == timedelta(days=7) for a, b in itertools.pairwise(days))
    elif expr == "@yearly":
        assert days == [date(year + i, 1, 1) for i in range(3)]
    else:
        assert days == [date(year + i // 12, i % 12 + 1, 1) for i in range(24)]


SPRING_DAYS = [("Europe/Berlin", date(2026, 3, 29)), ("America/New_York", date(2026, 3, 8))]


@pytest.mark.parametrize(("tz", "day"), SPRING_DAYS)
@pytest.mark.parametrize("kind", ["cron", "interval"])
def test_an_end_the_clocks_skip_ends_before_they_jump(tz: str, day: date, kind: str) -> None:
    # "until 02:45" on a night that goes 02:00 -> 03:00: the 03:00 fire is later than 02:45
    # on the clock, so the end is the last instant before the jump, for both kinds alike.
    midnight = datetime.combine(day, datetime.min.time())
    end = midnight.replace(hour=2, minute=45)
    schedule = (
        Cron("*/15 * * * *", tz=tz, end=end)
        if kind == "cron"
        else Interval(minutes=15, tz=tz, start=midnight, end=end)
    )
    fires = schedule.next_fire_times(20, after=midnight.replace(hour=1))
    assert [f"{fire:%H:%M}" for fire in fires] == ["01:15", "01:30", "01:45"]
    assert f", before {day} 03:00 {fires[0].replace(hour=3):%Z}, when the clocks jump (" in (
        schedule.describe()
    )
    assert schedule_from_dict(schedule_to_dict(schedule)) == schedule
    # an end at 03:00, which the clock shows, still includes a fire at 03:00
    at_three = schedule.model_copy(update={"end": midnight.replace(hour=3)})
    assert f"{at_three.next_fire_times(20, after=midnight.replace(hour=1))[-1]:%H:%M}" == "03:00"
