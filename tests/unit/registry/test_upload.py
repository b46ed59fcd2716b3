"""Upload state: what a registry's ``Range`` says it holds (the ``0-0`` rule)."""

from __future__ import annotations

import pytest

from imgpull.errors import RegistryError
from imgpull.registry.upload import parse_upload_range


@pytest.mark.parametrize(
    ("value", "held"),
    [("0-0", 0), ("0-1", 2), ("0-1048575", 1048576), ("0-41", 42), (" 0 - 9 ", 10)],
)
def test_range_says_how_much_is_held(value: str, held: int) -> None:
    # "0-0" is both an empty upload and one byte held: taken as empty (one byte resent).
    assert parse_upload_range(204, value) == held


@pytest.mark.parametrize(
    ("status", "value"), [(204, ""), (204, "5-9"), (204, "0-x"), (404, "0-9"), (202, "0-1")]
)
def test_anything_else_cannot_be_resumed(status: int, value: str) -> None:
    with pytest.raises(RegistryError, match="cannot resume"):
        parse_upload_range(status, value)
