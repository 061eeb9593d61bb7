"""Schedules: when a task fires, as validated, JSON-serialisable pydantic models.

Three kinds share one interface (:class:`_BaseSchedule`):

* :class:`Cron` -- a crontab(5) line (Sunday = 0 or 7, day-of-month OR day-of-week),
* :class:`Interval` -- every N seconds of elapsed time,
* :class:`Once` -- a single point in time.

Each builds the matching APScheduler 3 trigger, so previews (:meth:`next_fire_times`) and the
real scheduler agree. :func:`parse_schedule` turns the short English an LLM writes ("every
weekday at 9am", "in 20 minutes") into one of them, and :func:`schedule_from_dict` /
:func:`schedule_to_dict` store them as JSON.

Naive datetimes always mean wall-clock time in the schedule's zone; every problem a person or
a model can fix is raised as :class:`~langgraph_scheduler.errors.InvalidSchedule` by the
constructors and :func:`schedule_from_dict`. (Validating through pydantic directly, e.g. as a
field of another model, yields a ``ValidationError`` whose ``ctx["error"]`` holds it.)
"""

from __future__ import annotations

import difflib
import functools
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from typing import TYPE_CHECKING, Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.combining import OrTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    model_validator,
)
from typing_extensions import Self

from .errors import InvalidSchedule

__all__ = [
    "ACCEPTED_FORMS",
    "Cron",
    "Interval",
    "Once",
    "Schedule",
    "check_timezone",
    "parse_schedule",
    "schedule_from_dict",
    "schedule_to_dict",
]

ACCEPTED_FORMS = """\
Accepted schedule forms (one example each):
- in 20 minutes | in 2h | in 1 hour 30 minutes
- tomorrow at 9:00 | today at 18:30 | at 5pm
- 2026-12-01T09:00 (ISO date-time; an offset like +01:00 or Z is optional)
- every 30 minutes | every 2 hours | every day
- every day at 18:30 | every weekday at 9am | every mon,wed,fri at 8:15
- every weekend at 10:00 | every hour at :15 | every month on the 1st at 9:00
- cron "minute hour day-of-month month day-of-week", e.g. "0 9 * * 1-5" (0 or 7 = Sunday)
- @hourly | @daily | @weekly | @monthly | @yearly"""

_UTC = timezone.utc
_ZONE_EXAMPLE = "use an IANA zone name such as 'Europe/Berlin', 'America/New_York' or 'UTC'"
_NOT_ZONES = frozenset({"localtime", "posixrules", "Factory"})
_MAX_INTERVAL_SECONDS = 366 * 86400


# --------------------------------------------------------------------------- time zones


@functools.cache
def _zone_names() -> dict[str, str]:
    """Map lower-cased zone names to their spelling, for "did you mean" hints."""
    return {name.lower(): name for name in available_timezones() if name not in _NOT_ZONES}


def _zone(name: str) -> ZoneInfo:
    """Load an IANA zone, or raise InvalidSchedule naming it and suggesting a fix."""
    zone: ZoneInfo | None = None
    if name not in _NOT_ZONES:
        try:
            zone = ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError, OSError):
            zone = None
    if zone is not None:
        return zone
    names = _zone_names()
    close = difflib.get_close_matches(name.lower(), list(names), n=1)
    hint = f"; did you mean {names[close[0]]!r}?" if close else ""
    raise InvalidSchedule(f"unknown timezone {name[:80]!r}: {_ZONE_EXAMPLE}{hint}")


def check_timezone(name: str) -> ZoneInfo:
    """The IANA zone ``name``; InvalidSchedule naming it (with a "did you mean") if unknown."""
    return _zone(name)


def _aware(value: datetime, zone: ZoneInfo) -> datetime:
    """Give a naive datetime the zone (wall time); leave an aware one as it is."""
    return value.replace(tzinfo=zone) if value.tzinfo is None else value


def _in_zone(value: datetime, zone: ZoneInfo) -> datetime:
    """The same instant as a real wall time in ``zone`` (also normalises DST-gap times)."""
    return _aware(value, zone).astimezone(_UTC).astimezone(zone)


def _fmt(value: datetime, zone: ZoneInfo | None) -> str:
    """Short human form, e.g. ``2026-12-01 09:00 CET`` (seconds only when not zero)."""
    if zone is not None:
        value = _in_zone(value, zone)
    pattern = "%Y-%m-%d %H:%M:%S" if value.second else "%Y-%m-%d %H:%M"
    text = value.strftime(pattern)
    return f"{text} {value.strftime('%Z')}" if value.tzinfo is not None else text


def _pin_offset(value: datetime) -> datetime:
    """Give an aware datetime a fixed UTC offset (same instant, same wall time).

    PEP 495 makes a zone-aware time inside a DST overlap compare unequal to every other
    zone's datetime, so without this a stored schedule would not equal its JSON round trip.
    """
    offset = value.utcoffset()
    return value if offset is None else value.astimezone(timezone(offset))


# A naive datetime is wall time in the schedule's zone; an aware one is kept as that instant.
_Moment = Annotated[datetime, AfterValidator(_pin_offset)]


def _add_elapsed(value: datetime, delta: timedelta, zone: ZoneInfo) -> datetime:
    """``value + delta`` as elapsed time (through UTC, so DST changes shift the wall clock)."""
    try:
        return (_aware(value, zone).astimezone(_UTC) + delta).astimezone(zone)
    except OverflowError:
        raise InvalidSchedule(
            f"{_fmt(value, zone)} plus {delta} is too far in the future"
        ) from None


# --------------------------------------------------------------------------- crontab(5)


@dataclass(frozen=True)
class _CronField:
    """One column of a crontab line: its name, numeric range and accepted names."""

    name: str
    low: int
    high: int
    names: tuple[str, ...] = ()  # names[i] is the value low + i (or i for day-of-week)

    @property
    def allowed(self) -> str:
        """The allowed values, as shown in error messages."""
        text = f"{self.low}-{self.high}"
        if self.names:
            text += f" or {self.names[0]}-{self.names[-1]}"
        return text


_MINUTE = _CronField("minute", 0, 59)
_HOUR = _CronField("hour", 0, 23)
_DOM = _CronField("day-of-month", 1, 31)
_MONTH = _CronField(
    "month",
    1,
    12,
    ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"),
)
_DOW = _CronField("day-of-week", 0, 7, ("sun", "mon", "tue", "wed", "thu", "fri", "sat"))
_FIELDS = (_MINUTE, _HOUR, _DOM, _MONTH, _DOW)
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
_ITEM_RE = re.compile(r"(?P<first>\*|[0-9a-z]+)(?:-(?P<last>[0-9a-z]+))?(?:/(?P<step>[0-9]+))?")
_MONTH_DAYS = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)  # longest possible, Feb = 29
_APS_WEEKDAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")  # index = crontab number
_WEEKDAY_NAMES = ("Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday")
_MONTH_NAMES = (
    "January", "February", "March", "April", "May", "June",
    "July", "August", "September", "October", "November", "December",
)  # fmt: skip


@dataclass(frozen=True)
class _CronSpec:
    """A validated crontab line, expanded to explicit value sets (day-of-week 0-6, 0=Sunday)."""

    minute: frozenset[int]
    hour: frozenset[int]
    dom: frozenset[int]
    month: frozenset[int]
    dow: frozenset[int]
    dom_star: bool  # the field starts with "*": crontab(5) then ANDs instead of ORs
    dow_star: bool

    @property
    def dom_or_dow(self) -> bool:
        """Both day fields are restricted, so a day matching either one fires (crontab(5))."""
        return not (self.dom_star or self.dow_star)

    @property
    def dom_can_match(self) -> bool:
        """Some selected month has one of the selected days (``30 2`` never exists)."""
        return any(day <= _MONTH_DAYS[m - 1] for m in self.month for day in self.dom)


def _cron_value(token: str, field: _CronField, item: str) -> int:
    """A single number or name of ``field``, range-checked."""
    if token in field.names:
        return field.names.index(token) + (field.low if field is _MONTH else 0)
    if not token.isdigit() or len(token) > 4 or not field.low <= int(token) <= field.high:
        where = f" (in {item!r})" if item != token else ""
        raise InvalidSchedule(
            f"{token!r}{where} is not a valid {field.name}: allowed {field.allowed}"
        )
    return int(token)


def _expand_item(item: str, field: _CronField) -> set[int]:
    """Expand one list item (``*``, ``5``, ``1-5``, ``*/15``, ``1-5/2``, ``mon-fri``)."""
    match = _ITEM_RE.fullmatch(item)
    if not match:
        raise InvalidSchedule(
            f"{item!r} is not a valid {field.name} entry: use a value ({field.allowed}), "
            "a range like 1-5, a list like 1,3,5 or a step like */15"
        )
    first, last, step_text = match["first"], match["last"], match["step"]
    top = 6 if field is _DOW else field.high  # 7 only aliases Sunday
    step = int(step_text[:4]) if step_text else 1
    if step == 0:
        raise InvalidSchedule(f"step 0 in {item!r} ({field.name}): a step must be 1 or more")
    if first == "*":
        if last is not None:
            raise InvalidSchedule(f"{item!r} is not valid ({field.name}): write '*' or a range")
        return set(range(field.low, top + 1, step))
    low = _cron_value(first, field, item)
    if last is None:
        # "5/15" (no range) means "5-max/15", as in Vixie cron and APScheduler.
        return {low} if step_text is None else set(range(low, top + 1, step))
    high = _cron_value(last, field, item)
    if low <= high:
        return set(range(low, high + 1, step))
    if field is _DOW:  # wrapping weekday range, e.g. fri-mon = fri,sat,sun,mon
        return {(low + i) % 7 for i in range(0, (high - low) % 7 + 1, step)}
    raise InvalidSchedule(
        f"range {item!r} ({field.name}) goes backwards: write the smaller value first, "
        f"or split it into two ranges such as '{first}-{field.high},{field.low}-{last}'"
    )


def _expand_field(text: str, field: _CronField) -> frozenset[int]:
    """Expand a whole comma list of one field into its set of values."""
    values: set[int] = set()
    for item in text.split(","):
        values |= _expand_item(item, field)
    if field is _DOW:
        values = {v % 7 for v in values}
    return frozenset(values)


@functools.lru_cache(maxsize=512)
def _parse_cron(expr: str) -> _CronSpec:
    """Validate a crontab(5) line or @macro and expand it; raise InvalidSchedule if unusable."""
    text = expr.strip().lower()
    if text.startswith("@"):
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
    spec = _CronSpec(
        minute, hour, dom, month, dow, parts[2].startswith("*"), parts[4].startswith("*")
    )
    if not spec.dom_or_dow and not spec.dom_can_match:
        raise InvalidSchedule(
            f"cron line {expr[:80]!r} can never fire: none of the selected months has "
            f"day {min(spec.dom)}"
        )
    return spec


def _aps_field(values: frozenset[int], field: _CronField) -> str:
    """An APScheduler field value: ``*`` or an explicit list (weekdays as names)."""
    top = 6 if field is _DOW else field.high
    if values == frozenset(range(field.low, top + 1)):
        return "*"
    if field is _DOW:
        return ",".join(_APS_WEEKDAYS[v] for v in sorted(values))
    return ",".join(str(v) for v in sorted(values))


# --------------------------------------------------------------------------- describe helpers


def _join(words: list[str]) -> str:
    """``a``, ``a and b``, ``a, b and c``."""
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} and {words[-1]}"


def _describe_weekdays(days: frozenset[int]) -> str:
    """``Monday–Friday``, ``Saturday and Sunday``, ``Monday, Wednesday and Friday``."""
    order = [d % 7 for d in range(1, 8) if d % 7 in days]  # Monday first
    positions = [(d - 1) % 7 for d in order]
    if len(order) >= 3 and positions == list(range(positions[0], positions[0] + len(order))):
        return f"{_WEEKDAY_NAMES[order[0]]}–{_WEEKDAY_NAMES[order[-1]]}"
    return _join([_WEEKDAY_NAMES[d] for d in order])


def _describe_cron(spec: _CronSpec) -> str | None:
    """Plain English for common cron lines, or None when a summary would mislead."""
    every_day = len(spec.dom) == 31 and len(spec.month) == 12 and len(spec.dow) == 7
    minutes, hours = sorted(spec.minute), sorted(spec.hour)
    if len(hours) == 24 and every_day:
        step = minutes[1] - minutes[0] if len(minutes) > 1 else 60
        if 60 % step == 0 and minutes == list(range(0, 60, step)):
            return "every minute" if step == 1 else f"every {step} minutes"
        if len(minutes) == 1:
            return f"every hour at :{minutes[0]:02d}"
        return None
    if len(minutes) != 1:
        return None
    step = hours[1] - hours[0] if len(hours) > 1 else 24
    if len(hours) > 2 and every_day and 24 % step == 0 and hours == list(range(0, 24, step)):
        return f"every {step} hours at :{minutes[0]:02d}"
    if len(hours) > 4:
        return None
    when = "at " + _join([f"{h:02d}:{minutes[0]:02d}" for h in hours])
    if every_day:
        return f"{when} every day"
    if len(spec.month) != 12:
        if len(spec.month) > 3 or spec.dow != frozenset(range(7)):
            return None
        in_months = " in " + _join([_MONTH_NAMES[m - 1] for m in sorted(spec.month)])
    else:
        in_months = ""
    parts: list[str] = []
    if len(spec.dom) != 31:
        if len(spec.dom) > 3:
            return None
        label = "day" if len(spec.dom) == 1 else "days"
        days = _join([str(d) for d in sorted(spec.dom)])
        parts.append(f"on {label} {days}" + (in_months or " of every month"))
    elif in_months:
        parts.append(f"every day{in_months}")
    if len(spec.dow) != 7:
        weekdays = _describe_weekdays(spec.dow)
        if not parts:
            parts.append(f"on {weekdays}")
        elif spec.dom_or_dow:
            parts.append(f"or on {weekdays}")
        else:
            parts.append(f"if that is a {weekdays.replace(' and ', ' or ')}")
    return f"{when} {' '.join(parts)}" if parts else None


def _describe_seconds(seconds: int) -> str:
    """``every hour``, ``every 2 hours``, ``every 90 minutes``."""
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60), ("second", 1)):
        if seconds % size == 0:
            count = seconds // size
            return f"every {unit}" if count == 1 else f"every {count} {unit}s"
    raise AssertionError("unreachable")  # pragma: no cover


# --------------------------------------------------------------------------- models


def _invalid_from(exc: ValidationError) -> InvalidSchedule:
    """Our own InvalidSchedule hidden inside a pydantic error, or a readable one built from it."""
    messages: list[str] = []
    for error in exc.errors():
        cause = error.get("ctx", {}).get("error")
        if isinstance(cause, InvalidSchedule):
            return cause
        where = ".".join(str(part) for part in error["loc"]) or "schedule"
        if error["type"] in ("union_tag_invalid", "union_tag_not_found"):
            messages.append("'kind' must be 'cron', 'interval' or 'once'")
        elif error["type"] == "extra_forbidden":
            messages.append(f"unknown field {where!r}")
        elif error["type"] == "missing":
            messages.append(f"missing required field {where!r}")
        elif isinstance(cause, Exception):
            messages.append(f"{where}: {cause}")
        else:
            messages.append(f"{where}: {error['msg']}")
    return InvalidSchedule("invalid schedule: " + "; ".join(messages))


def _check_window(start: datetime | None, end: datetime | None, zone: ZoneInfo | None) -> None:
    """Reject ``end <= start`` whenever the two can be compared."""
    if start is None or end is None:
        return
    if zone is not None:
        start, end = _aware(start, zone), _aware(end, zone)
    elif (start.tzinfo is None) != (end.tzinfo is None):
        return  # one naive, one aware: decided once the zone is known
    if end <= start:
        raise InvalidSchedule(
            f"end {_fmt(end, zone)} is not after start {_fmt(start, zone)}: "
            "the schedule could never fire"
        )


class _OncePerWallTime(BaseTrigger):  # type: ignore[misc]
    """Wraps a cron trigger so a wall time repeated by a DST overlap fires only once.

    APScheduler's ``CronTrigger`` fires ``30 2 * * *`` at 02:30 summer time and again at
    02:30 winter time on the night clocks go back; crontab(5) fires once. Only used for
    lines with fixed hours: lines firing every hour follow elapsed time, as in cron.
    """

    def __init__(self, inner: BaseTrigger, zone: ZoneInfo) -> None:
        self.inner = inner
        self.zone = zone

    def get_next_fire_time(
        self, previous_fire_time: datetime | None, now: datetime
    ) -> datetime | None:
        fire: datetime | None = self.inner.get_next_fire_time(previous_fire_time, now)
        if previous_fire_time is None:
            return fire
        last_wall, last_instant = self._wall(previous_fire_time), previous_fire_time.timestamp()
        # A later instant whose wall time is not later lies in the repeated hour of an
        # overlap: it was already fired by the clock. (Instants are compared by timestamp:
        # datetimes sharing a tzinfo compare by wall time.)
        while (
            fire is not None and fire.timestamp() > last_instant and self._wall(fire) <= last_wall
        ):
            fire = self.inner.get_next_fire_time(fire, fire)
        return fire

    def _wall(self, moment: datetime) -> datetime:
        return moment.astimezone(self.zone).replace(tzinfo=None, fold=0)

    def __str__(self) -> str:
        return f"once-per-wall-time {self.inner}"

    def __repr__(self) -> str:
        return f"<_OncePerWallTime {self.inner!r}>"


class _BaseSchedule(BaseModel):
    """Behaviour shared by every schedule kind: zone, trigger, preview, description, checks."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    if TYPE_CHECKING:  # declared as a field by each subclass, after ``kind``
        tz: str | None

    def __init__(self, /, **data: Any) -> None:
        """Validate, raising InvalidSchedule (never pydantic's ValidationError)."""
        try:
            super().__init__(**data)
        except ValidationError as exc:
            # pydantic wraps the ValueErrors of model_post_init; hand back our own error.
            error = _invalid_from(exc)
            raise error from (None if error.__traceback__ else exc)

    def model_post_init(self, context: Any, /) -> None:
        """Run the semantic checks, so a bad schedule cannot even be built."""
        if self.tz is not None:
            _zone(self.tz)
        self._validate()

    def _validate(self) -> None:
        """Kind-specific semantic checks; raise InvalidSchedule."""

    def _window(self) -> tuple[datetime | None, datetime | None]:
        """The optional ``start``/``end`` bounds."""
        return None, None

    @property
    def zone(self) -> ZoneInfo:
        """The schedule's zone; InvalidSchedule while ``tz`` is still None."""
        if self.tz is None:
            raise InvalidSchedule("schedule has no timezone; call with_default_tz")
        return _zone(self.tz)

    def with_default_tz(self, tz: str) -> Self:
        """A copy with ``tz`` filled in if it was None (the runtime's default zone)."""
        _zone(tz)
        if self.tz is not None:
            return self
        return type(self)(**{**self.model_dump(), "tz": tz})

    def trigger(self, *, now: datetime | None = None) -> BaseTrigger:
        """The APScheduler 3 trigger for this schedule, in its zone, honouring start/end.

        Args:
            now: Reference time for kinds that count from "now" (an Interval without
                ``start``); defaults to the current time.
        """
        raise NotImplementedError

    def shared_trigger(self, *, now: datetime | None = None) -> BaseTrigger:
        """The trigger for a scheduler job or a preview; equal cron schedules share one.

        Triggers keep no state (APScheduler keeps each job's next run time on the job),
        so tasks with equal schedules fire independently from one trigger. Only cron
        triggers are worth sharing: they are slow to build and large; the other kinds
        are built fresh, as :meth:`trigger` builds them.

        Args:
            now: As for :meth:`trigger`.
        """
        return self.trigger(now=now)

    def next_fire_times(self, n: int = 5, *, after: datetime | None = None) -> list[datetime]:
        """The next ``n`` fire times strictly after ``after`` (default: now), in the zone.

        Computed by the APScheduler trigger itself, exactly as the scheduler will, so the
        preview matches reality. Fewer than ``n`` when the schedule ends.
        """
        zone = self.zone
        now = datetime.now(zone) if after is None else _aware(after, zone)
        trigger = self.shared_trigger(now=now)
        times: list[datetime] = []
        previous: datetime | None = None
        while len(times) < n:
            try:
                fire = trigger.get_next_fire_time(previous, previous or now)
            except (OverflowError, ValueError):  # datetime arithmetic ran past year 9999
                break
            if fire is None:
                break
            if fire > now:
                times.append(_in_zone(fire, zone))
            previous = fire
        return times

    def describe(self) -> str:
        """Short English, e.g. ``at 09:00 on Monday–Friday (Europe/Berlin)``."""
        raise NotImplementedError

    def _bounds_text(self) -> str:
        """``, starting …, until …`` for the bounds that are set."""
        zone = _zone(self.tz) if self.tz else None
        start, end = self._window()
        text = f", starting {_fmt(start, zone)}" if start else ""
        return text + (f", until {_fmt(end, zone)}" if end else "")

    @property
    def _zone_label(self) -> str:
        """The zone as shown in descriptions."""
        return self.tz or "runtime default timezone"

    def check(self, now: datetime) -> None:
        """Raise InvalidSchedule if the schedule can never fire after ``now``."""
        zone = self.zone
        now = _aware(now, zone)
        start, end = self._window()
        _check_window(start, end, zone)
        if self.next_fire_times(1, after=now) or end is None:
            return
        upcoming = self.model_copy(update={"end": None}).next_fire_times(1, after=now)
        first = f" the next fire time {_fmt(upcoming[0], zone)}" if upcoming else " now"
        raise InvalidSchedule(
            f"the schedule never fires: its end {_fmt(end, zone)} is before{first} "
            f"({self.tz}); it is now {_fmt(now, zone)}"
        )


class Cron(_BaseSchedule):
    """A crontab(5) line in a timezone, e.g. ``Cron("0 9 * * 1-5", tz="Europe/Berlin")``.

    Fields follow crontab(5), not APScheduler: day-of-week 0 and 7 are Sunday, 1 is Monday;
    names (``mon``, ``jan``) are case-insensitive; ranges, lists and steps work in every field,
    and weekday ranges may wrap (``fri-mon``). When both day-of-month and day-of-week are
    restricted (neither starts with ``*``) a day matching *either* fires. Macros: @yearly,
    @annually, @monthly, @weekly, @daily, @midnight, @hourly.

    Note:
        Daylight-saving changes behave as APScheduler 3.11's ``CronTrigger`` does (tests pin
        this in Europe/Berlin, America/New_York and Australia/Sydney):

        * Spring-forward gap -- a wall time that does not exist that day (``30 2 * * *`` on
          2026-03-29 in Berlin) fires once, shifted forward by the gap: at 03:30 CEST. Days
          are never skipped.
        * Autumn overlap -- a wall time that happens twice (``30 2 * * *`` on 2026-10-25 in
          Berlin) fires once, at its first occurrence (02:30 CEST), as crontab(5) does.
          APScheduler alone would fire it twice; :class:`_OncePerWallTime` skips the repeat.
          (A runtime restarted inside the repeated hour, after the first fire, cannot know
          it ran and fires the repeat.)
        * Lines that fire every hour or more often simply fire at each real wall time, so
          they follow elapsed time through both changes.
    """

    kind: Literal["cron"] = "cron"
    expr: str
    tz: str | None = None
    start: _Moment | None = None
    end: _Moment | None = None

    def __init__(self, expr: str | None = None, /, **data: Any) -> None:
        """Accept the cron line positionally: ``Cron("0 9 * * 1-5", tz="UTC")``."""
        if expr is not None:
            if "expr" in data:
                raise TypeError("Cron() got the cron line both positionally and as expr=")
            data["expr"] = expr
        super().__init__(**data)

    def _validate(self) -> None:
        _parse_cron(self.expr)
        _check_window(self.start, self.end, _zone(self.tz) if self.tz else None)

    def _window(self) -> tuple[datetime | None, datetime | None]:
        return self.start, self.end

    def trigger(self, *, now: datetime | None = None) -> BaseTrigger:
        """A CronTrigger, or an OrTrigger of two when day-of-month OR day-of-week applies."""
        spec, zone = _parse_cron(self.expr), self.zone
        start = _aware(self.start, zone) if self.start else None
        end = _aware(self.end, zone) if self.end else None

        def cron(day: frozenset[int], day_of_week: frozenset[int]) -> CronTrigger:
            return CronTrigger(
                minute=_aps_field(spec.minute, _MINUTE),
                hour=_aps_field(spec.hour, _HOUR),
                day=_aps_field(day, _DOM),
                month=_aps_field(spec.month, _MONTH),
                day_of_week=_aps_field(day_of_week, _DOW),
                start_date=start,
                end_date=end,
                timezone=zone,
            )

        trigger: BaseTrigger
        if not spec.dom_or_dow:
            trigger = cron(spec.dom, spec.dow)
        else:
            every_dom, every_dow = frozenset(range(1, 32)), frozenset(range(7))
            by_weekday = cron(every_dom, spec.dow)
            if not spec.dom_can_match:  # e.g. "0 0 31 2 1": only the Mondays can ever fire
                trigger = by_weekday
            else:
                trigger = OrTrigger([cron(spec.dom, every_dow), by_weekday])
        if len(spec.hour) < 24:  # fixed hours: a wall time fires once, as in crontab(5)
            return _OncePerWallTime(trigger, zone)
        return trigger

    def shared_trigger(self, *, now: datetime | None = None) -> BaseTrigger:
        """The trigger of :meth:`trigger`, built once for all equal cron schedules."""
        # Equal naive bounds can still differ in fold (which of a DST overlap's two wall
        # times they mean), so the folds are part of the key.
        folds = tuple(d.fold for d in (self.start, self.end) if d is not None and d.tzinfo is None)
        return _shared_cron_trigger(self, folds)

    def describe(self) -> str:
        """E.g. ``at 09:00 on Monday–Friday (Europe/Berlin)``; ``cron '…' (zone)`` otherwise."""
        summary = _describe_cron(_parse_cron(self.expr))
        if summary is None:
            summary = f"cron {self.expr.strip()!r}"
        return f"{summary}{self._bounds_text()} ({self._zone_label})"


@functools.lru_cache(maxsize=1024)
def _shared_cron_trigger(schedule: Cron, folds: tuple[int, ...]) -> BaseTrigger:
    """One trigger per distinct cron schedule (a CronTrigger takes ~0.1-0.3 ms and ~3 KB)."""
    return schedule.trigger()


_UNIT_SECONDS = {"seconds": 1, "minutes": 60, "hours": 3600, "days": 86400}


class Interval(_BaseSchedule):
    """Every ``seconds`` of elapsed time, e.g. ``Interval(hours=2, tz="UTC")``.

    ``minutes=``, ``hours=`` and ``days=`` are accepted and added up into ``seconds``. The first
    fire is ``start`` (or now + the interval when None); later fires are whole intervals
    after it, so across a DST change the wall-clock time shifts by the change.
    """

    kind: Literal["interval"] = "interval"
    seconds: int
    tz: str | None = None
    start: _Moment | None = None
    end: _Moment | None = None

    def __init__(
        self,
        /,
        *,
        seconds: int | None = None,
        minutes: float | None = None,
        hours: float | None = None,
        days: float | None = None,
        **data: Any,
    ) -> None:
        """Accept ``Interval(minutes=5)``, ``Interval(hours=1, minutes=30)`` (typed for callers)."""
        units = {"seconds": seconds, "minutes": minutes, "hours": hours, "days": days}
        super().__init__(**{k: v for k, v in units.items() if v is not None}, **data)

    @model_validator(mode="before")
    @classmethod
    def _units_to_seconds(cls, data: Any) -> Any:
        """Fold the ``minutes``/``hours``/``days`` convenience arguments into ``seconds``."""
        if not isinstance(data, dict) or not {"minutes", "hours", "days"} & data.keys():
            return data
        data = dict(data)
        total: float = 0
        for unit, size in _UNIT_SECONDS.items():
            value = data.pop(unit, 0)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise InvalidSchedule(f"interval {unit} must be a number, got {value!r}")
            total += value * size
        if not float(total).is_integer():
            raise InvalidSchedule(f"interval must be a whole number of seconds, got {total}")
        data["seconds"] = int(total)
        return data

    def _validate(self) -> None:
        if not 0 < self.seconds <= _MAX_INTERVAL_SECONDS:
            raise InvalidSchedule(
                f"interval of {self.seconds} seconds is not allowed: it must be at least "
                "1 second and at most 366 days (use a cron line for longer periods)"
            )
        _check_window(self.start, self.end, _zone(self.tz) if self.tz else None)

    def _window(self) -> tuple[datetime | None, datetime | None]:
        return self.start, self.end

    def trigger(self, *, now: datetime | None = None) -> BaseTrigger:
        """An IntervalTrigger; without ``start`` it first fires one interval after ``now``."""
        zone = self.zone
        if self.start is not None:
            start = _aware(self.start, zone)
        else:
            start = _add_elapsed(now or datetime.now(zone), timedelta(seconds=self.seconds), zone)
        return IntervalTrigger(
            seconds=self.seconds,
            start_date=start,
            end_date=_aware(self.end, zone) if self.end else None,
            timezone=zone,
        )

    def describe(self) -> str:
        """E.g. ``every 2 hours (UTC)``."""
        return f"{_describe_seconds(self.seconds)}{self._bounds_text()} ({self._zone_label})"


class Once(_BaseSchedule):
    """A single fire at ``at``, e.g. ``Once(datetime(2026, 12, 1, 9), tz="Europe/Berlin")``.

    A naive ``at`` is wall time in ``tz``: an ambiguous time (DST overlap) means its first
    occurrence, a non-existent one (DST gap) fires the gap's length later by the clock.
    """

    kind: Literal["once"] = "once"
    at: _Moment
    tz: str | None = None

    def __init__(self, at: datetime | None = None, /, **data: Any) -> None:
        """Accept the time positionally: ``Once(datetime(2026, 12, 1, 9), tz="UTC")``."""
        if at is not None:
            if "at" in data:
                raise TypeError("Once() got the time both positionally and as at=")
            data["at"] = at
        super().__init__(**data)

    def trigger(self, *, now: datetime | None = None) -> BaseTrigger:
        """A DateTrigger at ``at`` in the schedule's zone."""
        zone = self.zone
        return DateTrigger(run_date=_aware(self.at, zone), timezone=zone)

    def describe(self) -> str:
        """E.g. ``once at 2026-12-01 09:00 CET (Europe/Berlin)``."""
        zone = _zone(self.tz) if self.tz else None
        return f"once at {_fmt(self.at, zone)} ({self._zone_label})"

    def check(self, now: datetime) -> None:
        """Raise InvalidSchedule when ``at`` is not after ``now``, saying both times."""
        zone = self.zone
        if _aware(self.at, zone) <= _aware(now, zone):
            raise InvalidSchedule(
                f"{_fmt(self.at, zone)} ({self.tz}) is in the past: it is now "
                f"{_fmt(now, zone)} in {self.tz}; give a later time"
            )


Schedule = Annotated[Cron | Interval | Once, Field(discriminator="kind")]
_SCHEDULE_ADAPTER: TypeAdapter[Cron | Interval | Once] = TypeAdapter(Schedule)


def schedule_from_dict(data: dict[str, Any]) -> Cron | Interval | Once:
    """Rebuild a schedule stored with :func:`schedule_to_dict`; InvalidSchedule if unusable."""
    try:
        return _SCHEDULE_ADAPTER.validate_python(data)
    except ValidationError as exc:
        error = _invalid_from(exc)
        raise error from (None if error.__traceback__ else exc)


def schedule_to_dict(schedule: Cron | Interval | Once) -> dict[str, Any]:
    """A JSON-ready dict of the schedule (``kind`` tells the type apart)."""
    return schedule.model_dump(mode="json")


# --------------------------------------------------------------------------- natural language

_TIME = r"(?P<time>noon|midnight|[0-9]{1,2}(?::[0-9]{2})?(?: ?[ap]\.?m\.?)?)"
_TIME_RE = re.compile(r"(?P<h>[0-9]{1,2})(?::(?P<m>[0-9]{2}))?(?: ?(?P<ampm>[ap])\.?m\.?)?")
_UNITS = {
    "s": 1, "sec": 1, "secs": 1, "second": 1, "seconds": 1,
    "m": 60, "min": 60, "mins": 60, "minute": 60, "minutes": 60,
    "h": 3600, "hr": 3600, "hrs": 3600, "hour": 3600, "hours": 3600,
    "d": 86400, "day": 86400, "days": 86400,
    "w": 604800, "wk": 604800, "wks": 604800, "week": 604800, "weeks": 604800,
}  # fmt: skip
_DURATION_PART = re.compile(r" ?(?:(?P<n>[0-9]{1,6}|an?) ?)?(?P<unit>[a-z]+)")
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
}
_ISO_RE = re.compile(
    r"(?P<date>[0-9]{4}-[0-9]{2}-[0-9]{2})[t ](?P<h>[0-9]{2}):(?P<m>[0-9]{2})"
    r"(?::(?P<s>[0-9]{2}))?(?P<offset>z|[+-][0-9]{2}:?[0-9]{2})?"
)


def _parse_time(text: str) -> time:
    """``9``, ``09:00``, ``9am``, ``9:30pm``, ``12am`` (midnight), ``noon``, ``midnight``."""
    if text in ("noon", "midnight"):
        return time(12 if text == "noon" else 0)
    match = _TIME_RE.fullmatch(text)
    hour, minute = (int(match["h"]), int(match["m"] or 0)) if match else (99, 0)
    ampm = match["ampm"] if match else None
    if ampm is not None and 1 <= hour <= 12:
        hour = hour % 12 + (12 if ampm == "p" else 0)
    elif ampm is not None:
        hour = 99
    if hour > 23 or minute > 59:
        raise InvalidSchedule(
            f"{text!r} is not a valid time: use 24-hour 'HH:MM' like 09:00 or 18:30, "
            "or 12-hour like 9am or 6:30pm"
        )
    return time(hour, minute)


def _parse_duration(text: str) -> timedelta | None:
    """``2h``, ``1 hour 30 minutes``, ``an hour``, ``1h, 30m`` -> timedelta; None if not one."""
    text = re.sub(r" ?(?:,| and ) ?", " ", text)
    total, pos = 0, 0
    while pos < len(text):
        match = _DURATION_PART.match(text, pos)
        if not match or match["unit"] not in _UNITS:
            return None
        count = match["n"] or "1"
        total += (int(count) if count.isdigit() else 1) * _UNITS[match["unit"]]
        pos = match.end()
    return timedelta(seconds=total) if pos else None


def _wall(day: date, at: time, zone: ZoneInfo) -> datetime:
    """The wall time ``at`` on ``day`` in ``zone`` (a DST-gap time is moved past the gap)."""
    return _in_zone(datetime.combine(day, at), zone)


def _weekdays(text: str) -> str | None:
    """``mon,wed,fri`` / ``monday and thursday`` -> crontab list ``1,3,5``; None if unknown."""
    names = [name for name in re.split(r"[ ,&]+|\band\b", text) if name]
    if not names or any(name not in _WEEKDAYS for name in names):
        return None
    return ",".join(str(day) for day in sorted({_WEEKDAYS[name] for name in names}))


_Rule = Callable[[re.Match[str], ZoneInfo, str, datetime], Cron | Interval | Once | None]


def _once_in(match: re.Match[str], zone: ZoneInfo, tz: str, now: datetime) -> Once | None:
    delta = _parse_duration(match["dur"])
    if delta is None:
        return None
    if not delta:
        raise InvalidSchedule(f"{match[0]!r} is not in the future: give a positive duration")
    return Once(_add_elapsed(now, delta, zone), tz=tz)


def _once_day_at(match: re.Match[str], zone: ZoneInfo, tz: str, now: datetime) -> Once:
    at = _parse_time(match["time"])
    today = now.astimezone(zone).date()
    if not match["day"]:  # "at 17:00": the next 17:00
        fire = _wall(today, at, zone)
        if fire <= now:
            fire = _wall(today + timedelta(days=1), at, zone)
    else:
        fire = _wall(today + timedelta(days=match["day"] == "tomorrow"), at, zone)
    return Once(fire, tz=tz)


def _cron_at(days: str | None) -> _Rule:
    """A rule for "<days> at <time>"; ``days`` None means the weekdays named in the text."""

    def rule(match: re.Match[str], zone: ZoneInfo, tz: str, now: datetime) -> Cron | None:
        at = _parse_time(match["time"])
        dow = days or _weekdays(match["days"])
        return Cron(f"{at.minute} {at.hour} * * {dow}", tz=tz) if dow else None

    return rule


def _cron_hourly(match: re.Match[str], zone: ZoneInfo, tz: str, now: datetime) -> Cron:
    minute = int(match["minute"])
    if minute > 59:
        raise InvalidSchedule(f"minute {minute} is not valid: use :00 to :59, e.g. :15")
    return Cron(f"{minute} * * * *", tz=tz)


def _cron_monthly(match: re.Match[str], zone: ZoneInfo, tz: str, now: datetime) -> Cron:
    day = int(match["dom"])
    if not 1 <= day <= 31:
        raise InvalidSchedule(f"day {day} of the month is not valid: use 1st to 31st")
    at = _parse_time(match["time"] or "0")
    return Cron(f"{at.minute} {at.hour} {day} * *", tz=tz)


def _interval_every(
    match: re.Match[str], zone: ZoneInfo, tz: str, now: datetime
) -> Interval | None:
    delta = _parse_duration(match["dur"])
    if delta is None:
        return None
    seconds = int(delta.total_seconds())
    Interval(seconds=seconds, tz=tz)  # range check first: a clearer error than an overflow
    return Interval(seconds=seconds, tz=tz, start=_add_elapsed(now, delta, zone))


def _once_iso(match: re.Match[str], zone: ZoneInfo, tz: str, now: datetime) -> Once:
    offset = match["offset"]
    try:
        day = date.fromisoformat(match["date"])
        wall = time(int(match["h"]), int(match["m"]), int(match["s"] or 0))
        if offset is None:
            return Once(_wall(day, wall, zone), tz=tz)
        digits = "0000" if offset == "z" else offset[1:].replace(":", "")
        shift = timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))
        fixed = timezone(-shift if offset.startswith("-") else shift)
        return Once(datetime.combine(day, wall, fixed).astimezone(zone), tz=tz)
    except (ValueError, OverflowError) as exc:
        if isinstance(exc, InvalidSchedule):
            raise
        raise InvalidSchedule(
            f"{match[0]!r} is not a valid date-time: use e.g. 2026-12-01T09:00 or "
            "2026-12-01T09:00+01:00"
        ) from None


def _cron_line(match: re.Match[str], zone: ZoneInfo, tz: str, now: datetime) -> Cron:
    return Cron(match[0], tz=tz)


# Tried in order against the whole (lower-cased, space-normalised) text.
_RULES: tuple[tuple[re.Pattern[str], _Rule], ...] = tuple(
    (re.compile(pattern), rule)
    for pattern, rule in (
        (r"in (?P<dur>.+)", _once_in),
        (rf"(?P<day>today|tomorrow) (?:at )?{_TIME}", _once_day_at),
        (rf"at {_TIME}(?P<day>)", _once_day_at),
        (rf"(?:every day|everyday|daily) at {_TIME}", _cron_at("*")),
        (rf"(?:every |on )?(?:weekday|weekdays|workday|workdays) at {_TIME}", _cron_at("1-5")),
        (rf"(?:every |on )?(?:weekend|weekends) at {_TIME}", _cron_at("0,6")),
        (r"(?:every hour|hourly) at :?(?P<minute>[0-9]{1,2})", _cron_hourly),
        (
            rf"(?:every month|monthly) on (?:the )?(?P<dom>[0-9]{{1,2}})(?:st|nd|rd|th)?"
            rf"(?: at {_TIME})?",
            _cron_monthly,
        ),
        (rf"(?:every|on) (?P<days>[a-z ,&]+?) at {_TIME}", _cron_at(None)),
        (r"every (?P<dur>.+)", _interval_every),
        (_ISO_RE.pattern, _once_iso),
        (r"@[a-z]+|[0-9*][0-9a-z*,/-]*(?: [0-9a-z*,/-]+){2,6}", _cron_line),
    )
)


def parse_schedule(text: str, *, tz: str, now: datetime) -> Cron | Interval | Once:
    """Turn short English or a cron line into a schedule in ``tz``, checked against ``now``.

    Args:
        text: E.g. "in 20 minutes", "every weekday at 9am", "0 9 * * 1-5" (see ACCEPTED_FORMS).
        tz: IANA zone the words mean (wall times, "today").
        now: The current time; naive means wall time in ``tz``.

    Raises:
        InvalidSchedule: The text is not understood, names an invalid value, or is in the past.
    """
    zone = _zone(tz)
    now = _aware(now, zone)
    normal = " ".join(text.lower().split())
    if len(normal) <= 200:
        for pattern, rule in _RULES:
            match = pattern.fullmatch(normal)
            if match:
                schedule = rule(match, zone, tz, now)
                if schedule is not None:
                    schedule.check(now)
                    return schedule
    raise InvalidSchedule(f"could not understand the schedule {text[:100]!r}.\n{ACCEPTED_FORMS}")
