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
* "in 2 days" and "in a week" are the time of day it is now, that many days on, also across
  a DST change (a time that day skips runs when the clocks jump; a repeated one in its
  first pass); hours, minutes and seconds are elapsed time: "in 36 hours" is 129,600 s on,
  "in 1 day and 2 hours" two hours after this time tomorrow.
* "in 3 months", "in a year", "in half a year" (6 months) move the date on the calendar
  the same way, months first: "in 1 month" on January 31 is the last day of February, and
  the note says so. Months are whole ("in 1.5 years" is 18): "in 1.5 months" is refused,
  naming days or weeks to say instead.
* "next friday" said on a Tuesday could be this week's or next week's: also a question.
  (Weeks start on Monday, so "next monday" is never ambiguous.) So is "tomorrow" said
  before 04:00, when the person may not have slept yet: today, or the day after?
* Sentence punctuation at the end is ignored: "every day at 9?" is "every day at 9".
* A night keeps its small hours: "tonight at midnight" and "friday night at 1am" are the
  night after that day; a bare hour after a part of the day follows it ("tonight at 11"
  is 23:00). "today at midnight" is the midnight that ends today (the note says so); a
  named day at midnight ("tomorrow at midnight", "every friday at midnight") is a
  question: the midnight that begins that day, or the one that ends it?
* A time alone ("at 9", "5pm") is its next coming, today or tomorrow; the note names the day.
* Several times a day are one cron line ("every day at 9 and 5pm" is ``0 9,17 * * *``) when
  they share their minutes; "at 9:00 and 17:30" is refused, naming the two schedules to make.
  A bare hour said after a later one ("at 9 and 5") is a question: 05:00 or 17:00?
* A step on some days or between two hours is a cron line on the clock, counted from :00
  (or 00:00), not from now: "every 30 minutes on weekdays" is ``*/30 * * * 1-5``. A window
  ends at its second hour, which does not fire: "every 15 minutes between 9 and 17" is
  ``*/15 9-16 * * *``, last run 16:45, and the note says so. Steps must divide the hour (or,
  without a window, the day); windows run between whole hours.
* "… starting <day or time>" sets a repeating schedule's start: its first fire at or after
  that time (00:00 of a day said alone, Monday for "next week"); an "every other day" stride
  counts from it. An interval needs a time of day to start at.
* "… until <day or time>" sets its end, which is included: "every 2 hours until 18:00" runs
  at 18:00 too, and a day said alone ("until friday", "until 2027-03-31", "until the end of
  march") runs to the end of that day; a time the clocks skip in spring ("until 02:45" on a
  night that goes 02:00 -> 03:00) ends just before they jump, as every earlier time on the
  clock does, and not at 03:00. The note names the last run. A one-off has no end;
  "until next week" is a question (its start, or its end?).
* A time said with the start or the end of a schedule that names none is the time of every
  run: "every day starting monday at 9" (or "9am every day starting monday") runs at 09:00.
* A part of the day may follow named days: "every monday morning at 8", "weekday mornings
  at 7", "every friday evening at 6" (18:00); "every friday night at 1am" is early on
  Saturdays.
* "every morning", "twice a day" and the like are answered with a question, not a guess.

Every problem raises :class:`~langgraph_scheduler.errors.InvalidSchedule`; for ambiguous input
its message starts with a question the model can put to the user.
"""

from __future__ import annotations

import calendar
import math
import re
from collections.abc import Callable, Iterable
from contextlib import suppress
from dataclasses import dataclass
from datetime import MAXYEAR, date, datetime, time, timedelta, timezone, tzinfo
from decimal import Decimal
from fractions import Fraction
from zoneinfo import ZoneInfo

from ._cron import after_end, iso_day, parse_cron, resolve_end, resolve_wall, skipped_walls
from .errors import InvalidSchedule
from .schedules import (
    ACCEPTED_FORMS,
    LONGEST_STRIDE,
    Cron,
    Interval,
    Once,
    check_timezone,
    zone_hint,
    zone_in_words,
    zone_name,
)

__all__ = ["Reading", "dst_note", "read_schedule"]

_UTC = timezone.utc
_MAX_CHARS = 200
"""The longest schedule read, counted as the rules read it (spaces run together): a
schedule is a short phrase or a cron line."""


@dataclass(frozen=True)
class Reading:
    """A schedule read from words, and how vague words were read."""

    schedule: Cron | Interval | Once
    note: str | None = None
    """E.g. ``"tomorrow morning" is read as 09:00 …``; show it to the user with the run times."""
    skipped: datetime | None = None
    """For a one-off at a wall time a spring change skips: that naive wall time (the
    one-off runs when the clocks jump; an end said so ends just before they do)."""


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
_MONTH_UNITS = {
    "mo": 1, "mos": 1, "month": 1, "months": 1,
    "yr": 12, "yrs": 12, "year": 12, "years": 12,
}  # fmt: skip
"""Units counted on the calendar, in months (a month has no fixed number of seconds)."""
_DAY_SECONDS = 86400


def _alternatives(words: Iterable[str]) -> str:
    """A regex alternation, longest first (so "monday" wins over "mon")."""
    return "|".join(sorted(words, key=len, reverse=True))


_DAY = rf"(?:{_alternatives(_WEEKDAYS)})"
_DAYS = rf"{_DAY}(?:(?:,| and | & |&|,and | or | ){_DAY})*"
_DAY_SET = rf"(?:day|days|daily|everyday|weekdays?|workdays?|weekends?|{_DAYS})"
_MONTH = rf"(?:{_alternatives(_MONTHS)})"
_NTH = r"(?P<dom>[0-9]{1,2})(?:st|nd|rd|th)?"
_DATE = (  # "december 24", "24th of december", optionally with a year
    rf"(?:(?P<month>{_MONTH}) {_NTH}|(?:the )?{_NTH.replace('dom', 'dom2')} (?:of )?"
    rf"(?P<month2>{_MONTH}))(?:(?:,| )(?P<year>[0-9]{{4}}))?"
)
_TIME_WORD = r"(?:noon|midnight|[0-9]{1,2}(?::[0-9]{2})?(?: ?[ap]\.?m\.?)?)"
_AND = r"(?:,| and |,and | & )"
_TIMES = rf"{_TIME_WORD}(?:{_AND}{_TIME_WORD})*"  # "9 and 5pm", "8,12 and 18"
_TIME = rf"(?P<time>{_TIMES})"
_CLEAR_TIME = r"(?:noon|midnight|[0-9]{1,2}:[0-9]{2}(?: ?[ap]\.?m\.?)?|[0-9]{1,2} ?[ap]\.?m\.?)"
# "at" may go before a clear time: "tomorrow 9am", "every day 9am and 5pm"
_AT = rf"(?: (?:at |(?={_CLEAR_TIME}(?:{_AND}{_TIME_WORD})*$)){_TIME})"
_PART = r"(?P<part>morning|afternoon|evening|night)"
_TIME_RE = re.compile(r"(?P<h>[0-9]{1,2})(?::(?P<m>[0-9]{2}))?(?: ?(?P<ampm>[ap])\.?m\.?)?")
_DURATION_PART = re.compile(r" ?(?:(?P<n>[0-9]+(?:\.[0-9]+)?|an?|half an?) ?)?(?P<unit>[a-z]+)")
_ISO_DATE = r"(?:[0-9]{4}|[1-9][0-9]{4,})-[0-9]{2}-[0-9]{2}"
"""An ISO date; its year may be wider than four digits (then past the calendar's end)."""
_ISO_RE = re.compile(
    rf"(?P<date>{_ISO_DATE})[t ](?P<h>[0-9]{{2}}):(?P<m>[0-9]{{2}})"
    r"(?::(?P<s>[0-9]{2}))?(?P<offset>z|[+-][0-9]{2}:?[0-9]{2})?"
)


# --------------------------------------------------------------------------- pieces


@dataclass(frozen=True)
class _Context:
    """What every rule needs: the zone the words mean, the time they were said, and the
    words as the person gave them (the rules read them normalised)."""

    zone: ZoneInfo
    tz: str
    now: datetime  # aware, in ``zone``
    text: str  # as given

    def as_written(self, words: str) -> str:
        """``words``, read from the normalised text, as they stand in the text given (its
        case and spacing, and its spaces about commas), to quote in a refusal or a note.

        Whole words only ('mon' is not the start of 'Monday'). Words the normalising moved
        (a time said first is read last) are not found: the whole schedule is the text
        given, other words are quoted as read.
        """
        pieces = (r"\s+".join(map(re.escape, piece.split(" "))) for piece in words.split(","))
        spaced = r"\s*,\s*".join(pieces)
        found = re.search(rf"(?<![a-z0-9]){spaced}(?![a-z0-9])", self.text, re.IGNORECASE)
        if found:
            return found[0]
        return self.text.strip() if words == _normalise(self.text) else words

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
            changed = (
                _skipped_note([wall], self.tz, fire)
                if fire.replace(tzinfo=None) != wall
                else _twice_note(
                    [wall],
                    self.tz,
                    f"it runs at the first, {_show(fire)}; for the second, say "
                    f"'{first.replace(fold=1).isoformat(timespec='minutes')}'",
                )
            )
        notes = [text for text in (changed, note) if text]  # the surprise first
        skipped = wall if fire.replace(tzinfo=None) != wall else None
        return Reading(Once(fire, tz=self.tz), "; ".join(notes) or None, skipped)


def _show(moment: datetime) -> str:
    """``Sunday 2026-03-29 09:00 CEST``."""
    return f"{_dated(moment)} {moment:%H:%M %Z}".strip()


def _dated(day: date) -> str:
    """``Sunday 2026-03-29`` (the year in four digits, see :func:`iso_day`)."""
    return f"{day:%A} {iso_day(day)}"


def _walls(walls: list[datetime]) -> str:
    """``02:00 and 02:30 on Sunday 2026-03-29``: wall times of one night, as said."""
    clocks = [f"{wall:%H:%M}" for wall in walls]
    said = clocks[0] if len(clocks) == 1 else f"{', '.join(clocks[:-1])} and {clocks[-1]}"
    return f"{said} on {_dated(walls[0])}"


def _skipped_note(walls: list[datetime], tz: str, fire: datetime) -> str:
    """The note for times a spring change skips: they run once, when the clocks jump."""
    once = "once, " if len(walls) > 1 else ""
    skipped = f"the clocks skip {_walls(walls)} in {tz}"
    return f"{skipped}: it runs {once}at {_show(fire)}, when they jump"


def _twice_note(walls: list[datetime], tz: str, what: str) -> str:
    """The note for times an autumn change repeats, saying ``what`` runs."""
    verb = "comes" if len(walls) == 1 else "come"
    return f"{_walls(walls)} {verb} twice in {tz} as the clocks go back: {what}"


def dst_note(schedule: Cron | Interval | Once, runs: Iterable[datetime]) -> str | None:
    """The note for a repeating schedule's previewed ``runs`` that a daylight-saving change
    moves or doubles, in the words of a one-off's (None when none is).

    A cron line's fixed time skipped by a spring change runs when the clocks jump
    (``30 2 * * *`` in Berlin runs at 03:00 on the last Sunday of March); a wildcard line's
    times in an autumn change's repeated hour run in both passes. (An interval counts
    elapsed time, as its description says; a one-off's note comes from its words.)
    """
    if not isinstance(schedule, Cron):
        return None
    zone = schedule.zone
    line, tz = parse_cron(schedule.expr), schedule.tz or str(zone)
    notes: list[str] = []
    doubled: list[datetime] = []
    for run in runs:
        run = run.astimezone(zone)
        skipped = skipped_walls(line, zone, run)
        if skipped:
            notes.append(_skipped_note(skipped, tz, run))
        wall = run.replace(tzinfo=None, fold=0)
        twice = run.replace(fold=0).utcoffset() != run.replace(fold=1).utcoffset()
        if twice and not line.fixed_time and wall not in doubled:
            doubled.append(wall)
    days = sorted({wall.date() for wall in doubled})
    for day in days:
        walls = [wall for wall in doubled if wall.date() == day]
        notes.append(_twice_note(walls, tz, "it runs in both passes"))
    return "; ".join(notes) or None


def _clock(at: time) -> str:
    return f"{at.hour:02d}:{at.minute:02d}"


def _parse_time(text: str, ctx: _Context, part: str | None = None) -> time:
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
        said = ctx.as_written(text)
        raise InvalidSchedule(
            f"{said!r} is not a valid time: use 24-hour 'HH:MM' like 09:00 or 18:30, "
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
    number of seconds from a fraction. Days count 86,400 s each here: for a repeating step.
    """
    split = _split_duration(text)
    if split is None or split[0]:
        return None  # months have no fixed length: no step
    return split[1] * _DAY_SECONDS + split[2]


def _split_duration(text: str) -> tuple[Fraction, int, Fraction] | None:
    """A duration as calendar months, whole calendar days and elapsed seconds: ``1 day 2
    hours`` is ``(0, 1, 7200)``, ``2 weeks`` ``(0, 14, 0)``, ``1.5 days`` ``(0, 1, 43200)``
    (a fraction of a day is elapsed time), ``36 hours`` ``(0, 0, 129600)``, ``1 year and 2
    months`` ``(14, 0, 0)`` (months as said: the caller refuses a fraction); None when it is
    no duration."""
    text = re.sub(r" ?(?:,| and ) ?", " ", text)
    months, days, seconds, pos = Fraction(0), Fraction(0), Fraction(0), 0
    while pos < len(text):
        match = _DURATION_PART.match(text, pos)
        unit = match["unit"] if match else ""
        if not match or (unit not in _UNITS and unit not in _MONTH_UNITS):
            return None
        count = match["n"] or "1"
        if count.startswith("half"):
            amount = Fraction(1, 2)
        else:
            amount = Fraction(1 if count in ("a", "an") else count)
        if unit in _MONTH_UNITS:
            months += amount * _MONTH_UNITS[unit]
        elif _UNITS[unit] % _DAY_SECONDS:
            seconds += amount * _UNITS[unit]
        else:
            days += amount * (_UNITS[unit] // _DAY_SECONDS)
        pos = match.end()
    if not pos:
        return None
    whole = math.floor(days)
    return months, whole, seconds + (days - whole) * _DAY_SECONDS


def _counted(months: int, days: int = 0) -> str:
    """``1 month``, ``2 years``, ``1 year and 2 months``, ``1 year, 3 months and 18 days``."""
    years, months = divmod(months, 12)
    units = ((years, "year"), (months, "month"), (days, "day"))
    return _join_words([f"{n} {unit}{'s' if n > 1 else ''}" for n, unit in units if n])


def _add_months(day: date, months: int) -> tuple[date, str | None]:
    """``day`` moved ``months`` on the calendar, and a note when the target month has no such
    day: then it is the month's last day (January 31 + 1 month is February 28 or 29).

    Raises:
        OverflowError: Past the calendar's end (year 9999).
    """
    year, month = divmod(day.year * 12 + day.month - 1 + months, 12)
    if year > MAXYEAR:
        raise OverflowError
    last = calendar.monthrange(year, month + 1)[1]
    moved = date(year, month + 1, min(day.day, last))
    if moved.day == day.day:
        return moved, None
    return moved, (
        f"{_counted(months)} after {_dated(day)} falls in {moved:%B} {moved.year:04d}, "
        f"which has no day {day.day}: it counts as that month's last day, "
        f"{_dated(moved)}"
    )


def _whole_months(months: Fraction, said: str) -> int:
    """``months`` as a whole number, or a refusal naming what to say instead (a month
    counted as 30 days): "in 1.5 months" could be 'in 1 month and 15 days' or 'in 45 days'."""
    if months.denominator == 1:
        return int(months)
    days = max(1, round(months * 30))
    whole = math.floor(months)
    rest = round((months - whole) * 30)
    examples = [f"'in {_counted(0, days)}'"]
    if days >= 14:
        examples.insert(0, f"'in {round(Fraction(days, 7))} weeks'")
    if whole and rest:
        examples.insert(0, f"'in {_counted(whole, rest)}'")
    options = ", ".join(examples[:-1]) + f" or {examples[-1]}" if len(examples) > 1 else examples[0]
    raise InvalidSchedule(
        f"{said!r} has a fraction of a month, and months are counted whole on the calendar "
        f"(a month has no fixed number of days): say e.g. {options}"
    )


def _weekday_set(text: str) -> set[int]:
    """``mon,wed,fri`` / ``monday and thursday`` -> crontab numbers {1, 3, 5}."""
    return {_WEEKDAYS[name] for name in re.split(r"[ ,&]+|\band\b|\bor\b", text) if name}


def _cron_list(values: Iterable[int], size: int) -> str:
    """A crontab field: ``*`` for all ``size`` values, else runs of three or more as ranges
    (``1-5``, ``0,6``, ``9,17``)."""
    runs: list[list[int]] = []
    for value in sorted(set(values)):
        if runs and value == runs[-1][-1] + 1:
            runs[-1].append(value)
        else:
            runs.append([value])
    if sum(map(len, runs)) == size:
        return "*"
    return ",".join(
        f"{run[0]}-{run[-1]}" if len(run) > 2 else ",".join(map(str, run)) for run in runs
    )


def _cron_step(step: int) -> str:
    """A crontab step over a whole field: ``*/15``, or ``*`` for every value."""
    return "*" if step == 1 else f"*/{step}"


def _cron_days(days: set[int]) -> str:
    """Crontab day-of-week field: ``*``, ``1-5``, ``0,6``."""
    return _cron_list(days, 7)


def _either_half(word: str, at: time, before: time) -> None:
    """Ask which half of the day a bare hour said after a later time means: "9 and 5" is
    more likely 17:00 than 05:00, but the 24-hour rule would read 05:00."""
    later = time(at.hour + 12, at.minute) if at.hour < 12 else at
    if re.fullmatch(r"(?:[1-9]|1[01])(?::[0-9]{2})?", word) and at < before < later:
        raise InvalidSchedule(
            f"Do you mean {_clock(at)} or {_clock(later)}? Say '{word}am' or '{word}pm'."
        )


def _parse_times(text: str, ctx: _Context, part: str | None = None) -> list[time]:
    """``9 and 5pm``, ``8,12 and 18`` -> the times, sorted (see :func:`_parse_time`)."""
    times: list[time] = []
    for word in re.split(_AND, text):
        at = _parse_time(word, ctx, part)
        if times and part is None:
            _either_half(word, at, times[-1])
        times.append(at)
    return sorted(set(times))


def _one_time(match: re.Match[str], ctx: _Context, part: str | None = None) -> time:
    """The one time of a one-off; several ("tomorrow at 9 and 17") are refused, naming the
    recurring form a person may have meant."""
    times = _parse_times(match["time"], ctx, part)
    if len(times) > 1:
        said, first = ctx.as_written(match[0]), match[0].replace(match["time"], _clock(times[0]))
        raise InvalidSchedule(
            f"{said!r} names {len(times)} times, and a one-off runs once: say one time, e.g. "
            f"{first!r}, and schedule each of the others on its own; or, for every day, say "
            f"'every day at {match['time']}'"
        )
    return times[0]


def _clock_fields(match: re.Match[str], ctx: _Context, part: str | None = None) -> tuple[str, str]:
    """The minute and hour fields of the times said: "at 9 and 17" is ``0`` and ``9,17``.

    One cron line fires at each of its minutes in each of its hours, so times that do not
    form such a grid ("at 9:00 and 17:30") are refused with the two schedules to make.
    """
    times = _parse_times(match["time"], ctx, part)
    minutes = {at.minute for at in times}
    hours = {at.hour for at in times}
    if len(times) != len(minutes) * len(hours):
        said, each = match[0], [_clock(at) for at in times]
        tasks = " and ".join(f"{said.replace(match['time'], clock)!r}" for clock in each)
        raise InvalidSchedule(
            f"Shall these be {len(times)} tasks? {_join_words(each)} are at different minutes "
            f"of the hour, and one schedule runs at the same minutes in each hour it names: "
            f"say {tasks}, one for each task."
        )
    return _cron_list(minutes, 60), _cron_list(hours, 24)


def _join_words(words: list[str]) -> str:
    """``a``, ``a and b``, ``a, b and c``."""
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} and {words[-1]}"


def _join_days(days: set[int]) -> str:
    """``Mondays``, ``Mondays and Thursdays`` (Monday first)."""
    return _join_words([_DAY_NAMES[d] + "s" for d in sorted(days, key=lambda d: (d - 1) % 7)])


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
    """A one-off after a duration: "in 2 days", "in 1 day and 2 hours", "in 90 minutes",
    "in 3 months", "in 1 year and 2 months".

    Months and years, then days and weeks, move the date in the zone, keeping the time of
    day it was said at (across a DST change too, as a person counts them; a time that day
    skips or repeats is read as :meth:`_Context.once` reads it); a month without the day
    (January 31 + 1 month) gives its last day, and the note says so. Hours, minutes and
    seconds are elapsed time, added after.
    """
    split = _split_duration(match["dur"])
    if split is None:
        negative = re.fullmatch(rf"[{_MINUS}]([0-9].*)", match["dur"])
        if negative and _split_duration(negative[1]):
            raise _not_ahead(ctx.as_written(match[0]))  # "in -5 minutes", as "in 0 minutes"
        return None
    said = ctx.as_written(match[0])
    months, days, seconds = _whole_months(split[0], said), split[1], split[2]
    delta = timedelta(seconds=round(seconds))
    if not (months or days or delta):
        raise _not_ahead(said)
    at = ctx.now.time().replace(fold=0)  # the first pass of a repeated time, as ``once``
    # Past the calendar's end this raises OverflowError, which read_schedule reports.
    day, note = _add_months(ctx.today, months)
    day += timedelta(days=days)
    if not delta:
        return ctx.once(day, at, note)
    start = ctx.wall(day, at) if months or days else ctx.now
    fire = (start.astimezone(_UTC) + delta).astimezone(ctx.zone)
    return Reading(Once(fire, tz=ctx.tz), note)


def _not_ahead(said: str) -> InvalidSchedule:
    """The refusal of "in 0 minutes" (and of "in -5 minutes"), quoting ``said``."""
    return InvalidSchedule(f"{said!r} is not in the future: give a positive duration")


def _iso(match: re.Match[str], ctx: _Context) -> Reading:
    offset = match["offset"]
    try:
        wall = time(int(match["h"]), int(match["m"]), int(match["s"] or 0))
        fixed = None
        if offset is not None:
            digits = "0000" if offset == "z" else offset[1:].replace(":", "")
            shift = timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))
            fixed = timezone(-shift if offset.startswith("-") else shift)
        day = _iso_day(match["date"])  # after the rest: only a wide year is past the end
        if fixed is None:
            return ctx.once(day, wall)
        return Reading(Once(datetime.combine(day, wall, fixed).astimezone(ctx.zone), tz=ctx.tz))
    except OverflowError:  # well formed, past the first or last instant a datetime holds
        if match["date"] < "0002":
            raise _BeforeTheCalendar from None
        raise  # read_schedule says so, with the latest time accepted
    except ValueError as exc:
        if isinstance(exc, InvalidSchedule):
            raise
        said = ctx.as_written(match[0])
        raise InvalidSchedule(
            f"{said!r} is not a valid date-time: use e.g. 2026-12-01T09:00 or "
            "2026-12-01T09:00+01:00"
        ) from None


def _iso_day(text: str) -> date:
    """The day of an ISO date (``YYYY-MM-DD``).

    Raises:
        OverflowError: ``text`` is a valid date but for its year, past 9999: too far in
            the future, as "in 10000 years" is.
        ValueError: ``text`` is no valid date (a month 13, a February 30).
    """
    year, _, month_day = text.partition("-")
    if len(year) > 4:
        # The month and day checked in a year of the same length of February.
        date.fromisoformat(f"{2000 if calendar.isleap(int(year)) else 2001}-{month_day}")
        raise OverflowError(f"year {year} is past {MAXYEAR}")
    return date.fromisoformat(text)


def _cron_line(match: re.Match[str], ctx: _Context) -> Reading:
    """A crontab line or @macro. A faulty one is refused quoting the line as written: read
    in any case and spacing, it has the same fault (unless spaces about its commas split
    its fields otherwise; then it is quoted as read)."""
    try:
        return Reading(Cron(match[0], tz=ctx.tz))
    except InvalidSchedule:
        said = ctx.as_written(match[0])
        if said.lower().split() == match[0].split():
            Cron(said, tz=ctx.tz)
        raise


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
    minute, hour = _clock_fields(match, ctx)
    note = (
        f"months without a day {day} are skipped (it fires only in months that have one)"
        if day > 28
        else None
    )
    return Reading(Cron(f"{minute} {hour} {day} * *", tz=ctx.tz), note)


def _yearly(match: re.Match[str], ctx: _Context) -> Reading | None:
    if not (match["tail"] or match["lead"] not in (None, "on ")):
        return None  # a single date: read below
    month = _MONTHS[match["month"] or match["month2"]]
    day = int(match["dom"] or match["dom2"])
    if match["year"]:
        said = ctx.as_written(match[0])
        raise InvalidSchedule(f"{said!r}: a yearly schedule takes no year; leave it out")
    if not 1 <= day <= calendar.monthrange(2000, month)[1]:  # 2000: February has 29 days
        raise InvalidSchedule(f"{_MONTH_NAMES[month - 1]} has no day {day}: give a day that exists")
    when = f"every year on {_MONTH_NAMES[month - 1]} {day}"
    if match["time"] is None:
        raise _need_time(when, f"{when} at 9:00")
    minute, hour = _clock_fields(match, ctx)
    leap_day = (month, day) == (2, 29)
    note = "February 29 exists only in leap years: it fires every four years" if leap_day else None
    return Reading(Cron(f"{minute} {hour} {day} {month} *", tz=ctx.tz), note)


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
    minute, hour = _clock_fields(match, ctx)
    expr = f"{minute} {hour} * * {_cron_days(days or set(range(7)))}"
    first = Cron(expr, tz=ctx.tz).next_fire_times(1, after=ctx.now)[0]
    if unit == "day":
        return Reading(Cron(expr, tz=ctx.tz, start=first, every_days=count))
    return Reading(Cron(expr, tz=ctx.tz, start=first, every_weeks=count))


def _day_set(words: str) -> tuple[set[int], str]:
    """The weekdays a ``_DAY_SET`` word names, and how to say them: ``weekdays`` is
    {1, …, 5} "on weekdays"."""
    if words in ("day", "days", "daily", "everyday"):
        return set(range(7)), "every day"
    if words.startswith(("weekday", "workday")):
        return {1, 2, 3, 4, 5}, "on weekdays"
    if words.startswith("weekend"):
        return {0, 6}, "on weekends"
    days = _weekday_set(words)
    return days, f"on {_join_days(days)}"


def _weekly(match: re.Match[str], ctx: _Context) -> Reading | None:
    """Some days of every week (or every morning, monday evening …) at one or more times."""
    words, part = match["set"], match["part"]
    named = match["dayset"] if part else words  # the days said, if any
    days, label = _day_set(named) if named else (set(range(7)), "every day")
    if part:
        label = f"{label} in the {part}" if named else f"every {part}"
    if (named is None or len(days) == 1) and match["every"] in (None, "on"):
        if not words.endswith("s"):
            return None  # "on monday at 9", "monday morning at 8": one day, read below
    if match["except"]:
        days -= _weekday_set(match["except"])
        if not days:
            said = ctx.as_written(match[0])
            raise InvalidSchedule(f"{said!r} leaves no day: name the days to keep")
    if match["time"] is None:
        raise _need_time(label, f"{match[0]} at {_clock(_PARTS[part]) if part else '9:00'}")
    if match["time"] == "midnight" and part is None and len(days) < 7:
        raise _which_weekly_midnight(days)
    minute, hour = _clock_fields(match, ctx, part)
    times = _parse_times(match["time"], ctx, part)
    small = [at.hour < _PART_HOURS["morning"][0] for at in times] if part == "night" else []
    if any(small):  # "friday night at 1am" is early on Saturday
        if not all(small) and len(days) < 7:
            said = ctx.as_written(match[0])
            raise InvalidSchedule(
                f"{said!r} runs on both sides of midnight, on different days: make two "
                f"tasks; say '{match[0].replace(match['time'], _clock(times[-1]))}' and "
                f"'{match[0].replace(match['time'], _clock(times[0]))}'"
            )
        days = {(day + 1) % 7 for day in days}
        if named:
            said = ctx.as_written(match[0])
            note = f"{said!r} runs in the small hours after that night: on {_join_days(days)}"
            return Reading(Cron(f"{minute} {hour} * * {_cron_days(days)}", tz=ctx.tz), note)
    return Reading(Cron(f"{minute} {hour} * * {_cron_days(days)}", tz=ctx.tz))


class _Which(InvalidSchedule):
    """A question between two readings of the words, with the two answers (each of which
    parses) kept apart from its text, so a caller that read the words inside a longer
    schedule can say them whole (see :func:`_midnight_within`)."""

    def __init__(self, question: str, answers: tuple[str, str]) -> None:
        super().__init__(f"{question} Say '{answers[0]}' or '{answers[1]}'.")
        self.question = question
        self.answers = answers

    def within(self, before: str) -> _Which:
        """The same question, its answers said after ``before``."""
        first, second = self.answers
        return _Which(self.question, (f"{before} {first}", f"{before} {second}"))


def _which_weekly_midnight(days: set[int]) -> _Which:
    """The question "every friday at midnight" needs (see :func:`_which_midnight`)."""
    after = {(day + 1) % 7 for day in days}
    said = [
        "every " + ",".join(_DAY_NAMES[d][:3].lower() for d in sorted(s, key=lambda d: (d - 1) % 7))
        for s in (days, after)
    ]
    return _Which(
        f"Which midnight: at the start of {_join_days(days)}, or at their end (the start of "
        f"{_join_days(after)})?",
        (f"{said[0]} at 00:00", f"{said[1]} at 00:00"),
    )


def _on_day(match: re.Match[str], ctx: _Context) -> Reading:
    """A single day: today, tomorrow, tonight, next friday, on December 24 …"""
    ref, part, spoken = match["ref"], _part_of(match), match[0]
    said = ctx.as_written(spoken)  # quoted in the notes and refusals below
    if ref in ("tonight", "this"):  # "this evening" is today's
        ref = "today"
    at = _one_time(match, ctx, part) if match["time"] else _PARTS.get(part or "")
    # "tonight at midnight", "friday night at 1am": the small hours after that day
    after_midnight = part == "night" and at is not None and at.hour < 12
    day, where = _named_day(match, ctx, ref, None if after_midnight else at)
    if at is None:
        raise _need_time(where, f"{spoken} at 9:00")
    note = None
    if match["time"] == "midnight" and part is None:
        if ref != "today":
            raise _which_midnight(day)
        # The midnight that began today has passed: only the one that ends it is left.
        day += timedelta(days=1)
        note = f"{said!r} is read as the midnight that ends today ({_show(ctx.wall(day, at))})"
    day += timedelta(days=after_midnight)
    fire = ctx.wall(day, at)
    if not ctx.later(fire):
        raise InvalidSchedule(
            f"{said!r} ({_show(fire)}) has already passed: it is now {_show(ctx.now)} in "
            f"{ctx.tz}. Did you mean a later time, or another day?"
        )
    if match["time"] is None:  # the hour came from the part of the day
        note = f"{said!r} is read as {_clock(at)} ({_show(fire)}); say a time if another is meant"
    return ctx.once(day, at, note)


def _which_midnight(day: date) -> _Which:
    """The question "friday at midnight" needs: people mean the midnight that begins the
    day as often as the one that ends it, a day apart."""
    end = day + timedelta(days=1)
    start_words, end_words = (
        f"{_MONTH_NAMES[d.month - 1]} {d.day} {d.year} at 00:00" for d in (day, end)
    )
    return _Which(
        f"Which midnight: the one that begins {_dated(day)} (the night from "
        f"{day - timedelta(days=1):%A}), or the one that ends it (the night into {end:%A})?",
        (start_words, end_words),
    )


def _part_of(match: re.Match[str]) -> str | None:
    """The part of the day a ``_ONE_DAY`` match names: "tonight" is today's night."""
    return "night" if match["ref"] == "tonight" else match["part"]


def _named_day(
    match: re.Match[str], ctx: _Context, ref: str | None, at: time | None
) -> tuple[date, str]:
    """The day a ``_ONE_DAY`` match names, and how to say it ("tomorrow", "on December 24").

    ``at``, when known, tells whether a named weekday or date is still ahead this time.
    """
    if ref == "tomorrow" and ctx.now.hour < _PART_HOURS["morning"][0]:
        raise _which_day(match[0], ctx)
    if ref in ("today", "tomorrow", "day after tomorrow"):
        day = ctx.today + timedelta(days=("today", "tomorrow", "day after tomorrow").index(ref))
        return day, "the day after tomorrow" if ref.startswith("day") else ref
    if match["month"] or match["month2"]:
        day = _date_of(match, ctx, at or time(23, 59))
        return day, f"on {_MONTH_NAMES[day.month - 1]} {day.day}"
    day = _weekday_date(match, ctx, at)
    return day, f"on {_dated(day)}"


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
        f"Which day do you mean: today, {_dated(today)} (it is {ctx.now:%H:%M} now), or "
        f"{_dated(tomorrow)}? Say '{said_today}' or "
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
                f"Which {name}: this week's ({iso_day(soon)}) or next week's "
                f"({iso_day(late)})? Say 'this {name.lower()}{at_text}' or "
                f"'{name.lower()} next week{at_text}'."
            )
        return today + timedelta(days=ahead or 7)
    day = today + timedelta(days=ahead)
    if ahead == 0 and match["which"] != "this" and at and not ctx.later(ctx.wall(day, at)):
        day += timedelta(days=7)  # "on monday at 9", said on a Monday after 9
    return day


def _at_time(match: re.Match[str], ctx: _Context) -> Reading:
    """A time alone ("at 9", "5pm"): its next coming, today or tomorrow, named in the note."""
    at = _one_time(match, ctx) if match["time"] else _parse_time(match["time2"], ctx)
    day = ctx.next_day(at)
    which = "today" if day == ctx.today else "tomorrow"
    note = f"{ctx.as_written(match[0])!r} is read as the next {_clock(at)}: {which}, {_dated(day)}"
    return ctx.once(day, at, note)


def _every(match: re.Match[str], ctx: _Context) -> Reading | None:
    exact = _parse_duration(match["dur"])
    if exact is None:
        return None
    if exact.denominator != 1:
        whole, said = math.ceil(exact), ctx.as_written(match[0])
        raise InvalidSchedule(
            f"{said!r} is {float(exact):g} seconds: an interval is a whole number of "
            f"seconds; say e.g. 'every {whole} second{'s' if whole > 1 else ''}'"
        )
    seconds = int(exact)
    Interval(seconds=seconds, tz=ctx.tz)  # range check first: a clearer error than an overflow
    start = (ctx.now.astimezone(_UTC) + timedelta(seconds=seconds)).astimezone(ctx.zone)
    return Reading(Interval(seconds=seconds, tz=ctx.tz, start=start))


def _every_within(match: re.Match[str], ctx: _Context) -> Reading | None:
    """A step inside the day on some days, or between two hours: one cron line on the clock.

    "every 30 minutes on weekdays" is ``*/30 * * * 1-5``; "every 15 minutes between 9 and 17"
    is ``*/15 9-16 * * *``: a window ends at its second hour, which does not fire (as a
    working day of 9 to 17 ends at 17:00), and the note names the last run of the day.
    """
    days_said = match["days"] or match["days2"]
    seconds = _parse_duration(match["dur"])
    if seconds is None or not (days_said or match["window"]) or (match["days"] and match["days2"]):
        return None  # plain "every 2 hours": an interval, read below
    days, label = _day_set(days_said) if days_said else (set(range(7)), "every day")
    ends = _window_ends(match, ctx) if match["window"] else None
    hours = list(range(24)) if ends is None else _hours_from(*ends)
    step = int(seconds) if seconds.denominator == 1 else 0
    if step and step % 3600 == 0 and step < 86400 and (ends or 86400 % step == 0):
        hours, minutes = hours[:: step // 3600], [0]
        hour = _cron_step(step // 3600) if ends is None else _cron_list(hours, 24)
        minute = "0"
    elif step and step % 60 == 0 and 3600 % step == 0:
        minutes = list(range(0, 60, step // 60))
        hour, minute = _cron_list(hours, 24), _cron_step(step // 60)
    else:
        hours_fit = "whole hours" if ends else "hours that divide the day (1, 2, 3, 4, 6, 8, 12)"
        said = ctx.as_written(match[0])
        raise InvalidSchedule(
            f"{said!r} cannot be one cron line: it runs on the clock, from :00, so its "
            f"step must be minutes that divide the hour (1, 5, 10, 15, 20, 30) or {hours_fit}; "
            f"say e.g. 'every 15 minutes {match['window'] or label}'"
        )
    if ends is None:
        said = ctx.as_written(match[0])
        note = f"{said!r} runs on the clock (from {'00:00' if minute == '0' else ':00'}), "
        note += "not counted from now"
    else:
        note = (
            f"{ctx.as_written(match['window'])!r} is {_clock(ends[0])} up to {_clock(ends[1])}: "
            f"the last run each day is at {_clock(time(hours[-1], minutes[-1]))}, none at "
            f"{_clock(ends[1])} itself; end the window an hour later to include it"
        )
    return Reading(Cron(f"{minute} {hour} * * {_cron_days(days)}", tz=ctx.tz), note)


def _window_ends(match: re.Match[str], ctx: _Context) -> tuple[time, time]:
    """The two whole hours of "between 9 and 17" / "from 9am to 5pm"."""
    high_said = match["hi"] or match["hi2"]
    low, high = _parse_time(match["lo"] or match["lo2"], ctx), _parse_time(high_said, ctx)
    _either_half(high_said, high, low)
    if low.minute or high.minute or low == high:
        said = ctx.as_written(match["window"])
        raise InvalidSchedule(
            f"{said!r}: a window runs from one whole hour to another, e.g. 'between 9 and 17'"
        )
    return low, high


def _hours_from(low: time, high: time) -> list[int]:
    """The hours from ``low`` up to, not including, ``high`` (across midnight if need be)."""
    return [(low.hour + n) % 24 for n in range((high.hour - low.hour) % 24)]


def _starting(match: re.Match[str], ctx: _Context) -> Reading | None:
    """A repeating schedule and when it starts: "every day at 9 starting next monday".

    The start is the schedule's first fire at or after the day (its 00:00) or time named;
    a stride ("every other day") counts from it.
    """
    body, when = match["body"], match["when"]
    read = _read_repeating(body, when, ctx, "start")
    if read is None:
        return None
    reading, schedule, bound = read
    if isinstance(schedule, Interval):
        if not bound.is_moment:
            day = (
                f"{when} at 9:00"
                if _ONE_DAY_RE.fullmatch(when)
                else f"{iso_day(bound.first)} 09:00"
            )
            said = ctx.as_written(body)
            raise _need_time(f"should {said!r} start", f"{body} starting {day}")
        return Reading(
            Interval(seconds=schedule.seconds, tz=ctx.tz, start=bound.first), reading.note
        )
    plain = Cron(schedule.expr, tz=ctx.tz)
    # in UTC: an instant before, not a wall time before (02:59:59 is skipped on a spring night)
    first = plain.next_fire_times(1, after=bound.first.astimezone(_UTC) - timedelta(microseconds=1))
    if not first:
        raise InvalidSchedule(f"{ctx.as_written(match[0])!r} never fires")
    started = Cron(**{**schedule.model_dump(), "start": first[0]})
    return Reading(started, reading.note)


def _until(match: re.Match[str], ctx: _Context) -> Reading | None:
    """A repeating schedule and when it ends: "every day at 9 until friday".

    The end is included: a fire at the very time said runs, and a day said alone runs to
    its end (23:59:59); a time the clocks skip ends just before they jump. The note names
    the last run.
    """
    body, when = match["body"] + (match["start"] or ""), match["when"]
    read = _read_repeating(body, when, ctx, "end")
    if read is None:
        return None
    reading, schedule, bound = read
    end = bound.last
    if not bound.is_moment and bound.first.date() != end.date():
        raise InvalidSchedule(
            f"Until the start or the end of {when}? Say '{body} until the end of {when}' or "
            f"'{body} until the end of {when.replace('next', 'this')}'."
        )
    jump = after_end(end, ctx.zone)
    ends = f"before {_show(jump)}" if bound.skipped else _show(end)  # see _Bound.skipped
    first = schedule.next_fire_times(1, after=ctx.now)
    if not first or first[0].astimezone(_UTC) > end.astimezone(_UTC):  # not by wall time
        runs = f"its first run would be {_show(first[0])}" if first else "it never runs"
        later = f", e.g. '{body} until {iso_day(first[0])}'" if first else ""
        said = ctx.as_written(match[0])
        raise InvalidSchedule(
            f"{said!r} never runs: it ends {ends}, and {runs}; say a later end{later}"
        )
    ended = type(schedule)(**{**schedule.model_dump(), "end": end})
    until = _show(end) if bound.is_moment else f"the end of {_dated(end)}"
    said = ctx.as_written(f"{match['keyword']} {when}")  # "till friday", as said
    note = f"{said!r} runs up to and including {until}: the last run is "
    if bound.skipped is not None:
        note = (
            f"the clocks skip {_walls([bound.skipped])} in {ctx.tz}: {said!r} runs up "
            f"to {_show(jump)}, when they jump, and not at it: the last run is "
        )
    note += _show(_last_fire(ended, first[0], end))
    return Reading(ended, "; ".join(text for text in (reading.note, note) if text))


def _last_fire(schedule: Cron | Interval, first: datetime, end: datetime) -> datetime:
    """The last fire of a schedule that ends at ``end``: ``first`` (its first) or later.

    Looks back from the end over growing spans, so a dense schedule is not walked from its
    first fire (every second for a year), and a sparse one is still found.
    """
    end, first = end.astimezone(_UTC), first.astimezone(_UTC)  # elapsed time, not wall time
    for days in (1 / 24, 1, 8, 32, 367, 1462):
        after = end - timedelta(days=days)
        if after <= first:
            break
        fires = schedule.next_fire_times(100_000, after=after)
        if fires:
            return fires[-1]
    return schedule.next_fire_times(100_000, after=first - timedelta(microseconds=1))[-1]


def _read_repeating(
    body: str, when: str, ctx: _Context, word: str
) -> tuple[Reading, Cron | Interval, _Bound] | None:
    """The repeating schedule before "starting …" or "until …" (None if no rule takes the
    words; a one-off is refused: it has no ``word``), and the bound named after it (see
    :func:`_bound_of`).

    A schedule that needs a time of day takes the time said in the bound: "every day
    starting monday at 9" runs every day at 9:00, from Monday.
    """
    keyword = "starting" if word == "start" else "until"
    try:
        reading = _read(body, ctx)
    except InvalidSchedule as asked:
        try:
            bound = _bound_of(body, when, ctx, word)
            timed = None if bound.at is None else _read(f"{body} at {_clock(bound.at)}", ctx)
        except InvalidSchedule:
            timed = None
        if timed is None or isinstance(timed.schedule, Once) or bound.at is None:
            raise _keeping(asked, f" {keyword} {when}") from None
        note = f"{_clock(bound.at)} is read as the time of each run, not only the first"
        notes = "; ".join(text for text in (timed.note, note) if text)
        return Reading(timed.schedule, notes), timed.schedule, bound
    if reading is None:
        return None
    if isinstance(reading.schedule, Once):
        said = ctx.as_written(body)
        raise InvalidSchedule(
            f"{said!r} runs once, so it has no {word}: say only when it runs ({said!r}), "
            f"or a repeating schedule, e.g. 'every day at 9:00 {keyword} {when}'"
        )
    return reading, reading.schedule, _bound_after(reading.schedule, body, when, ctx, word)


def _bound_after(
    schedule: Cron | Interval, body: str, when: str, ctx: _Context, word: str
) -> _Bound:
    """The bound said after ``body``; an end said after a start counts from it: "starting
    next monday until friday" is that week's Friday. (An end before the start is refused
    by the caller, counted from now.)"""
    said = re.search(r" (?:starting|beginning) ", body)
    if schedule.start is not None and said and ctx.later(schedule.start):
        with suppress(InvalidSchedule, OverflowError):
            since = _Context(ctx.zone, ctx.tz, schedule.start.astimezone(ctx.zone), ctx.text)
            return _bound_of(body, when, since, word)
    return _bound_of(body, when, ctx, word)


def _keeping(asked: InvalidSchedule, said_after: str) -> InvalidSchedule:
    """The question "At what time …?" with its example ending as the person's words did:
    'every day at 9:00 until friday' for "every day until friday"."""
    if isinstance(asked, _AmountInBound):
        return asked  # read_schedule tells what is wrong with the amount
    example = r"^(At what time .*Say e\.g\. '[^']*)('\.)$"
    return InvalidSchedule(re.sub(example, rf"\g<1>{said_after}\2", str(asked)))


@dataclass(frozen=True)
class _Bound:
    """The day(s) or the moment a "starting …" or "until …" names."""

    first: datetime
    """The moment, or the start (00:00) of the first day named."""
    last: datetime
    """The moment, or the last instant (23:59:59.999999) of the last day named."""
    at: time | None = None
    """The time of day said ("monday at 9"); None for days alone and for "in 2 hours"."""
    skipped: datetime | None = None
    """The naive wall time said, when a spring change skips it (see :class:`Reading`)."""

    @property
    def is_moment(self) -> bool:
        """A moment, not days."""
        return self.first == self.last


def _bound_of(body: str, when: str, ctx: _Context, word: str) -> _Bound:
    """The day(s) or moment of a "starting …" (``word`` "start") or "until …" ("end") said
    after ``body``."""
    days = _days_named(when, ctx)
    if days is not None:
        first, last = days
        if last < ctx.today:
            passed = ctx.as_written(when)
            raise InvalidSchedule(f"{passed!r} has already passed: it is now {_show(ctx.now)}")
        after = ctx.wall(last + timedelta(days=1), time(0)).astimezone(_UTC)
        end = (after - timedelta(microseconds=1)).astimezone(ctx.zone)
        return _Bound(ctx.wall(first, time(0)), end)
    keyword = "starting" if word == "start" else "until"
    try:
        reading = _read(when, ctx)
    except InvalidSchedule as asked:
        raise _midnight_within(asked, f"{body} {keyword}") from None
    if reading is None or not isinstance(reading.schedule, Once):
        said = (
            ("next monday", "tomorrow at 8", "2027-01-04")
            if word == "start"
            else ("friday", "the end of next month", "2027-03-31")
        )
        examples = [f"'{body} {keyword} {day}'" for day in said]
        fault = _AmountInBound if _amount_at_fault(when) else InvalidSchedule
        raise fault(
            f"When should it {word}? {ctx.as_written(when)!r} is no day or time: say e.g. "
            f"{', '.join(examples[:-1])} or {examples[-1]}."
        )
    moment = reading.schedule.at.astimezone(ctx.zone)
    if word == "end" and reading.skipped is not None:  # "until 02:45" on a night 02:00 -> 03:00
        moment = resolve_end(reading.skipped, ctx.zone)
    named = _ONE_DAY_RE.fullmatch(when)
    if named and named["time"]:
        at: time | None = _one_time(named, ctx, _part_of(named))  # as said, not as a gap moves it
    elif reading.skipped is not None:
        at = reading.skipped.time()  # as said, not as a gap moves it
    else:
        at = None if when.startswith("in ") else moment.time()
    return _Bound(moment, moment, at, reading.skipped)


def _midnight_within(asked: InvalidSchedule, before: str) -> InvalidSchedule:
    """The question of :func:`_which_midnight` about a bound, its answers said whole:
    'every 2 hours until March 8 2026 at 00:00'. Other refusals stay as they are."""
    return asked.within(before) if isinstance(asked, _Which) else asked


def _days_named(when: str, ctx: _Context) -> tuple[date, date] | None:
    """The first and last day a day or a span names without a time: "2027-01-04", "friday",
    "next week" (Monday to Sunday), "the end of march" (March 31 alone); else None."""
    iso = re.fullmatch(rf"(?:on )?({_ISO_DATE})", when)
    if iso:
        try:
            day = _iso_day(iso[1])
        except ValueError:
            said = ctx.as_written(when)
            raise InvalidSchedule(f"{said!r} is not a valid date: use e.g. 2027-01-04") from None
        return day, day
    named = _ONE_DAY_RE.fullmatch(when)
    if named and not (named["time"] or named["part"] or named["ref"] == "tonight"):
        day, _ = _named_day(named, ctx, named["ref"], None)
        return day, day
    span = _SPAN_RE.fullmatch(when)
    if span is None or not (span["end"] or span["which"] == "next"):
        return None
    first, last = _span(span, ctx)
    return (last, last) if span["end"] else (first, last)


_SPAN_RE = re.compile(
    rf"(?P<end>(?:the )?end of )?(?:(?P<which>the|this|next) (?P<unit>week|month|year)"
    rf"|(?P<month>{_MONTH})(?: (?P<year>[1-9][0-9]{{3}}))?|(?P<whole>[1-9][0-9]{{3}}))"
)


def _span(match: re.Match[str], ctx: _Context) -> tuple[date, date]:
    """The first and last day of "this week", "next month", "march" (the next March not
    over yet), "march 2027", "2030"."""
    today = ctx.today
    if match["month"]:
        month = _MONTHS[match["month"]]
        year = int(match["year"]) if match["year"] else today.year
        if not match["year"] and month < today.month:
            year += 1
        if year > MAXYEAR:
            raise OverflowError  # reported as too far in the future
    elif match["unit"] == "week":
        monday = today - timedelta(days=today.weekday())
        monday += timedelta(days=7 * (match["which"] == "next"))
        return monday, monday + timedelta(days=6)
    elif match["unit"] == "month":
        month, year = today.month, today.year
        if match["which"] == "next":
            month, year = (1, year + 1) if month == 12 else (month + 1, year)
    else:
        year = int(match["whole"]) if match["whole"] else today.year + (match["which"] == "next")
        return date(year, 1, 1), date(year, 12, 31)
    return date(year, month, 1), date(year, month, calendar.monthrange(year, month)[1])


def _vague(match: re.Match[str], ctx: _Context) -> Reading:
    """Answer "weekly", "every month" and the like with a question: which day, what time?"""
    word = match[0]
    if match["count"]:  # "twice a day": at which times (or on which days)?
        many = 2 if match["count"] == "twice" else 3
        if match["per"] == "week":
            days = "every monday and thursday" if many == 2 else "every mon,wed,fri"
            raise InvalidSchedule(
                f"On which days, and at what time, {word}? Say e.g. '{days} at 9:00'."
            )
        times = "9 and 17" if many == 2 else "8, 13 and 18"
        raise InvalidSchedule(f"At what times, {word}? Say e.g. 'every day at {times}'.")
    example = {
        "weekly": "every monday at 9:00",
        "every week": "every monday at 9:00",
        "monthly": "on the 1st of every month at 9:00",
        "every month": "on the 1st of every month at 9:00",
    }.get(word, "every year on January 1 at 9:00")
    raise InvalidSchedule(f"On which day, and at what time, {word}? Say e.g. '{example}'.")


def _from_month_end(match: re.Match[str], ctx: _Context) -> Reading:
    """Refuse "the last day (or friday) of the month" plainly: no crontab field holds it."""
    said = ctx.as_written(match["last"])
    raise InvalidSchedule(
        f"a day counted from the end of the month ({said!r}) is not supported: "
        "crontab has no such field. Say e.g. 'on the 1st of every month at 9:00', or "
        "'on the 28th of every month at 9:00' (a day every month has)."
    )


_ONE_DAY = (
    r"(?P<ref>today|tomorrow|day after tomorrow|tonight|this(?= "
    r"(?:morning|afternoon|evening|night)))"
    rf"|(?:(?P<which>next|this|on) )?(?P<day>{_DAY})(?: (?P<week>next|this) week)?"
    rf"|(?:on )?{_DATE}"
)
_ONE_DAY_RE = re.compile(rf"(?:{_ONE_DAY})(?: {_PART})?{_AT}?")
_WINDOW = (
    rf"between (?P<lo>{_TIME_WORD}) and (?P<hi>{_TIME_WORD})"
    rf"|from (?P<lo2>{_TIME_WORD}) (?:to|until|till) (?P<hi2>{_TIME_WORD})"
)

# Tried in order against the whole (lower-cased, space-normalised) text.
_RULES: tuple[tuple[re.Pattern[str], _Rule], ...] = tuple(
    (re.compile(pattern), rule)
    for pattern, rule in (
        # "until" outermost, its start read first: "… until friday starting monday" is
        # "… starting monday until friday"; the last "until" ends: "from 9 till 17 until …"
        (r"(?P<body>.+) (?P<keyword>until|till|through) (?P<when>.+?)"
         r"(?P<start> (?:starting|beginning) .+)?", _until),
        (r"(?P<body>.+?) (?:starting|beginning)(?: on| from)? (?P<when>.+)", _starting),
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
        (rf"(?:(?P<every>every|each|on) )?"
         rf"(?P<set>(?:(?P<dayset>{_DAY_SET}) )?{_PART}s?|{_DAY_SET})"
         rf"(?: except (?P<except>{_DAYS}))?{_AT}?", _weekly),
        (_ONE_DAY_RE.pattern, _on_day),
        (rf"at {_TIME}|(?P<time2>{_CLEAR_TIME})", _at_time),
        (rf"(?=.*\bmonth\b).*?(?P<last>last (?:day|weekday|{_DAY}))\b.*", _from_month_end),
        (r"weekly|monthly|yearly|annually|every week|every month|every year"
         r"|(?P<count>twice|three times) (?:a |per )?(?P<per>day|week)|twice daily", _vague),
        (rf"(?:every|each) (?P<dur>.+?)(?: on (?P<days>{_DAY_SET}))?(?: (?P<window>{_WINDOW}))?"
         rf"(?: on (?P<days2>{_DAY_SET}))?", _every_within),
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
        rf"(?:at )?(?P<t>{_CLEAR_TIME}(?:{_AND}{_TIME_WORD})*|(?<=at ){_TIMES})"
        r" (?P<rest>(?!and )[a-z].*)",
        normal,
    )
    if moved and not moved["rest"].startswith("at "):
        normal = f"{moved['rest']} at {moved['t']}"
    return normal


def _read(normal: str, ctx: _Context) -> Reading | None:
    """The reading of the first rule that takes the (normalised) words; None if none does."""
    for pattern, rule in _RULES:
        match = pattern.fullmatch(normal)
        reading = rule(match, ctx) if match else None
        if reading is not None:
            reading.schedule.check(ctx.now)
            return reading
    return None


def read_schedule(text: str, *, tz: str | tzinfo, now: datetime) -> Reading:
    """Read what a person said into a schedule in ``tz``, checked against ``now``.

    Args:
        text: E.g. "tomorrow morning", "every weekday except friday at 9", "0 9 * * 1-5".
        tz: IANA zone the words mean (wall times, "today"): a name or a named ``ZoneInfo``.
        now: The current time; naive means wall time in ``tz``.

    Returns:
        The schedule, and a note when vague words were given an hour.

    Raises:
        InvalidSchedule: Not understood (the message lists the accepted forms, or says what
            is wrong when one amount or one word is all that keeps the words from reading:
            "every -5 minutes", "every 1e3 seconds", "starting in ٥ minutes", a zone in
            them), ambiguous (the message is a question for the user), an invalid value,
            in the past, or longer than 200 characters.

    Example:
        >>> reading = read_schedule("tomorrow morning", tz="UTC", now=datetime(2026, 3, 2, 12))
        >>> reading.schedule.describe()
        'once at 2026-03-03 09:00 (UTC)'
    """
    tz = zone_name(tz)
    zone = check_timezone(tz)
    now = (resolve_wall(now, zone) if now.tzinfo is None else now).astimezone(zone)
    normal = _normalise(text)
    if len(normal) > _MAX_CHARS:
        raise InvalidSchedule(
            f"the schedule is {len(normal)} characters long; the limit is {_MAX_CHARS}: a "
            "schedule is a short phrase such as 'every weekday at 9:00', or a cron line such "
            "as '0 9 * * 1-5'; say only when it runs"
        )
    ctx = _Context(zone, tz, now, text)
    try:
        reading = _read(normal, ctx)
    except _AmountInBound as unread:
        _refuse_amount(normal, ctx, reading=True)
        raise InvalidSchedule(str(unread)) from None
    except OverflowError as exc:  # a time past either end of the calendar
        before = isinstance(exc, _BeforeTheCalendar)
        raise _off_calendar(text, zone, tz, before=before) from None
    if reading is not None:
        return reading
    _refuse_zone_in_words(normal, ctx)
    _refuse_amount(normal, ctx)
    raise InvalidSchedule(f"could not understand the schedule {text[:100]!r}.\n{ACCEPTED_FORMS}")


class _BeforeTheCalendar(OverflowError):
    """A well-formed time before the first instant a datetime holds (year 1)."""


def _off_calendar(text: str, zone: ZoneInfo, tz: str, *, before: bool) -> InvalidSchedule:
    """The refusal of words naming a time past an end of the calendar: the words as the
    person gave them and, for the far end, the latest time a schedule in ``zone`` (named
    ``tz``) takes."""
    said = repr(text[:100])
    if before:
        return InvalidSchedule(f"{said} is too far in the past")
    return InvalidSchedule(
        f"{said} is too far in the future: the latest time accepted is "
        f"{_latest(zone).isoformat()} ({tz})"
    )


def _latest(zone: ZoneInfo) -> datetime:
    """The last whole second of the calendar (9999-12-31 23:59:59) both in UTC and on
    ``zone``'s wall clock: a schedule must name an instant a datetime holds and show it
    in its zone."""
    end = datetime(MAXYEAR, 12, 31, 23, 59, 59)
    offset = zone.utcoffset(end)
    if offset is not None and offset >= timedelta(0):
        return end.replace(tzinfo=zone)
    return end.replace(tzinfo=_UTC).astimezone(zone)


def _outcome(normal: str, ctx: _Context) -> bool | None:
    """True when the words read as a schedule, False when a rule takes them only to ask a
    question or tell a fault of their own, None when no rule takes them (or only to find
    an amount at fault in a start or an end)."""
    try:
        return True if _read(normal, ctx) is not None else None
    except _AmountInBound:
        return None  # another amount at fault
    except (InvalidSchedule, OverflowError):
        return False


def _understood(normal: str, ctx: _Context) -> bool:
    """The words are a schedule, or one with a question or a fault of its own to tell."""
    return _outcome(normal, ctx) is not None


def _refuse_zone_in_words(normal: str, ctx: _Context) -> None:
    """Say where the zone goes when the words end with one ("at 9am PST", "every day at 9
    Berlin time"): told only that they were not understood, a caller would say them again
    without it, in another zone. A word written as a zone name that names none
    ("Mars/Phobos", "Europe/Berln") is said to be none, with the zone it may mean."""
    words = normal.split()
    if words[-1:] == ["time"]:
        words.pop()
    # At the end, or first: a time said first moves to the end ("9am PST" is "pst at 9am").
    splits = [(words[-size:], words[:-size]) for size in (2, 1)]
    splits += [(words[:size], words[size:]) for size in (2, 1)]
    for said_words, rest in splits:
        said = " ".join(said_words)
        if rest[-1:] in (["in"], ["at"]):
            rest = rest[:-1]
        if not rest:
            continue
        written = ctx.as_written(said)
        zone, hint = zone_in_words(said), ""
        if zone is not None:
            what = f"is a timezone: give it as the timezone ({zone!r})"
        elif _looks_like_zone(written):
            what = (
                "looks like a timezone but is no known IANA zone name: give the zone as the "
                "timezone"
            )
            hint = zone_hint(written)
        else:
            continue
        if _understood(" ".join(rest), ctx):
            raise InvalidSchedule(
                f"{written!r} in the schedule {what}, and the schedule without it "
                f"('{' '.join(rest)}'){hint}"
            )


_ZONE_SHAPE = re.compile(r"[a-z][a-z0-9_+-]+(?:/[a-z][a-z0-9_+-]{2,})+", re.IGNORECASE)
"""Area/Location, as IANA zone names are spelt: 'America/Port-au-Prince', 'Etc/GMT+5',
'US/Samoa' (no location is shorter than three letters: 'AM/PM' is none)."""


def _looks_like_zone(written: str) -> bool:
    """A word written as a zone name is ('Mars/Phobos'), or a near spelling of one
    ('europe/berln'); not words such as 'am/pm', nor days or months ('Mon/Wed')."""
    if not _ZONE_SHAPE.fullmatch(written):
        return False
    parts = written.split("/")
    if any(part.lower() in _WEEKDAYS or part.lower() in _MONTHS for part in parts):
        return False
    return all(part[0].isupper() for part in parts) or bool(zone_hint(written))


_MINUS = "\\-\u2212\u2013"
"""What may stand for a minus sign before an amount: "-", a minus sign, an en dash."""
_AMOUNT_RE = re.compile(
    rf"(?:^| )(?P<lead>in|every|each|and) (?P<sign>[{_MINUS}]?)"
    r"(?P<number>(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:e[-+]?\d+)?)(?=$| |[a-z])"
)
"""An amount after "in", "every" or "each", or after "and" in a duration ("in 1 hour and 3
minutes"), in any decimal digits (``\\d`` takes every script's), maybe negative, with a
thousands separator or an exponent."""
_LARGEST_EXPONENT = 20
"""The largest exponent written out (1e20): a larger one is no schedule's."""


def _refuse_amount(normal: str, ctx: _Context, *, reading: bool = False) -> None:
    """Say what is wrong with an amount that is no plain positive number ("every -5 minutes",
    "every ٥ minutes", "every 1e3 seconds", "every 1,000 minutes") when the words would be
    understood with one there: told only that they were not understood, a model guesses
    what to change. (Only then: two faults at once stay "not understood".) With
    ``reading``, only when they read as a schedule with it fixed: the amount of a start or
    an end ("every 2 hours starting in ٥ minutes") is told only so."""
    for found in _AMOUNT_RE.finditer(normal):
        number, negative = found["number"], bool(found["sign"])
        written = _plain_number(number)
        if written is None or (negative and found["lead"] in ("in", "and")):
            # too long to write out; "in -5 minutes" is refused as "in 0 minutes"; "in 1
            # hour and -3 minutes" is not told: the duration is no negative one
            continue
        if found["lead"] == "and" and not _unit_after(normal[found.end("number") :]):
            continue  # "at 9 and 17": a time, not the amount of a duration
        plain, how = written
        if negative == (how is not None):
            continue  # a plain positive number, or two faults at once
        fixed = normal[: found.start("sign")] + plain + normal[found.end("number") :]
        outcome = _outcome(fixed, ctx)
        if outcome is None or (reading and not outcome):
            continue
        example = f"say e.g. {fixed!r}" if outcome else ""
        if how is not None:
            said = ctx.as_written(number)
            raise InvalidSchedule(
                f"the amount {said!r} must be written as a plain number in digits 0-9{how}: "
                f"{example or repr(plain)}"
            )
        words = normal[found.start("number") :].split(" ")
        count = next(
            (n for n in range(len(words), 0, -1) if _split_duration(" ".join(words[:n]))),
            1,
        )
        said = ctx.as_written(f"{found['lead']} {found['sign']}{' '.join(words[:count])}")
        more = f"; {example}" if example else ""
        raise InvalidSchedule(
            f"{said!r} is a negative interval: it must be at least 1 second{more}"
        )


def _unit_after(rest: str) -> bool:
    """``rest`` (the words after an amount) starts with a unit of a duration."""
    unit = re.match(r" ?([a-z]+)", rest)
    return unit is not None and (unit[1] in _UNITS or unit[1] in _MONTH_UNITS)


def _amount_at_fault(words: str) -> bool:
    """``words`` hold an amount after "in", "every", "each" or "and" that is no plain
    positive number."""
    for found in _AMOUNT_RE.finditer(words):
        written = _plain_number(found["number"])
        if found["sign"] or written is None or written[1] is not None:
            return True
    return False


class _AmountInBound(InvalidSchedule):
    """A start or an end that is no day or time and holds an amount at fault ("starting in
    ٥ minutes"): :func:`read_schedule` says what is wrong with the amount when the words
    read with it fixed, and otherwise refuses as an :class:`InvalidSchedule` of this
    message."""


def _plain_number(number: str) -> tuple[str, str | None] | None:
    """``number`` in digits 0-9 ("1e3" is "1000", "1,000" "1000", "٥" "5"), and what it
    was written with that a plain number has not (", with no exponent"; "" for other
    digits; None for none); None when an exponent makes it too long to write out."""
    digits = "".join(str(int(ch)) if ch.isdecimal() else ch for ch in number if ch != ",")
    if "e" in digits:
        if abs(int(digits.partition("e")[2])) > _LARGEST_EXPONENT:
            return None
        return format(Decimal(digits), "f"), ", with no exponent"
    if "," in number:
        return digits, ", with no thousands separator"
    return digits, None if number.isascii() else ""
