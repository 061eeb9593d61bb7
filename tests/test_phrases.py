"""The phrases people say to an assistant (langgraph_scheduler.phrases), with a fixed "now"."""

from __future__ import annotations

import re
from datetime import datetime, timezone
from itertools import islice, takewhile
from zoneinfo import ZoneInfo

import pytest
from cronsim import CronSim
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from langgraph_scheduler.errors import InvalidSchedule
from langgraph_scheduler.phrases import dst_note, read_schedule
from langgraph_scheduler.schedules import (
    ACCEPTED_FORMS,
    Cron,
    Interval,
    Once,
    parse_schedule,
    schedule_from_dict,
    schedule_to_dict,
)

BERLIN = "Europe/Berlin"
NEW_YORK = "America/New_York"
# Tuesday noon, five days before Berlin springs forward (2026-03-29 02:00 -> 03:00).
TUESDAY = "2026-03-24T12:00:00+01:00"
# Saturday noon, the day before.
SAT_BERLIN = "2026-03-28T12:00:00+01:00"


def _iso(times: list[datetime]) -> list[str]:
    return [t.isoformat() for t in times]


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text)


# --------------------------------------------------------------------------- the phrases

PHRASES = [
    ("hourly", "every hour at :00 (Europe/Berlin)",
     ["2026-03-24T13:00:00+01:00", "2026-03-24T14:00:00+01:00"]),
    ("daily at 7", "at 07:00 every day (Europe/Berlin)",
     ["2026-03-25T07:00:00+01:00", "2026-03-26T07:00:00+01:00"]),
    ("every other day at 8",
     "at 08:00 every other day, starting 2026-03-25 08:00 CET (Europe/Berlin)",
     ["2026-03-25T08:00:00+01:00", "2026-03-27T08:00:00+01:00", "2026-03-29T08:00:00+02:00"]),
    ("every 2 weeks on monday at 9",
     "at 09:00 on Monday every other week, starting 2026-03-30 09:00 CEST (Europe/Berlin)",
     ["2026-03-30T09:00:00+02:00", "2026-04-13T09:00:00+02:00"]),
    ("next monday at 10", "once at 2026-03-30 10:00 CEST (Europe/Berlin)",
     ["2026-03-30T10:00:00+02:00"]),
    ("on December 24 at 6pm", "once at 2026-12-24 18:00 CET (Europe/Berlin)",
     ["2026-12-24T18:00:00+01:00"]),
    ("on the 1st of every month at 9", "at 09:00 on day 1 of every month (Europe/Berlin)",
     ["2026-04-01T09:00:00+02:00", "2026-05-01T09:00:00+02:00"]),
    ("in 1.5 hours", "once at 2026-03-24 13:30 CET (Europe/Berlin)",
     ["2026-03-24T13:30:00+01:00"]),
    ("tomorrow morning", "once at 2026-03-25 09:00 CET (Europe/Berlin)",
     ["2026-03-25T09:00:00+01:00"]),
    ("this evening", "once at 2026-03-24 18:00 CET (Europe/Berlin)",
     ["2026-03-24T18:00:00+01:00"]),
    ("tonight", "once at 2026-03-24 20:00 CET (Europe/Berlin)", ["2026-03-24T20:00:00+01:00"]),
    ("at noon", "once at 2026-03-25 12:00 CET (Europe/Berlin)",  # it is noon now: the next
     ["2026-03-25T12:00:00+01:00"]),
    ("at midnight", "once at 2026-03-25 00:00 CET (Europe/Berlin)",
     ["2026-03-25T00:00:00+01:00"]),
    ("weekdays at 7:30", "at 07:30 on Monday–Friday (Europe/Berlin)",
     ["2026-03-25T07:30:00+01:00", "2026-03-26T07:30:00+01:00", "2026-03-27T07:30:00+01:00",
      "2026-03-30T07:30:00+02:00"]),
    ("every weekday except friday at 9", "at 09:00 on Monday–Thursday (Europe/Berlin)",
     ["2026-03-25T09:00:00+01:00", "2026-03-26T09:00:00+01:00", "2026-03-30T09:00:00+02:00"]),
    # more of the same family
    ("every other monday at 9",
     "at 09:00 on Monday every other week, starting 2026-03-30 09:00 CEST (Europe/Berlin)",
     ["2026-03-30T09:00:00+02:00", "2026-04-13T09:00:00+02:00"]),
    ("every 3 days at 21:00",
     "at 21:00 every 3 days, starting 2026-03-24 21:00 CET (Europe/Berlin)",
     ["2026-03-24T21:00:00+01:00", "2026-03-27T21:00:00+01:00", "2026-03-30T21:00:00+02:00"]),
    ("this friday at 9", "once at 2026-03-27 09:00 CET (Europe/Berlin)",
     ["2026-03-27T09:00:00+01:00"]),
    ("friday next week at 9", "once at 2026-04-03 09:00 CEST (Europe/Berlin)",
     ["2026-04-03T09:00:00+02:00"]),
    ("on monday at 9", "once at 2026-03-30 09:00 CEST (Europe/Berlin)",
     ["2026-03-30T09:00:00+02:00"]),
    ("on mondays at 9", "at 09:00 on Monday (Europe/Berlin)",
     ["2026-03-30T09:00:00+02:00", "2026-04-06T09:00:00+02:00"]),
    ("9am tomorrow", "once at 2026-03-25 09:00 CET (Europe/Berlin)",
     ["2026-03-25T09:00:00+01:00"]),
    ("at 7 every weekday", "at 07:00 on Monday–Friday (Europe/Berlin)",
     ["2026-03-25T07:00:00+01:00"]),
    ("tonight at 8", "once at 2026-03-24 20:00 CET (Europe/Berlin)",
     ["2026-03-24T20:00:00+01:00"]),
    ("tomorrow evening at 7:30", "once at 2026-03-25 19:30 CET (Europe/Berlin)",
     ["2026-03-25T19:30:00+01:00"]),
    ("on the 24th of december at 18:00", "once at 2026-12-24 18:00 CET (Europe/Berlin)",
     ["2026-12-24T18:00:00+01:00"]),
    ("on february 29 at 9", "once at 2028-02-29 09:00 CET (Europe/Berlin)",
     ["2028-02-29T09:00:00+01:00"]),
    ("every year on december 24 at 9", "at 09:00 on day 24 in December (Europe/Berlin)",
     ["2026-12-24T09:00:00+01:00", "2027-12-24T09:00:00+01:00"]),
    ("in half an hour", "once at 2026-03-24 12:30 CET (Europe/Berlin)",
     ["2026-03-24T12:30:00+01:00"]),
    ("every 1.5 hours", "every 90 minutes, starting 2026-03-24 13:30 CET (Europe/Berlin)",
     ["2026-03-24T13:30:00+01:00", "2026-03-24T15:00:00+01:00"]),
    # a bare hour after a part of the day follows it, also with two digits
    ("tonight at 11", "once at 2026-03-24 23:00 CET (Europe/Berlin)",
     ["2026-03-24T23:00:00+01:00"]),
    ("this evening at 10:30", "once at 2026-03-24 22:30 CET (Europe/Berlin)",
     ["2026-03-24T22:30:00+01:00"]),
    ("tomorrow afternoon at 12:30", "once at 2026-03-25 12:30 CET (Europe/Berlin)",
     ["2026-03-25T12:30:00+01:00"]),
    # a night keeps its small hours
    ("tonight at midnight", "once at 2026-03-25 00:00 CET (Europe/Berlin)",
     ["2026-03-25T00:00:00+01:00"]),
    ("tonight at 12:30am", "once at 2026-03-25 00:30 CET (Europe/Berlin)",
     ["2026-03-25T00:30:00+01:00"]),
    ("friday night at 1am", "once at 2026-03-28 01:00 CET (Europe/Berlin)",
     ["2026-03-28T01:00:00+01:00"]),
    # several times a day, steps within a day, a start
    ("every day at 9 and 5pm", "at 09:00 and 17:00 every day (Europe/Berlin)",
     ["2026-03-24T17:00:00+01:00", "2026-03-25T09:00:00+01:00"]),
    ("every 15 minutes between 9 and 17",
     "every 15 minutes from 09:00 to 16:45 every day (Europe/Berlin)",
     ["2026-03-24T12:15:00+01:00"]),
    ("every hour between 9 and 17 on weekdays",
     "every hour from 09:00 to 16:00 on Monday–Friday (Europe/Berlin)",
     ["2026-03-24T13:00:00+01:00"]),
    ("every 30 minutes on weekdays", "every 30 minutes on Monday–Friday (Europe/Berlin)",
     ["2026-03-24T12:30:00+01:00"]),
    ("every day at 9 starting next monday",
     "at 09:00 every day, starting 2026-03-30 09:00 CEST (Europe/Berlin)",
     ["2026-03-30T09:00:00+02:00"]),
    # an end said as a day is shown as that day; one said as a time keeps it
    ("every day at 9 until sunday", "at 09:00 every day, through 2026-03-29 (Europe/Berlin)",
     ["2026-03-25T09:00:00+01:00"]),
    ("every 2 hours until 18:00",
     "every 2 hours, starting 2026-03-24 14:00 CET, until 2026-03-24 18:00 CET (Europe/Berlin)",
     ["2026-03-24T14:00:00+01:00"]),
]  # fmt: skip


@pytest.mark.parametrize(("text", "described", "expected"), PHRASES)
def test_phrase(text: str, described: str, expected: list[str]) -> None:
    schedule = parse_schedule(text, tz=BERLIN, now=_at(TUESDAY))
    assert schedule.describe() == described
    assert _iso(schedule.next_fire_times(len(expected), after=_at(TUESDAY))) == expected
    assert schedule_from_dict(schedule_to_dict(schedule)) == schedule


NOTES = [
    ("tomorrow morning", "'tomorrow morning' is read as 09:00 (Wednesday 2026-03-25 09:00 CET)"),
    ("this evening", "'this evening' is read as 18:00 (Tuesday 2026-03-24 18:00 CET)"),
    ("tonight", "'tonight' is read as 20:00 (Tuesday 2026-03-24 20:00 CET)"),
    ("tomorrow afternoon", "'tomorrow afternoon' is read as 15:00"),
    ("friday night", "'friday night' is read as 20:00 (Friday 2026-03-27 20:00 CET)"),
    ("on the 31st of every month at 9", "months without a day 31 are skipped"),
    ("every year on february 29 at 9", "February 29 exists only in leap years"),
    # a time alone names its day
    ("at 9", "'at 9' is read as the next 09:00: tomorrow, Wednesday 2026-03-25"),
    ("5pm", "'5pm' is read as the next 17:00: today, Tuesday 2026-03-24"),
    # a window names its last run; a step on days says it keeps to the clock
    (
        "every 15 minutes between 9 and 17",
        "'between 9 and 17' is 09:00 up to 17:00: the last run each day is at 16:45, none at "
        "17:00 itself; end the window an hour later to include it",
    ),
    (
        "every hour from 9am to 5pm",
        "'from 9am to 5pm' is 09:00 up to 17:00: the last run each day is at 16:00",
    ),
    (
        "every 30 minutes on weekdays",
        "'every 30 minutes on weekdays' runs on the clock (from :00), not counted from now",
    ),
    # an end is included, and the note names the last run
    (
        "every day at 9 until friday",
        "'until friday' runs up to and including the end of Friday 2026-03-27: the last run is "
        "Friday 2026-03-27 09:00 CET",
    ),
    (
        "every 2 hours until 18:00",
        "'until 18:00' runs up to and including Tuesday 2026-03-24 18:00 CET: the last run is "
        "Tuesday 2026-03-24 18:00 CET",
    ),
    (
        "every 15 minutes between 9 and 17 until friday",
        "'between 9 and 17' is 09:00 up to 17:00: the last run each day is at 16:45, none at "
        "17:00 itself; end the window an hour later to include it; 'until friday' runs up to "
        "and including the end of Friday 2026-03-27: the last run is Friday 2026-03-27 16:45",
    ),
    ("every day starting monday at 9", "09:00 is read as the time of each run, not only the first"),
    (
        "every friday night at 1am",
        "'every friday night at 1am' runs in the small hours after that night: on Saturdays",
    ),
    (
        "today at midnight",
        "'today at midnight' is read as the midnight that ends today (Wednesday 2026-03-25 00:00",
    ),
]


@pytest.mark.parametrize(("text", "note"), NOTES)
def test_vague_words_come_with_a_note(text: str, note: str) -> None:
    reading = read_schedule(text, tz=BERLIN, now=_at(TUESDAY))
    assert reading.note is not None and reading.note.startswith(note)


def test_exact_words_need_no_note() -> None:
    assert read_schedule("tomorrow at 9", tz=BERLIN, now=_at(TUESDAY)).note is None


# The words each note quotes, written with capitals and odd spacing: quoted so, as the
# refusals quote them, not as the rules read them (lower-cased, spaces run together).
NOTES_AS_WRITTEN = [
    ("Tomorrow  Morning", TUESDAY,
     "'Tomorrow  Morning' is read as 09:00 (Wednesday 2026-03-25 09:00 CET); say a time if "
     "another is meant"),
    ("This EVENING?", TUESDAY, "'This EVENING' is read as 18:00 (Tuesday 2026-03-24 18:00 CET)"),
    ("Today at  Midnight", TUESDAY,
     "'Today at  Midnight' is read as the midnight that ends today (Wednesday 2026-03-25 "
     "00:00 CET)"),
    # a time said first is read last ("today at midnight"): the whole schedule, as given
    ("Midnight Today", TUESDAY, "'Midnight Today' is read as the midnight that ends today"),
    ("At  9", TUESDAY, "'At  9' is read as the next 09:00: tomorrow, Wednesday 2026-03-25"),
    ("5  PM", TUESDAY, "'5  PM' is read as the next 17:00: today, Tuesday 2026-03-24"),
    ("Every Friday Night at  1AM", TUESDAY,
     "'Every Friday Night at  1AM' runs in the small hours after that night: on Saturdays"),
    ("Every 30 Minutes on  Weekdays", TUESDAY,
     "'Every 30 Minutes on  Weekdays' runs on the clock (from :00), not counted from now"),
    ("every 15 minutes Between 9 AND 17", TUESDAY,
     "'Between 9 AND 17' is 09:00 up to 17:00: the last run each day is at 16:45"),
    ("Every Hour From 9AM  To 5PM", TUESDAY,
     "'From 9AM  To 5PM' is 09:00 up to 17:00: the last run each day is at 16:00"),
    ("every day at 9 Until  Friday", TUESDAY,
     "'Until  Friday' runs up to and including the end of Friday 2026-03-27: the last run is "
     "Friday 2026-03-27 09:00 CET"),
    # the word said for the end, not 'until'
    ("every day at 9 Till Friday", TUESDAY, "'Till Friday' runs up to and including the end"),
    ("every 2 hours THROUGH 18:00", TUESDAY,
     "'THROUGH 18:00' runs up to and including Tuesday 2026-03-24 18:00 CET"),
    ("every 15 minutes Until 02:45", SAT_BERLIN,
     "the clocks skip 02:45 on Sunday 2026-03-29 in Europe/Berlin: 'Until 02:45' runs up to "
     "Sunday 2026-03-29 03:00 CEST, when they jump"),
    # the schedule's note and its end's, each as written
    ("Every 30 Minutes on Weekdays UNTIL Friday", TUESDAY,
     "'Every 30 Minutes on Weekdays' runs on the clock (from :00), not counted from now; "
     "'UNTIL Friday' runs up to and including the end of Friday 2026-03-27"),
]  # fmt: skip


@pytest.mark.parametrize(("text", "now", "note"), NOTES_AS_WRITTEN)
def test_a_note_quotes_the_words_as_written(text: str, now: str, note: str) -> None:
    # They were quoted lower-cased, their spaces run together: 'tomorrow morning'.
    reading = read_schedule(text, tz=BERLIN, now=_at(now))
    assert reading.note is not None and reading.note.startswith(note), reading.note


CLOCK_CHANGE_NOTES = [
    # the run time differs from the words: say why
    ("tomorrow at 2:30", BERLIN, SAT_BERLIN,
     "the clocks skip 02:30 on Sunday 2026-03-29 in Europe/Berlin: it runs at Sunday "
     "2026-03-29 03:00 CEST, when they jump"),
    ("2026-03-29T02:30", BERLIN, SAT_BERLIN, "the clocks skip 02:30 on Sunday 2026-03-29"),
    ("at 2:15", "Australia/Lord_Howe", "2026-10-03T12:00:00+10:30",
     "the clocks skip 02:15 on Sunday 2026-10-04 in Australia/Lord_Howe: it runs at Sunday "
     "2026-10-04 02:30 +11, when they jump"),
    # Samoa skipped 2011-12-30 whole
    ("tomorrow at 9", "Pacific/Apia", "2011-12-29T12:00:00-10:00",
     "the clocks skip 09:00 on Friday 2011-12-30 in Pacific/Apia: it runs at Saturday "
     "2011-12-31 00:00 +14, when they jump"),
    # a repeated time: which pass runs
    ("tomorrow at 2:30", BERLIN, "2026-10-24T12:00:00+02:00",
     "02:30 on Sunday 2026-10-25 comes twice in Europe/Berlin as the clocks go back: it runs "
     "at the first, Sunday 2026-10-25 02:30 CEST; for the second, say '2026-10-25T02:30+01:00'"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("text", "said", "zone", "rest"),
    [
        # the zone quoted as written (it was lower-cased, its spaces run together)
        ("at 9am PST", "PST", "America/Los_Angeles", "at 9am"),
        ("tomorrow at 9 EST", "EST", "America/New_York", "tomorrow at 9"),
        ("every weekday at 9 New York time", "New York", "America/New_York", "every weekday at 9"),
        ("every day at 9  New   York", "New   York", "America/New_York", "every day at 9"),
        ("every day at 9 in UTC", "UTC", "UTC", "every day at 9"),
        ("daily at 7 Europe/London", "Europe/London", "Europe/London", "daily at 7"),
        ("every day at 9 +05:30", "+05:30", "Asia/Kolkata", "every day at 9"),
        ("every monday Berlin", "Berlin", "Europe/Berlin", "every monday"),  # a question next
    ],
)
def test_a_zone_in_the_words_is_refused_saying_where_it_goes(
    text: str, said: str, zone: str, rest: str
) -> None:
    """Told only "not understood", a caller would drop the zone and schedule in another."""
    expected = (
        f"'{said}' in the schedule is a timezone: give it as the timezone ('{zone}'), and "
        f"the schedule without it ('{rest}')"
    )
    with pytest.raises(InvalidSchedule, match=f"^{re.escape(expected)}$"):
        read_schedule(text, tz=BERLIN, now=_at(TUESDAY))


def test_words_that_name_no_zone_are_still_not_understood() -> None:
    with pytest.raises(InvalidSchedule, match="^could not understand the schedule"):
        read_schedule("every day at 9 on mars", tz=BERLIN, now=_at(TUESDAY))


_NO_ZONE = "looks like a timezone but is no known IANA zone name: give the zone as the timezone"
WORDS_AT_FAULT = [
    # a negative amount: refused as zero is, or as a negative interval
    ("in -5 minutes", "'in -5 minutes' is not in the future: give a positive duration"),
    ("In -1 Hour and  30 minutes",
     "'In -1 Hour and  30 minutes' is not in the future: give a positive duration"),
    ("every 2 hours starting in -5 minutes",
     "'in -5 minutes' is not in the future: give a positive duration"),
    ("every -5 minutes",
     "'every -5 minutes' is a negative interval: it must be at least 1 second; say e.g. "
     "'every 5 minutes'"),
    ("Every -15 minutes on weekdays",
     "'Every -15 minutes' is a negative interval: it must be at least 1 second; say e.g. "
     "'every 15 minutes on weekdays'"),
    ("every -1 day at 9", "'every -1 day' is a negative interval: it must be at least 1 second"),
    # an amount in other digits, in scientific notation, with a thousands separator
    ("every \u0665 minutes",
     "the amount '\u0665' must be written as a plain number in digits 0-9: say e.g. "
     "'every 5 minutes'"),
    ("in \uff13 hours",
     "the amount '\uff13' must be written as a plain number in digits 0-9: say e.g. "
     "'in 3 hours'"),
    ("every 1e3 seconds",
     "the amount '1e3' must be written as a plain number in digits 0-9, with no exponent: "
     "say e.g. 'every 1000 seconds'"),
    # written so, it is refused for its size: the number alone, not a refused example
    ("every 1E9 days",
     "the amount '1E9' must be written as a plain number in digits 0-9, with no exponent: "
     "'1000000000'"),
    ("every 1,000 minutes",
     "the amount '1,000' must be written as a plain number in digits 0-9, with no thousands "
     "separator: say e.g. 'every 1000 minutes'"),
    # a minus sign or a dash written for "-"
    ("every \u22125 minutes",
     "'every \u22125 minutes' is a negative interval: it must be at least 1 second; say e.g. "
     "'every 5 minutes'"),
    ("in \u20135 minutes", "'in \u20135 minutes' is not in the future: give a positive duration"),
    ("every 2 hours starting in \u22125 minutes",
     "'in \u22125 minutes' is not in the future: give a positive duration"),
    # the amount of a start or an end, and the second amount of a duration
    ("every 2 hours starting in \u0665 minutes",
     "the amount '\u0665' must be written as a plain number in digits 0-9: say e.g. "
     "'every 2 hours starting in 5 minutes'"),
    ("Every day at 9 until in \u0663 days",
     "the amount '\u0663' must be written as a plain number in digits 0-9: say e.g. "
     "'every day at 9 until in 3 days'"),
    ("every 2 hours starting in 1e3 minutes until friday",
     "the amount '1e3' must be written as a plain number in digits 0-9, with no exponent: "
     "say e.g. 'every 2 hours starting in 1000 minutes until friday'"),
    ("in 1 hour and \u0663 minutes",
     "the amount '\u0663' must be written as a plain number in digits 0-9: say e.g. "
     "'in 1 hour and 3 minutes'"),
    ("every 1 hour and 1,000 seconds",
     "the amount '1,000' must be written as a plain number in digits 0-9, with no thousands "
     "separator: say e.g. 'every 1 hour and 1000 seconds'"),
    # a word shaped like a zone (Area/Location) that is none
    ("tomorrow at noon in Mars/Phobos",
     f"'Mars/Phobos' in the schedule {_NO_ZONE}, and the schedule without it "
     "('tomorrow at noon')"),
    ("Mars/Phobos every day at 9",
     f"'Mars/Phobos' in the schedule {_NO_ZONE}, and the schedule without it ('every day at 9')"),
    ("every day at 9 in Europe/Berln time",
     f"'Europe/Berln' in the schedule {_NO_ZONE}, and the schedule without it "
     "('every day at 9'); did you mean 'Europe/Berlin'?"),
    ("every 2 hours Etc/GMT+13",
     f"'Etc/GMT+13' in the schedule {_NO_ZONE}, and the schedule without it ('every 2 hours'); "
     "the Etc/GMT zones run from 'Etc/GMT-14' to 'Etc/GMT+12', in whole hours, with the sign "
     "reversed ('Etc/GMT+5' is UTC-05:00); better, give the zone of the place"),
]  # fmt: skip


def _refusal(text: str, tz: str = "UTC") -> str:
    """What ``text`` is refused with, said on :data:`TUESDAY`."""
    with pytest.raises(InvalidSchedule) as refused:
        read_schedule(text, tz=tz, now=_at(TUESDAY))
    return str(refused.value)


@pytest.mark.parametrize(("text", "refusal"), WORDS_AT_FAULT)
def test_a_refusal_says_what_is_wrong_with_the_words(text: str, refusal: str) -> None:
    """Told only "could not understand", a model guesses at what to change."""
    assert _refusal(text) == refusal


@pytest.mark.parametrize(
    "text",
    [
        "in -5",  # no unit: not a duration with a plain number either
        "every \u0665 fortnights",
        "every 1,5 minutes",  # a decimal comma, not a thousands separator
        "every -\u0665 minutes",  # two faults at once
        "in \u0665 hours and \u0663 minutes",
        "every \u0662 hours starting in \u0665 minutes",
        "in 1 hour and -3 minutes",
        "every day at 9 and \u0661\u0667",  # a time, not the amount of a duration
        "every day at 9 in Mars/",
        "every day at 9 in x/y",
        "every day at 9 in Mars/Phobos please",
        "every day at 9 AM/PM",  # no zone's location is two letters
        "every day at 9 Mon/Wed",  # days, not a zone
        "every day at 9 Jan/Feb",  # months, not a zone
        "every 1e99999999999999999999 days",  # too large to write out
    ],
)
def test_words_with_more_wrong_than_one_amount_or_zone_are_not_understood(text: str) -> None:
    assert _refusal(text).startswith(f"could not understand the schedule {text!r}")


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ("every 2 hours starting in \u0665 minutes until in \u0663 days", "in \u0665 minutes"),
        ("every 2 hours starting in \u2212\u0665 minutes", "in \u2212\u0665 minutes"),
        ("every 2 hours starting in \u0665 fortnights", "in \u0665 fortnights"),
        ("every 2 hours starting in \u0665 minutes PST", "in \u0665 minutes PST"),
    ],
)
def test_a_start_with_more_wrong_than_one_amount_is_no_day_or_time(text: str, said: str) -> None:
    """No one amount fixed makes the words read: none is told as the fault."""
    question = re.escape(f"When should it start? {said!r} is no day or time: ")
    with pytest.raises(InvalidSchedule, match=f"^{question}") as refused:
        read_schedule(text, tz="UTC", now=_at(TUESDAY))
    assert type(refused.value) is InvalidSchedule  # no private kind of it leaks


@pytest.mark.parametrize("tz", ["", "   ", "\t"])
def test_an_empty_timezone_is_refused_as_empty(tz: str) -> None:
    """It was an "unknown timezone ''", as if a name had been misspelt."""
    assert _refusal("in 5 minutes", tz) == (
        "the timezone is empty: leave it out to use the default, or use an IANA zone name such "
        "as 'Europe/Berlin', 'America/New_York' or 'UTC'"
    )


@pytest.mark.parametrize(("text", "tz", "now", "note"), CLOCK_CHANGE_NOTES)
def test_a_one_off_on_a_night_the_clocks_change_comes_with_a_note(
    text: str, tz: str, now: str, note: str
) -> None:
    reading = read_schedule(text, tz=tz, now=_at(now))
    assert reading.note is not None and reading.note.startswith(note)


REPEATING_CLOCK_CHANGE_NOTES = [
    # a fixed time the spring change skips runs when the clocks jump
    ("every day at 2:30", BERLIN, SAT_BERLIN,
     "the clocks skip 02:30 on Sunday 2026-03-29 in Europe/Berlin: it runs at Sunday "
     "2026-03-29 03:00 CEST, when they jump"),
    # several times in one gap run once, together
    ("0,30 2 * * *", BERLIN, SAT_BERLIN,
     "the clocks skip 02:00 and 02:30 on Sunday 2026-03-29 in Europe/Berlin: it runs once, "
     "at Sunday 2026-03-29 03:00 CEST, when they jump"),
    # a jump of a whole day (Samoa, 2011): the run moves to the next day
    ("every day at 8", "Pacific/Apia", "2011-12-29T12:00:00-10:00",
     "the clocks skip 08:00 on Friday 2011-12-30 in Pacific/Apia: it runs at Saturday "
     "2011-12-31 00:00 +14, when they jump"),
    # a wildcard hour the autumn change repeats runs in both passes
    ("*/30 * * * *", BERLIN, "2026-10-25T01:20:00+02:00",
     "02:00 and 02:30 on Sunday 2026-10-25 come twice in Europe/Berlin as the clocks go "
     "back: it runs in both passes"),
    ("0 * * * *", BERLIN, "2026-10-25T01:20:00+02:00",
     "02:00 on Sunday 2026-10-25 comes twice in Europe/Berlin as the clocks go back: it runs "
     "in both passes"),
    # nothing moved or doubled: a time at the jump, a fixed time repeated (run once, first
    # pass), elapsed time, a one-off (its words' note says it)
    ("every day at 3:00", BERLIN, SAT_BERLIN, None),
    ("every day at 2:30", BERLIN, "2026-10-24T12:00:00+02:00", None),
    ("every 30 minutes between 1 and 4", BERLIN, SAT_BERLIN, None),
    ("2026-03-29T02:30", BERLIN, SAT_BERLIN, None),
]  # fmt: skip


@pytest.mark.parametrize(("text", "tz", "now", "note"), REPEATING_CLOCK_CHANGE_NOTES)
def test_runs_a_clock_change_moves_or_doubles_come_with_a_note(
    text: str, tz: str, now: str, note: str | None
) -> None:
    schedule = read_schedule(text, tz=tz, now=_at(now)).schedule
    assert dst_note(schedule, schedule.next_fire_times(3, after=_at(now))) == note


UNTIL_A_SKIPPED_TIME = [
    ("every 15 minutes until 02:45", BERLIN, SAT_BERLIN, "2026-03-29 03:00 CEST", "01:45 CET"),
    ("every 15 minutes until 2026-03-29 02:45", BERLIN, SAT_BERLIN, "2026-03-29 03:00 CEST",
     "01:45 CET"),
    ("*/15 * * * * until 2:45", BERLIN, SAT_BERLIN, "2026-03-29 03:00 CEST", "01:45 CET"),
    ("every 15 minutes until 02:45", NEW_YORK, "2026-03-07T12:00:00-05:00",
     "2026-03-08 03:00 EDT", "01:45 EST"),
    ("every 30 minutes until 2:00", NEW_YORK, "2026-03-07T12:00:00-05:00",
     "2026-03-08 03:00 EDT", "01:30 EST"),
]  # fmt: skip


@pytest.mark.parametrize(("text", "tz", "now", "jump", "last"), UNTIL_A_SKIPPED_TIME)
def test_until_a_time_the_clocks_skip_ends_before_they_jump(
    text: str, tz: str, now: str, jump: str, last: str
) -> None:
    # "until 02:45" cannot include 03:00, later than 02:45 on the clock: the last run is
    # before the jump, as the schedule built by hand with that end has it
    reading = read_schedule(text, tz=tz, now=_at(now))
    schedule = reading.schedule
    fires = schedule.next_fire_times(200, after=_at(now))
    assert f"{fires[-1]:%H:%M %Z}" == last
    assert f", before {jump}, when the clocks jump ({tz})" in schedule.describe()
    said = f"runs up to {fires[-1]:%A} {jump}, when they jump, and not at it: the last run is "
    assert reading.note is not None and said in reading.note
    assert reading.note.endswith(last)


def test_until_a_skipped_time_refuses_the_run_the_jump_moves_past_it() -> None:
    # the 02:30 run, moved to 03:00 by the jump, is later than 02:30 on the clock
    with pytest.raises(
        InvalidSchedule,
        match=r"never runs: it ends before Sunday 2026-03-29 03:00 CEST, and its first run "
        r"would be Sunday 2026-03-29 03:00 CEST; say a later end, e\.g\. 'every day until "
        r"2026-03-29'$",
    ):
        read_schedule(
            "every day until 2026-03-29 02:30", tz=BERLIN, now=_at("2026-03-28T23:30:00+01:00")
        )


def test_an_interval_across_a_clock_change_has_no_note() -> None:
    schedule = Interval(hours=1, tz=BERLIN, start=datetime(2026, 3, 29, 1, 30))
    assert dst_note(schedule, schedule.next_fire_times(3, after=_at(SAT_BERLIN))) is None


@pytest.mark.parametrize(
    ("text", "tz", "now", "second"),
    [
        ("tomorrow at 2:30", BERLIN, "2026-10-24T12:00:00+02:00", "2026-10-25T02:30:00+01:00"),
        ("on november 1 at 1:30", NEW_YORK, "2026-10-30T12:00:00-04:00",
         "2026-11-01T01:30:00-05:00"),
        ("tomorrow at 1:45", "Australia/Lord_Howe", "2026-04-04T12:00:00+11:00",
         "2026-04-05T01:45:00+10:30"),
    ],
)  # fmt: skip
def test_a_repeated_time_names_how_to_ask_for_its_second_pass(
    text: str, tz: str, now: str, second: str
) -> None:
    note = read_schedule(text, tz=tz, now=_at(now)).note
    assert note is not None
    (said,) = re.findall(r"for the second, say '([^']+)'", note)
    again = read_schedule(said, tz=tz, now=_at(now)).schedule
    assert _iso(again.next_fire_times(1, after=_at(now))) == [second]


QUESTIONS = [
    ("every monday", r"At what time on Mondays\? Say e\.g\. 'every monday at 9:00'\."),
    ("weekdays", r"At what time on weekdays\?"),
    ("every day", r"At what time every day\? Say e\.g\. 'every day at 9:00'\."),
    ("daily", r"At what time every day\?"),
    ("every other day", r"At what time every other day\?"),
    ("every 2 weeks on monday", r"At what time every other week on Mondays\?"),
    ("every 2 weeks at 9", r"On which day of the week, every 2 weeks\?"),
    ("every week", r"On which day, and at what time, every week\?"),
    ("monthly", r"On which day, and at what time, monthly\?"),
    ("every month on the 15th", r"At what time on day 15 of each month\?"),
    ("tomorrow", r"At what time tomorrow\? Say e\.g\. 'tomorrow at 9:00'\."),
    ("next monday", r"At what time on Monday 2026-03-30\?"),
    ("on december 24", r"At what time on December 24\?"),
    ("next friday at 9",
     r"Which Friday: this week's \(2026-03-27\) or next week's \(2026-04-03\)\? "
     r"Say 'this friday at 9' or 'friday next week at 9'\."),
    ("next sunday", r"Which Sunday: this week's \(2026-03-29\) or next week's \(2026-04-05\)\?"),
    ("on the 15th at 9",
     r"The 15th of which month\? Say e\.g\. 'on the 15th of every month at 9:00' or "
     r"'on April 15 at 9:00'\."),
    ("tonight at 12", r"Do you mean 12:00 noon or midnight\?"),
    # a named day at midnight: the midnight that begins it, or the one that ends it?
    ("tomorrow at midnight",
     r"Which midnight: the one that begins Wednesday 2026-03-25 \(the night from Tuesday\), or "
     r"the one that ends it \(the night into Thursday\)\? Say 'March 25 2026 at 00:00' or "
     r"'March 26 2026 at 00:00'\."),
    ("on december 31 at midnight",
     r"Which midnight: the one that begins Thursday 2026-12-31 .* Say 'December 31 2026 at "
     r"00:00' or 'January 1 2027 at 00:00'\."),
    ("every 2 hours until tomorrow at midnight",
     r"Which midnight: .* Say 'every 2 hours until March 25 2026 at 00:00' or 'every 2 hours "
     r"until March 26 2026 at 00:00'\."),
    ("friday at midnight", r"Which midnight: the one that begins Friday 2026-03-27 "),
    ("every friday at midnight",
     r"Which midnight: at the start of Fridays, or at their end \(the start of Saturdays\)\? "
     r"Say 'every fri at 00:00' or 'every sat at 00:00'\."),
    ("weekdays at midnight", r"Which midnight: at the start of Mondays, .* or at their end"),
    ("tomorrow evening at 12:30",
     r"Do you mean 12:30 after noon or 00:30 after midnight\? Say '12:30pm' or '12:30am'\."),
    # the example of a question is never refused in turn
    ("every 1 week", r"'every 1 week' is every week: say e\.g\. 'every monday at 9'"),
    ("tomorrow morning at 8pm", r"Which time do you mean\? 20:00 is not in the morning"),
    ("this morning",
     r"'this morning' \(Tuesday 2026-03-24 09:00 CET\) has already passed: it is now "
     r"Tuesday 2026-03-24 12:00 CET in Europe/Berlin\. Did you mean"),
]  # fmt: skip


@pytest.mark.parametrize(("text", "question"), QUESTIONS)
def test_ambiguous_input_is_answered_with_a_question(text: str, question: str) -> None:
    with pytest.raises(InvalidSchedule, match=f"^{question}"):
        parse_schedule(text, tz=BERLIN, now=_at(TUESDAY))


# --------------------------------------------------------------------------- fire times

PARSE_CASES = [
    ("in 20 minutes", "Europe/Berlin", SAT_BERLIN, ["2026-03-28T12:20:00+01:00"]),
    ("in 2h", "Europe/Berlin", SAT_BERLIN, ["2026-03-28T14:00:00+01:00"]),
    ("in 90 seconds", "Europe/Berlin", SAT_BERLIN, ["2026-03-28T12:01:30+01:00"]),
    ("in 1 hour 30 minutes", "Europe/Berlin", SAT_BERLIN, ["2026-03-28T13:30:00+01:00"]),
    ("IN  1h30m", "Europe/Berlin", SAT_BERLIN, ["2026-03-28T13:30:00+01:00"]),
    ("in an hour", "Europe/Berlin", SAT_BERLIN, ["2026-03-28T13:00:00+01:00"]),
    # hours are elapsed time across DST; days keep the time of day (see below)
    ("in 3 days", "Europe/Berlin", SAT_BERLIN, ["2026-03-31T12:00:00+02:00"]),
    ("in 2 hours", "Europe/Berlin", "2026-03-29T01:30:00+01:00", ["2026-03-29T04:30:00+02:00"]),
    # wall times
    ("tomorrow at 9:00", "Europe/Berlin", SAT_BERLIN, ["2026-03-29T09:00:00+02:00"]),
    ("tomorrow at 9am", "America/New_York", "2026-03-07T20:00:00-05:00",
     ["2026-03-08T09:00:00-04:00"]),
    ("tomorrow at 9", "Europe/Berlin", SAT_BERLIN, ["2026-03-29T09:00:00+02:00"]),
    ("tomorrow at 9:30pm", "Europe/Berlin", SAT_BERLIN, ["2026-03-29T21:30:00+02:00"]),
    ("tomorrow 7 p.m.", "Europe/Berlin", SAT_BERLIN, ["2026-03-29T19:00:00+02:00"]),
    ("tomorrow at 12am", "Europe/Berlin", SAT_BERLIN, ["2026-03-29T00:00:00+01:00"]),
    ("today at midnight", "Europe/Berlin", SAT_BERLIN, ["2026-03-29T00:00:00+01:00"]),
    ("tomorrow at 12pm", "Europe/Berlin", SAT_BERLIN, ["2026-03-29T12:00:00+02:00"]),
    ("tomorrow at noon", "Europe/Berlin", SAT_BERLIN, ["2026-03-29T12:00:00+02:00"]),
    # in the spring gap: when the clock jumps, as cron's fixed-time jobs
    ("tomorrow at 2:30", "Europe/Berlin", SAT_BERLIN, ["2026-03-29T03:00:00+02:00"]),
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
    # every other day in New York, through the spring gap at 02:30
    ("every other day at 2:30", "America/New_York", "2027-03-12T12:00:00-05:00",
     ["2027-03-13T02:30:00-05:00", "2027-03-15T02:30:00-04:00"]),
    # ISO 8601: naive = wall time in tz, offsets as given
    ("2026-12-01T09:00", "Europe/Berlin", SAT_BERLIN, ["2026-12-01T09:00:00+01:00"]),
    ("2026-12-01 09:00", "Europe/Berlin", SAT_BERLIN, ["2026-12-01T09:00:00+01:00"]),
    ("2026-12-01T09:00+01:00", "Europe/Berlin", SAT_BERLIN, ["2026-12-01T09:00:00+01:00"]),
    ("2026-12-01T08:00Z", "Europe/Berlin", SAT_BERLIN, ["2026-12-01T09:00:00+01:00"]),
    ("2026-12-01T09:00:30-05:00", "Europe/Berlin", SAT_BERLIN, ["2026-12-01T15:00:30+01:00"]),
    # several times a day: one cron line when the times share their minutes
    ("every day at 9 and 5pm", BERLIN, SAT_BERLIN,
     ["2026-03-28T17:00:00+01:00", "2026-03-29T09:00:00+02:00", "2026-03-29T17:00:00+02:00"]),
    ("every weekday at 9:00 and 17:00", BERLIN, SAT_BERLIN,
     ["2026-03-30T09:00:00+02:00", "2026-03-30T17:00:00+02:00"]),
    ("at 9 and 18 every day", BERLIN, SAT_BERLIN,
     ["2026-03-28T18:00:00+01:00", "2026-03-29T09:00:00+02:00"]),
    ("every evening at 7", BERLIN, SAT_BERLIN,
     ["2026-03-28T19:00:00+01:00", "2026-03-29T19:00:00+02:00"]),
    # a step on some days or in a window, on the clock; a window's end hour does not fire
    ("every 30 minutes on weekdays", BERLIN, SAT_BERLIN,
     ["2026-03-30T00:00:00+02:00", "2026-03-30T00:30:00+02:00"]),
    ("every 15 minutes between 9 and 17", BERLIN, "2026-03-28T16:30:00+01:00",
     ["2026-03-28T16:45:00+01:00", "2026-03-29T09:00:00+02:00"]),
    ("every hour between 9 and 17 on weekdays", BERLIN, SAT_BERLIN,
     ["2026-03-30T09:00:00+02:00", "2026-03-30T10:00:00+02:00"]),
    ("every hour from 9am to 5pm", BERLIN, SAT_BERLIN,
     ["2026-03-28T13:00:00+01:00", "2026-03-28T14:00:00+01:00", "2026-03-28T15:00:00+01:00",
      "2026-03-28T16:00:00+01:00", "2026-03-29T09:00:00+02:00"]),
    # across midnight and the spring gap: 02:00 is a fixed time, run when the clock jumps
    ("every 2 hours between 22 and 6", BERLIN, SAT_BERLIN,
     ["2026-03-28T22:00:00+01:00", "2026-03-29T00:00:00+01:00", "2026-03-29T03:00:00+02:00",
      "2026-03-29T04:00:00+02:00", "2026-03-29T22:00:00+02:00"]),
    # "starting …" sets the start; a stride counts from it, not from now
    ("every 2 hours starting tomorrow at 8", BERLIN, SAT_BERLIN,
     ["2026-03-29T08:00:00+02:00", "2026-03-29T10:00:00+02:00"]),
    ("every day at 9 starting next monday", BERLIN, SAT_BERLIN,
     ["2026-03-30T09:00:00+02:00", "2026-03-31T09:00:00+02:00"]),
    ("every monday at 10 starting on 2027-01-04", BERLIN, SAT_BERLIN,
     ["2027-01-04T10:00:00+01:00", "2027-01-11T10:00:00+01:00"]),
    ("every other day at 8 starting 2026-04-01", BERLIN, SAT_BERLIN,
     ["2026-04-01T08:00:00+02:00", "2026-04-03T08:00:00+02:00", "2026-04-05T08:00:00+02:00"]),
    ("every 2 weeks on monday at 9 starting 2026-04-06", BERLIN, SAT_BERLIN,
     ["2026-04-06T09:00:00+02:00", "2026-04-20T09:00:00+02:00"]),
    # a time alone: its next coming (the note says which day)
    ("9am", BERLIN, SAT_BERLIN, ["2026-03-29T09:00:00+02:00"]),
    # "until …" sets the end, included; a day said alone runs to its end
    ("every day at 9 until friday", BERLIN, SAT_BERLIN,
     ["2026-03-29T09:00:00+02:00", "2026-03-30T09:00:00+02:00", "2026-03-31T09:00:00+02:00",
      "2026-04-01T09:00:00+02:00", "2026-04-02T09:00:00+02:00", "2026-04-03T09:00:00+02:00"]),
    ("every 2 hours until 18:00", BERLIN, SAT_BERLIN,
     ["2026-03-28T14:00:00+01:00", "2026-03-28T16:00:00+01:00", "2026-03-28T18:00:00+01:00"]),
    ("every weekday at 9 until 2027-03-31", BERLIN, SAT_BERLIN,
     ["2026-03-30T09:00:00+02:00", "2026-03-31T09:00:00+02:00"]),
    ("every monday at 10 starting next week until the end of march", BERLIN, SAT_BERLIN,
     ["2026-03-30T10:00:00+02:00"]),
    ("every day at 9 until friday starting monday", BERLIN, SAT_BERLIN,
     ["2026-03-30T09:00:00+02:00", "2026-03-31T09:00:00+02:00", "2026-04-01T09:00:00+02:00",
      "2026-04-02T09:00:00+02:00", "2026-04-03T09:00:00+02:00"]),
    # an end said after a start counts from it: that week's Friday, that day's 18:00
    ("every day at 9 starting next monday until friday", BERLIN, TUESDAY,
     ["2026-03-30T09:00:00+02:00", "2026-03-31T09:00:00+02:00", "2026-04-01T09:00:00+02:00",
      "2026-04-02T09:00:00+02:00", "2026-04-03T09:00:00+02:00"]),
    ("every 4 hours starting tomorrow at 8 until 18:00", BERLIN, SAT_BERLIN,
     ["2026-03-29T08:00:00+02:00", "2026-03-29T12:00:00+02:00", "2026-03-29T16:00:00+02:00"]),
    ("every hour from 9 till 17 until monday", BERLIN, "2026-03-30T15:30:00+02:00",
     ["2026-03-30T16:00:00+02:00"]),
    # a part of the day after named days
    ("every monday morning at 8", BERLIN, SAT_BERLIN,
     ["2026-03-30T08:00:00+02:00", "2026-04-06T08:00:00+02:00"]),
    ("every friday evening at 6", BERLIN, SAT_BERLIN, ["2026-04-03T18:00:00+02:00"]),
    ("weekday mornings at 7", BERLIN, SAT_BERLIN,
     ["2026-03-30T07:00:00+02:00", "2026-03-31T07:00:00+02:00"]),
    ("every friday night at 1am", BERLIN, SAT_BERLIN, ["2026-04-04T01:00:00+02:00"]),
    # a time said with the start is the time of every run
    ("every day starting monday at 9", BERLIN, SAT_BERLIN,
     ["2026-03-30T09:00:00+02:00", "2026-03-31T09:00:00+02:00"]),
    ("9am every day starting monday", BERLIN, SAT_BERLIN,
     ["2026-03-30T09:00:00+02:00", "2026-03-31T09:00:00+02:00"]),
    # a start on the hour after the spring gap: that hour's run is the first
    ("every day at 3 starting sunday at 3", BERLIN, SAT_BERLIN,
     ["2026-03-29T03:00:00+02:00", "2026-03-30T03:00:00+02:00"]),
    ("every weekday starting tomorrow evening at 7", BERLIN, SAT_BERLIN,
     ["2026-03-30T19:00:00+02:00", "2026-03-31T19:00:00+02:00"]),
]  # fmt: skip


IN_DAYS = [
    # days and weeks move the date, keeping the time of day, across both changes
    ("in 2 days", BERLIN, "2027-03-27T10:00:00+00:00", "2027-03-29T11:00:00+02:00", None),
    ("in 2 days", BERLIN, "2026-10-24T11:00:00+02:00", "2026-10-26T11:00:00+01:00", None),
    ("in 1 day", NEW_YORK, "2027-03-13T09:00:00-05:00", "2027-03-14T09:00:00-04:00", None),
    ("in a week", NEW_YORK, "2026-10-28T09:00:00-04:00", "2026-11-04T09:00:00-05:00", None),
    # a time the target day skips runs when the clocks jump; a repeated one in its first pass
    ("in 1 day", BERLIN, "2027-03-27T02:30:00+01:00", "2027-03-28T03:00:00+02:00",
     "the clocks skip 02:30 on Sunday 2027-03-28"),
    ("in 1 day", NEW_YORK, "2027-03-13T02:30:00-05:00", "2027-03-14T03:00:00-04:00",
     "the clocks skip 02:30 on Sunday 2027-03-14"),
    ("in 1 day", BERLIN, "2026-10-24T02:30:00+02:00", "2026-10-25T02:30:00+02:00",
     "02:30 on Sunday 2026-10-25 comes twice"),
    ("in 1 day", NEW_YORK, "2026-10-31T01:30:00-04:00", "2026-11-01T01:30:00-04:00",
     "01:30 on Sunday 2026-11-01 comes twice"),
    # hours stay elapsed: the date moves first, then the hours are added
    ("in 36 hours", BERLIN, "2027-03-27T11:00:00+01:00", "2027-03-29T00:00:00+02:00", None),
    ("in 1 day and 2 hours", BERLIN, "2027-03-27T10:00:00+00:00",
     "2027-03-28T13:00:00+02:00", None),
    ("in 1 day 2 hours", BERLIN, "2027-03-27T01:30:00+01:00", "2027-03-28T04:30:00+02:00", None),
    ("in 1.5 days", BERLIN, "2027-03-27T11:00:00+01:00", "2027-03-28T23:00:00+02:00", None),
    # no change in between: as before
    ("in 2 days", BERLIN, "2027-01-10T11:00:00+01:00", "2027-01-12T11:00:00+01:00", None),
    ("in 2 weeks", "UTC", "2027-03-27T10:15:30+00:00", "2027-04-10T10:15:30+00:00", None),
]  # fmt: skip


IN_MONTHS = [
    # months and years move the date on the calendar, keeping the time of day
    ("in 3 months", BERLIN, "2027-01-15T09:00:00+01:00", "2027-04-15T09:00:00+02:00", None),
    ("in a month", NEW_YORK, "2026-10-20T09:00:00-04:00", "2026-11-20T09:00:00-05:00", None),
    ("in a year", BERLIN, "2027-01-15T09:00:00+01:00", "2028-01-15T09:00:00+01:00", None),
    ("in 2 years", "UTC", "2027-06-01T10:15:30+00:00", "2029-06-01T10:15:30+00:00", None),
    ("in half a year", BERLIN, "2027-01-15T09:00:00+01:00", "2027-07-15T09:00:00+02:00", None),
    ("in 1.5 years", BERLIN, "2027-01-15T09:00:00+01:00", "2028-07-15T09:00:00+02:00", None),
    # combined: months first, then days; hours stay elapsed, added after
    ("in 1 year and 2 months", BERLIN, "2027-01-15T09:00:00+01:00",
     "2028-03-15T09:00:00+01:00", None),
    ("in 2 months and 3 days", BERLIN, "2027-01-15T09:00:00+01:00",
     "2027-03-18T09:00:00+01:00", None),
    ("in 1 month, 1 week and 2 hours", BERLIN, "2027-02-20T10:00:00+01:00",
     "2027-03-27T12:00:00+01:00", None),
    # a day the target month lacks is its last day, and the note says so
    ("in 1 month", BERLIN, "2027-01-31T10:00:00+01:00", "2027-02-28T10:00:00+01:00",
     "1 month after Sunday 2027-01-31 falls in February 2027, which has no day 31: it counts "
     "as that month's last day, Sunday 2027-02-28"),
    ("in 1 month", BERLIN, "2028-01-31T10:00:00+01:00", "2028-02-29T10:00:00+01:00",
     "falls in February 2028, which has no day 31"),
    # a year below 1000 in four digits (``%Y`` printed 999)
    ("in 1 month", "UTC", "0999-01-31T10:00:00+00:00", "0999-02-28T10:00:00+00:00",
     "1 month after Thursday 0999-01-31 falls in February 0999, which has no day 31: it "
     "counts as that month's last day, Thursday 0999-02-28"),
    ("in a year", BERLIN, "2028-02-29T10:00:00+01:00", "2029-02-28T10:00:00+01:00",
     "1 year after Tuesday 2028-02-29 falls in February 2029, which has no day 29: it counts "
     "as that month's last day, Wednesday 2029-02-28"),
    ("in 2 months and 3 days", BERLIN, "2026-12-31T09:00:00+01:00",
     "2027-03-03T09:00:00+01:00", "which has no day 31"),
    ("in 1 month and 2 hours", BERLIN, "2027-03-31T22:30:00+02:00",
     "2027-05-01T00:30:00+02:00", "falls in April 2027, which has no day 31"),
    # a time the target day skips or repeats: as "in 1 day" reads it
    ("in 1 month", BERLIN, "2027-02-28T02:30:00+01:00", "2027-03-28T03:00:00+02:00",
     "the clocks skip 02:30 on Sunday 2027-03-28"),
    ("in 1 month", BERLIN, "2026-09-25T02:30:00+02:00", "2026-10-25T02:30:00+02:00",
     "02:30 on Sunday 2026-10-25 comes twice"),
    ("in 1 year", NEW_YORK, "2026-03-08T03:30:00-04:00", "2027-03-08T03:30:00-05:00", None),
    # the last day the calendar has
    ("in 7972 years", "UTC", "2027-12-31T09:00:00+00:00", "9999-12-31T09:00:00+00:00", None),
]  # fmt: skip


@pytest.mark.parametrize(("text", "tz", "now", "expected", "note"), IN_DAYS + IN_MONTHS)
def test_in_days_keeps_the_time_of_day(
    text: str, tz: str, now: str, expected: str, note: str | None
) -> None:
    """Days, weeks, months and years said after "in" keep the time of day, as a person
    counts them (a day the target month lacks is its last day, noted); hours, minutes and
    seconds are elapsed time."""
    reading = read_schedule(text, tz=tz, now=_at(now))
    assert isinstance(reading.schedule, Once)
    assert reading.schedule.at.isoformat() == expected
    if note is None:
        assert reading.note is None
    else:
        assert reading.note is not None and note in reading.note


@pytest.mark.parametrize(
    ("said", "calendar_said"),
    [("every 48 hours", "every 2 days at 12:00"), ("every 24 hours", "every day at 12:00")],
)
def test_elapsed_days_are_not_described_as_calendar_days(said: str, calendar_said: str) -> None:
    """Whole days of elapsed time read back in hours: "every 2 days" is a calendar
    schedule that keeps its time of day, which elapsed time loses across a DST change."""
    elapsed = read_schedule(said, tz=BERLIN, now=_at(TUESDAY)).schedule
    calendar = read_schedule(calendar_said, tz=BERLIN, now=_at(TUESDAY)).schedule
    assert isinstance(elapsed, Interval) and isinstance(calendar, Cron)
    # Both fire at 12:00 before Sunday's spring-forward; after it they part.
    hours = [t.hour for t in elapsed.next_fire_times(6, after=_at(TUESDAY))]
    assert hours[0] == 12 and hours[-1] == 13
    assert {t.hour for t in calendar.next_fire_times(6, after=_at(TUESDAY))} == {12}
    described = elapsed.describe()
    assert described.startswith(f"{said}, starting ") and " day" not in described
    # What it is described as reads back as the same elapsed schedule, never as days.
    back = read_schedule(described.partition(",")[0], tz=BERLIN, now=_at(TUESDAY)).schedule
    assert isinstance(back, Interval) and back.seconds == elapsed.seconds


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
    ("every weekday except friday at 9", Cron("0 9 * * 1-4", tz="Europe/Berlin")),
    ("every hour at :15", Cron("15 * * * *", tz="Europe/Berlin")),
    ("hourly", Cron("0 * * * *", tz="Europe/Berlin")),
    ("every month on the 1st at 9:00", Cron("0 9 1 * *", tz="Europe/Berlin")),
    ("every day at 18:30", Cron("30 18 * * *", tz="Europe/Berlin")),
    ("every other day at 8",
     Cron("0 8 * * *", tz="Europe/Berlin", every_days=2, start=_at("2026-03-29T08:00:00+02:00"))),
    ("every 2 hours",
     Interval(seconds=7200, tz="Europe/Berlin", start=_at("2026-03-28T14:00:00+01:00"))),
    ("in 20 minutes", Once(_at("2026-03-28T12:20:00+01:00"), tz="Europe/Berlin")),
]  # fmt: skip


@pytest.mark.parametrize(("text", "expected"), PARSE_SHAPES)
def test_parse_schedule_shapes(text: str, expected: Cron | Interval | Once) -> None:
    assert parse_schedule(text, tz="Europe/Berlin", now=_at(SAT_BERLIN)) == expected


def test_accepted_forms_is_short_and_has_examples() -> None:
    lines = ACCEPTED_FORMS.splitlines()
    assert len(lines) <= 10
    for example in ("in 20 minutes", "tomorrow at 9:00", "every weekday at 9am", "0 9 * * 1-5"):
        assert example in ACCEPTED_FORMS


def test_every_example_in_accepted_forms_parses() -> None:
    for line in ACCEPTED_FORMS.splitlines()[1:]:
        body = re.sub(r"\(.*?\)", "", line.removeprefix("- "))
        if body.startswith("cron"):
            continue
        for example in body.split("|"):
            parse_schedule(example.strip(), tz=BERLIN, now=_at(TUESDAY))


# --------------------------------------------------------------------------- errors

PARSE_ERRORS = [
    ("blah", r"(?s)could not understand the schedule 'blah'.*every weekday at 9am"),
    ("every funday at 9", r"could not understand"),
    ("every day at 25:00", r"'25:00' is not a valid time.*09:00.*9am"),
    ("tomorrow at 13pm", r"'13pm' is not a valid time"),
    ("today at 11:00",
     r"'today at 11:00' \(Saturday 2026-03-28 11:00 CET\) has already passed: it is now "
     r"Saturday 2026-03-28 12:00 CET in Europe/Berlin"),
    ("2026-01-01T09:00", r"2026-01-01 09:00 CET \(Europe/Berlin\) is in the past"),
    ("in 0 minutes", r"'in 0 minutes' is not in the future"),
    ("every 0 minutes", r"interval of 0 seconds"),
    ("every 9000 hours", r"interval of 32400000 seconds is not allowed.*at most 366 days"),
    ("every hour at :75", r"minute 75 is not valid"),
    ("every month on the 32nd at 9", r"day 32 of the month is not valid"),
    ("on february 30 at 9", r"February has no day 30"),
    ("on february 29 2027 at 9", r"February 2027 has no day 29"),
    ("every year on december 24 2027 at 9", r"a yearly schedule takes no year"),
    ("every 1 day at 9", r"'every 1 day' is every day: say e\.g\. 'daily at 9'"),
    # Too far apart: said at once, not after asking for a time that would not help.
    ("every 367 days", r"every 367 days is too far apart: the longest is every 366 days"),
    ("every 400 days at 9", r"too far apart.*'every year on March 1 at 9:00'"),
    ("every 53 weeks on monday", r"every 53 weeks is too far apart: the longest is every 52"),
    ("every weekday except mon,tue,wed,thu,fri at 9", r"leaves no day"),
    ("2026-13-01T09:00", r"^'2026-13-01T09:00' is not a valid date-time"),
    ("0 9 * * 1-8", r"'8' \(in '1-8'\) is not a valid day-of-week"),
    ("in 999999 weeks", r"too far in the future"),
    # more than six digits: past the calendar's end, not "could not understand"
    ("in 10000000 days", r"^'in 10000000 days' is too far in the future: the latest time "
                         r"accepted is 9999-12-31T23:59:59\+01:00 \(Europe/Berlin\)$"),
    ("in 99999999999999999999 hours", r"^'in 99999999999999999999 hours' is too far in"),
    ("every 1000000 minutes", r"interval of 60000000 seconds is not allowed.*at most 366 days"),
    # the words as given (they were lowercased), and the latest time accepted in the zone
    ("9999-12-31T23:59-05:00", r"^'9999-12-31T23:59-05:00' is too far in the future: the latest "
                               r"time accepted is 9999-12-31T23:59:59\+01:00 \(Europe/Berlin\)$"),
    ("0001-01-01T00:00", r"^'0001-01-01T00:00' is too far in the past$"),
    # an interval is whole seconds: said so, not rounded (2.5 was read as 2, 0.5 as 0)
    ("every 2.5 seconds",
     r"'every 2\.5 seconds' is 2\.5 seconds: an interval is a whole number of seconds; "
     r"say e\.g\. 'every 3 seconds'"),
    ("every 0.5 seconds", r"is 0\.5 seconds: .* say e\.g\. 'every 1 second'$"),
    ("every 0.001 hours", r"is 3\.6 seconds"),
    # a day counted from the month's end: no cron field holds it, said so plainly
    # several times with different minutes are two schedules: which to make is said
    ("every weekday at 9:00 and 17:30",
     r"^Shall these be 2 tasks\? 09:00 and 17:30 are at different minutes of the hour, .* say "
     r"'every weekday at 09:00' and 'every weekday at 17:30', one for each task\.$"),
    # a bare hour after a later one: which half of the day?
    ("every day at 9 and 5", r"^Do you mean 05:00 or 17:00\? Say '5am' or '5pm'\.$"),
    ("every hour from 9 to 5", r"^Do you mean 05:00 or 17:00\?"),
    ("tomorrow at 9 and 17", r"^'tomorrow at 9 and 17' names 2 times, and a one-off runs once: "
                             r"say one time, e\.g\. 'tomorrow at 09:00'"),
    # vague: which time (or days)?
    ("twice a day", r"^At what times, twice a day\? Say e\.g\. 'every day at 9 and 17'\.$"),
    ("three times a day", r"^At what times, three times a day\? Say e\.g\. 'every day at 8, 13 "),
    ("twice a week", r"^On which days, and at what time, twice a week\? Say e\.g\. 'every monday"),
    ("every morning", r"^At what time every morning\? Say e\.g\. 'every morning at 09:00'\.$"),
    ("every evening", r"^At what time every evening\? Say e\.g\. 'every evening at 18:00'\.$"),
    # a step that cron cannot restart evenly, a window not on whole hours
    ("every 45 minutes on weekdays", r"^'every 45 minutes on weekdays' cannot be one cron line: "
                                     r"it runs on the clock.*'every 15 minutes on weekdays'$"),
    ("every 5 hours on weekdays", r"hours that divide the day \(1, 2, 3, 4, 6, 8, 12\)"),
    ("every 15 minutes between 9:30 and 17",
     r"^'between 9:30 and 17': a window runs from one whole hour to another"),
    # a start: a time for an interval, a day that is to come, no start for a one-off
    ("every 2 hours starting monday", r"^At what time should 'every 2 hours' start\? Say e\.g\. "
                                      r"'every 2 hours starting monday at 9:00'\.$"),
    ("every day at 9 starting 2026-03-20", r"^'2026-03-20' has already passed"),
    ("every day at 9 starting whenever", r"^When should it start\? 'whenever' is no day or time"),
    ("tomorrow at 9 starting monday", r"^'tomorrow at 9' runs once, so it has no start"),
    # an end: none for a one-off, none before the first run, days said whole
    ("tomorrow at 9 until friday", r"^'tomorrow at 9' runs once, so it has no end: say only when "
                                   r"it runs \('tomorrow at 9'\), or a repeating schedule"),
    ("every day at 9 until 2026-03-20", r"^'2026-03-20' has already passed"),
    ("every monday at 9 until sunday",
     r"^'every monday at 9 until sunday' never runs: it ends Sunday 2026-03-29 23:59 CEST, and "
     r"its first run would be Monday 2026-03-30 09:00 CEST; say a later end, e\.g\. 'every "
     r"monday at 9 until 2026-03-30'$"),
    ("every 2 hours until 13:00", r"never runs: it ends Saturday 2026-03-28 13:00 CET, and its "
                                  r"first run would be Saturday 2026-03-28 14:00 CET"),
    ("every day at 9 starting 2026-04-10 until 2026-04-01", r"never runs: it ends Wednesday"),
    ("every day at 9 until next week",
     r"^Until the start or the end of next week\? Say 'every day at 9 until the end of next "
     r"week' or 'every day at 9 until the end of this week'\.$"),
    ("every day at 9 until whenever", r"^When should it end\? 'whenever' is no day or time"),
    ("every day until friday", r"^At what time every day\? Say e\.g\. 'every day at 9:00 until "
                               r"friday'\.$"),
    # a part of the day after named days needs its time too
    ("every monday morning",
     r"^At what time on Mondays in the morning\? Say e\.g\. 'every monday morning at 09:00'\.$"),
    ("every friday night at 11 and 1am", r"^'every friday night at 11 and 1am' runs on both sides "
                                         r"of midnight, on different days: make two tasks"),
    *((text, r"^a day counted from the end of the month \(.*\) is not supported: crontab "
             r"has no such field\. Say e\.g\. 'on the 1st of every month at 9:00'")
      for text in ("on the last day of the month", "last day of every month at 9",
                   "every month on the last day at 18:00", "the last friday of each month")),
    # months are whole, counted on the calendar: a fraction is refused, naming what to say
    ("in 1.5 months",
     r"^'in 1\.5 months' has a fraction of a month, and months are counted whole on the "
     r"calendar \(a month has no fixed number of days\): say e\.g\. 'in 1 month and 15 days', "
     r"'in 6 weeks' or 'in 45 days'$"),
    ("in half a month", r"fraction of a month.*say e\.g\. 'in 2 weeks' or 'in 15 days'$"),
    ("in 0.1 months", r"fraction of a month.*say e\.g\. 'in 3 days'$"),
    ("in 1.3 years", r"say e\.g\. 'in 1 year, 3 months and 18 days', 'in 67 weeks' or"),
    ("in 1.5 months and 2 days", r"^'in 1\.5 months and 2 days' has a fraction of a month"),
    ("in 0 months", r"^'in 0 months' is not in the future"),
    ("in 7974 Years", r"^'in 7974 Years' is too far in the future: the latest time accepted"),
    ("in 7973 years, 9 months and 4 days",
     r"^'in 7973 years, 9 months and 4 days' is too far in the future: the latest time "),
    ("in 99999999999999999999 months", r"^'in 99999999999999999999 months' is too far in"),
]  # fmt: skip


@pytest.mark.parametrize(("text", "match"), PARSE_ERRORS)
def test_parse_schedule_errors(text: str, match: str) -> None:
    with pytest.raises(InvalidSchedule, match=match):
        parse_schedule(text, tz="Europe/Berlin", now=_at(SAT_BERLIN))


def test_a_duration_of_many_digits_is_read_up_to_the_calendars_end() -> None:
    # Durations had at most six digits, so "in 1000000 days" was "could not understand"
    # though it falls within the calendar (which ends in 9999), as "in 999999 days" does.
    now = _at(SAT_BERLIN)
    for text, when in [
        ("in 1000000 days", "4764-02-23T12:00:00+01:00"),
        ("in 1234567 minutes", "2028-08-01T21:07:00+02:00"),
        ("in 1.1234567 hours", "2026-03-28T13:07:24+01:00"),
    ]:
        schedule = parse_schedule(text, tz=BERLIN, now=now)
        assert schedule.next_fire_times(1, after=now)[0].isoformat() == when, text


@pytest.mark.parametrize(
    "text",
    [
        "every weekday at 9:00 and 17:30",
        "tomorrow at 9 and 17",
        "twice a day",
        "three times a day",
        "twice a week",
        "every morning",
        "every afternoon",
        "every evening",
        "every night",
        "every 45 minutes on weekdays",
        "every 90 minutes between 9 and 17",
        "every 2 hours starting monday",
        "tomorrow at 9 starting monday",
        "tomorrow at 9 until friday",
        "every monday at 9 until thursday",
        "every day at 9 until next week",
        "every day at 9 until whenever",
        "every day at 9 starting whenever",
        "every day until friday",
        "every 2 hours starting next week",
        "every monday morning",
        "every friday night at 11 and 1am",
        "tomorrow at midnight",
        "on december 31 at midnight",
        "weekends at midnight",
        "every 2 hours until tomorrow at midnight",
        "every day at 9 starting friday at midnight",
    ],
)
def test_what_a_refusal_says_to_type_is_understood(text: str) -> None:
    now = _at(TUESDAY)
    with pytest.raises(InvalidSchedule) as refused:
        read_schedule(text, tz=BERLIN, now=now)
    advice = re.split(r"\b[Ss]ay\b", str(refused.value), maxsplit=1)[-1]
    examples = re.findall(r"'([^']+)'", advice)
    assert examples
    for example in examples:
        read_schedule(example, tz=BERLIN, now=now)


# Lines from phrases, through both clock changes of zones that have them. Cairo changes on a
# Friday and a Thursday, so lines on weekdays meet them. (Not Lord Howe: cronsim alone loses
# half an hour there, see test_cron_dst.)
@pytest.mark.parametrize(
    "text",
    [
        "every day at 9 and 5pm",
        "every day at 2:30 and 3:30",
        "every 30 minutes on weekdays",
        "every 15 minutes between 9 and 17",
        "every 15 minutes between 1 and 4",
        "every hour between 9 and 17 on weekdays",
        "every hour between 22 and 4",
        "every 2 hours on weekdays",
        "every monday morning at 8",
        "weekday mornings at 7",
        "every friday night at 1am",
    ],
)
@pytest.mark.parametrize(
    ("tz", "day"),
    [
        ("Europe/Berlin", "2026-03-27T12:00"),
        ("Europe/Berlin", "2026-10-23T12:00"),
        ("America/New_York", "2027-03-12T12:00"),
        ("America/New_York", "2026-10-30T12:00"),
        ("Africa/Cairo", "2026-04-22T12:00"),
        ("Africa/Cairo", "2026-10-28T12:00"),
    ],
)
def test_the_cron_line_of_a_phrase_fires_as_cronsim_says(text: str, tz: str, day: str) -> None:
    now = datetime.fromisoformat(day).replace(tzinfo=ZoneInfo(tz))
    schedule = parse_schedule(text, tz=tz, now=now)
    assert isinstance(schedule, Cron)
    ours = schedule.next_fire_times(200, after=now)
    theirs = islice(CronSim(schedule.expr, now), 200)
    assert [t.astimezone(timezone.utc) for t in ours] == [
        t.astimezone(timezone.utc) for t in theirs
    ]


@pytest.mark.parametrize(
    "text",
    [
        "every day at 2:30 until the end of next month",
        "every 15 minutes between 1 and 4 until the end of next week",
        "every weekday at 9 until 2027-03-31",
        "every hour on weekdays until the end of next week",
    ],
)
@pytest.mark.parametrize(
    ("tz", "day"),
    [
        ("Europe/Berlin", "2026-03-20T12:00"),
        ("Europe/Berlin", "2026-10-18T12:00"),
        ("America/New_York", "2027-03-06T12:00"),
    ],
)
def test_an_end_keeps_the_fires_cronsim_gives_up_to_it(text: str, tz: str, day: str) -> None:
    """Up to its end (included), a line with an end fires as cronsim says, and the note
    names its last fire."""
    now = datetime.fromisoformat(day).replace(tzinfo=ZoneInfo(tz))
    reading = read_schedule(text, tz=tz, now=now)
    schedule = reading.schedule
    assert isinstance(schedule, Cron) and schedule.end is not None
    end = schedule.end
    ours = schedule.next_fire_times(20_000, after=now)
    theirs = list(takewhile(lambda t: t <= end, CronSim(schedule.expr, now)))
    assert [t.astimezone(timezone.utc) for t in ours] == [
        t.astimezone(timezone.utc) for t in theirs
    ]
    assert reading.note is not None
    assert reading.note.endswith(f"the last run is {ours[-1]:%A %Y-%m-%d %H:%M %Z}")


@pytest.mark.parametrize(
    ("text", "plain"),
    [
        ("every day at 9?", "every day at 9"),
        ("Every weekday at 9am?!", "every weekday at 9am"),
        ("tomorrow at 9 a.m.?", "tomorrow at 9 a.m."),
        ("in 2 hours??", "in 2 hours"),
        ("every day at 9…", "every day at 9"),
        ("every day at 9 …", "every day at 9"),
        ("in 2 hours ...", "in 2 hours"),
        ("every weekday at 9am !", "every weekday at 9am"),
        ("9am tomorrow?", "tomorrow at 9am"),
        ("0 9 * * 1-5?", "0 9 * * 1-5"),
        ("@daily?", "@daily"),
        ("2026-12-01T09:00?", "2026-12-01T09:00"),
    ],
)
def test_final_sentence_punctuation_is_ignored(text: str, plain: str) -> None:
    said = read_schedule(text, tz=BERLIN, now=_at(TUESDAY))
    assert said == read_schedule(plain, tz=BERLIN, now=_at(TUESDAY))


@pytest.mark.parametrize(
    ("text", "match"),
    [
        # Quartz lines (noon every day): without the "?" they would read as the 12th at 00:00
        ("0 0 12 * * ?", "could not understand"),
        ("0 0 12 * *?", "could not understand"),
        ("0 0 12 * * ? .", "could not understand"),
        ("every day at 9? or 10", "could not understand"),
        ("every monday?", r"^At what time on Mondays\? Say e\.g\. 'every monday at 9:00'\.$"),
    ],
)
def test_a_question_mark_makes_nothing_else_pass(text: str, match: str) -> None:
    with pytest.raises(InvalidSchedule, match=match):
        read_schedule(text, tz=BERLIN, now=_at(TUESDAY))


# Monday 00:30: someone who has not slept yet may mean this morning by "tomorrow morning".
SMALL_HOURS = "2026-03-23T00:30:00+01:00"


@pytest.mark.parametrize(
    ("text", "today", "tomorrow"),
    [
        ("tomorrow at 9", "today at 9", "on tuesday at 9"),
        ("9am tomorrow", "today at 9am", "on tuesday at 9am"),
        ("tomorrow morning", "this morning", "on tuesday morning"),
        ("tomorrow night at 11", "tonight at 11", "on tuesday night at 11"),
    ],
)
def test_tomorrow_in_the_small_hours_asks_which_day(text: str, today: str, tomorrow: str) -> None:
    question = (
        r"^Which day do you mean: today, Monday 2026-03-23 \(it is 00:30 now\), or Tuesday "
        rf"2026-03-24\? Say '{today}' or '{tomorrow}'\.$"
    )
    with pytest.raises(InvalidSchedule, match=question):
        parse_schedule(text, tz=BERLIN, now=_at(SMALL_HOURS))
    # both answers it suggests are understood, as the day they name
    now = _at(SMALL_HOURS)
    days = [
        parse_schedule(answer, tz=BERLIN, now=now).next_fire_times(1, after=now)[0].date()
        for answer in (today, tomorrow)
    ]
    assert [d.isoformat() for d in days] == ["2026-03-23", "2026-03-24"]
    # from 04:00, the morning, "tomorrow" is the next day again
    later = parse_schedule(text, tz=BERLIN, now=_at("2026-03-23T04:00:00+01:00"))
    assert later.next_fire_times(1, after=now)[0].date().isoformat() == "2026-03-24"


@pytest.mark.parametrize("text", ["monday", "monday at 9", "feb 29 at 9", "tomorrow at 9"])
def test_dates_past_the_end_of_the_calendar_are_refused(text: str) -> None:
    with pytest.raises(InvalidSchedule, match="too far in the future"):
        parse_schedule(text, tz="Pacific/Kiritimati", now=datetime(9999, 12, 31, 12))


@pytest.mark.parametrize(
    ("tz", "latest"),
    [
        ("America/New_York", "9999-12-31T18:59:59-05:00"),  # the calendar ends first in UTC
        ("Asia/Tokyo", "9999-12-31T23:59:59+09:00"),  # ... and first on the wall clock here
        ("UTC", "9999-12-31T23:59:59+00:00"),
    ],
)
def test_a_time_past_the_calendars_end_says_the_latest_time_accepted(tz: str, latest: str) -> None:
    # It said "'9999-12-31t23:59-10:00' is too far in the future": lowercased, no limit.
    now = _at(SAT_BERLIN)
    with pytest.raises(InvalidSchedule) as refused:
        parse_schedule("9999-12-31T23:59-10:00", tz=tz, now=now)
    assert str(refused.value) == (
        "'9999-12-31T23:59-10:00' is too far in the future: the latest time accepted is "
        f"{latest} ({tz})"
    )
    taken = parse_schedule(latest, tz=tz, now=now)  # the time said is taken
    assert isinstance(taken, Once) and taken.at.isoformat() == latest


@pytest.mark.parametrize(
    "text",
    [
        "10000-01-01T09:00",
        "10000-01-01 09:00:30",
        "123456-06-30T09:00Z",
        "10000-02-29T09:00+01:00",  # 10000 is a leap year
        "every day at 9 until 10000-01-01",
        "every day at 9 until 10000-01-01T09:00",
    ],
)
def test_an_iso_time_with_a_year_past_9999_is_too_far_in_the_future(text: str) -> None:
    # It answered "could not understand the schedule" and listed the accepted forms,
    # although "in 10000 years" said it was too far in the future.
    with pytest.raises(InvalidSchedule) as refused:
        parse_schedule(text, tz="UTC", now=_at(SAT_BERLIN))
    assert str(refused.value) == (
        f"{text!r} is too far in the future: the latest time accepted is "
        "9999-12-31T23:59:59+00:00 (UTC)"
    )


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ("10000-13-01T09:00", "is not a valid date-time"),
        ("10100-02-29T09:00", "is not a valid date-time"),  # 10100 is no leap year
        ("10000-01-01T25:00", "is not a valid date-time"),
        ("10000-01-01T09:00+25:00", "is not a valid date-time"),
        ("every day at 9 until 10000-02-30", "is not a valid date"),
        ("02026-01-01T09:00", "could not understand the schedule"),  # no wide year
        ("10000-1-01T09:00", "could not understand the schedule"),
    ],
)
def test_a_wide_year_is_no_reason_to_take_what_is_no_iso_time(text: str, said: str) -> None:
    with pytest.raises(InvalidSchedule, match=said) as refused:
        parse_schedule(text, tz="UTC", now=_at(SAT_BERLIN))
    assert "too far in the future" not in str(refused.value)


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ("2026-02-30T09:00Z", "2026-02-30T09:00Z"),
        ("2026-02-30  09:00", "2026-02-30  09:00"),
        ("2026-02-30\t09:00?", "2026-02-30\t09:00"),
        ("Every day at 9 until 2026-04-31T09:00+02:00", "2026-04-31T09:00+02:00"),
        ("EVERY DAY AT 9 STARTING 2026-12-01T25:00", "2026-12-01T25:00"),
    ],
)
def test_an_invalid_date_time_is_quoted_as_written(text: str, said: str) -> None:
    # It was quoted lower-cased, its spaces run together: '2026-02-30t09:00z'.
    with pytest.raises(InvalidSchedule) as refused:
        parse_schedule(text, tz=BERLIN, now=_at(SAT_BERLIN))
    assert str(refused.value) == (
        f"{said!r} is not a valid date-time: use e.g. 2026-12-01T09:00 or 2026-12-01T09:00+01:00"
    )


@pytest.mark.parametrize(
    ("text", "length"),
    [
        ("x" * 201, 201),
        # counted as the parser reads it: spaces run together, none around a comma
        ("Every weekday at 9:00 " * 10, 219),
        ("every day at 9:00, and remind me to " + "water the plants " * 10, 204),
    ],
)
def test_a_schedule_over_the_length_limit_is_refused_as_too_long(text: str, length: int) -> None:
    # It was "could not understand the schedule", with the forms of a schedule it then held.
    with pytest.raises(InvalidSchedule) as refused:
        parse_schedule(text, tz=BERLIN, now=_at(SAT_BERLIN))
    assert str(refused.value) == (
        f"the schedule is {length} characters long; the limit is 200: a schedule is a short "
        "phrase such as 'every weekday at 9:00', or a cron line such as '0 9 * * 1-5'; say only "
        "when it runs"
    )
    with pytest.raises(InvalidSchedule, match="^could not understand the schedule"):
        parse_schedule("x" * 200, tz=BERLIN, now=_at(SAT_BERLIN))  # at the limit: read


# The words each refusal quotes, written with capitals and odd spacing: quoted so, not as the
# rules read them (lower-cased, spaces run together); what the refusal proposes to say instead
# is the parser's own (e.g. 'tomorrow at 09:00').
AS_WRITTEN = [
    ("Tomorrow at 13PM", "'13PM' is not a valid time: use 24-hour"),
    ("tomorrow at 13  PM", "'13  PM' is not a valid time: use 24-hour"),
    ("Every Hour from 9 to 13PM", "'13PM' is not a valid time"),
    ("Every Day at 13PM", "'13PM' is not a valid time"),
    ("In 1.5  Months", "'In 1.5  Months' has a fraction of a month"),
    ("IN 0 Minutes", "'IN 0 Minutes' is not in the future"),
    ("Tomorrow at 9 AND 17",
     "'Tomorrow at 9 AND 17' names 2 times, and a one-off runs once: say one time, e.g. "
     "'tomorrow at 09:00'"),
    ("Every Year on December 24 2027 at 9",
     "'Every Year on December 24 2027 at 9': a yearly schedule takes no year"),
    # spaces about commas kept (read "mon,tue"), in words that are not the whole schedule
    ("Every weekday except MON,TUE , wed,thu,fri at 9 starting monday",
     "'Every weekday except MON,TUE , wed,thu,fri at 9' leaves no day"),
    ("Every Friday Night at 11 and 1AM",
     "'Every Friday Night at 11 and 1AM' runs on both sides of midnight, on different days: "
     "make two tasks; say 'every friday night at 23:00' and 'every friday night at 01:00'"),
    ("Today  at 11:00", "'Today  at 11:00' (Saturday 2026-03-28 11:00 CET) has already passed"),
    # a time said first is read last ("today at 11am"): the whole schedule, as given
    ("11AM Today", "'11AM Today' (Saturday 2026-03-28 11:00 CET) has already passed"),
    ("Every 2.5 Seconds", "'Every 2.5 Seconds' is 2.5 seconds: an interval is a whole number"),
    ("Every 45 Minutes on Weekdays", "'Every 45 Minutes on Weekdays' cannot be one cron line"),
    ("every 15 minutes Between 9:30 and 17", "'Between 9:30 and 17': a window runs from one"),
    ("Every 2 Hours starting monday",
     "At what time should 'Every 2 Hours' start? Say e.g. 'every 2 hours starting monday at "
     "9:00'."),
    ("Every Day at 9 starting 9999-12-31T10:00",
     "'Every Day at 9 starting 9999-12-31T10:00' never fires"),
    ("Every Monday at 9 until  Sunday",
     "'Every Monday at 9 until  Sunday' never runs: it ends Sunday 2026-03-29 23:59 CEST"),
    ("Tomorrow at 9 until Friday",
     "'Tomorrow at 9' runs once, so it has no end: say only when it runs ('Tomorrow at 9'), or "
     "a repeating schedule, e.g. 'every day at 9:00 until friday'"),
    ("every day at 9 until The End of FEBRUARY 2026",
     "'The End of FEBRUARY 2026' has already passed"),
    ("every day at 9 Starting WHENEVER",
     "When should it start? 'WHENEVER' is no day or time: say e.g. 'every day at 9 starting "
     "next monday'"),
    ("every day at 9 until On  2026-02-30", "'On  2026-02-30' is not a valid date"),
    # a whole word: not the end of 'WEEKEND'
    ("Every WEEKEND at 9 until end", "When should it end? 'end' is no day or time"),
    ("the LAST  Friday of each month",
     "a day counted from the end of the month ('LAST  Friday') is not supported"),
    ("0  9 * *", "cron line '0  9 * *' has 4 field(s)"),
    ("@Dayly", "unknown cron macro '@Dayly'"),
    # a field of a cron line, and the item it stands in
    ("0  9 * *  MON-FOO", "'FOO' (in 'MON-FOO') is not a valid day-of-week: allowed 0-7"),
    ("0 9 * * MON-FOO until Friday", "'FOO' (in 'MON-FOO') is not a valid day-of-week"),
]  # fmt: skip


@pytest.mark.parametrize(("text", "refusal"), AS_WRITTEN)
def test_a_refusal_quotes_the_words_as_written(text: str, refusal: str) -> None:
    # They were quoted lower-cased, their spaces run together: '13pm', 'every 2.5 seconds'.
    with pytest.raises(InvalidSchedule) as refused:
        parse_schedule(text, tz=BERLIN, now=_at(SAT_BERLIN))
    assert str(refused.value).startswith(refusal)


def test_parse_schedule_rejects_unknown_zone() -> None:
    with pytest.raises(InvalidSchedule, match=r"unknown timezone 'Berlin'"):
        parse_schedule("in 5 minutes", tz="Berlin", now=_at(SAT_BERLIN))


# --------------------------------------------------------------------------- fuzzing

_TOKENS = [
    "every", "in", "at", "on", "the", "today", "tomorrow", "tonight", "this", "next", "other",
    "except", "daily", "hourly", "and", ",", "of", "month", "week", "year", "morning",
    "evening", "9", "09:00", "9:30", "25:00", "12", "0", "7", "60", "1.5", "999999", "am", "pm",
    "noon", "midnight", "mon", "monday", "fri", "sundays", "weekday", "weekend", "day", "days",
    "hour", "h", "m", "s", "minutes", "weeks", "1st", "24th", "31st", "december", "feb", ":15",
    ":99", "*", "*/5", "*/0", "1-5", "5-1", "jan", "@daily", "@reboot", "@x",
    "2026-12-01T09:00", "2026-02-30T09:00", "9999-12-31T23:59-05:00", "0001-01-01T00:00+05:00",
    "z", "+01:00", "-", "/", "between", "from", "to", "starting", "twice", "a", "until",
    "till", "end", "of", "2027-03-31",
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
