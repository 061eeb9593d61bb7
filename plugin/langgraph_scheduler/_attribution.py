"""Signed attribution: only a runtime can mark a turn as task-triggered.

A scheduled turn's trigger message carries its :class:`~.models.TaskSource` in
``additional_kwargs["task_source"]``, and the turn's system prompt takes the task's
``system_addon`` from it. Any client that can send the graph a message can put that
key there too, so the runtime signs the source it builds (HMAC-SHA256, bound to the
thread the turn runs on and to the text of its message) under a key that every
runtime on the same store shares, and the trigger node trusts a source only if its
signature checks out and it rides on the message it was signed with.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable, Mapping
from typing import Any

from .errors import InvalidTask
from .models import TaskSource

__all__ = [
    "KEY_NAME",
    "MESSAGE_DIGEST",
    "SIGNATURE",
    "SOURCE_KEY",
    "AttributionKey",
    "SourceCheck",
    "carried_by",
    "check_messages_key",
    "message_digest",
    "retry_attempt",
    "triggers_run",
]

SourceCheck = Callable[[Any, "str | None"], bool]
"""Says whether a ``task_source`` was made by a runtime for a turn on a thread:
``SchedulerRuntime.verify_task_source`` (or :meth:`AttributionKey.verify`)."""

KEY_NAME = "attribution_key"
"""Name of the shared key in the store's meta table (see ``Store.secret``)."""

SIGNATURE = "signature"
"""The key of a :class:`~.models.TaskSource` that holds its signature."""

MESSAGE_DIGEST = "message_sha256"
"""The key of a :class:`~.models.TaskSource` that holds the SHA-256 of its trigger
message's text (see :func:`message_digest`): the signature covers it, so a signed source
marks no message but one with that text."""

SOURCE_KEY = "task_source"
"""The graph state key a scheduled turn's input puts its attribution under (see
``_turns.turn_input``), beside its message under the runtime's ``messages_key``."""


def check_messages_key(messages_key: Any) -> str:
    """``messages_key`` if it can name the state key of a graph's conversation.

    Raises:
        InvalidTask: it is no key, or it is :data:`SOURCE_KEY`, which each scheduled
            turn's input writes its attribution under: the trigger message would be
            overwritten by it, and the conversation read from it.
    """
    if not isinstance(messages_key, str) or not messages_key:
        raise InvalidTask(
            "messages_key must name the state key the graph keeps its conversation "
            f"under, e.g. 'messages' or 'chat'; got {messages_key!r}"
        )
    if messages_key == SOURCE_KEY:
        raise InvalidTask(
            f"messages_key cannot be {SOURCE_KEY!r}: each scheduled turn writes its "
            f"attribution (the task that started it) under {SOURCE_KEY!r}, which would "
            "overwrite the turn's message; keep the conversation under another key, "
            "e.g. 'messages' or 'chat'"
        )
    return messages_key


def retry_attempt(source: Mapping[str, Any]) -> int | None:
    """The attempt a turn's ``task_source`` names when the turn is a retry (2 and up);
    None for a first attempt, or for a value no runtime writes: a message's source is
    whatever the checkpoint holds (a client's, in a graph without ``verify=``), and a
    value of the wrong type is left out of what is shown, never a reason to fail."""
    attempt = source.get("attempt")
    return attempt if type(attempt) is int and attempt > 1 else None


def message_digest(content: Any) -> str | None:
    """The SHA-256 (hex) of a trigger message's text; None for content that is no text
    (a runtime sends text: anything else is no message it signed)."""
    if not isinstance(content, str):
        return None
    return hashlib.sha256(content.encode("utf-8", "surrogatepass")).hexdigest()


def carried_by(source: Mapping[str, Any], content: Any) -> bool:
    """Whether ``source`` was signed for a message with this ``content``: a client that
    copies a signed source (it can read one off a thread, or off a run queued on a
    server) onto a message of its own text gets no scheduled turn of it. Check the
    signature itself with :meth:`AttributionKey.verify`."""
    digest = source.get(MESSAGE_DIGEST)
    return isinstance(digest, str) and digest == message_digest(content)


def triggers_run(additional_kwargs: Any, run_id: Any) -> bool:
    """Whether a human message's ``additional_kwargs`` carry the ``task_source`` of run
    ``run_id``: the message that triggered that run (or a copy of it)."""
    if not isinstance(additional_kwargs, Mapping):
        return False
    source = additional_kwargs.get(SOURCE_KEY)
    return isinstance(source, Mapping) and source.get("run_id") == run_id


class AttributionKey:
    """Signs the task sources a runtime builds and checks those a graph receives.

    Args:
        secret: the store's shared key (``await store.secret(KEY_NAME)``).
    """

    def __init__(self, secret: str) -> None:
        self._key = secret.encode()

    def sign(self, source: TaskSource, thread_id: str, message: str) -> TaskSource:
        """A copy of ``source`` signed for a turn on ``thread_id`` whose trigger message
        says ``message`` (its digest goes in, under :data:`MESSAGE_DIGEST`)."""
        signed: dict[str, Any] = {**source, MESSAGE_DIGEST: message_digest(message)}
        signed[SIGNATURE] = self._digest(signed, thread_id)
        return signed  # type: ignore[return-value]

    def verify(self, source: Any, thread_id: str | None) -> bool:
        """True when ``source`` was signed by :meth:`sign` for ``thread_id``; never raises."""
        if not isinstance(source, Mapping) or thread_id is None:
            return False
        signature = source.get(SIGNATURE)
        if not isinstance(signature, str) or not signature.isascii():
            return False  # compare_digest raises on text that is not ASCII
        # Values no runtime writes fail to encode: not JSON, or nested deeper than json goes.
        try:
            expected = self._digest(source, thread_id)
        except (TypeError, ValueError, RecursionError):
            return False
        return hmac.compare_digest(signature, expected)

    def _digest(self, source: Mapping[str, Any], thread_id: str) -> str:
        # Canonical JSON: the same text however the source travelled (checkpoint, HTTP).
        body = {k: v for k, v in source.items() if k != SIGNATURE}
        text = json.dumps(
            [thread_id, body], sort_keys=True, separators=(",", ":"), ensure_ascii=False
        )
        return hmac.new(self._key, text.encode(), hashlib.sha256).hexdigest()
