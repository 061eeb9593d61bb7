"""The words people say to an assistant, read into schedules.

:func:`read_schedule` understands the phrases of :data:`~.schedules.ACCEPTED_FORMS`
("tomorrow morning", "every other day at 8", "on December 24 at 6pm", cron lines, ISO
date-times) and returns a :class:`Reading`: the schedule, plus a note when vague words were
given an hour ("tomorrow morning" is read as 09:00), to show the user next to the run times.

Rules of reading:

* A bare hour is the 24-hour clock ("daily at 7" is 07:00), except after "afternoon",
  "evening" or "tonight" ("tonight at 8" is 20:00).
* Parts of the day: morning 09:00, afternoon 15:00, evening 18:00, night and "tonight" 20:00.
* A calendar phrase needs a time of day: "every monday", "tomorrow" or "on December 24"
  alone is answered with a question, not a guess; so is a week ("every week", "every 2
  weeks") without its weekday. Durations need none: "every 2 hours" and "every 90 minutes"
  count elapsed time from now, in whole seconds.
* "next friday" said on a Tuesday could be this week's or next week's: also a question.
  (Weeks start on Monday, so "next monday" is never ambiguous.) So is "tomorrow" said
  before 04:00, when the person may not have slept yet: today, or the day after?
* Sentence punctuation at the end is ignored: "every day at 9?" is "every day at 9".
* A night keeps its small hours: "tonight at midnight" and "friday night at 1am" are the
  night after that day; a bare hour after a part of the day follows it ("tonight at 11"
  is 23:00).

Every problem raises :class:`~langgraph_scheduler.errors.InvalidSchedule`; for ambiguous input
its message starts with a question the model can put to the user.
"""

from __future__ import annotations

import calendar
import math
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import MAXYEAR, date, datetime, time, timedelta, timezone
from fractions import Fraction
from zoneinfo import ZoneInfo

from ._cron import resolve_wall
from .errors import InvalidSchedule
from .schedules import ACCEPTED_FORMS, LONGEST_STRIDE, Cron, Interval, Once, check_timezone

__all__ = ["Reading", "read_schedule"]

_UTC = timezone.utc


@dataclass(frozen=True)
class Reading:
    """A schedule read from words, and how vague words were read."""

    schedule: Cron | Interval | Once
    note: str | None = None
    """E.g. ``"tomorrow morning" is read as 09:00 …``; show it to the user with the run times."""


# --------------------------------------------------------------------------- vocabulary

_WEEKDAYS = {
    name: number
    for number, names in enumerate(
        (
            ("sun", "sunday"),
            ("mon", "monday"),
            ("tue", "tues", "tuesday"),
            ("wed", "weds", "wednesday"),
            ("thu", "thur", "thurs", "thursday"),
            ("fri", "friday"),
            ("sat", "saturday"),
        )
    )
    for name in (*names, names[-1] + "s")
}  # crontab numbers: 0 = Sunday
_DAY_NAMES = ("Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday")
_MONTHS = {
    name: number
    for number, names in enumerate(
        (
            ("jan", "january"), ("feb", "february"), ("mar", "march"), ("apr", "april"),
            ("may",), ("jun", "june"), ("jul", "july"), ("aug", "august"),
            ("sep", "sept", "september"), ("oct", "october"), ("nov", "november"),
            ("dec", "december"),
        ),
        start=1,
    )
    for name in names
}  # fmt: skip
_MONTH_NAMES = (
    "January", "February", "March", "April", "May", "June",
    "July", "August", "September", "October", "November", "December",
)  # fmt: skip
_PARTS = {"morning": time(9), "afternoon": time(15), "evening": time(18), "night": time(20)}
_PART_HOURS = {"morning": (4, 12), "afternoon": (12, 18), "evening": (17, 24), "night": (18, 24)}
_UNITS = {
    "s": 1, "sec": 1, "secs": 1, "second": 1, "seconds": 1,
    "m": 60, "min": 60, "mins": 60, "minute": 60, "minutes": 60,
    "h": 3600, "hr": 3600, "hrs": 3600, "hour": 3600, "hours": 3600,
    "d": 86400, "day": 86400, "days": 86400,
    "w": 604800, "wk": 604800, "wks": 604800, "week": 604800, "weeks": 604800,
}  # fmt: skip


def _alternatives(words: Iterable[str]) -> str:
    """A regex alternation, longest first (so "monday" wins over "mon")."""
    return "|".join(sorted(words, key=len, reverse=True))


_DAY = rf"(?:{_alternatives(_WEEKDAYS)})"
_DAYS = rf"{_DAY}(?:(?:,| and | & |&|,and | or | ){_DAY})*"
_MONTH = rf"(?:{_alternatives(_MONTHS)})"
_NTH = r"(?P<dom>[0-9]{1,2})(?:st|nd|rd|th)?"
_DATE = (  # "december 24", "24th of december", optionally with a year
    rf"(?:(?P<month>{_MONTH}) {_NTH}|(?:the )?{_NTH.replace('dom', 'dom2')} (?:of )?"
    rf"(?P<month2>{_MONTH}))(?:(?:,| )(?P<year>[0-9]{{4}}))?"
)
_TIME = r"(?P<time>noon|midnight|[0-9]{1,2}(?::[0-9]{2})?(?: ?[ap]\.?m\.?)?)"
_CLEAR_TIME = r"(?:noon|midnight|[0-9]{1,2}:[0-9]{2}(?: ?[ap]\.?m\.?)?|[0-9]{1,2} ?[ap]\.?m\.?)"
_AT = rf"(?: (?:at |(?={_CLEAR_TIME}$)){_TIME})"  # "at" may go before a clear time: "tomorrow 9am"
_PART = r"(?P<part>morning|afternoon|evening|night)"
_TIME_RE = re.compile(r"(?P<h>[0-9]{1,2})(?::(?P<m>[0-9]{2}))?(?: ?(?P<ampm>[ap])\.?m\.?)?")
_DURATION_PART = re.compile(
    r" ?(?:(?P<n>[0-9]{1,6}(?:\.[0-9]{1,6})?|an?|half an?) ?)?(?P<unit>[a-z]+)"
)
_ISO_RE = re.compile(
    r"(?P<date>[0-9]{4}-[0-9]{2}-[0-9]{2})[t ](?P<h>[0-9]{2}):(?P<m>[0-9]{2})"
    r"(?::(?P<s>[0-9]{2}))?(?P<offset>z|[+-][0-9]{2}:?[0-9]{2})?"
)


# --------------------------------------------------------------------------- pieces


@dataclass(frozen=True)
class _Context:
    """What every rule needs: the zone the words mean and the time they were said."""

    zone: ZoneInfo
    tz: str
    now: datetime  # aware, in ``zone``

    @property
    def today(self) -> date:
        return self.now.date()

    def wall(self, day: date, at: time) -> datetime:
        """``at`` on ``day`` (a time skipped by a spring change: when the clock jumps)."""
        return resolve_wall(datetime.combine(day, at), self.zone)

    def next_day(self, at: time) -> date:
        """The day of the next ``at`` after now: today, or tomorrow once today's has passed."""
        return self.today + timedelta(days=not self.later(self.wall(self.today, at)))

    def later(self, moment: datetime) -> bool:
        return moment.astimezone(_UTC) > self.now.astimezone(_UTC)

    def once(self, day: date, at: time, note: str | None = None) -> Reading:
        """A one-off at ``at`` on ``day``, noting how a night the clocks change reads it: a
        time they skip runs when they jump, a time they repeat runs in its first pass."""
        wall = datetime.combine(day, at)
        fire = self.wall(day, at)
        first = wall.replace(tzinfo=self.zone)
        changed = None
        if first.utcoffset() != first.replace(fold=1).utcoffset():
            said = f"{wall:%H:%M} on {wall:%A %Y-%m-%d}"
            changed = (
                f"the clocks skip {said} in {self.tz}: it runs at {_show(fire)}, when they jump"
                if fire.replace(tzinfo=None) != wall
                else f"{said} comes twice in {self.tz} as the clocks go back: it runs at the "
                f"first, {_show(fire)}"
            )
        notes = [text for text in (note, changed) if text]
        return Reading(Once(fire, tz=self.tz), "; ".join(notes) or None)


def _show(moment: datetime) -> str:
    """``Sunday 2026-03-29 09:00 CEST``."""
    return f"{moment:%A %Y-%m-%d %H:%M %Z}".strip()


def _clock(at: time) -> str:
    return f"{at.hour:02d}:{at.minute:02d}"


def _parse_time(text: str, part: str | None = None) -> time:
    """``9``, ``09:00``, ``9am``, ``9:30pm``, ``12am``, ``noon``, ``midnight``.

    After a part of the day a bare hour follows it: "evening at 7" is 19:00, "tonight at 11"
    23:00 ("08:00", with its leading zero, is the 24-hour clock). A night keeps the small
    hours said as such ("tonight at midnight", "friday night at 1am"): before 04:00, which
    the caller moves to the next day.
    """
    if text in ("noon", "midnight"):
        hour, minute, bare = (12 if text == "noon" else 0), 0, False
    else:
        match = _TIME_RE.fullmatch(text)
        hour, minute = (int(match["h"]), int(match["m"] or 0)) if match else (99, 0)
        ampm = match["ampm"] if match else None
        if ampm is not None and 1 <= hour <= 12:
            hour = hour % 12 + (12 if ampm == "p" else 0)
        elif ampm is not None:
            hour = 99
        bare = match is not None and ampm is None and not match["h"].startswith("0")
    if hour > 23 or minute > 59:
        raise InvalidSchedule(
            f"{text!r} is not a valid time: use 24-hour 'HH:MM' like 09:00 or 18:30, "
            "or 12-hour like 9am or 6:30pm"
        )
    at = time(hour, minute)
    if part is not None and bare and hour == 12 and part != "afternoon":
        if minute == 0:
            raise InvalidSchedule("Do you mean 12:00 noon or midnight? Say 'noon' or 'midnight'.")
        raise InvalidSchedule(
            f"Do you mean {_clock(at)} after noon or 00:{minute:02d} after midnight? Say "
            f"'{text}pm' or '{text}am'."
        )
    if part not in (None, "morning") and bare and hour < 12:
        at = time(hour + 12, minute)
    low, high = _PART_HOURS.get(part or "", (0, 24))
    small_hours = part == "night" and not bare and hour < _PART_HOURS["morning"][0]
    if not (low <= at.hour < high or small_hours):
        raise InvalidSchedule(
            f"Which time do you mean? {_clock(at)} is not in the {part} of that day; say e.g. "
            f"'at {_clock(at)}' without '{part}', or another time."
        )
    return at


def _parse_duration(text: str) -> Fraction | None:
    """``2h``, ``1.5 hours``, ``1 hour 30 minutes``, ``half an hour`` -> seconds; else None.

    Exact (1.1 hours is 3960 seconds, not 3960.0000000000005), so a caller can tell a whole
    number of seconds from a fraction.
    """
    text = re.sub(r" ?(?:,| and ) ?", " ", text)
    total, pos = Fraction(0), 0
    while pos < len(text):
        match = _DURATION_PART.match(text, pos)
        if not match or match["unit"] not in _UNITS:
            return None
        count = match["n"] or "1"
        if count.startswith("half"):
            amount = Fraction(1, 2)
        else:
            amount = Fraction(1 if count in ("a", "an") else count)
        total += amount * _UNITS[match["unit"]]
        pos = match.end()
    return total if pos else None


def _weekday_set(text: str) -> set[int]:
    """``mon,wed,fri`` / ``monday and thursday`` -> crontab numbers {1, 3, 5}."""
    return {_WEEKDAYS[name] for name in re.split(r"[ ,&]+|\band\b|\bor\b", text) if name}


def _cron_days(days: set[int]) -> str:
    """Crontab day-of-week field: ``*``, or runs of three or more as ranges (``1-5``, ``0,6``)."""
    if len(days) == 7:
        return "*"
    runs: list[list[int]] = []
    for day in sorted(days):
        if runs and day == runs[-1][-1] + 1:
            runs[-1].append(day)
        else:
            runs.append([day])
    return ",".join(
        f"{run[0]}-{run[-1]}" if len(run) > 2 else ",".join(map(str, run)) for run in runs
    )


def _join_days(days: set[int]) -> str:
    """``Mondays``, ``Mondays and Thursdays`` (Monday first)."""
    names = [_DAY_NAMES[d] + "s" for d in sorted(days, key=lambda d: (d - 1) % 7)]
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


def _ordinal(day: int) -> str:
    """``1st``, ``2nd``, ``3rd``, ``11th``, ``22nd``."""
    suffix = "th" if 10 <= day % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(day % 10, "th")
    return f"{day}{suffix}"


def _need_time(what: str, example: str) -> InvalidSchedule:
    return InvalidSchedule(f"At what time {what}? Say e.g. '{example}'.")


def _date_of(match: re.Match[str], ctx: _Context, at: time) -> date:
    """The date a ``_DATE`` match names: with no year, the next one whose ``at`` is ahead."""
    month = _MONTHS[match["month"] or match["month2"]]
    day = int(match["dom"] or match["dom2"])
    first = ctx.today.year
    years = [int(match["year"])] if match["year"] else range(first, min(first + 9, MAXYEAR + 1))
    for year in years:
        try:
            candidate = date(year, month, day)
        except ValueError:
            if (month, day) == (2, 29) and not match["year"]:
                continue  # the next leap year
            in_year = f" {year}" if match["year"] else ""
            raise InvalidSchedule(
                f"{_MONTH_NAMES[month - 1]}{in_year} has no day {day}: give a day that exists"
            ) from None
        if match["year"] or ctx.later(ctx.wall(candidate, at)):
            return candidate
    raise OverflowError  # no leap year (or no such date) before the calendar ends


# --------------------------------------------------------------------------- rules

_Rule = Callable[[re.Match[str], _Context], Reading | None]


def _in(match: re.Match[str], ctx: _Context) -> Reading | None:
    seconds = _parse_duration(match["dur"])
    if seconds is None:
        return None
    delta = timedelta(seconds=round(seconds))
    if not delta:
        raise InvalidSchedule(f"{match[0]!r} is not in the future: give a positive duration")
    try:
        fire = (ctx.now.astimezone(_UTC) + delta).astimezone(ctx.zone)
    except OverflowError:
        raise InvalidSchedule(f"{match[0]!r} is too far in the future") from None
    return Reading(Once(fire, tz=ctx.tz))


def _iso(match: re.Match[str], ctx: _Context) -> Reading:
    offset = match["offset"]
    try:
        day = date.fromisoformat(match["date"])
        wall = time(int(match["h"]), int(match["m"]), int(match["s"] or 0))
        if offset is None:
            return ctx.once(day, wall)
        digits = "0000" if offset == "z" else offset[1:].replace(":", "")
        shift = timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))
        fixed = timezone(-shift if offset.startswith("-") else shift)
        return Reading(Once(datetime.combine(day, wall, fixed).astimezone(ctx.zone), tz=ctx.tz))
    except OverflowError:  # well formed, past the first or last instant a datetime holds
        when = "past" if match["date"] < "0002" else "future"
        raise InvalidSchedule(f"{match[0]!r} is too far in the {when}") from None
    except ValueError as exc:
        if isinstance(exc, InvalidSchedule):
            raise
        raise InvalidSchedule(
            f"{match[0]!r} is not a valid date-time: use e.g. 2026-12-01T09:00 or "
            "2026-12-01T09:00+01:00"
        ) from None


def _cron_line(match: re.Match[str], ctx: _Context) -> Reading:
    return Reading(Cron(match[0], tz=ctx.tz))


def _hourly(match: re.Match[str], ctx: _Context) -> Reading:
    minute = int(match["minute"] or 0)
    if minute > 59:
        raise InvalidSchedule(f"minute {minute} is not valid: use :00 to :59, e.g. :15")
    return Reading(Cron(f"{minute} * * * *", tz=ctx.tz))


def _monthly(match: re.Match[str], ctx: _Context) -> Reading | None:
    day = int(match["dom"])
    if not (match["tail"] or "month" in match["lead"]):
        if not (match["lead"] or re.search(r"[0-9](?:st|nd|rd|th)\b", match[0])):
            return None  # a bare number: not a date
        raise InvalidSchedule(
            f"The {_ordinal(day)} of which month? Say e.g. 'on the {_ordinal(day)} of every "
            f"month at 9:00' or 'on April {day} at 9:00'."
        )
    if not 1 <= day <= 31:
        raise InvalidSchedule(f"day {day} of the month is not valid: use 1st to 31st")
    if match["time"] is None:
        raise _need_time(
            f"on day {day} of each month", f"on the {_ordinal(day)} of every month at 9:00"
        )
    at = _parse_time(match["time"])
    note = (
        f"months without a day {day} are skipped (it fires only in months that have one)"
        if day > 28
        else None
    )
    return Reading(Cron(f"{at.minute} {at.hour} {day} * *", tz=ctx.tz), note)


def _yearly(match: re.Match[str], ctx: _Context) -> Reading | None:
    if not (match["tail"] or match["lead"] not in (None, "on ")):
        return None  # a single date: read below
    month = _MONTHS[match["month"] or match["month2"]]
    day = int(match["dom"] or match["dom2"])
    if match["year"]:
        raise InvalidSchedule(f"{match[0]!r}: a yearly schedule takes no year; leave it out")
    if not 1 <= day <= calendar.monthrange(2000, month)[1]:  # 2000: February has 29 days
        raise InvalidSchedule(f"{_MONTH_NAMES[month - 1]} has no day {day}: give a day that exists")
    when = f"every year on {_MONTH_NAMES[month - 1]} {day}"
    if match["time"] is None:
        raise _need_time(when, f"{when} at 9:00")
    at = _parse_time(match["time"])
    leap_day = (month, day) == (2, 29)
    note = "February 29 exists only in leap years: it fires every four years" if leap_day else None
    return Reading(Cron(f"{at.minute} {at.hour} {day} {month} *", tz=ctx.tz), note)


def _stride(match: re.Match[str], ctx: _Context) -> Reading:
    """Every N-th day, or every N-th week on some weekdays, at a time."""
    count = int(match.groupdict().get("n") or 2)
    unit = match["unit"].rstrip("s") or "week"  # "every other monday": weeks
    days = _weekday_set(match["days"]) if match["days"] else None
    if count < 2:  # before any question: its example would be refused too
        example = "daily at 9" if unit == "day" else "every monday at 9"
        raise InvalidSchedule(f"'every 1 {unit}' is every {unit}: say e.g. '{example}'")
    if unit == "week" and days is None:
        raise InvalidSchedule(
            f"On which day of the week, every {count} weeks? Say e.g. "
            f"'every {count} weeks on monday at 9:00'."
        )
    most = LONGEST_STRIDE[unit]
    if count > most:  # said before asking for a time, which would not help
        raise InvalidSchedule(
            f"every {count} {unit}s is too far apart: the longest is every {most} {unit}s. "
            "For a date once a year, say e.g. 'every year on March 1 at 9:00'"
        )
    if match["time"] is None:
        every = "every other" if count == 2 else f"every {count}"
        on = f" on {_join_days(days)}" if days else ""
        raise _need_time(f"{every} {unit}{'' if count == 2 else 's'}{on}", f"{match[0]} at 9:00")
    at = _parse_time(match["time"])
    expr = f"{at.minute} {at.hour} * * {_cron_days(days or set(range(7)))}"
    first = Cron(expr, tz=ctx.tz).next_fire_times(1, after=ctx.now)[0]
    if unit == "day":
        return Reading(Cron(expr, tz=ctx.tz, start=first, every_days=count))
    return Reading(Cron(expr, tz=ctx.tz, start=first, every_weeks=count))


def _weekly(match: re.Match[str], ctx: _Context) -> Reading | None:
    words = match["set"]
    if words in ("day", "days", "daily", "everyday"):
        days, label = set(range(7)), "every day"
    elif words.startswith(("weekday", "workday")):
        days, label = {1, 2, 3, 4, 5}, "on weekdays"
    elif words.startswith("weekend"):
        days, label = {0, 6}, "on weekends"
    else:
        days = _weekday_set(words)
        singular = len(days) == 1 and not words.endswith("s")
        if singular and match["every"] in (None, "on") and not match["except"]:
            return None  # "on monday at 9" is one Monday: read as a date below
        label = f"on {_join_days(days)}"
    if match["except"]:
        days -= _weekday_set(match["except"])
        if not days:
            raise InvalidSchedule(f"{match[0]!r} leaves no day: name the days to keep")
    if match["time"] is None:
        raise _need_time(label, f"{match[0]} at 9:00")
    at = _parse_time(match["time"])
    return Reading(Cron(f"{at.minute} {at.hour} * * {_cron_days(days)}", tz=ctx.tz))


def _on_day(match: re.Match[str], ctx: _Context) -> Reading:
    """A single day: today, tomorrow, tonight, next friday, on December 24 …"""
    ref, part, spoken = match["ref"], match["part"], match[0]
    if ref == "tonight":
        ref, part = "today", "night"
    elif ref == "this" and part:
        ref = "today"
    at = _parse_time(match["time"], part) if match["time"] else _PARTS.get(part or "")
    # "tonight at midnight", "friday night at 1am": the small hours after that day
    after_midnight = part == "night" and at is not None and at.hour < 12
    if ref == "tomorrow" and ctx.now.hour < _PART_HOURS["morning"][0]:
        raise _which_day(spoken, ctx)
    if ref in ("today", "tomorrow", "day after tomorrow"):
        day = ctx.today + timedelta(days=("today", "tomorrow", "day after tomorrow").index(ref))
        where = "the day after tomorrow" if ref.startswith("day") else ref
    elif match["month"] or match["month2"]:
        day = _date_of(match, ctx, at or time(23, 59))
        where = f"on {_MONTH_NAMES[day.month - 1]} {day.day}"
    else:
        day = _weekday_date(match, ctx, None if after_midnight else at)
        where = f"on {day:%A %Y-%m-%d}"
    if at is None:
        raise _need_time(where, f"{spoken} at 9:00")
    day += timedelta(days=after_midnight)
    fire = ctx.wall(day, at)
    if not ctx.later(fire):
        said = f"'{spoken}' ({_show(fire)})"
        raise InvalidSchedule(
            f"{said} has already passed: it is now {_show(ctx.now)} in {ctx.tz}. Did you "
            "mean a later time, or another day?"
        )
    note = None
    if match["time"] is None:  # the hour came from the part of the day
        note = f"'{spoken}' is read as {_clock(at)} ({_show(fire)}); say a time if another is meant"
    return ctx.once(day, at, note)


def _which_day(spoken: str, ctx: _Context) -> InvalidSchedule:
    """The question "tomorrow" said in the small hours needs: the day that has begun, or the
    next one?"""
    today, tomorrow = ctx.today, ctx.today + timedelta(days=1)
    weekday = _DAY_NAMES[tomorrow.isoweekday() % 7].lower()
    said_today = re.sub(
        r"tomorrow(?: (?P<part>morning|afternoon|evening|night))?",
        lambda m: "tonight" if m["part"] == "night" else f"this {m['part'] or 'day'}",
        spoken,
        count=1,
    ).replace("this day", "today")
    return InvalidSchedule(
        f"Which day do you mean: today, {today:%A %Y-%m-%d} (it is {ctx.now:%H:%M} now), or "
        f"{tomorrow:%A %Y-%m-%d}? Say '{said_today}' or "
        f"'{spoken.replace('tomorrow', f'on {weekday}', 1)}'."
    )


def _weekday_date(match: re.Match[str], ctx: _Context, at: time | None) -> date:
    """The date of "next friday", "this friday", "friday next week", "on friday", "friday"."""
    target = _WEEKDAYS[match["day"]]
    name = _DAY_NAMES[target]
    today = ctx.today
    ahead = (target - today.isoweekday()) % 7  # days until the coming one (0: today)
    monday = today - timedelta(days=today.weekday())
    if match["week"] == "next":
        return monday + timedelta(days=7 + (target - 1) % 7)
    if match["week"] == "this":
        return monday + timedelta(days=(target - 1) % 7)
    if match["which"] == "next":
        if ahead and (target - 1) % 7 > today.weekday():  # later this week: which one?
            soon, late = today + timedelta(days=ahead), today + timedelta(days=ahead + 7)
            at_text = f" at {match['time']}" if match["time"] else ""
            raise InvalidSchedule(
                f"Which {name}: this week's ({soon:%Y-%m-%d}) or next week's "
                f"({late:%Y-%m-%d})? Say 'this {name.lower()}{at_text}' or "
                f"'{name.lower()} next week{at_text}'."
            )
        return today + timedelta(days=ahead or 7)
    day = today + timedelta(days=ahead)
    if ahead == 0 and match["which"] != "this" and at and not ctx.later(ctx.wall(day, at)):
        day += timedelta(days=7)  # "on monday at 9", said on a Monday after 9
    return day


def _at_time(match: re.Match[str], ctx: _Context) -> Reading:
    at = _parse_time(match["time"] or match["time2"])
    return ctx.once(ctx.next_day(at), at)


def _every(match: re.Match[str], ctx: _Context) -> Reading | None:
    exact = _parse_duration(match["dur"])
    if exact is None:
        return None
    if exact.denominator != 1:
        whole = math.ceil(exact)
        raise InvalidSchedule(
            f"{match[0]!r} is {float(exact):g} seconds: an interval is a whole number of "
            f"seconds; say e.g. 'every {whole} second{'s' if whole > 1 else ''}'"
        )
    seconds = int(exact)
    Interval(seconds=seconds, tz=ctx.tz)  # range check first: a clearer error than an overflow
    start = (ctx.now.astimezone(_UTC) + timedelta(seconds=seconds)).astimezone(ctx.zone)
    return Reading(Interval(seconds=seconds, tz=ctx.tz, start=start))


def _vague(match: re.Match[str], ctx: _Context) -> Reading:
    """Answer "weekly", "every month" and the like with a question: which day, what time?"""
    word = match[0]
    example = {
        "weekly": "every monday at 9:00",
        "every week": "every monday at 9:00",
        "monthly": "on the 1st of every month at 9:00",
        "every month": "on the 1st of every month at 9:00",
    }.get(word, "every year on January 1 at 9:00")
    raise InvalidSchedule(f"On which day, and at what time, {word}? Say e.g. '{example}'.")


def _from_month_end(match: re.Match[str], ctx: _Context) -> Reading:
    """Refuse "the last day (or friday) of the month" plainly: no crontab field holds it."""
    raise InvalidSchedule(
        f"a day counted from the end of the month ({match['last']!r}) is not supported: "
        "crontab has no such field. Say e.g. 'on the 1st of every month at 9:00', or "
        "'on the 28th of every month at 9:00' (a day every month has)."
    )


_ONE_DAY = (
    r"(?P<ref>today|tomorrow|day after tomorrow|tonight|this(?= "
    r"(?:morning|afternoon|evening|night)))"
    rf"|(?:(?P<which>next|this|on) )?(?P<day>{_DAY})(?: (?P<week>next|this) week)?"
    rf"|(?:on )?{_DATE}"
)

# Tried in order against the whole (lower-cased, space-normalised) text.
_RULES: tuple[tuple[re.Pattern[str], _Rule], ...] = tuple(
    (re.compile(pattern), rule)
    for pattern, rule in (
        (r"in (?P<dur>.+)", _in),
        (_ISO_RE.pattern, _iso),
        (r"hourly|(?:hourly|(?:every|each) hour) at :?(?P<minute>[0-9]{1,2})", _hourly),
        (rf"(?P<lead>(?:every|each) month on (?:the )?|monthly on (?:the )?|(?:on )?(?:the )?)"
         rf"{_NTH}(?P<tail> (?:day )?of (?:every|each) month)?{_AT}?", _monthly),
        (rf"(?P<lead>(?:every|each) year on |(?:yearly|annually) on |every |each |on )?"
         rf"{_DATE}(?P<tail> (?:every|each) year)?{_AT}?", _yearly),
        (rf"(?:every|each) (?:other|second|(?P<n>[0-9]{{1,3}})(?:nd|rd|th)?) "
         rf"(?P<unit>days?|weeks?)(?: on (?P<days>{_DAYS}))?{_AT}?", _stride),
        (rf"(?:every|each) other (?P<days>{_DAY})(?P<unit>){_AT}?", _stride),
        (rf"(?:(?P<every>every|each|on) )?(?P<set>day|days|daily|everyday|weekdays?|workdays?"
         rf"|weekends?|{_DAYS})(?: except (?P<except>{_DAYS}))?{_AT}?", _weekly),
        (rf"(?:{_ONE_DAY})(?: {_PART})?{_AT}?", _on_day),
        (rf"at {_TIME}|(?P<time2>noon|midnight)", _at_time),
        (rf"(?=.*\bmonth\b).*?(?P<last>last (?:day|weekday|{_DAY}))\b.*", _from_month_end),
        (r"weekly|monthly|yearly|annually|every week|every month|every year", _vague),
        (r"(?:every|each) (?P<dur>.+)", _every),
        (r"@[a-z]+|[0-9*][0-9a-z*,/-]*(?: [0-9a-z*,/-]+){2,6}", _cron_line),
    )
)  # fmt: skip


_QUESTION_END = re.compile(r"(?<=[a-z0-9.])[.!?…]*\?[.!?…]*$")
"""Sentence punctuation holding a "?" at the end of a word ("at 9?", "9 a.m.?"). Not after
a space or a ``*``: "0 0 12 * * ?" is a Quartz line (noon), which read without its "?"
would be a five-field line of another meaning."""


def _normalise(text: str) -> str:
    """Lower case, single spaces, tight commas, no final sentence punctuation, the time last.

    A clear time written first moves to the end: "9am tomorrow" is read as "tomorrow at 9am".
    """
    normal = " ".join(text.lower().split())
    # A final "." "!" or "…" may stand after a space ("at 9 ..."): no line means it.
    normal = _QUESTION_END.sub("", re.sub(r" ?, ?", ",", normal)).rstrip(".!… ")
    moved = re.fullmatch(
        rf"(?:at )?(?P<t>{_CLEAR_TIME}|(?<=at )[0-9]{{1,2}}) (?P<rest>[a-z].*)", normal
    )
    if moved and not moved["rest"].startswith("at "):
        normal = f"{moved['rest']} at {moved['t']}"
    return normal


def read_schedule(text: str, *, tz: str, now: datetime) -> Reading:
    """Read what a person said into a schedule in ``tz``, checked against ``now``.

    Args:
        text: E.g. "tomorrow morning", "every weekday except friday at 9", "0 9 * * 1-5".
        tz: IANA zone the words mean (wall times, "today").
        now: The current time; naive means wall time in ``tz``.

    Returns:
        The schedule, and a note when vague words were given an hour.

    Raises:
        InvalidSchedule: Not understood (the message lists the accepted forms), ambiguous
            (the message is a question for the user), an invalid value, or in the past.

    Example:
        >>> reading = read_schedule("tomorrow morning", tz="UTC", now=datetime(2026, 3, 2, 12))
        >>> reading.schedule.describe()
        'once at 2026-03-03 09:00 UTC (UTC)'
    """
    zone = check_timezone(tz)
    now = (resolve_wall(now, zone) if now.tzinfo is None else now).astimezone(zone)
    ctx = _Context(zone, tz, now)
    normal = _normalise(text)
    if len(normal) <= 200:
        for pattern, rule in _RULES:
            match = pattern.fullmatch(normal)
            if match:
                try:
                    reading = rule(match, ctx)
                except OverflowError:  # a date past the end of the calendar (year 9999)
                    raise InvalidSchedule(f"{text[:100]!r} is too far in the future") from None
                if reading is not None:
                    reading.schedule.check(now)
                    return reading
    raise InvalidSchedule(f"could not understand the schedule {text[:100]!r}.\n{ACCEPTED_FORMS}")
