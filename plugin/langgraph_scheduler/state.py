"""Graph state for coordinators that take scheduled turns."""

from __future__ import annotations

import json
from typing import Annotated, Any

from langgraph.channels import LastValue
from langgraph.graph import MessagesState
from typing_extensions import NotRequired, Self

from .models import TaskSource

__all__ = ["SchedulerState", "TaskSourceValue"]

_AS_TEXT = "lgs-task-source:"
"""What starts ``task_source`` kept as text in a checkpoint (see :class:`_SourceChannel`)."""


_KEY_TYPES = frozenset({str})
_ITEM_TYPES = frozenset({str, int, bool, type(None)})
"""The types of the keys and items of a dict kept as text: JSON reads them back as they
were (exactly these types: a subclass, a float, a nested dict is kept as it is)."""

_to_json = json.JSONEncoder(separators=(",", ":")).encode
"""One encoder for every checkpoint (``json.dumps`` with options builds one a call)."""


def _stored(value: Any) -> Any:
    """``value`` as a checkpoint keeps it: a flat dict of strings, whole numbers,
    booleans and None (a task source) as :data:`_AS_TEXT` and its JSON, a string that
    starts with :data:`_AS_TEXT` with it once more (so it reads back as itself), anything
    else as it is."""
    if (
        type(value) is dict
        and _KEY_TYPES.issuperset(map(type, value))
        and _ITEM_TYPES.issuperset(map(type, value.values()))
    ):
        return _AS_TEXT + _to_json(value)
    if isinstance(value, str) and value.startswith(_AS_TEXT):
        return _AS_TEXT + value
    return value


def _read(stored: Any) -> Any:
    """The value a checkpoint keeps as ``stored`` (:func:`_stored`'s inverse); a text
    that starts with :data:`_AS_TEXT` but holds no JSON is read as it is."""
    if not isinstance(stored, str) or not stored.startswith(_AS_TEXT):
        return stored
    rest = stored[len(_AS_TEXT) :]
    if rest.startswith(_AS_TEXT):
        return rest
    try:
        return json.loads(rest)
    except ValueError:
        return stored


class _SourceChannel(LastValue[Any]):
    """The channel of ``task_source``: its last value, kept in a checkpoint as text.

    A graph reads the dict. LangGraph's PostgreSQL saver keeps a value that is no
    string, number or None in a blob row of its own, written beside the checkpoint;
    kept as text, the source sits inline in the checkpoint's row, as a user turn's None
    does, so a scheduled turn writes the rows a direct turn writes. Checkpoints written
    with the dict itself read as before.
    """

    __slots__ = ()

    def from_checkpoint(self, checkpoint: Any) -> Self:
        empty = super().from_checkpoint(checkpoint)
        if empty.is_available():
            empty.value = _read(empty.value)
        return empty

    def checkpoint(self) -> Any:
        value = super().checkpoint()
        return _stored(value) if self.is_available() else value


TaskSourceValue = Annotated[TaskSource | None, _SourceChannel]
"""The annotation of a state's ``task_source`` key: ``task_source:
NotRequired[TaskSourceValue]`` in a state of your own keeps it inline in a PostgreSQL
checkpoint (:class:`_SourceChannel`); ``TaskSource | None`` works too, at a blob row per
checkpoint that changes it."""


class SchedulerState(MessagesState):
    """``MessagesState`` plus the attribution of a task-triggered turn.

    Mix it into your own state (``class MyState(SchedulerState): ...``) so scheduled
    turns can see which task started them. ``task_source`` is None on user turns.
    """

    task_source: NotRequired[TaskSourceValue]
