"""One clear line for each way an input can be wrong, with the hint that fits.

A Helm template is not YAML (or is YAML whose values are ``{{ ... }}``), a
``<YOUR-IMAGE>`` or ``${IMAGE}`` placeholder is not a reference, and a syntax error is
reported once, at its position, without repeating it.
"""

from __future__ import annotations

import re
from typing import Any, Final

import yaml  # type: ignore[import-untyped,unused-ignore]

from imgpull.errors import ConfigError, InvalidReferenceError

__all__ = [
    "LIBYAML_DEPTH_PROBLEM",
    "TemplateError",
    "at",
    "reference_error",
    "syntax_error",
    "too_deep",
]

#: How libyaml (0.2.5 and later) refuses nesting deeper than its own limit of 1000.
LIBYAML_DEPTH_PROBLEM: Final = "exceeded maximum nesting depth"

_PLACEHOLDER_RE: Final = re.compile(r"<[^<>]*>|\$\{?[A-Za-z_]")
#: A template action where YAML syntax goes: starting a line, an item or a value, unquoted
#: (``{{`` inside quoted strings or block text, as in Grafana dashboards, is data).
_TEMPLATE_RE: Final = re.compile(r"^[ \t]*(?:-[ \t]+)?(?:[\w.\-\"'/]+:[ \t]+)?\{\{", re.MULTILINE)
_SHOWN_MAX: Final = 120


class TemplateError(ConfigError):
    """An input that is a Helm (Go) template, not rendered YAML."""

    def __init__(self, label: str, command: str = "images") -> None:
        super().__init__(
            f"{label}: looks like a Helm template; render it first: "
            f"helm template ... | imgpull {command} -"
        )
        self.label = label

    def for_command(self, command: str) -> TemplateError:
        """The same error with the hint for ``imgpull COMMAND``."""
        return TemplateError(self.label, command)


def at(label: str, line: int, column: int) -> str:
    """``LABEL:LINE:COLUMN`` from 0-based ``line`` and ``column``."""
    return f"{label}:{line + 1}:{column + 1}"


def too_deep(where: str, limit: int) -> ConfigError:
    """The error for nesting deeper than ``limit`` collections, found at ``where``."""
    return ConfigError(
        f"{where}: YAML nested more than {limit} levels deep",
        "Kubernetes objects are far shallower; check where this input comes from",
    )


def _shown(text: str) -> str:
    if not text.isprintable():
        text = text.encode("unicode_escape").decode("ascii")
    return text if len(text) <= _SHOWN_MAX else text[: _SHOWN_MAX - 3] + "..."


def reference_error(label: str, where: str, text: str, exc: InvalidReferenceError) -> ConfigError:
    """The error for an image value ``text`` at ``where`` that does not parse."""
    if "{{" in text:
        return TemplateError(label)
    if _PLACEHOLDER_RE.search(text):
        hint = (
            "substitute the variables first, e.g. envsubst < FILE | imgpull images -"
            if "$" in text
            else "put a real image there, e.g. nginx:1.27"
        )
        return ConfigError(f'{where}: "{_shown(text)}" is a placeholder, not an image', hint)
    return ConfigError(f"{where}: {exc.message}", exc.hint)


def _context(exc: Any, mark: Any) -> str:
    """`` (while parsing X at line L, column C)``, the position only if it is new."""
    if not (exc.problem and exc.context):
        return ""
    context_mark = exc.context_mark
    if context_mark is None or (context_mark.line, context_mark.column) == (
        mark.line,
        mark.column,
    ):
        return f" ({exc.context})"
    return f" ({exc.context} at line {context_mark.line + 1}, column {context_mark.column + 1})"


def _looks_like_template(text: str, exc: yaml.YAMLError) -> bool:
    """Whether a text that is not YAML is a Go template: template actions where YAML
    syntax goes, or one on the line the parser stopped at."""
    if "{{" not in text:
        return False
    if _TEMPLATE_RE.search(text):
        return True
    mark = getattr(exc, "problem_mark", None)
    if mark is None:
        return False
    start = 0
    for _ in range(mark.line):
        start = text.find("\n", start) + 1
    end = text.find("\n", start)
    return "{{" in text[start : None if end < 0 else end]


def syntax_error(
    label: str, text: str, exc: yaml.YAMLError, *, column_shift: int = 0
) -> ConfigError:
    """One line: ``LABEL:LINE:COL: invalid YAML: problem (context at line L, column C)``.

    ``text`` is what the parser read; ``column_shift`` is added to columns on its first
    line (for a byte order mark the parser was not given). A text with template actions
    where YAML syntax goes is reported as a Helm template instead.
    """
    if _looks_like_template(text, exc):
        return TemplateError(label)
    if isinstance(exc, yaml.MarkedYAMLError) and exc.problem == LIBYAML_DEPTH_PROBLEM:
        mark = exc.problem_mark
        column = mark.column + (column_shift if mark.line == 0 else 0)
        return too_deep(at(label, mark.line, column), 1000)
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        if mark is None:
            message = f"{label}: invalid YAML: {exc.problem or exc.context or 'syntax error'}"
        else:
            column = mark.column + (column_shift if mark.line == 0 else 0)
            problem = exc.problem or exc.context or "syntax error"
            message = f"{at(label, mark.line, column)}: invalid YAML: {problem}"
            message += _context(exc, mark)
    elif isinstance(position := getattr(exc, "position", None), int):  # a ReaderError
        line = text.count("\n", 0, position)
        column = position - (text.rfind("\n", 0, position) + 1)
        column += column_shift if line == 0 else 0
        reason = getattr(exc, "reason", "unacceptable character")
        message = f"{at(label, line, column)}: invalid YAML: {reason}"
    else:
        message = f"{label}: invalid YAML: {exc}"
    return ConfigError(" ".join(message.split()), "fix the YAML syntax at that position")
