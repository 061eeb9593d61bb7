"""ConversationTrigger: the task payload."""

from __future__ import annotations

import json

import pytest

from langgraph_scheduler import ConversationTrigger, InvalidPayload, SchedulerError
from langgraph_scheduler.trigger import (
    MAX_PROMPT_CHARS,
    MAX_SYSTEM_ADDON_CHARS,
    conversation_trigger_schema,
)


def test_round_trip_through_payload_and_json() -> None:
    trigger = ConversationTrigger(
        prompt="Summarise my inbox", system_addon="Be brief", timeout_secs=60
    )
    payload = trigger.to_payload()
    assert payload == {
        "prompt": "Summarise my inbox",
        "system_addon": "Be brief",
        "timeout_secs": 60,
    }
    assert ConversationTrigger.from_task_payload(payload) == trigger
    assert ConversationTrigger.from_task_payload(json.dumps(payload)) == trigger


def test_optional_fields_are_left_out_of_the_payload() -> None:
    assert ConversationTrigger(prompt="hi").to_payload() == {"prompt": "hi"}


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (None, "task has no payload"),
        ("{not json", "not valid JSON"),
        ("[1, 2]", "must be a JSON object, got a list$"),
        (42, "must be a JSON object, got an int$"),
        ({}, "field 'prompt' is required"),
        ({"prompt": ""}, "field 'prompt'"),
        ({"prompt": "   "}, "field 'prompt'"),
        ({"prompt": "x" * (MAX_PROMPT_CHARS + 1)}, f"at most {MAX_PROMPT_CHARS} characters"),
        ({"prompt": "x", "system_addon": "y" * (MAX_SYSTEM_ADDON_CHARS + 1)}, "system_addon"),
        ({"prompt": "x", "timeout_secs": 0}, "field 'timeout_secs'.*greater than or equal to 1"),
        ({"prompt": "x", "timeout_secs": 86_401}, "timeout_secs.*less than or equal to 86400"),
        ({"prompt": "x", "timeout_secs": "soon"}, "timeout_secs"),
        (
            {"prompt": "x", "channel": "sms"},
            r"unknown field 'channel' \(allowed: prompt, system_addon",
        ),
    ],
)
def test_invalid_payloads_raise_one_typed_error_naming_the_field(
    payload: object, message: str
) -> None:
    with pytest.raises(InvalidPayload, match=message) as info:
        ConversationTrigger.from_task_payload(payload)
    assert isinstance(info.value, SchedulerError)
    assert isinstance(info.value, ValueError)


def test_blank_system_addon_means_none() -> None:
    assert ConversationTrigger(prompt="x", system_addon="  ").system_addon is None


def test_json_schema_is_exported_and_rejects_extra_fields() -> None:
    schema = conversation_trigger_schema()
    assert schema["required"] == ["prompt"]
    assert schema["additionalProperties"] is False
    assert set(schema["properties"]) == {"prompt", "system_addon", "timeout_secs"}
    assert schema["properties"]["timeout_secs"]["anyOf"][0]["maximum"] == 86_400
