"""The cron engine: crontab(5) lines read as Debian's cron reads them, next times on cronsim.

Two halves, kept apart on purpose:

* **Which wall-clock times match a line** -- cronsim walks naive wall-clock time through the
  fields (minute, hour, day-of-month, month, day-of-week; 0 and 7 are Sunday; when both day
  fields are restricted either one matches, unless one of them starts with ``*``).
* **When those wall times happen** -- Debian's cron rules for daylight-saving changes, applied
  here (:func:`next_fire`). A line is *fixed-time* when neither its minute nor its hour field
  starts with ``*``:

  - spring gap: a fixed-time line whose time does not exist that day runs once, at the moment
    the clock jumps; a wildcard line's times inside the gap do not run;
  - autumn overlap: a fixed-time line runs once (the first pass), a wildcard line in both;
  - so no day is skipped, and fire times strictly increase.

  Two departures from Debian, both so that a fire is one instant and no day is lost. Several
  times of one fixed-time line in a gap (``0,30 2``) are one fire at the jump, where Debian
  runs the job once per time. And these rules hold for a change of any size: Debian reads a
  jump of 3 hours or more as the clock being set, not as daylight saving time, and runs only
  what matches the new time, skipping the fixed-time jobs in the gap; here they run at the
  jump, as for an hour's change (Pacific/Apia skipped 2011-12-30 and Pacific/Kwajalein
  1993-08-21 whole; Antarctica/Casey jumped 3 hours in 2009 and 2011).

cronsim has a DST mode of its own, but it falls short of these rules in two places (pinned by
``tests/test_cron_dst.py``): it steps wildcard lines through an hour of elapsed time, which
loses the first half of the hour after Lord Howe's 30-minute change, and started inside a
repeated hour it answers with the first pass, an instant *before* the start. Mapping wall times
to instants is a few lines, so it is written here instead of patched around.

Parsing is ours as well (cronsim only says "Bad minute"): errors name the value and the fix,
weekday ranges may wrap (``fri-mon``), and the ``@daily`` family of macros is expanded. cronsim
is handed an equivalent line in the plain subset it reads.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from typing import Literal
from zoneinfo import ZoneInfo

from cronsim import CronSim

from .errors import InvalidSchedule

__all__ = [
    "CronField",
    "CronLine",
    "DAY_OF_MONTH",
    "DAY_OF_WEEK",
    "HOUR",
    "MINUTE",
    "MONTH",
    "Stride",
    "after_end",
    "iso_day",
    "next_fire",
    "parse_cron",
    "resolve_wall",
    "selects_all",
    "skipped_walls",
]

_UTC = timezone.utc
_MINUTE = timedelta(minutes=1)


def iso_day(value: date) -> str:
    """``2026-12-01``; the year always in four digits, where ``%Y`` prints year 1 as
    ``1`` (every description, note and listing writes its days through this)."""
    return f"{value.year:04d}-{value:%m-%d}"


# --------------------------------------------------------------------------- fields


@dataclass(frozen=True)
class CronField:
    """One column of a crontab line: its name, numeric range and accepted names."""

    name: str
    low: int
    high: int
    names: tuple[str, ...] = ()  # names[i] is the value low + i (or i for day-of-week)

    @property
    def top(self) -> int:
        """The highest distinct value (day-of-week 7 only aliases Sunday)."""
        return 6 if self.name == "day-of-week" else self.high

    @property
    def allowed(self) -> str:
        """The allowed values, as shown in error messages."""
        text = f"{self.low}-{self.high}"
        if self.names:
            text += f" or {self.names[0]}-{self.names[-1]}"
        return text


MINUTE = CronField("minute", 0, 59)
HOUR = CronField("hour", 0, 23)
DAY_OF_MONTH = CronField("day-of-month", 1, 31)
MONTH = CronField(
    "month",
    1,
    12,
    ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"),
)
DAY_OF_WEEK = CronField("day-of-week", 0, 7, ("sun", "mon", "tue", "wed", "thu", "fri", "sat"))
_FIELDS = (MINUTE, HOUR, DAY_OF_MONTH, MONTH, DAY_OF_WEEK)
_CRON_FORM = "expected 5 fields 'minute hour day-of-month month day-of-week', e.g. '0 9 * * 1-5'"
_MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_ITEM_RE = re.compile(
    r"(?P<first>\*|[0-9A-Za-z]+)(?:-(?P<last>[0-9A-Za-z]+))?(?:/(?P<step>[0-9]+))?"
)
"""One item of a field's list; names in any case, kept as written for a refusal to quote."""
_MONTH_DAYS = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)  # longest possible, Feb = 29
_Day = tuple[int, int, int]
"""A calendar day as (month, day of the month, weekday with 0 = Sunday)."""


@dataclass(frozen=True)
class CronLine:
    """A validated crontab line, expanded to value sets (day-of-week 0-6, 0 = Sunday)."""

    minute: frozenset[int]
    hour: frozenset[int]
    dom: frozenset[int]
    month: frozenset[int]
    dow: frozenset[int]
    starred: tuple[bool, ...]
    """Which of the five fields start with ``*`` (cron's day rule and DST rules read this)."""
    cronsim_expr: str
    """The same line in the plain subset cronsim reads (explicit lists)."""

    @property
    def dom_or_dow(self) -> bool:
        """Both day fields are restricted, so a day matching either one fires (crontab(5))."""
        return not (self.starred[2] or self.starred[4])

    @property
    def fixed_time(self) -> bool:
        """Neither minute nor hour starts with ``*``: Debian's fixed-time DST rules apply."""
        return not (self.starred[0] or self.starred[1])

    @property
    def dom_can_match(self) -> bool:
        """Some selected month has one of the selected days (``30 2`` never exists)."""
        return any(day <= _MONTH_DAYS[m - 1] for m in self.month for day in self.dom)

    @functools.cached_property
    def meaning(self) -> tuple[frozenset[int], frozenset[int], bool, frozenset[_Day]]:
        """What decides when the line fires, the same for every way of writing it.

        The minutes, the hours, whether the DST rules are the fixed-time ones, and the days
        as (month, day, weekday) triples the line matches: every day of every month falls
        on each weekday in some year, so two lines with the same triples match the same
        dates. ``0 9 * * mon``, ``0  9 * * 1`` and ``0 9 1-31 * 1`` (the day rule: a day
        matching either field) therefore differ only in spelling from the first two, not
        the third; ``0 * * * *`` and ``0 0-23 * * *`` match the same times but differ in
        daylight-saving changes, so they differ here.
        """
        either = any if self.dom_or_dow else all
        days = frozenset(
            (month, day, weekday)
            for month in self.month
            for day in range(1, _MONTH_DAYS[month - 1] + 1)
            for weekday in range(7)
            if either((day in self.dom, weekday in self.dow))
        )
        return self.minute, self.hour, self.fixed_time, days


def _cron_value(token: str, field: CronField, item: str) -> int:
    """A single number or name (in any case) of ``field``, range-checked."""
    name = token.lower()
    if name in field.names:
        return field.names.index(name) + (field.low if field is MONTH else 0)
    digits = token.lstrip("0") or "0"  # leading zeros change nothing ("09" is 9)
    if not token.isdigit() or len(digits) > 4 or not field.low <= int(digits) <= field.high:
        where = f" (in {item!r})" if item != token else ""
        raise InvalidSchedule(
            f"{token!r}{where} is not a valid {field.name}: allowed {field.allowed}"
        )
    return int(digits)


def _expand_item(item: str, field: CronField) -> set[int]:
    """Expand one list item (``*``, ``5``, ``1-5``, ``*/15``, ``1-5/2``, ``mon-fri``)."""
    match = _ITEM_RE.fullmatch(item)
    if not match:
        raise InvalidSchedule(
            f"{item!r} is not a valid {field.name} entry: use a value ({field.allowed}), "
            "a range like 1-5, a list like 1,3,5 or a step like */15"
        )
    first, last, step_text = match["first"], match["last"], match["step"]
    # Past 4 digits any step leaves only the first value; cut so no huge int is parsed,
    # after the leading zeros, which do not change it ("*/00015" is "*/15").
    step = int(step_text.lstrip("0")[:4] or "0") if step_text else 1
    if step == 0:
        raise InvalidSchedule(f"step 0 in {item!r} ({field.name}): a step must be 1 or more")
    if first == "*":
        if last is not None:
            raise InvalidSchedule(f"{item!r} is not valid ({field.name}): write '*' or a range")
        return set(range(field.low, field.top + 1, step))
    low = _cron_value(first, field, item)
    if last is None:
        # "5/15" (no range) means "5-max/15", as cronsim and APScheduler read it; for
        # day-of-week the max is 7, so "5/1" ends on Sunday and "7/2" is Sunday.
        return {low} if step_text is None else set(range(low, field.high + 1, step))
    high = _cron_value(last, field, item)
    if low <= high:
        return set(range(low, high + 1, step))
    if field is DAY_OF_WEEK:  # wrapping weekday range, e.g. fri-mon = fri,sat,sun,mon
        return {(low + i) % 7 for i in range(0, (high - low) % 7 + 1, step)}
    raise InvalidSchedule(
        f"range {item!r} ({field.name}) goes backwards: write the smaller value first, "
        f"or split it into two ranges such as '{first}-{field.high},{field.low}-{last}'"
    )


def _expand_field(text: str, field: CronField) -> frozenset[int]:
    """Expand a whole comma list of one field into its set of values."""
    values: set[int] = set()
    for item in text.split(","):
        values |= _expand_item(item, field)
    if field is DAY_OF_WEEK:
        values = {v % 7 for v in values}
    if not values:  # a step past its start's range: nothing would ever match
        raise InvalidSchedule(f"{text!r} selects no {field.name}: allowed {field.allowed}")
    return frozenset(values)


def selects_all(text: str, field: CronField) -> bool:
    """Whether a field's text selects each of its values (False when it is malformed)."""
    try:
        return _expand_field(text, field) == frozenset(range(field.low, field.top + 1))
    except InvalidSchedule:
        return False


def _cronsim_expr(values: tuple[frozenset[int], ...], starred: tuple[bool, ...]) -> str:
    """The line as explicit lists, which cronsim reads exactly as we expanded it."""
    parts = []
    for field_values, field, star in zip(values, _FIELDS, starred, strict=True):
        listed = ",".join(str(v) for v in sorted(field_values))
        if not star:
            parts.append(listed)
        elif field_values == frozenset(range(field.low, field.top + 1)):
            parts.append("*")
        else:
            # Keep the leading "*" that cronsim, like cron, reads the day rule from: "*/N"
            # with N past the range is only the lowest value, which a starred field holds.
            parts.append(f"*/{field.high + 1},{listed}")
    return " ".join(parts)


@functools.lru_cache(maxsize=512)
def parse_cron(expr: str) -> CronLine:
    """Validate a crontab(5) line or @macro and expand it.

    Names (``MON``, ``@Daily``) are read in any case; a refusal quotes the line, a field or a
    value as written.

    Raises:
        InvalidSchedule: The line is malformed, has a value out of range, or can never fire.
    """
    text = expr.strip()
    if text.startswith("@"):
        text = text.lower()
        if text == "@reboot":
            raise InvalidSchedule(
                "@reboot is not supported: a schedule needs a time; use e.g. @daily or '0 9 * * *'"
            )
        if text not in _MACROS:
            raise InvalidSchedule(
                f"unknown cron macro {expr[:40]!r}: use one of {', '.join(_MACROS)} "
                f"or a 5-field line ({_CRON_FORM})"
            )
        text = _MACROS[text]
    parts = text.split()
    if len(parts) != 5:
        raise InvalidSchedule(
            f"cron line {expr[:80]!r} has {len(parts)} field(s); {_CRON_FORM} "
            "(seconds and years are not supported)"
        )
    minute, hour, dom, month, dow = (
        _expand_field(part, field) for part, field in zip(parts, _FIELDS, strict=True)
    )
    values = (minute, hour, dom, month, dow)
    starred = tuple(part.startswith("*") for part in parts)
    line = CronLine(*values, starred=starred, cronsim_expr=_cronsim_expr(values, starred))
    if not line.dom_or_dow and not line.dom_can_match:
        raise InvalidSchedule(
            f"cron line {expr[:80]!r} can never fire: none of the selected months has "
            f"day {min(line.dom)}"
        )
    return line


# --------------------------------------------------------------------------- wall time -> instants


def _is_real(moment: datetime) -> bool:
    """The aware wall time exists (is not skipped by a spring-forward change)."""
    round_trip = moment.astimezone(_UTC).astimezone(moment.tzinfo)
    return round_trip.replace(fold=0) == moment.replace(fold=0)  # one tzinfo: wall times


def resolve_wall(wall: datetime, zone: ZoneInfo) -> datetime:
    """The real instant of a naive wall time in ``zone``, as cron's fixed-time jobs have it.

    A time repeated by an autumn change keeps its ``fold`` (0: the first pass, 1: the second);
    a time skipped by a spring change becomes the moment the clock jumps (its first real
    minute after), so 02:30 on a night that goes 02:00 -> 03:00 means 03:00.
    """
    moment = wall.replace(tzinfo=zone)
    if _is_real(moment):
        return moment
    step = moment.replace(second=0, microsecond=0, fold=0)
    while not _is_real(step):  # gaps start on whole minutes; a day's gap is 1440 steps at most
        step = (step.replace(tzinfo=None) + _MINUTE).replace(tzinfo=zone)
    return step


def resolve_end(wall: datetime, zone: ZoneInfo) -> datetime:
    """The last instant an end bound at the naive ``wall`` in ``zone`` includes.

    ``wall`` itself (as :func:`resolve_wall` reads it), except for a time a spring change
    skips: then the instant before the clock jumps. "Until 02:45" on a night that goes
    02:00 -> 03:00 includes every time the clock shows before the jump, and not the jump
    itself, whose 03:00 is later than 02:45 on the clock.
    """
    moment = resolve_wall(wall, zone)
    if moment.replace(tzinfo=None) == wall:
        return moment
    return (moment.astimezone(_UTC) - timedelta(microseconds=1)).astimezone(zone)


def after_end(end: datetime, zone: ZoneInfo) -> datetime:
    """The first instant after the aware end bound ``end``, in ``zone``: for an end
    :func:`resolve_end` put before a spring jump, the moment the clock jumps (an end
    said in words: "before 03:00 CEST, when the clocks jump").

    Counted in UTC: an instant after, not a wall time after. ``end`` itself when no
    instant follows it (the calendar's last, in UTC or on the zone's clock).
    """
    try:
        return (end.astimezone(_UTC) + timedelta(microseconds=1)).astimezone(zone)
    except OverflowError:
        return end.astimezone(zone)


def skipped_walls(line: CronLine, zone: ZoneInfo, fire: datetime) -> list[datetime]:
    """The wall times of ``line`` a spring-forward gap skipped that run at ``fire``, the
    moment the clock jumps (a fixed-time line's rule); empty for any other fire.

    Several times in one gap (``0,30 2``) run once, together, at the jump.
    """
    if not line.fixed_time:
        return []
    fire = fire.astimezone(zone)
    before = (fire - timedelta(microseconds=1)).astimezone(zone)
    jump = (fire.utcoffset() or timedelta()) - (before.utcoffset() or timedelta())
    if jump <= timedelta():
        return []  # no spring change just before this fire
    gap_end = fire.replace(tzinfo=None)
    walls: list[datetime] = []
    for wall in CronSim(line.cronsim_expr, gap_end - jump - timedelta(seconds=1)):
        if wall >= gap_end:
            break
        walls.append(wall)
    return walls


def _fires_at(wall: datetime, zone: ZoneInfo, fixed_time: bool) -> list[datetime]:
    """The instants a matching naive wall time fires at, by Debian's DST rules."""
    first = wall.replace(tzinfo=zone, fold=0)
    if not _is_real(first):  # spring gap
        return [resolve_wall(wall, zone)] if fixed_time else []
    second = wall.replace(tzinfo=zone, fold=1)
    if fixed_time or second.utcoffset() == first.utcoffset():
        return [first]
    return [first, second]  # autumn overlap, wildcard line: both passes


def _next_plain(
    line: CronLine, zone: ZoneInfo, after: datetime, *, from_wall: datetime | None = None
) -> tuple[datetime, datetime] | None:
    """The first fire of ``line`` strictly after the instant ``after``, in UTC, with the wall
    time it is the fire of (no stride); only wall times from ``from_wall`` on, if given.

    The wall time is the fire's own but for a spring gap's fixed-time fire, which happens
    when the clock jumps: on the next day when the gap ends the day (Samoa skipped
    2011-12-30, so its 08:00 ran at 2011-12-31 00:00).

    Instants are compared in UTC throughout: two datetimes sharing a ZoneInfo compare by wall
    time, which cannot tell the two passes of a repeated hour apart.
    """
    after = after.astimezone(_UTC)
    # An instant after `after` can have an earlier wall time only if the clock goes back in
    # the meantime, and then by at most the change: walk wall time from that much earlier.
    offset_now = after.astimezone(zone).utcoffset() or timedelta()
    offset_later = (after + timedelta(days=1)).astimezone(zone).utcoffset() or timedelta()
    start = (after + min(offset_now, offset_later)).replace(tzinfo=None)
    if from_wall is not None:
        start = max(start, from_wall)
    # From a naive start cronsim walks wall-clock time: the matching wall times, in order (it
    # stops after 50 years without a match). A later wall time never fires before an earlier
    # one's first pass (or jump moment), but its first pass may come before an earlier one's
    # second pass: keep that second pass only until a first pass after `after` turns up.
    second_pass: tuple[datetime, datetime] | None = None
    for wall in CronSim(line.cronsim_expr, start - timedelta(seconds=1)):
        fires = [fire.astimezone(_UTC) for fire in _fires_at(wall, zone, line.fixed_time)]
        if fires and fires[0] > after:
            first = (fires[0], wall)
            return first if second_pass is None else min(second_pass, first)
        if second_pass is None and len(fires) == 2 and fires[1] > after:
            second_pass = (fires[1], wall)
    return second_pass


@dataclass(frozen=True)
class Stride:
    """Fire only on every ``n``-th day, or in every ``n``-th week, counting from ``anchor``.

    Weeks run Monday to Sunday, so "every 2 weeks on Monday and Friday" keeps pairs together.
    A fire counts on the day it is due, also when its spring gap ends on the next day.
    """

    n: int
    unit: Literal["days", "weeks"]
    anchor: date

    def days_to_next(self, day: date) -> int:
        """0 when ``day`` is on the stride, else the days to the next one that is."""
        if self.unit == "days":
            return (self.anchor - day).days % self.n
        monday = day - timedelta(days=day.weekday())
        anchor_monday = self.anchor - timedelta(days=self.anchor.weekday())
        weeks_off = ((monday - anchor_monday).days // 7) % self.n
        return 0 if weeks_off == 0 else (monday - day).days + 7 * (self.n - weeks_off)


def next_fire(
    line: CronLine, zone: ZoneInfo, after: datetime, *, stride: Stride | None = None
) -> datetime | None:
    """The first fire strictly after the instant ``after``, as a time in ``zone``.

    Args:
        line: A line from :func:`parse_cron`.
        zone: The zone whose wall clock the line reads.
        after: An aware instant.
        stride: Keep only the days (or weeks) of a stride.

    Returns:
        The fire time, or None when the line cannot fire within 50 years of ``after``.
    """
    from_wall: datetime | None = None
    while True:
        found = _next_plain(line, zone, after, from_wall=from_wall)
        if found is None:
            return None
        fire, wall = found
        # The stride keeps the day the fire is for, which a skipped day's jump leaves.
        skip = 0 if stride is None else stride.days_to_next(wall.date())
        if skip == 0:
            return fire.astimezone(zone)
        # Go on from the first wall time of the next day on the stride.
        from_wall = datetime.combine(wall.date() + timedelta(days=skip), time())
