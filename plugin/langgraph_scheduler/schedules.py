"""Schedules: when a task fires, as validated, JSON-serialisable pydantic models.

Three kinds share one interface (:class:`_BaseSchedule`):

* :class:`Cron` -- a crontab(5) line read as Debian's cron reads it, daylight-saving changes
  included (optionally only every N-th day or week),
* :class:`Interval` -- every N seconds of elapsed time,
* :class:`Once` -- a single point in time.

Each builds the APScheduler 3 trigger the scheduler fires from, and previews
(:meth:`~_BaseSchedule.next_fire_times`) walk that same trigger, so what a user is shown is
what runs. :func:`parse_schedule` turns the short English people say ("every weekday at 9am",
"tomorrow morning") into one of them (the grammar lives in :mod:`.phrases`), and
:func:`schedule_from_dict` / :func:`schedule_to_dict` store them as JSON.

Naive datetimes always mean wall-clock time in the schedule's zone; every problem a person or
a model can fix is raised as :class:`~langgraph_scheduler.errors.InvalidSchedule` by the
constructors and :func:`schedule_from_dict`. (Validating through pydantic directly, e.g. as a
field of another model, yields a ``ValidationError`` whose ``ctx["error"]`` holds it.)
"""

from __future__ import annotations

import difflib
import functools
import itertools
import math
import re
import unicodedata
from datetime import datetime, time, timedelta, timezone, tzinfo
from fractions import Fraction
from typing import TYPE_CHECKING, Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    TypeAdapter,
    ValidationError,
    model_serializer,
    model_validator,
)
from pydantic_core import ErrorDetails
from typing_extensions import Self

from ._cron import (
    CronLine,
    Stride,
    after_end,
    iso_day,
    next_fire,
    parse_cron,
    resolve_end,
    resolve_wall,
)
from ._validated import is_whole, kind_of, with_article
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
    "zone_name",
    "zone_notice",
]

ACCEPTED_FORMS = """\
Accepted schedule forms (one example each):
- in 20 minutes | in 1.5 hours | in 3 months | tomorrow at 9:00 | tomorrow morning | tonight
- at noon | next monday at 10 | on December 24 at 6pm | 2026-12-01T09:00 (ISO; offset optional)
- every 30 minutes | every 2 hours | hourly | every hour at :15 | every hour on weekdays
- daily at 7 | every weekday at 9am | every weekday except friday at 9 | every mon,wed,fri at 8:15
- every other day at 8 | every 2 weeks on monday at 9 | on the 1st of every month at 9
- every day at 9 and 5pm | every 15 minutes between 9 and 17 | every monday morning at 8
- every 2 hours starting tomorrow at 8 | every day at 9 starting next monday until friday
- cron "minute hour day-of-month month day-of-week", e.g. "0 9 * * 1-5" (0 or 7 = Sunday)
- @hourly | @daily | @weekly | @monthly | @yearly"""

_UTC = timezone.utc
_ZONE_EXAMPLE = "use an IANA zone name such as 'Europe/Berlin', 'America/New_York' or 'UTC'"
_NOT_ZONES = frozenset({"localtime", "posixrules", "Factory"})
_VARIANTS = {
    "right/": "the leap-second variant of {zone}: it counts leap seconds, so its clock "
    "changes fall 27 s off civil time",
    "posix/": "a copy of {zone} under a second name",
}
"""The system tz database's folders of zone variants (not in ``available_timezones()``):
one spelling per zone keeps equal schedules equal."""
_MAX_INTERVAL_SECONDS = 366 * 86400
LONGEST_STRIDE = {"day": 366, "week": 52}
"""The most a ``Cron`` stride may be: ``every_days`` (days), ``every_weeks`` (weeks)."""


# --------------------------------------------------------------------------- time zones

_UTC_NAMES = frozenset(
    name.lower()
    for name in (
        "UTC", "UCT", "Universal", "Zulu", "GMT", "GMT0", "GMT+0", "GMT-0", "Greenwich",
        "Etc/UTC", "Etc/UCT", "Etc/Universal", "Etc/Zulu", "Etc/GMT", "Etc/GMT0", "Etc/GMT+0",
        "Etc/GMT-0", "Etc/Greenwich",
    )
)  # fmt: skip
# What people write for a zone. Most are no zone name at all; the three that are (EST, MST,
# HST) are fixed offsets that ignore daylight saving time, and so is every Etc/GMT±N.
_ABBREVIATIONS = {
    "z": "UTC",
    **dict.fromkeys(("et", "est", "edt"), "America/New_York"),
    **dict.fromkeys(("ct", "cst", "cdt"), "America/Chicago"),
    **dict.fromkeys(("mt", "mst", "mdt"), "America/Denver"),
    **dict.fromkeys(("pt", "pst", "pdt"), "America/Los_Angeles"),
    **dict.fromkeys(("akst", "akdt"), "America/Anchorage"),
    "hst": "Pacific/Honolulu",
    "ist": "Asia/Kolkata",
    "bst": "Europe/London",
    "cest": "Europe/Berlin",
    "eest": "Europe/Athens",
    "west": "Europe/Lisbon",
    "msk": "Europe/Moscow",
    "jst": "Asia/Tokyo",
    "kst": "Asia/Seoul",
    "sgt": "Asia/Singapore",
    "hkt": "Asia/Hong_Kong",
    **dict.fromkeys(("aest", "aedt"), "Australia/Sydney"),
    **dict.fromkeys(("acst", "acdt"), "Australia/Adelaide"),
    "awst": "Australia/Perth",
    **dict.fromkeys(("nzst", "nzdt"), "Pacific/Auckland"),
}
_FIXED_ZONES = frozenset({"est", "mst", "hst"})
# A well-known place for a standard UTC offset (in minutes), to suggest for "+05:30".
_OFFSET_PLACES = {
    -600: "Pacific/Honolulu", -540: "America/Anchorage", -480: "America/Los_Angeles",
    -420: "America/Denver", -360: "America/Chicago", -300: "America/New_York",
    -240: "America/Halifax", -210: "America/St_Johns", -180: "America/Sao_Paulo",
    0: "UTC", 60: "Europe/Berlin", 120: "Europe/Athens", 180: "Europe/Moscow",
    210: "Asia/Tehran", 240: "Asia/Dubai", 270: "Asia/Kabul", 300: "Asia/Karachi",
    330: "Asia/Kolkata", 345: "Asia/Kathmandu", 360: "Asia/Dhaka", 390: "Asia/Yangon",
    420: "Asia/Bangkok", 480: "Asia/Shanghai", 540: "Asia/Tokyo", 570: "Australia/Adelaide",
    600: "Australia/Sydney", 720: "Pacific/Auckland", 765: "Pacific/Chatham",
    -660: "Pacific/Pago_Pago", -570: "Pacific/Marquesas", -120: "America/Noronha",
    -60: "Atlantic/Azores", 525: "Australia/Eucla", 630: "Australia/Lord_Howe",
    660: "Pacific/Noumea", 780: "Pacific/Tongatapu", 840: "Pacific/Kiritimati",
}  # fmt: skip
_OFFSET_RANGE = (-12 * 60, 14 * 60)
"""The UTC offsets civil time uses (Etc/GMT+12 to Pacific/Kiritimati's UTC+14:00)."""
_OFFSET_RE = re.compile(
    r"(?:utc|gmt)? ?(?P<sign>[+-]) ?(?P<h>[0-9]{1,2})(?::?(?P<m>[0-9]{2}))?", re.IGNORECASE
)
_ETC_OFFSET_RE = re.compile(r"etc/gmt[+-][0-9]+", re.IGNORECASE)
_INVISIBLE = frozenset({"Cc", "Cf", "Co", "Cs", "Cn", "Zl", "Zp"})
"""Unicode categories of characters that do not show: controls, format characters (the
zero-width space, bidi marks), private use, unassigned; and line/paragraph separators."""


_LOOK_ALIKES = str.maketrans(
    "АВЕЅІЈКМНОРСТХУаеѕіјорсхуԁһԛԝΑΒΕΖΗΙΚΜΝΟΡΤΥΧοικνρτυχ",
    "ABESIJKMHOPCTXYaesijopcxydhqwABEZHIKMNOPTYXoikvptux",
)
"""Cyrillic and Greek letters drawn like Latin ones, mapped to the letter they look like:
used only to suggest the zone a name typed with one means, never to accept it."""


@functools.cache
def _zone_names() -> dict[str, str]:
    """Map lower-cased zone names to their spelling, for "did you mean" hints."""
    return {name.lower(): name for name in available_timezones() if name not in _NOT_ZONES}


def _offset_minutes(text: str) -> int | None:
    """``+05:30``, ``UTC+5:30``, ``GMT-4`` -> minutes east of UTC; None if not an offset."""
    match = _OFFSET_RE.fullmatch(text.strip())
    if not match:
        return None
    minutes = int(match["h"]) * 60 + int(match["m"] or 0)
    return -minutes if match["sign"] == "-" else minutes


def _fmt_offset(minutes: int) -> str:
    sign = "-" if minutes < 0 else "+"
    return f"UTC{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def zone_hint(name: str) -> str:
    """What to say after "unknown timezone" (``"; did you mean 'Europe/Berlin'?"``, or ""):
    why the name is no zone, and the zone it plausibly means (only one that can be the same
    zone: a respelling, never a neighbour). Also said of a zone-shaped word in a schedule."""
    said = repr(name[:80])
    odd = next((ch for ch in name if unicodedata.category(ch) in _INVISIBLE), None)
    if odd is not None:
        clean = "".join(ch for ch in name if unicodedata.category(ch) not in _INVISIBLE)
        return f"; {said} is not a zone name: it contains an invisible character {_char(odd)}" + (
            _plausible_tail(clean)
        )
    foreign = next((ch for ch in name if not ch.isascii()), None)
    if foreign is not None:
        ascii_name = name.translate(_LOOK_ALIKES)
        return (
            f"; {said} is not a zone name: zone names are ASCII, and it contains {foreign!r} "
            f"({_char(foreign)})"
        ) + (_plausible_tail(ascii_name.strip()) if ascii_name.isascii() else "")
    parts = name.strip().replace("\\", "/").split("/")
    if any(part in (".", "..") for part in parts):
        return f"; {said} is not a zone name: zone names are Area/Location, with no '.' or '..'"
    if "\\" in name or (len(parts) > 1 and "" in parts):
        return f"; {said} is not a zone name: write Area/Location, one '/' between parts" + (
            _plausible_tail("/".join(part for part in parts if part))
        )
    key = name.strip().lower()
    if key.startswith("etc/gmt"):
        return _etc_hint(name.strip())
    if key in _ABBREVIATIONS:
        return f"; {name!r} is an abbreviation, not a zone: did you mean {_ABBREVIATIONS[key]!r}?"
    minutes = _offset_minutes(key)
    if minutes is not None:
        low, high = _OFFSET_RANGE
        if not low <= minutes <= high:
            return (
                f"; {name!r} is no UTC offset a place uses: they run from {_fmt_offset(low)} "
                f"to {_fmt_offset(high)}"
            )
        place = _OFFSET_PLACES.get(minutes)
        where = f"did you mean {place!r}?" if place else "give the zone of the place"
        return (
            f"; {name!r} is a fixed UTC offset, which never changes for daylight saving "
            f"time: {where}"
        )
    return _plausible_tail(name.strip())


def _char(ch: str) -> str:
    """``U+200B ZERO WIDTH SPACE``: a character named so a person can find it."""
    label = unicodedata.name(ch, "")
    return f"U+{ord(ch):04X}" + (f" {label}" if label else "")


def _etc_hint(name: str) -> str:
    """The hint for an unknown ``Etc/GMT…`` name: its range, or its plain spelling."""
    match = re.fullmatch(r"etc/gmt([+-])0*([0-9]{1,3})", name, re.IGNORECASE)
    if match is not None:
        sign, hours = match[1], int(match[2])
        plain = f"Etc/GMT{sign}{hours}"
        if plain in _zone_names().values():
            return f"; did you mean {plain!r}?"
    return (
        "; the Etc/GMT zones run from 'Etc/GMT-14' to 'Etc/GMT+12', in whole hours, with the "
        "sign reversed ('Etc/GMT+5' is UTC-05:00); better, give the zone of the place"
    )


def _plausible_tail(name: str) -> str:
    """``; did you mean 'X'?`` for the zone ``name`` plausibly is, else "".

    Plausible: the name itself in other letter case or with spaces for underscores, a
    near spelling with the same numbers (``Etc/GMT+13`` is not ``Etc/GMT+3``), or a place
    whose zone is in another area (``Asia/Berlin``: ``Europe/Berlin``). An abbreviation
    says which zone it stands for (``EST`` is a fixed offset, not New York's clock).
    """
    key = name.lower()
    names = _zone_names()
    if key in _ABBREVIATIONS:
        return f"; did you mean {_ABBREVIATIONS[key]!r}?"
    exact = names.get(key) or names.get(key.replace(" ", "_"))
    if exact is not None:
        return f"; did you mean {exact!r}?"
    digits = re.findall(r"[0-9]+", key)
    close = [
        match
        for match in difflib.get_close_matches(key, list(names), n=3, cutoff=0.85)
        if re.findall(r"[0-9]+", match) == digits
    ]
    if close:
        return f"; did you mean {names[close[0]]!r}?"
    place = _places().get(key.rsplit("/", 1)[-1].replace("_", " ")) if "/" in key else None
    return f"; did you mean {place!r}?" if place else ""


def _zone(name: str, *, default: str | None = None) -> ZoneInfo:
    """Load an IANA zone, or raise InvalidSchedule naming it and suggesting a fix.

    An empty name is refused as empty, naming ``default`` (the zone used where the name is
    left out, if the caller knows it): "unknown timezone ''" reads as a misspelt name.
    """
    if not name.strip():
        shown = f" ({default!r})" if default else ""
        raise InvalidSchedule(
            f"the timezone is empty: leave it out to use the default{shown}, or {_ZONE_EXAMPLE}"
        )
    zone: ZoneInfo | None = None
    for folder, what in _VARIANTS.items():
        if name.startswith(folder):
            plain = name.removeprefix(folder)
            try:
                _zone(plain)
            except InvalidSchedule:
                raise InvalidSchedule(f"unknown timezone {name[:80]!r}: {_ZONE_EXAMPLE}") from None
            shown = repr(plain[:80])
            what = what.format(zone=shown)
            raise InvalidSchedule(f"timezone {name[:80]!r} is {what}: use {shown}")
    if name not in _NOT_ZONES:
        try:
            zone = ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError, OSError):
            zone = None
    if zone is not None:
        return zone
    raise InvalidSchedule(f"unknown timezone {name[:80]!r}: {_ZONE_EXAMPLE}{zone_hint(name)}")


def zone_name(zone: str | tzinfo) -> str:
    """The IANA name a zone argument stands for: a name as given, a ``ZoneInfo``'s key, or
    ``'UTC'`` for ``datetime.timezone.utc``. (Whether the name is a zone is checked where it
    is used.)

    A schedule keeps its zone by name, to store it and to follow its daylight-saving rules,
    so a tzinfo that names no IANA zone is refused rather than replaced: a ``ZoneInfo``
    read with ``ZoneInfo.from_file`` (no ``key``), a fixed offset
    (``datetime.timezone(timedelta(hours=2))``) and other libraries' zones (pytz,
    dateutil).

    Raises:
        InvalidSchedule: ``zone`` is not a name or a named zone; the message says what to pass.
    """
    if isinstance(zone, str):
        return zone
    if isinstance(zone, ZoneInfo) and zone.key is not None:
        return zone.key
    if zone == _UTC:
        return "UTC"
    if isinstance(zone, ZoneInfo):
        what = "a ZoneInfo without a key (read with ZoneInfo.from_file)"
    elif isinstance(zone, timezone):
        offset = zone.utcoffset(None)
        what = (
            f"a fixed offset ({_fmt_offset(int(offset.total_seconds()) // 60)}) with no "
            "daylight saving time"
        )
    elif isinstance(zone, tzinfo):
        kind = with_article(f"{type(zone).__module__}.{type(zone).__qualname__}")
        what = f"{kind} ({str(zone)[:80]!r})"
    else:
        raise InvalidSchedule(
            f"timezone must be an IANA zone name or a ZoneInfo, got {kind_of(zone)}: "
            f"{_ZONE_EXAMPLE}"
        )
    raise InvalidSchedule(
        f"the timezone is {what}, which names no IANA zone; a schedule needs a named zone "
        f"(it is stored by name and follows that zone's clock changes): {_ZONE_EXAMPLE}, "
        "or ZoneInfo('Europe/Berlin')"
    )


def check_timezone(name: str | tzinfo) -> ZoneInfo:
    """The IANA zone ``name`` (a name, or a tzinfo :func:`zone_name` accepts); InvalidSchedule
    naming it (with a "did you mean") if unknown, or naming the plain zone for a ``right/``
    or ``posix/`` variant of one."""
    return _zone(zone_name(name))


@functools.cache
def _places() -> dict[str, str]:
    """Place names people say ("new york", "berlin") -> their zone, where only one has it."""
    found: dict[str, list[str]] = {}
    for name in _zone_names().values():
        if "/" in name and not name.startswith("Etc/"):
            found.setdefault(name.rsplit("/", 1)[1].replace("_", " ").lower(), []).append(name)
    return {place: names[0] for place, names in found.items() if len(names) == 1}


def zone_in_words(words: str) -> str | None:
    """The IANA zone a person means by ``words`` written for a zone, or None if they name
    none: a zone name in any case, a place (``berlin``, ``new york``), an abbreviation
    (``PST`` -> ``America/Los_Angeles``, ``Z`` -> ``UTC``) or a UTC offset (``+05:30`` ->
    ``Asia/Kolkata``). Used to tell people who put the zone in a schedule's words where
    it goes."""
    key = " ".join(words.lower().split())
    if key in _UTC_NAMES:
        return "UTC"
    if key in _ABBREVIATIONS:
        return _ABBREVIATIONS[key]
    minutes = _offset_minutes(key)
    if minutes is not None:
        return _OFFSET_PLACES.get(minutes)
    return _zone_names().get(key) or _places().get(key)


def zone_notice(name: str | tzinfo, *, default: str | None = None) -> str | None:
    """Why ``name`` should not be the zone of a person's schedule, or None when it is fine.

    ``default`` is the zone used where the name is left out, named to a caller who gave an
    empty one.

    Fixed offsets (``EST``, ``MST``, ``HST``, ``Etc/GMT+5``) are IANA names, but they never
    change for daylight saving time: a 9:00 task "in EST" fires at 10:00 New York time all
    summer. Abbreviations and offsets that are no zone at all (``PST``, ``IST``, ``Z``,
    ``+05:30``, ``UTC+5:30``) are unknown names. For both, the text names the zone to use
    instead; UTC and its aliases, and every place zone, get None.

    Example:
        >>> zone_notice("Europe/Berlin") is None
        True
        >>> print(zone_notice("EST"))  # doctest: +ELLIPSIS
        'EST' is a fixed offset (UTC-05:00) with no daylight saving time...'America/New_York'?...
    """
    try:
        name = zone_name(name)
        zone = _zone(name, default=default)
    except InvalidSchedule as exc:
        return str(exc)
    key = name.lower()
    if key in _UTC_NAMES or not (key in _FIXED_ZONES or _ETC_OFFSET_RE.fullmatch(key)):
        return None
    offset = datetime(2000, 1, 1, tzinfo=zone).utcoffset() or timedelta()
    minutes = int(offset.total_seconds()) // 60
    place = _ABBREVIATIONS.get(key) or _OFFSET_PLACES.get(minutes)
    where = f"did you mean {place!r}? Pass" if place else "pass"
    return (
        f"{name!r} is a fixed offset ({_fmt_offset(minutes)}) with no daylight saving time, so "
        f"its wall clock differs from local time wherever clocks change; {where} the IANA zone "
        "of the place (or 'UTC')"
    )


# --------------------------------------------------------------------------- instants


def _utc(value: datetime) -> datetime:
    """The instant in UTC: datetimes sharing a ZoneInfo compare by wall time, ignoring fold."""
    return value.astimezone(_UTC)


def _resolve(value: datetime, zone: ZoneInfo, *, end: bool = False) -> datetime:
    """The instant ``value`` means: a naive one is wall time in ``zone``.

    As for cron's fixed-time jobs, a wall time skipped by a spring change means the moment the
    clock jumps; a repeated one keeps its ``fold``. Aware values are kept as they are. As
    an ``end`` bound, a skipped wall time is the last instant before the jump (see
    :func:`resolve_end`), so no fire at the jump's later wall time is included.
    """
    resolve = resolve_end if end else resolve_wall
    if value.tzinfo is None:
        return resolve(value, zone)
    if isinstance(value.tzinfo, ZoneInfo):
        return resolve(value.replace(tzinfo=None), value.tzinfo)
    return value


def _same_moment(
    a: datetime | None, b: datetime | None, zone: ZoneInfo | None, *, end: bool = False
) -> bool:
    """Whether two optional bounds (ends if ``end``) are the same instant (a naive one read
    in ``zone``)."""
    if a is None or b is None or zone is None:
        return a == b
    return _utc(_resolve(a, zone, end=end)) == _utc(_resolve(b, zone, end=end))


def _fmt(value: datetime, zone: ZoneInfo | None, *, named: bool = False) -> str:
    """Short human form, e.g. ``2026-12-01 09:00 CET`` (seconds only when not zero).

    ``named``: the caller names the zone right after, so an abbreviation that is the zone's
    name (``UTC``, ``GMT``) is left out, not said twice (``2026-12-01 09:00 (UTC)``).
    """
    if zone is not None:
        value = _resolve(value, zone).astimezone(zone)
    text = (
        f"{iso_day(value)} {value:%H:%M:%S}" if value.second else f"{iso_day(value)} {value:%H:%M}"
    )
    abbreviation = value.tzname() if value.tzinfo is not None else None
    if not abbreviation or (named and zone is not None and abbreviation == zone.key):
        return text
    return f"{text} {abbreviation}"


def _end_words(value: datetime, zone: ZoneInfo | None) -> str:
    """An end bound as a person says it: ``through 2026-12-11`` when it is the last second
    of a day in the zone (an end set from a day: "until friday"); else ``until`` and
    :func:`_fmt` (the zone is named after it)."""
    local = _resolve(value, zone, end=True).astimezone(zone) if zone is not None else value
    if local.time().replace(microsecond=0) == time(23, 59, 59):
        return f"through {iso_day(local)}"
    if zone is not None and (jump := _jump_after(local, zone)) is not None:
        return f"before {_fmt(jump, zone, named=True)}, when the clocks jump"
    return f"until {_fmt(value, zone, named=True)}"


def _jump_after(end: datetime, zone: ZoneInfo) -> datetime | None:
    """The moment the clocks jump when the aware end bound ``end`` is the last instant
    before a spring jump (an end the clocks skip, see ``_cron.resolve_end``); else None."""
    local = end.astimezone(zone)
    after = after_end(local, zone)
    grows = (after.utcoffset() or timedelta()) > (local.utcoffset() or timedelta())
    return after if grows else None


def _pin_offset(value: datetime) -> datetime:
    """Give an aware datetime a fixed UTC offset (same instant, same wall time).

    PEP 495 makes a zone-aware time inside a DST overlap compare unequal to every other
    zone's datetime, so without this a stored schedule would not equal its JSON round trip.
    """
    try:
        if isinstance(value.tzinfo, ZoneInfo):
            value = _resolve(value, value.tzinfo)
        offset = value.utcoffset()
        return value if offset is None else value.astimezone(timezone(offset))
    except OverflowError:
        raise _off_calendar(value) from None


def _off_calendar(value: datetime) -> InvalidSchedule:
    """The error for a time whose UTC instant is outside the years 1-9999 a datetime holds."""
    return InvalidSchedule(
        f"{value.isoformat()} is too close to the ends of the calendar (years 1-9999) to schedule"
    )


# A naive datetime is wall time in the schedule's zone; an aware one is kept as that instant.
_Moment = Annotated[datetime, AfterValidator(_pin_offset)]


# --------------------------------------------------------------------------- describe helpers

_WEEKDAY_NAMES = ("Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday")
_MONTH_NAMES = (
    "January", "February", "March", "April", "May", "June",
    "July", "August", "September", "October", "November", "December",
)  # fmt: skip


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


def _hour_run(hours: list[int]) -> tuple[int, int, int] | None:
    """``(first, last, step)`` when the hours are evenly spaced from ``first``, maybe across
    midnight (``22, 23, 0, 1`` is 22 to 1 by 1), else None."""
    for i in range(len(hours)):
        turn = hours[i:] + hours[:i]
        steps = {(b - a) % 24 for a, b in itertools.pairwise(turn)}
        if len(steps) == 1:
            return turn[0], turn[-1], steps.pop()
    return None


def _describe_clock(minutes: list[int], hours: list[int]) -> tuple[str, bool, bool] | None:
    """When in a day a line fires: ``at 09:00 and 17:00``, ``every 15 minutes from 09:00 to
    16:45``, ``every 2 hours at :00``; whether that covers the whole day, and whether it
    crosses midnight. None when no short phrase says it."""
    if len(minutes) == 1:
        every, at = "every hour", f":{minutes[0]:02d}"
    elif 60 % (minutes[1] - minutes[0]) == 0 and minutes == list(
        range(0, 60, minutes[1] - minutes[0])
    ):
        step = minutes[1] - minutes[0]
        every, at = ("every minute" if step == 1 else f"every {step} minutes"), ""
    else:
        return None
    if len(hours) == 24:
        return (f"{every} at {at}" if at else every), True, False
    run = _hour_run(hours) if len(hours) > 1 else (hours[0], hours[0], 1)
    if at and run and len(hours) > 2 and hours == list(range(0, 24, run[2])):
        return f"every {run[2]} hours at {at}", True, False
    if at and len(hours) <= 4:
        return "at " + _join([f"{h:02d}{at}" for h in hours]), False, False
    if run is None or (run[2] > 1 and not at):
        return None  # e.g. every 15 minutes in every other hour
    first, last, step = run
    if step > 1:
        every = f"every {step} hours"
    window = f"from {first:02d}:{minutes[0]:02d} to {last:02d}:{minutes[-1]:02d}"
    return f"{every} {window}", False, first > last


def _describe_cron(line: CronLine) -> str | None:
    """Plain English for common cron lines, or None when a summary would mislead."""
    dom, dow = line.dom, line.dow
    if line.dom_or_dow and (len(dom) == 31 or len(dow) == 7):
        # Either day field matches (crontab(5)), and one of them matches every day.
        dom, dow = frozenset(range(1, 32)), frozenset(range(7))
    every_day = len(dom) == 31 and len(line.month) == 12 and len(dow) == 7
    clock = _describe_clock(sorted(line.minute), sorted(line.hour))
    if clock is None:
        return None
    when, whole_day, overnight = clock
    if every_day:
        return when if whole_day else f"{when} every day"
    if overnight:
        return None  # "from 22:00 to 05:45 on Friday": which Friday night is it?
    if len(line.month) != 12:
        if len(line.month) > 3 or dow != frozenset(range(7)):
            return None
        in_months = " in " + _join([_MONTH_NAMES[m - 1] for m in sorted(line.month)])
    else:
        in_months = ""
    parts: list[str] = []
    if len(dom) != 31:
        if len(dom) > 3:
            return None
        label = "day" if len(dom) == 1 else "days"
        days = _join([str(d) for d in sorted(dom)])
        parts.append(f"on {label} {days}" + (in_months or " of every month"))
    elif in_months:
        parts.append(f"every day{in_months}")
    if len(dow) != 7:
        weekdays = _describe_weekdays(dow)
        if not parts:
            parts.append(f"on {weekdays}")
        elif line.dom_or_dow:
            parts.append(f"or on {weekdays}")
        else:
            parts.append(f"if that is a {weekdays.replace(' and ', ' or ')}")
    return f"{when} {' '.join(parts)}" if parts else None


def _describe_seconds(seconds: int) -> str:
    """``every hour``, ``every 48 hours``, ``every 90 minutes``.

    Never in days: "every 2 days" is how people say, and :mod:`.phrases` reads, a
    calendar schedule that keeps its time of day, which elapsed time does not across a
    DST change."""
    for unit, size in (("hour", 3600), ("minute", 60), ("second", 1)):
        if seconds % size == 0:
            count = seconds // size
            return f"every {unit}" if count == 1 else f"every {count} {unit}s"
    raise AssertionError("unreachable")  # pragma: no cover


def _every_nth(count: int, unit: str) -> str:
    """``every other week``, ``every 3 days``."""
    return f"every other {unit}" if count == 2 else f"every {count} {unit}s"


# --------------------------------------------------------------------------- trigger


class _CronTrigger(BaseTrigger):  # type: ignore[misc]
    """The APScheduler 3 trigger of a :class:`Cron`: Debian cron's fields and DST rules.

    The next time comes from :func:`~langgraph_scheduler._cron.next_fire`, for the scheduler
    and for previews alike. Stateless (APScheduler keeps each job's next run time on the job),
    so equal schedules share one; picklable, for job stores that pickle triggers.
    """

    def __init__(
        self,
        expr: str,
        zone: ZoneInfo,
        *,
        start: datetime | None,
        end: datetime | None,
        stride: Stride | None,
    ) -> None:
        self.expr = expr
        self.zone = zone
        self.start = start
        self.end = end
        self.stride = stride

    def get_next_fire_time(
        self, previous_fire_time: datetime | None, now: datetime
    ) -> datetime | None:
        """The first fire at or after ``now``; after a previous fire, the one after it.

        As APScheduler's ``CronTrigger``: the fire after ``previous_fire_time`` is returned even
        when it is already past, so the scheduler can count misfires.
        """
        tick = timedelta(microseconds=1)
        if previous_fire_time is not None:
            previous = _utc(previous_fire_time)
            begin = min(_utc(now), previous + tick)
            if begin == previous:
                begin += tick
        else:
            begin = _utc(now)
        if self.start is not None:
            begin = max(begin, _utc(self.start))
        fire = next_fire(parse_cron(self.expr), self.zone, begin - tick, stride=self.stride)
        if fire is None or (self.end is not None and _utc(fire) > _utc(self.end)):
            return None
        return fire

    def __str__(self) -> str:
        return f"cron[{self.expr!r}, {self.zone.key}]"

    def __repr__(self) -> str:
        return (
            f"<_CronTrigger {self.expr!r} zone={self.zone.key!r} start={self.start} "
            f"end={self.end} stride={self.stride}>"
        )


# --------------------------------------------------------------------------- models


_MOMENT_ERRORS = ("datetime_", "date_")
"""The kinds of pydantic error a start, an end or a ``Once``'s time that cannot be read
as a date or time raises."""
_QUOTED_MAX = 60
"""Most characters of a value quoted back in an error."""


def _moment_problem(error: ErrorDetails) -> str | None:
    """What is wrong with a start, an end or a time that pydantic could not read as one,
    quoting what was given ("'tomorrow' is no date or time (input is too short): ...");
    pydantic's own message ("Input should be a valid datetime or date, input is too
    short") quotes nothing and names no form to use. None for an error of another kind."""
    if not error["type"].startswith(_MOMENT_ERRORS):
        return None
    value = error.get("input")
    if isinstance(value, (str, int, float)) and not isinstance(value, bool):
        text = repr(value)
        said = text if len(text) <= _QUOTED_MAX else f"{text[: _QUOTED_MAX - 4]}...{text[-1]}"
    else:
        said = f"got {kind_of(value)}, which"
    reason = error.get("ctx", {}).get("error")
    because = f" ({reason})" if isinstance(reason, str) and reason else ""
    return (
        f"{said} is no date or time{because}: give a datetime, a date, or ISO 8601 text "
        "such as '2027-03-14T09:00+01:00'"
    )


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
            messages.append(f"{where}: {_moment_problem(error) or error['msg']}")
    return InvalidSchedule("invalid schedule: " + "; ".join(messages))


def _check_window(start: datetime | None, end: datetime | None, zone: ZoneInfo | None) -> None:
    """Reject ``end <= start`` whenever the two can be compared."""
    if start is None or end is None:
        return
    if zone is not None:
        start, end = _utc(_resolve(start, zone)), _utc(_resolve(end, zone, end=True))
    elif (start.tzinfo is None) != (end.tzinfo is None):
        return  # one naive, one aware: decided once the zone is known
    if end <= start:
        raise InvalidSchedule(
            f"end {_fmt(end, zone)} is not after start {_fmt(start, zone)}: "
            "the schedule could never fire"
        )


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

    @model_validator(mode="before")
    @classmethod
    def _keep_second_pass(cls, data: Any) -> Any:
        """Take ``tz`` as a ``ZoneInfo`` too, kept by its name (see :func:`zone_name`), and
        pin a naive time of a repeated hour's second pass (``fold=1``) to its UTC offset.

        JSON has no fold: stored naive, the second 02:30 of an autumn night would come back
        as the first. The first pass (``fold=0``) stays naive, as it round-trips as it is.
        """
        if isinstance(data, dict) and not isinstance(data.get("tz"), (str, type(None))):
            data = {**data, "tz": zone_name(data["tz"])}
        if not isinstance(data, dict) or not isinstance(data.get("tz"), str):
            return data
        try:
            zone = _zone(data["tz"])
        except InvalidSchedule:
            return data  # reported by the field checks
        pinned = {}
        for key in ("at", "start", "end"):
            value = data.get(key)
            if isinstance(value, datetime) and value.tzinfo is None and value.fold:
                moment = value.replace(tzinfo=zone)
                if moment.utcoffset() != moment.replace(fold=0).utcoffset():
                    pinned[key] = _pin_offset(moment)
        return {**data, **pinned} if pinned else data

    def model_post_init(self, context: Any, /) -> None:
        """Run the semantic checks, so a bad schedule cannot even be built."""
        if self.tz is not None:
            zone = _zone(self.tz)
            for moment in self._moments():
                try:
                    # A naive time near year 1 or 9999 read in the zone, or an aware one
                    # the zone's wall clock cannot show (its day past 9999-12-31 there).
                    _utc(_resolve(moment, zone)).astimezone(zone)
                except OverflowError:
                    raise _off_calendar(moment) from None
        self._validate()

    def _validate(self) -> None:
        """Kind-specific semantic checks; raise InvalidSchedule."""

    def _moments(self) -> list[datetime]:
        """The points in time the schedule names (``at``, or its bounds)."""
        return [moment for moment in self._window() if moment is not None]

    def _window(self) -> tuple[datetime | None, datetime | None]:
        """The optional ``start``/``end`` bounds."""
        return None, None

    @property
    def zone(self) -> ZoneInfo:
        """The schedule's zone; InvalidSchedule while ``tz`` is still None."""
        if self.tz is None:
            raise InvalidSchedule("schedule has no timezone; call with_default_tz")
        return _zone(self.tz)

    def with_default_tz(self, tz: str | tzinfo) -> Self:
        """A copy with ``tz`` filled in if it was None (the runtime's default zone)."""
        tz = zone_name(tz)
        _zone(tz)
        if self.tz is not None:
            return self
        return self.with_tz(tz)

    def with_tz(self, tz: str | tzinfo) -> Self:
        """A copy in zone ``tz``: the same wall-clock rules (and naive bounds) read there."""
        return type(self)(**{**self.model_dump(), "tz": zone_name(tz)})

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
        triggers are shared; the other kinds are built fresh, as :meth:`trigger` builds them.

        Args:
            now: As for :meth:`trigger`.
        """
        return self.trigger(now=now)

    def next_fire_times(self, n: int = 5, *, after: datetime | None = None) -> list[datetime]:
        """The next ``n`` fire times strictly after ``after`` (default: now), in the zone.

        Computed by the APScheduler trigger itself, exactly as the scheduler will, so the
        preview matches reality. Fewer than ``n`` when the schedule ends.

        Raises:
            InvalidSchedule: ``n`` is no whole number, 0 or more.
        """
        if not is_whole(n) or n < 0:
            raise InvalidSchedule(f"n must be a whole number of fire times, 0 or more, got {n!r}")
        zone = self.zone
        now = datetime.now(zone) if after is None else _resolve(after, zone)
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
            if _utc(fire) > _utc(now):
                times.append(fire.astimezone(zone))
            previous = fire
        return times

    def describe(self) -> str:
        """Short English, e.g. ``at 09:00 on Monday–Friday (Europe/Berlin)``."""
        raise NotImplementedError

    def same_as(self, other: _BaseSchedule) -> bool:
        """Whether ``other`` is this schedule, maybe written another way (a create repeated
        under a task's id returns the task only then).

        ``==`` stays field by field: equal schedules are stored and described alike.
        """
        return self == other

    def _bounds_text(self) -> str:
        """``, starting …, until …`` (or ``through <day>``) for the bounds that are set."""
        zone = _zone(self.tz) if self.tz else None
        start, end = self._window()
        text = f", starting {_fmt(start, zone, named=True)}" if start else ""
        return text + (f", {_end_words(end, zone)}" if end else "")

    @property
    def _zone_label(self) -> str:
        """The zone as shown in descriptions."""
        return self.tz or "runtime default timezone"

    def check(self, now: datetime) -> None:
        """Raise InvalidSchedule if the schedule can never fire after ``now``."""
        zone = self.zone
        now = _resolve(now, zone)
        start, end = self._window()
        _check_window(start, end, zone)
        if self.next_fire_times(1, after=now) or end is None:
            return
        upcoming = self.model_copy(update={"end": None}).next_fire_times(1, after=now)
        shown = _fmt(upcoming[0], zone, named=True) if upcoming else None
        first = f" the next fire time {shown}" if shown else " now"
        resolved = _resolve(end, zone, end=True)
        # An end the clocks skip is said as the jump (its instant reads 01:59:59 CET).
        said = (
            f"its end, just {_end_words(end, zone)},"
            if _jump_after(resolved, zone) is not None
            else f"its end {_fmt(resolved, zone)}"
        )
        raise InvalidSchedule(
            f"the schedule never fires: {said} is before{first} ({self.tz}); it is now "
            f"{_fmt(now, zone)}"
        )


class Cron(_BaseSchedule):
    """A crontab(5) line in a timezone, e.g. ``Cron("0 9 * * 1-5", tz="Europe/Berlin")``.

    Fields follow crontab(5), not APScheduler: day-of-week 0 and 7 are Sunday, 1 is Monday;
    names (``mon``, ``jan``) are case-insensitive; ranges, lists and steps work in every field,
    and weekday ranges may wrap (``fri-mon``). When both day-of-month and day-of-week are
    restricted a day matching *either* fires; when either field starts with ``*`` (even
    ``*/2``) both must match. Macros: @yearly, @annually, @monthly, @weekly, @daily,
    @midnight, @hourly.

    ``every_days=N`` keeps only every N-th day counting from the date of ``start`` (the line's
    day fields must then be ``*``), ``every_weeks=N`` only every N-th week (Monday to Sunday)
    counting from the week of ``start``: "every other day at 8" is
    ``Cron("0 8 * * *", every_days=2, start=...)``.

    Note:
        Daylight-saving changes follow Debian's cron. A line is *fixed-time* when neither its
        minute nor its hour field starts with ``*`` (``30 2 * * *``, ``0 9-17 * * 1-5``) and
        *wildcard* otherwise (``*/20 2 * * *``, ``0 * * * *``).

        * Spring-forward gap -- a fixed-time line whose time does not exist that day fires
          once, at the moment the clock jumps (``30 2 * * *`` in New York on 2027-03-14 fires
          at 03:00 EDT), also when several of its times are in the gap (``0,30 2``, which
          Debian runs once per time); a wildcard line's times inside the gap do not fire.
          Gaps of any size: where Debian takes a jump of 3 hours or more for the clock being
          set and skips the fixed-time jobs in it (Pacific/Apia 2011, Pacific/Kwajalein
          1993, Antarctica/Casey 2009), they fire at the jump here too.
        * Autumn overlap -- a fixed-time line fires once, in the first pass; a wildcard line
          fires in both passes (``*/20 2 * * *`` in Berlin on 2026-10-25 fires six times).
        * No day is ever skipped (daily, weekly, monthly and yearly lines fire on every
          matching day), and fire times strictly increase. A stride counts the day a fire
          is due, also when its gap ends on the next day (a day the zone skips whole).
    """

    kind: Literal["cron"] = "cron"
    expr: str
    tz: str | None = None
    start: _Moment | None = None
    end: _Moment | None = None
    every_days: int | None = None
    every_weeks: int | None = None

    def __init__(self, expr: str | None = None, /, **data: Any) -> None:
        """Accept the cron line positionally: ``Cron("0 9 * * 1-5", tz="UTC")``."""
        if expr is not None:
            if "expr" in data:
                raise TypeError("Cron() got the cron line both positionally and as expr=")
            data["expr"] = expr
        super().__init__(**data)

    @model_serializer(mode="wrap")
    def _omit_unset_strides(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """Leave out ``every_days``/``every_weeks`` when unset: plain lines store as before."""
        data: dict[str, Any] = handler(self)
        for key in ("every_days", "every_weeks"):
            if data.get(key) is None:
                data.pop(key, None)
        return data

    def _validate(self) -> None:
        line = parse_cron(self.expr)
        _check_window(self.start, self.end, _zone(self.tz) if self.tz else None)
        if self.every_days is not None and self.every_weeks is not None:
            raise InvalidSchedule("give every_days or every_weeks, not both")
        if self.every_days is not None:
            most = LONGEST_STRIDE["day"]
            _check_stride("every_days", self.every_days, self.start, self.expr, line, most)
        if self.every_weeks is not None:
            most = LONGEST_STRIDE["week"]
            _check_stride("every_weeks", self.every_weeks, self.start, self.expr, line, most)

    def _window(self) -> tuple[datetime | None, datetime | None]:
        return self.start, self.end

    def _stride(self, zone: ZoneInfo) -> Stride | None:
        if self.start is None:
            return None
        first_day = _resolve(self.start, zone).astimezone(zone).date()
        if self.every_days is not None:
            return Stride(self.every_days, "days", first_day)
        if self.every_weeks is not None:
            return Stride(self.every_weeks, "weeks", first_day)
        return None

    def trigger(self, *, now: datetime | None = None) -> BaseTrigger:
        """The cron trigger: Debian cron's fields and DST rules, honouring start/end."""
        zone = self.zone
        return _CronTrigger(
            self.expr,
            zone,
            start=_resolve(self.start, zone) if self.start else None,
            end=_resolve(self.end, zone, end=True) if self.end else None,
            stride=self._stride(zone),
        )

    def shared_trigger(self, *, now: datetime | None = None) -> BaseTrigger:
        """The trigger of :meth:`trigger`, built once for all equal cron schedules."""
        return _shared_cron_trigger(self)

    def same_as(self, other: _BaseSchedule) -> bool:
        """The same zone, strides and bounds (as instants), and a line matching the same
        times with the same daylight-saving rules (see ``CronLine.meaning``): ``0 9 * * MON``
        is ``0  9 * * 1``, ``@daily`` is ``0 0 * * *``; ``0 9 1-31 * 1`` fires every day
        (crontab(5)'s day rule), so it is not ``0 9 * * 1``."""
        if self == other:
            return True
        if not isinstance(other, Cron) or (self.tz, self.every_days, self.every_weeks) != (
            other.tz,
            other.every_days,
            other.every_weeks,
        ):
            return False
        zone = _zone(self.tz) if self.tz else None
        (start, end), (other_start, other_end) = self._window(), other._window()
        same = _same_moment(start, other_start, zone) and _same_moment(
            end, other_end, zone, end=True
        )
        return same and (parse_cron(self.expr).meaning == parse_cron(other.expr).meaning)

    def describe(self) -> str:
        """E.g. ``at 09:00 on Monday–Friday (Europe/Berlin)``; ``cron '…' (zone)`` otherwise."""
        line = parse_cron(self.expr)
        summary = _describe_cron(line)
        if summary is None:
            summary = f"cron {self.expr.strip()!r}"
        if self.every_days is not None:
            stride = _every_nth(self.every_days, "day")
            summary = (
                summary.replace("every day", stride)
                if summary.endswith("every day")
                else f"{summary}, {stride}"
            )
        elif self.every_weeks is not None:
            stride = _every_nth(self.every_weeks, "week")
            summary = (
                summary.replace("every day", f"every day of {stride}")
                if summary.endswith("every day")
                else f"{summary} {stride}"
            )
        return f"{summary}{self._bounds_text()} ({self._zone_label})"


def _check_stride(
    key: str, count: int, start: datetime | None, expr: str, line: CronLine, most: int
) -> None:
    """``every_days``/``every_weeks`` need 2 or more, a start to count from, and free days."""
    if not 2 <= count <= most:
        raise InvalidSchedule(
            f"{key}={count} is not allowed: use 2 to {most} (leave it out to fire on every "
            "matching day)"
        )
    if start is None:
        raise InvalidSchedule(
            f"{key} counts from start: give start, the first time it may fire, e.g. "
            "start=datetime(2026, 4, 1, 8, 0)"
        )
    unrestricted = {"day-of-month": len(line.dom) == 31, "month": len(line.month) == 12}
    if key == "every_days":
        unrestricted["day-of-week"] = len(line.dow) == 7
    if not all(unrestricted.values()):
        raise InvalidSchedule(
            f"{key} picks the days itself: the cron line's {_join(list(unrestricted))} must "
            f"be '*', got {expr.strip()!r}"
        )


@functools.lru_cache(maxsize=1024)
def _shared_cron_trigger(schedule: Cron) -> BaseTrigger:
    """One trigger per distinct cron schedule (equal schedules mean the same instants)."""
    return schedule.trigger()


_UNIT_SECONDS = {"seconds": 1, "minutes": 60, "hours": 3600, "days": 86400}


class Interval(_BaseSchedule):
    """Every ``seconds`` of elapsed time, e.g. ``Interval(hours=2, tz="UTC")``.

    ``minutes=``, ``hours=`` and ``days=`` are accepted and added up into ``seconds``. The first
    fire is ``start`` (or now + the interval when None); later fires are whole intervals
    after it, so across a DST change the wall-clock time shifts by the change: ``days=1`` is
    86,400 s, not a calendar day (for the same time every N days, use :class:`Cron` with
    ``every_days``).
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
        total = Fraction(0)
        for unit, size in _UNIT_SECONDS.items():
            value = data.pop(unit, 0)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise InvalidSchedule(f"interval {unit} must be a number, got {value!r}")
            if not math.isfinite(value):
                raise InvalidSchedule(f"interval {unit} must be a finite number, got {value!r}")
            # The decimal a float is written as (1.1, not 1.100000000000000088…): hours=1.1
            # is 3960 seconds, as a person means it.
            total += Fraction(repr(value)) * size
        if total.denominator != 1 and abs(total) <= _MAX_INTERVAL_SECONDS:
            raise InvalidSchedule(
                f"interval must be a whole number of seconds, got {float(total):g}"
            )
        data["seconds"] = int(total)  # past the limit: refused by the range check
        return data

    def _validate(self) -> None:
        if not 0 < self.seconds <= _MAX_INTERVAL_SECONDS:
            raise InvalidSchedule(
                f"interval of {self.seconds} seconds is not allowed: it must be at least "
                "1 second and at most 366 days (for a date once a year, use a yearly cron "
                "line such as '0 9 1 3 *')"
            )
        _check_window(self.start, self.end, _zone(self.tz) if self.tz else None)

    def _window(self) -> tuple[datetime | None, datetime | None]:
        return self.start, self.end

    def trigger(self, *, now: datetime | None = None) -> BaseTrigger:
        """An IntervalTrigger; without ``start`` it first fires one interval after ``now``."""
        zone = self.zone
        if self.start is not None:
            start = _resolve(self.start, zone)
        else:
            start = self.first_fire_from(now or datetime.now(zone))
        return IntervalTrigger(
            seconds=self.seconds,
            start_date=start,
            end_date=_resolve(self.end, zone, end=True) if self.end else None,
            timezone=zone,
        )

    def first_fire_from(self, now: datetime) -> datetime:
        """The first fire of an interval without ``start`` counted from ``now``: one
        interval of elapsed time later (through UTC, so a DST change shifts the wall
        clock), in the schedule's zone. A naive ``now`` is wall time in the zone.

        The trigger starts there; a task stores it as the schedule's ``start``, so a
        restart keeps the interval's phase.

        Raises:
            InvalidSchedule: it is past the end of the calendar (year 9999); says to use a
                shorter interval.
        """
        zone = self.zone
        try:
            return (_utc(_resolve(now, zone)) + timedelta(seconds=self.seconds)).astimezone(zone)
        except OverflowError:
            # ``now`` as given: read in the zone it could be past the calendar too
            raise InvalidSchedule(
                f"schedule {self.describe()} has no fire time after {_fmt(now, None)}: one "
                "interval later is past the end of the calendar (year 9999); use a shorter "
                "interval"
            ) from None

    def describe(self) -> str:
        """E.g. ``every 2 hours (UTC)``."""
        return f"{_describe_seconds(self.seconds)}{self._bounds_text()} ({self._zone_label})"


class Once(_BaseSchedule):
    """A single fire at ``at``, e.g. ``Once(datetime(2026, 12, 1, 9), tz="Europe/Berlin")``.

    A naive ``at`` is wall time in ``tz``. In an autumn overlap ``fold`` picks the pass (0,
    the default: the first; 1: the second, which storage keeps); a time skipped by a spring
    change fires at the moment the clock jumps, as cron's fixed-time jobs do.
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

    def _moments(self) -> list[datetime]:
        return [self.at]

    def trigger(self, *, now: datetime | None = None) -> BaseTrigger:
        """A DateTrigger at ``at`` in the schedule's zone."""
        zone = self.zone
        return DateTrigger(run_date=_resolve(self.at, zone), timezone=zone)

    def describe(self) -> str:
        """E.g. ``once at 2026-12-01 09:00 CET (Europe/Berlin)``."""
        zone = _zone(self.tz) if self.tz else None
        return f"once at {_fmt(self.at, zone, named=True)} ({self._zone_label})"

    def check(self, now: datetime) -> None:
        """Raise InvalidSchedule when ``at`` is not after ``now``, saying both times."""
        zone = self.zone
        if _utc(_resolve(self.at, zone)) <= _utc(_resolve(now, zone)):
            raise InvalidSchedule(
                f"{_fmt(self.at, zone, named=True)} ({self.tz}) is in the past: it is now "
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


def parse_schedule(text: str, *, tz: str | tzinfo, now: datetime) -> Cron | Interval | Once:
    """Turn short English or a cron line into a schedule in ``tz``, checked against ``now``.

    The grammar is :func:`langgraph_scheduler.phrases.read_schedule`, which also returns a
    note saying how vague words were read ("tomorrow morning" as 09:00).

    Args:
        text: E.g. "in 20 minutes", "every weekday at 9am", "0 9 * * 1-5" (see ACCEPTED_FORMS).
        tz: IANA zone the words mean (wall times, "today"): a name or a named ``ZoneInfo``.
        now: The current time; naive means wall time in ``tz``.

    Raises:
        InvalidSchedule: The text is not understood, is ambiguous (the message is a question
            to relay), names an invalid value, is in the past, or ``tz`` names no IANA zone.
    """
    from .phrases import read_schedule  # the grammar builds on this module's models

    return read_schedule(text, tz=tz, now=now).schedule
