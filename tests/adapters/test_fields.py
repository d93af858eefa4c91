"""The shared field-table helpers: every request field is declared, or the table is not built."""

from __future__ import annotations

import pytest

from adapters.fields import REQUEST_FIELDS, field_table, mapped, native, unsupported
from sceneflow.models import StandardVideoRequest


def complete() -> dict[str, object]:
    return {f: native() for f in REQUEST_FIELDS}


def test_a_complete_table_comes_back_in_request_field_order():
    fields = complete() | {"style": mapped("appended"), "seed": unsupported("not sent")}
    table = field_table(**reversed_dict(fields))  # type: ignore[arg-type]
    assert list(table) == [
        f for f in StandardVideoRequest.model_fields if f not in ("model", "options")
    ]
    assert (table["style"].support, table["style"].note) == ("mapped", "appended")
    assert (table["seed"].support, table["seed"].note) == ("unsupported", "not sent")
    assert (table["prompt"].support, table["prompt"].note) == ("native", "")


def reversed_dict(d: dict[str, object]) -> dict[str, object]:
    return dict(reversed(d.items()))


def test_a_missing_or_unknown_field_fails_where_the_table_is_built():
    fields = complete()
    del fields["fps"], fields["seed"]
    with pytest.raises(TypeError, match="field table: missing fps, seed; unknown colour"):
        field_table(**fields, colour=native())  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="unknown model"):
        field_table(**complete(), model=native())  # type: ignore[arg-type]
