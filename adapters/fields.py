"""The one way an adapter declares how each StandardVideoRequest field reaches its provider.

Every adapter builds its per-model table with `field_table(...)`, one keyword per request field
(all but `model` and `options`), each `native(...)`, `mapped(...)` or `unsupported(...)`. A
table that misses a field, or names one the request does not have, fails where it is built: a
field is never left silent (design.md §5).
"""

from __future__ import annotations

from sceneflow.models import StandardVideoRequest
from sceneflow.providers import FieldMapping

__all__ = ["REQUEST_FIELDS", "field_table", "mapped", "native", "unsupported"]

# Every field a table must cover; `model` picks the table rather than being mapped by it, and
# `options` are the provider's own settings, declared per model as ModelCapabilities.options.
REQUEST_FIELDS = tuple(
    f for f in StandardVideoRequest.model_fields if f not in ("model", "options")
)


def native(note: str = "") -> FieldMapping:
    """The provider has this field; `note` names it when its name differs."""
    return FieldMapping(support="native", note=note)


def mapped(note: str) -> FieldMapping:
    """The provider has no such field, but SceneFlow translates it; `note` says how."""
    return FieldMapping(support="mapped", note=note)


def unsupported(note: str) -> FieldMapping:
    """The provider has no equivalent; `note` says what happens (not sent, warned, refused)."""
    return FieldMapping(support="unsupported", note=note)


def field_table(**fields: FieldMapping) -> dict[str, FieldMapping]:
    """The complete table, in request-field order. Raises TypeError if a field is missing or
    unknown, so an incomplete table fails at import or construction, never at a user."""
    missing = [f for f in REQUEST_FIELDS if f not in fields]
    unknown = sorted(set(fields) - set(REQUEST_FIELDS))
    if missing or unknown:
        problems = [f"missing {', '.join(missing)}"] if missing else []
        problems += [f"unknown {', '.join(unknown)}"] if unknown else []
        raise TypeError(
            f"field table: {'; '.join(problems)}. Declare every StandardVideoRequest field "
            "but model and options as native(), mapped() or unsupported()"
        )
    return {f: fields[f] for f in REQUEST_FIELDS}
