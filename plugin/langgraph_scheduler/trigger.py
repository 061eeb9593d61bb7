"""The task payload: what a scheduled conversation turn is about."""

from __future__ import annotations

import json
from typing import Any

from pydantic import ConfigDict, Field, ValidationError, field_validator

from ._validated import Validated, kind_of
from .errors import InvalidPayload

__all__ = [
    "MAX_PROMPT_CHARS",
    "MAX_SYSTEM_ADDON_CHARS",
    "MAX_TIMEOUT_SECS",
    "ConversationTrigger",
    "conversation_trigger_schema",
    "payload_problem",
]

MAX_PROMPT_CHARS = 8_000
"""Upper bound on ``ConversationTrigger.prompt`` (runtimes may set a lower one)."""
MAX_SYSTEM_ADDON_CHARS = 4_000
"""Upper bound on ``ConversationTrigger.system_addon``."""
MAX_TIMEOUT_SECS = 86_400
"""Longest allowed turn timeout: one day."""


class ConversationTrigger(Validated):
    """What to say to the agent when a task fires.

    Stored as the task's JSON payload. ``prompt`` becomes the human message of the
    scheduled turn; ``system_addon`` is extra instruction for that turn only.

    Example:
        >>> ConversationTrigger(prompt="Summarise my inbox", timeout_secs=120).to_payload()
        {'prompt': 'Summarise my inbox', 'timeout_secs': 120}
    """

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)
    invalid = InvalidPayload  # a bad field, built by hand (the docstring is the model's)
    called = "task payload"

    prompt: str = Field(
        min_length=1,
        max_length=MAX_PROMPT_CHARS,
        description="The message the agent receives when the task fires, written as the "
        "user's request (e.g. 'Summarise yesterday's notes').",
    )
    system_addon: str | None = Field(
        default=None,
        max_length=MAX_SYSTEM_ADDON_CHARS,
        description="Optional extra system instruction applied to the scheduled turn only.",
    )
    timeout_secs: int | None = Field(
        default=None,
        ge=1,
        le=MAX_TIMEOUT_SECS,
        description="Optional limit on the turn's duration in seconds (1-86400); "
        "the runtime default applies when absent.",
    )

    @field_validator("system_addon")
    @classmethod
    def _blank_addon_is_none(cls, value: str | None) -> str | None:
        return value or None

    @classmethod
    def from_task_payload(cls, payload: Any) -> ConversationTrigger:
        """Parse a stored task payload.

        Args:
            payload: a dict, a JSON string, an existing trigger, or None.

        Raises:
            InvalidPayload: naming the field and the problem.
        """
        if isinstance(payload, ConversationTrigger):
            return payload
        if payload is None:
            raise InvalidPayload(
                "task has no payload; expected a ConversationTrigger such as "
                '{"prompt": "Summarise my inbox"}'
            )
        if isinstance(payload, (str, bytes, bytearray)):
            try:
                payload = json.loads(payload)
            except json.JSONDecodeError as exc:
                raise InvalidPayload(
                    f"task payload is not valid JSON ({exc.msg} at position {exc.pos})"
                ) from None
        if not isinstance(payload, dict):
            raise InvalidPayload(f"task payload must be a JSON object, got {kind_of(payload)}")
        try:
            return cls.model_validate(payload)
        except ValidationError as exc:
            raise InvalidPayload(cls.problem(exc)) from None

    def to_payload(self) -> dict[str, Any]:
        """JSON-ready dict, without unset optional fields."""
        return self.model_dump(mode="json", exclude_none=True)


def payload_problem(payload: Any) -> str | None:
    """Why a stored task payload is no valid trigger (naming the field), or None."""
    try:
        ConversationTrigger.from_task_payload(payload)
    except InvalidPayload as exc:
        return str(exc).removeprefix(_INVALID)
    return None


def conversation_trigger_schema() -> dict[str, Any]:
    """The JSON Schema of the task payload, as documented in the system prompt."""
    return ConversationTrigger.model_json_schema()


_INVALID = f"invalid {ConversationTrigger.called}: "
