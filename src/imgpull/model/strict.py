"""Reading JSON from elsewhere strictly: every field of the type it must have, or one
error naming it. Registries and archives are not trusted to send well-formed data."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from imgpull.errors import ImgpullError, RegistryError

ErrorType = type[ImgpullError]


def load_object(raw: bytes, what: str, error: ErrorType = RegistryError) -> dict[str, Any]:
    """``raw`` parsed as a JSON object; nesting too deep, bad UTF-8 or another JSON type
    is ``error``."""
    try:
        data = json.loads(raw)
    except RecursionError:
        raise error(f"{what} is nested too deeply to be real") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise error(f"{what} is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise error(f"{what} is not a JSON object")
    return data


def string(data: Mapping[str, Any], key: str, what: str, *, default: str = "") -> str:
    value = data.get(key, default)
    if value is None:
        return default
    if not isinstance(value, str):
        raise RegistryError(f"{what}: {key!r} is not a string")
    return value


def strings(data: Mapping[str, Any], key: str, what: str) -> tuple[str, ...]:
    """A list of strings; null or absent is empty."""
    value = data.get(key)
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise RegistryError(f"{what}: {key!r} is not a list of strings")
    return tuple(value)


def string_map(data: Mapping[str, Any], key: str, what: str) -> dict[str, str]:
    """An object of string values; null or absent is empty."""
    value = data.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise RegistryError(f"{what}: {key!r} is not an object of strings")
    return dict(value)


def obj(data: Mapping[str, Any], key: str, what: str, *, required: bool = False) -> dict[str, Any]:
    """A nested object; null or absent is empty unless ``required``."""
    value = data.get(key)
    if value is None and not required:
        return {}
    if not isinstance(value, dict):
        raise RegistryError(
            f"{what}: {key!r} is " + ("missing" if value is None else "not an object")
        )
    return value


def objects(data: Mapping[str, Any], key: str, what: str) -> list[Any]:
    """A required list (of anything: the caller checks the entries)."""
    value = data.get(key)
    if not isinstance(value, list):
        problem = "missing" if value is None else "not a list"
        raise RegistryError(f"{what}: {key!r} is {problem}")
    return value
