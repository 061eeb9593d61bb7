"""Records users and tools see: tasks, their options, and the outcome of each fire."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from datetime import datetime, timedelta
from typing import Any, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import httpx
from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

# typing_extensions' TypedDict: pydantic needs it on Python < 3.12 to build the JSON
# schema of graph states holding a TaskSource (langgraph dev, assistant schemas).
from typing_extensions import NotRequired, TypedDict

from ._validated import Validated, is_whole
from .errors import InvalidTask
from .schedules import Schedule
from .trigger import ConversationTrigger

__all__ = [
    "DeliveryStatus",
    "ProblemPart",
    "RunOutcome",
    "Task",
    "TaskEvent",
    "TaskOptions",
    "TaskRunRecord",
    "TaskSource",
    "TaskState",
    "ThreadMode",
    "WebhookDelivery",
    "WebhookPayload",
]

MAX_RUNS = 1_000_000
"""The most a task's ``max_runs`` may be set to (more is "until deleted": leave it out)."""

MAX_UPCOMING = 1000
"""Most fire times :meth:`Task.upcoming_runs` lists: a preview, worked out on the
caller's event loop (the runtime's, for ``next_run_times``): a minutely cron line
takes about 0.1 ms per fire time."""

RunOutcome = Literal["success", "error", "timeout", "skipped", "missed", "interrupted"]
"""How a fire ended. Exactly one outcome is recorded per fire attempt."""

TaskState = Literal["active", "paused", "completed", "quarantined"]
"""``completed``: a one-shot task that ran, or a task past its end date or max runs.
``quarantined``: its stored row could not be read when it fell due (see ``Task.problem``);
it no longer fires, and its owner can still list and delete it."""

ThreadMode = Literal["continue", "isolated"]
"""``continue``: every fire adds a turn to ``thread_id``; ``isolated``: a fresh thread per run."""

RunTrigger = Literal["schedule", "manual"]


MAX_RETRIES = 10
"""Most retries a task may have (``TaskOptions.retries``)."""


class TaskOptions(Validated):
    """Per-task execution policy: late fires, busy threads, retries, auto-pause (a bad
    field raises ``InvalidTask``)."""

    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)
    called = "task options"

    misfire: Literal["catch_up", "skip"] = Field(
        default="catch_up",
        description="Fires that fell due while the runtime was down: 'catch_up' runs the "
        "latest one once (if within misfire_grace_secs) and records the others 'missed'; "
        "'skip' records them all 'missed'.",
    )
    misfire_grace_secs: float | None = Field(
        default=None,
        ge=0,
        description="How late a fire may still run. None: no limit for one-shot tasks, "
        "one hour for recurring ones.",
    )
    on_busy: Literal["wait", "skip"] = Field(
        default="wait",
        description="When the task's previous run or another turn on its thread is still "
        "going: wait for it (up to max_wait_secs) or record the fire 'skipped'.",
    )
    max_wait_secs: float = Field(
        default=300.0,
        ge=0,
        description="How long a fire may wait for a busy thread or task before 'skipped'.",
    )
    retries: int = Field(
        default=2,
        ge=0,
        le=MAX_RETRIES,
        description="Extra attempts after an 'error' or 'timeout', each its own record.",
    )
    retry_backoff_secs: float = Field(
        default=10.0,
        ge=0,
        description="Delay before the first retry; doubled for each further attempt.",
    )
    pause_after_failures: int | None = Field(
        default=5,
        ge=1,
        description="Pause the task after this many consecutive failed fires (all "
        "attempts failed); None never pauses. A success resets the count; a fire whose "
        "LangGraph server could not be reached leaves it as it was.",
    )
    webhook_url: str | None = Field(
        default=None,
        description="Also POST this task's finished run records to this http(s) URL "
        "(at most 2048 bytes in UTF-8), signed with the runtime's webhook secret. "
        "Delivered by runtimes given webhook=Webhook(...). Set by the application only: "
        "the tools never expose it.",
    )

    @field_validator("webhook_url")
    @classmethod
    def _check_webhook_url(cls, url: str | None, info: ValidationInfo) -> str | None:
        stored = bool(info.context and info.context.get(_STORED))
        return None if url is None else check_webhook_url(url, stored=stored)

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        return redacted_url_args(super().__repr_args__(), "webhook_url")

    def grace_for(self, one_shot: bool) -> float | None:
        """The effective misfire grace in seconds (None: unlimited)."""
        if self.misfire_grace_secs is not None:
            return self.misfire_grace_secs
        return None if one_shot else DEFAULT_RECURRING_GRACE_SECS

    def retry_delay(self, attempt: int) -> float:
        """Seconds to wait before ``attempt`` (2 for the first retry)."""
        return float(self.retry_backoff_secs * 2 ** (attempt - 2))


DEFAULT_RECURRING_GRACE_SECS = 3600.0
"""Misfire grace of recurring tasks when ``TaskOptions.misfire_grace_secs`` is None."""


def storable_text(text: str) -> str:
    """Diagnostic text from outside (an exception's message, a model's answer, a
    receiver's body) as every database stores it: a NUL, which PostgreSQL refuses in
    text, and a lone surrogate, which no UTF-8 encoder takes, become U+FFFD.

    Only for text the runtime records about what happened; what a user gives (a prompt,
    a name) is refused instead, with a message."""
    if "\x00" in text:
        text = text.replace("\x00", "\ufffd")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "".join("\ufffd" if "\ud800" <= ch <= "\udfff" else ch for ch in text)
    return text


WEBHOOK_URL_MAX_BYTES = 2048
"""Longest webhook URL, in UTF-8 bytes: PostgreSQL indexes each delivery's (run, URL),
and an index row holds at most 2704 bytes."""

_STORED = "stored"
"""Validation context key: the model is read back from the database, not given."""

AS_STORED = {_STORED: True}
"""The validation context of options read back from the database."""


def check_webhook_url(url: str, *, stored: bool = False) -> str:
    """``url`` if it is an absolute http(s) URL with a host and port a request can go
    to, at most :data:`WEBHOOK_URL_MAX_BYTES` in UTF-8, else a ``ValueError`` that says
    what is wrong. A ``stored`` URL (read back from the database) is held to the 2048
    characters of the versions that wrote it, so its task stays readable; deliveries
    check it in full."""
    try:
        size = len(url.encode("utf-8"))
    except UnicodeEncodeError:
        raise ValueError("a webhook URL must be valid text (it holds a lone surrogate)") from None
    if size > WEBHOOK_URL_MAX_BYTES and not (stored and len(url) <= WEBHOOK_URL_MAX_BYTES):
        raise ValueError(
            f"a webhook URL may have at most {WEBHOOK_URL_MAX_BYTES} bytes in UTF-8, got "
            f"{size} ({len(url)} characters: non-ASCII ones take 2 to 4 bytes each); use "
            "a shorter URL"
        )
    return check_http_url(
        url, what="a webhook URL", example="https://hooks.example.com/scheduler", stored=stored
    )


def check_http_url(url: str, *, what: str, example: str, stored: bool = False) -> str:
    """``url`` if it is an absolute http(s) URL with a host and port a request can go
    to, else a ``ValueError`` naming it ``what`` (``"a webhook URL"``) and giving
    ``example``. A ``stored`` URL is not checked for what only a request finds (a host
    that is no valid domain name), so that one written before stays readable."""
    if any(ch.isspace() or ord(ch) < 32 for ch in url):
        raise ValueError(
            f"{what} must not contain spaces or control characters: {redact_url(url)!r}"
        )
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError as exc:
        raise ValueError(f"{redact_url(url)!r} is not a valid URL ({exc})") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(
            f"{what} must be absolute, start with http:// or https:// and name a "
            f"host, e.g. {example!r}; got {redact_url(url)!r}"
        )
    if not stored:  # one stored by a version that did not check stays readable
        try:
            httpx.URL(url).host  # noqa: B018 - each request reads it so, and may raise
            _check_reachable(parts.hostname, parts.port)
        except (httpx.InvalidURL, ValueError) as exc:  # idna's errors are ValueErrors
            raise ValueError(
                f"{redact_url(url)!r} cannot be sent to: {exc} (a host must be a valid "
                "domain name, IPv4 or IPv6 address, and a port a number from 1 to 65535)"
            ) from None
    return url


_MAX_LABEL = 63
"""The most characters a label of a DNS name has."""


def _check_reachable(host: str, port: int | None) -> None:
    """Raise ``ValueError`` for what httpx takes but no connection can go to: port 0, or
    a domain label no DNS name has (empty, longer than 63 characters, or starting or
    ending with a hyphen; idna refuses them only in a non-ASCII name)."""
    if port == 0:
        raise ValueError("port 0 is no port a server listens on")
    labels = host.removesuffix(".").split(".")  # a trailing dot names the root
    for label in labels:
        if not label:
            raise ValueError(f"the host {host!r} has an empty label")
        if len(label) > _MAX_LABEL:
            raise ValueError(
                f"the host has a label of {len(label)} characters; the limit is {_MAX_LABEL}"
            )
        if label[0] == "-" or label[-1] == "-":
            raise ValueError(f"the host's label {label!r} starts or ends with a hyphen")


_HEADER_NAME = re.compile(r"[-!#$%&'*+.^_`|~0-9A-Za-z]+")
"""An HTTP header name (RFC 9110's token)."""
_HEADER_VALUE = re.compile(r"[\x21-\x7e]([\x20-\x7e\t]*[\x21-\x7e])?")
"""A header value httpx can send: printable ASCII, inner spaces and tabs, no line break."""


def check_header_name(name: str) -> str:
    """``name`` if it is an HTTP header name, else a ``ValueError`` saying so."""
    if not _HEADER_NAME.fullmatch(name):
        raise ValueError(
            f"header name {name!r} is not a valid HTTP header name (letters, digits and "
            "!#$%&'*+-.^_`|~, no spaces)"
        )
    return name


def check_header_value(name: str, value: str) -> str:
    """``value`` if a request can send it as header ``name``, else a ``ValueError``
    that never shows it (it may be a credential)."""
    if not _HEADER_VALUE.fullmatch(value):
        raise ValueError(
            f"the value of header {name!r} cannot be sent: it must be printable ASCII, "
            "not empty, without line breaks or surrounding spaces"
        )
    return value


_URL_PARTS = re.compile(
    r"(?P<scheme>[^:/?#]+:)?(?://(?P<authority>[^/?#]*))?(?P<path>[^?#]*)"
    r"(?:\?(?P<query>[^#]*))?(?:#(?P<fragment>.*))?",
    re.DOTALL,
)
"""RFC 3986's split of a URI (its appendix B): it matches any text, so text that does not
parse as a URL (an unclosed "[", a space) is redacted the same way."""

_HIDDEN = "***"

_SECRET_SEGMENT_CHARS = 16
"""Path segments this long or longer are hidden when a URL is shown: webhook tokens go
there (Slack's 24 characters, Discord's 68), while the names of paths are short."""


def redact_url(url: str) -> str:
    """``url`` as it may be shown or logged (reprs, errors, logs, views, the CLI), with
    every part that may hold a token as ``***``: the user and password (``***@host``),
    each query value (``?token=***``, names kept), the fragment, and each path segment of
    16 or more characters (``/services/T0/B0/***``). The scheme, host, port and short
    segments stay, to tell webhooks apart. Text that does not parse as a URL is hidden the
    same way (this never raises). The stored URL keeps it all, to send."""
    parts = _URL_PARTS.fullmatch(url)
    assert parts is not None  # the pattern matches any text
    scheme, authority, path, query, fragment = parts.group(
        "scheme", "authority", "path", "query", "fragment"
    )
    head = scheme or ""
    if authority is not None:
        userinfo, at, host = authority.rpartition("@")
        head += "//" + (f"{_HIDDEN}@{host}" if at else host)
    elif "@" in head + path:  # no "//host", so no valid URL: yet "user:pw@host/in" has a password
        host, slash, path = (head + path).rpartition("@")[2].partition("/")
        head = f"{_HIDDEN}@{host}{slash}"
    shown = head + "/".join(
        _HIDDEN if len(segment) >= _SECRET_SEGMENT_CHARS else segment for segment in path.split("/")
    )
    if query is not None:
        shown += "?" + "&".join(_hidden_value(item) for item in query.split("&"))
    if fragment is not None:
        shown += "#" + (_HIDDEN if fragment else "")
    return shown


def _hidden_value(item: str) -> str:
    """A query item ``name=value`` as ``name=***``; a value alone as ``***``."""
    name, equals, value = item.partition("=")
    if equals:
        return f"{name}={_HIDDEN if value else ''}"
    return _HIDDEN if item else ""


def redacted_url_args(
    args: Iterable[tuple[str | None, Any]], field: str
) -> Iterator[tuple[str | None, Any]]:
    """A model's repr arguments with the URL of ``field`` redacted (:func:`redact_url`)."""
    for name, value in args:
        yield name, redact_url(value) if name == field and value else value


class TaskSource(TypedDict):
    """Attribution of a task-triggered turn.

    Kept as plain JSON in graph state (``task_source``), in the trigger message's
    ``additional_kwargs["task_source"]`` and, key by key, in the run's config metadata.
    """

    task_id: str
    """Id of the task that fired."""
    task_name: str
    """The task's name at the time it fired."""
    run_id: str
    """Id of the run record of this fire."""
    scheduled_for: str
    """ISO-8601 time the fire was due (UTC)."""
    attempt: int
    """1 for the first attempt of a fire, 2+ for retries."""
    trigger: str
    """``schedule`` for a scheduled fire, ``manual`` for run-now."""
    system_addon: NotRequired[str | None]
    """Extra system instruction for this turn only (applied by the trigger node)."""
    message_sha256: NotRequired[str]
    """SHA-256 of the trigger message's text, which the signature covers: the source
    marks that message only, not a client's own sent with a copy of it."""
    signature: NotRequired[str]
    """HMAC of the other keys and the turn's thread, by the runtime that made the turn
    (under a key its store keeps): a trigger node given a verifier trusts only a source
    whose signature checks out, not one a client wrote into a message."""


TaskEventKind = Literal["auto_paused", "completed", "quarantined"]


class TaskEvent(BaseModel):
    """Something that happened to a task on its own (not through an API call)."""

    model_config = ConfigDict(frozen=True)

    kind: TaskEventKind
    task_id: str
    reason: str
    at: datetime


ProblemPart = Literal["schedule", "options", "payload", "due_time", "columns"]
"""Where a stored task's ``problem`` is: its schedule, options or payload, no due time
though it is active, or another column (its state, a time, its name…)."""


class Task(BaseModel):
    """A named schedule and the conversation it starts.

    The task table is the source of truth: ``next_run_at`` is when it is next due, and
    a runtime claims it from there once that time has come.
    """

    model_config = ConfigDict(frozen=True, hide_input_in_errors=True)

    id: str
    name: str
    owner: str
    schedule: Schedule | None
    """None only when the stored schedule cannot be read (see ``problem``)."""
    payload: Any = None
    """The stored ``ConversationTrigger`` JSON (see ``trigger``); one that is no valid
    trigger is named in ``problem``."""
    thread_mode: ThreadMode
    thread_id: str | None
    """The conversation a ``continue`` task adds its turns to (None when isolated)."""
    state: TaskState
    options: TaskOptions = TaskOptions()
    max_runs: int | None = None
    run_count: int = 0
    """Fires claimed so far (manual runs excluded)."""
    failure_streak: int = 0
    """Consecutive fires whose every attempt failed; a success resets it."""
    next_run_at: datetime | None = None
    last_run_at: datetime | None = None
    last_outcome: RunOutcome | None = None
    created_at: datetime
    updated_at: datetime
    """When the task was last changed by a call (create, update, pause, resume, cancel,
    an approval) or paused by its failures: what other runtimes' change feeds poll. A
    fire moving it on (``next_run_at``, ``run_count``, ``completed`` after its last fire,
    ``quarantined`` when its row cannot be read) leaves it, so fires cost the feeds
    nothing; :attr:`version` counts every change."""
    version: int = 0
    """Bumped by every change; writes are conditional on the version they read."""
    problem: str | None = None
    """Why the stored row cannot be fully read (its schedule, options or payload are
    corrupt, or another column, or it is active without a due time), or None. Such a task
    is quarantined when it falls due (or, for its payload, when run by hand): one
    ``error`` record, no retry. It can be listed and deleted, and comes back when
    ``update_task`` gives it what the problem names (or, without a due time, when it is
    resumed); :meth:`problem_advice` says which."""
    problem_in: frozenset[ProblemPart] = Field(default=frozenset(), exclude=True)
    """What ``problem`` is in (empty when there is none); not part of the task's data."""

    def problem_advice(self) -> str | None:
        """What can mend :attr:`problem` (None without one), for the model and the
        operator alike: ``update_task`` only for a schedule or payload (the tools never
        set options), resuming for a missing due time, else only the row's owner."""
        if self.problem is None:
            return None
        unmendable = self.problem_in - {"schedule", "payload", "due_time"}
        if unmendable or not self.problem_in:
            what = "its options" if unmendable == {"options"} else "what cannot be read"
            return (
                f"delete it; update_task cannot mend {what} (the tools never set options or "
                "other columns): whoever runs the scheduler can mend the stored row, or "
                "create the task again"
            )
        steps = []
        given = [
            f"a new {name}"
            for part, name in (("schedule", "schedule"), ("payload", "prompt"))
            if part in self.problem_in
        ]
        if given:
            steps.append(f"give it {' and '.join(given)} with update_task")
        if "due_time" in self.problem_in:
            steps.append("resume it")
        return "delete it, or " + ", then ".join(steps)

    @property
    def zone(self) -> ZoneInfo:
        """The schedule's zone (UTC when the schedule cannot be read)."""
        return self.schedule.zone if self.schedule is not None else ZoneInfo("UTC")

    def describe_schedule(self) -> str:
        """The schedule in words, or why it cannot be read."""
        if self.schedule is None:
            return f"unreadable schedule ({self.problem})"
        return self.schedule.describe()

    def upcoming_runs(self, n: int = 5) -> list[datetime]:
        """The next ``n`` fire times in the task's zone (empty when it is not active).

        Raises:
            InvalidTask: ``n`` is no whole number from 0 to :data:`MAX_UPCOMING`.
        """
        if not is_whole(n) or not 0 <= n <= MAX_UPCOMING:
            raise InvalidTask(
                f"the number of fire times to list must be a whole number from 0 to "
                f"{MAX_UPCOMING:,}, got {n!r}"
            )
        if n == 0 or self.state != "active" or self.next_run_at is None or self.schedule is None:
            return []
        first = self.next_run_at.astimezone(self.schedule.zone)
        rest = self.schedule.next_fire_times(n - 1, after=first) if n > 1 else []
        times = [first, *rest]
        if self.max_runs is not None:
            times = times[: max(self.max_runs - self.run_count, 0)]
        return times

    @property
    def trigger(self) -> ConversationTrigger:
        """The parsed payload.

        Raises:
            InvalidPayload: if the stored payload is not a valid trigger.
        """
        return ConversationTrigger.from_task_payload(self.payload)


class TaskRunRecord(BaseModel):
    """One fire of a task (one attempt), as kept in the run history."""

    model_config = ConfigDict(frozen=True)

    run_id: str
    task_id: str
    attempt: int
    trigger: RunTrigger
    scheduled_for: datetime
    """The occurrence this fire is for (the same for every attempt of it)."""
    started_at: datetime
    """When its turn began: a turn slot taken and its instant come (while it runs: when
    it was claimed; for ``missed``: when recorded)."""
    due_at: datetime | None = None
    """When this attempt fell due: the occurrence, a retry's backoff end, or the moment
    of a manual run (None on records written before schema version 2)."""
    finished_at: datetime | None = None
    outcome: RunOutcome | None = None
    """None while the run is in flight."""
    summary: str | None = None
    """The final AI message of the turn, truncated."""
    error: str | None = None
    thread_id: str | None = None
    checkpoint_id: str | None = None
    server_thread_id: str | None = None
    """The LangGraph server thread the turn ran on (turns run on a server only)."""
    server_run_id: str | None = None
    """The LangGraph server run the turn was (``client.runs.get(server_thread_id,
    server_run_id)``). None for turns run in-process, for runs the server did not take,
    and for turns cut short by the runtime's stop (their server run is cancelled)."""

    @property
    def running(self) -> bool:
        """True while the fire is in flight."""
        return self.outcome is None

    @property
    def lateness(self) -> timedelta:
        """How long after it fell due the attempt started (``started_at - due_at``)."""
        return self.started_at - (self.due_at or self.scheduled_for)


DeliveryStatus = Literal["pending", "delivered", "failed"]
"""``pending``: not yet accepted (being tried, or waiting for its next attempt);
``delivered``: the receiver answered 2xx; ``failed``: every attempt failed, or the receiver
refused it for good (a 4xx other than 408, 425 and 429)."""


MAX_DELIVERY_ATTEMPTS = 50
"""Most attempts a webhook may make of one delivery (``Webhook.max_attempts``)."""


class WebhookDelivery(BaseModel):
    """One run record's delivery to one webhook URL, and how it went."""

    model_config = ConfigDict(frozen=True, hide_input_in_errors=True)

    delivery_id: str
    """Sent in the body and as the ``X-LGS-Delivery`` header: receivers dedupe on the
    body's, which the signature covers (the header is not signed)."""
    run_id: str
    task_id: str
    url: str
    """As stored, to send; its repr hides its tokens (:func:`redact_url`)."""
    status: DeliveryStatus
    attempts: int
    """POSTs made so far."""
    last_error: str | None = None
    """Why the latest failed attempt failed (kept after a later success)."""
    created_at: datetime
    next_attempt_at: datetime | None = None
    """While pending: not tried again before this (another runtime takes the delivery
    over once it has passed). None once delivered or failed."""
    delivered_at: datetime | None = None

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        return redacted_url_args(super().__repr_args__(), "url")


class WebhookPayload(BaseModel):
    """The JSON body POSTed to a webhook: a finished run and whose task it was.

    A receiver reads it with ``WebhookPayload.model_validate_json(body)``.
    """

    model_config = ConfigDict(frozen=True)

    event: Literal["run.finished"] = "run.finished"
    delivery_id: str
    """The same for every attempt of this delivery: process it once."""
    task_name: str | None = None
    """None when the task was deleted before the record was queued for delivery."""
    owner: str | None = None
    """The task's owner (the user a tool-created task belongs to)."""
    run: TaskRunRecord
