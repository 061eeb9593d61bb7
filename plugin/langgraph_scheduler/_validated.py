"""The models users build by hand (options, triggers, limits, a webhook): a bad field
raises one of the package's own errors naming it, never pydantic's ``ValidationError``,
as the schedules do (see ``schedules._BaseSchedule``)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, ClassVar, TypeGuard

from pydantic import BaseModel, ValidationError

from .errors import InvalidTask, SchedulerError

__all__ = ["Validated", "field_problems", "is_whole", "kind_of", "with_article"]

if TYPE_CHECKING:  # type checkers read pydantic's own metaclass, and the fields' signature
    from pydantic._internal._model_construction import ModelMetaclass as _Constructed
else:

    class _Constructed(type(BaseModel)):
        """Maps the error of a model's construction (``Model(...)``) alone: pydantic's
        own validation (``model_validate``, a model inside another, with its context)
        never calls this, as it would an ``__init__`` of the model's own."""

        def __call__(cls, *args: Any, **kwargs: Any) -> Any:
            try:
                return super().__call__(*args, **kwargs)
            except ValidationError as exc:
                raise cls.invalid(cls.problem(exc)) from None


class Validated(BaseModel, metaclass=_Constructed):
    """A model whose construction raises :attr:`invalid` (``InvalidTask`` unless a
    subclass says otherwise) with each field's problem, after :attr:`called`.

    Only construction is mapped: the package's own reads of stored rows and of tool
    arguments (``model_validate``) see pydantic's error, and say it their way."""

    invalid: ClassVar[type[SchedulerError]] = InvalidTask
    called: ClassVar[str] = "arguments"

    @classmethod
    def problem(cls, exc: ValidationError) -> str:
        """What ``exc``, raised validating this model, says in the package's words."""
        return f"invalid {cls.called}: {field_problems(exc, cls.model_fields, whole=cls.called)}"


def field_problems(exc: ValidationError, allowed: Iterable[str], *, whole: str) -> str:
    """A pydantic ``ValidationError`` in this package's words, for the message of one of
    its own errors: each field and what is wrong with it (``whole``: what a problem of
    no one field is named; a check's own message as it wrote it), an unknown one with
    the ``allowed`` names."""
    parts = []
    for err in exc.errors(include_url=False):
        field = ".".join(str(p) for p in err["loc"]) or whole
        cause = err.get("ctx", {}).get("error")
        if err["type"] == "extra_forbidden":
            parts.append(f"unknown field {field!r} (allowed: {', '.join(allowed)})")
        elif err["type"] == "missing":
            parts.append(f"field {field!r} is required")
        elif isinstance(cause, Exception):  # a check of ours raised it: its words
            parts.append(f"field {field!r}: {cause}")
        else:
            parts.append(f"field {field!r}: {err['msg']}")
    return "; ".join(parts)


def is_whole(value: object) -> TypeGuard[int]:
    """An ``int`` that is no ``bool``: a count as a caller must give it."""
    return isinstance(value, int) and not isinstance(value, bool)


_LETTERS_READ_WITH_A_VOWEL = frozenset("AEFHILMNORSX")
"""Capitals whose names start with a vowel sound: an HTTPError, an SSLContext."""
_U_READ_AS_YOU = ("uni", "usa", "use", "usu", "uti", "uu", "uint")
"""How a type name starting with "u" begins when it is read "you": a UUID, a URL."""


def kind_of(value: object) -> str:
    """The type of a value given in the wrong place, as an error names it: ``an int``,
    ``an AsyncMock``, ``a UUID``, ``an HTTPError``; ``None`` as itself (not "a NoneType")."""
    return "None" if value is None else with_article(type(value).__name__)


def with_article(name: str) -> str:
    """``name`` (of a type, or a dotted path to one) after "a" or "an" as it is read:
    ``an int``, ``a UUID``, ``an example.zones.Eastern``."""
    if name[:2].isupper():  # read letter by letter
        vowel = name[0] in _LETTERS_READ_WITH_A_VOWEL and not name.startswith("U")
    else:
        lower = name.lower()
        vowel = lower[:1] in ("a", "e", "i", "o", "u") and not lower.startswith(_U_READ_AS_YOU)
    return f"{'an' if vowel else 'a'} {name}"
