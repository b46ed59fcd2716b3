"""Run the ``imgpull`` command line in a subprocess and check how it fails.

    result = run_imgpull("pull", ref, "-o", str(out), env={"SSL_CERT_FILE": ca})
    assert_clean_failure(result, code=EXIT_NOT_FOUND, contains="tag not found", output=out)

The child gets the current ``os.environ`` (which the ``fresh_env`` fixture has already
pointed at temporary HOME, DOCKER_CONFIG and IMGPULL_CACHE_DIR) updated by ``env``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

__all__ = ["assert_clean_failure", "partial_files", "run_imgpull"]

ERROR_PREFIX = "imgpull: error:"


def run_imgpull(
    *args: str,
    env: Mapping[str, str] | None = None,
    input: bytes | None = None,
    timeout: float = 120,
) -> subprocess.CompletedProcess[bytes]:
    """``python -m imgpull ARGS`` with captured output; stdin is ``input`` (or empty)."""
    child_env = dict(os.environ)
    if env:
        child_env.update(env)
    return subprocess.run(
        [sys.executable, "-m", "imgpull", *args],
        input=input if input is not None else b"",
        capture_output=True,
        env=child_env,
        timeout=timeout,
        check=False,
    )


def partial_files(output: Path) -> list[Path]:
    """Leftover ``.NAME.*.partial`` temporary files beside ``output``."""
    if not output.parent.is_dir():
        return []
    return sorted(output.parent.glob(f".{output.name}.*.partial"))


def _describe(result: subprocess.CompletedProcess[bytes]) -> str:
    return (
        f"exit code {result.returncode}\n"
        f"--- stderr ---\n{result.stderr.decode(errors='replace')}"
        f"--- stdout ({len(result.stdout)} bytes) ---\n"
        f"{result.stdout[:2000].decode(errors='replace')}"
    )


def assert_clean_failure(
    result: subprocess.CompletedProcess[bytes],
    *,
    code: int,
    contains: str,
    output: Path | None = None,
) -> str:
    """Assert a clean, one-line failure with exit ``code``; returns the error line.

    Clean means: exit status ``code`` (non-zero), standard error is exactly one non-empty
    line starting with ``imgpull: error:`` that contains ``contains`` (case-insensitive),
    no traceback anywhere, nothing on standard output, and -- when ``output`` is given --
    no archive at ``output`` and no leftover ``.NAME.*.partial`` beside it.
    """
    assert code != 0, "a failure needs a non-zero exit code"
    info = _describe(result)
    assert result.returncode == code, f"expected exit code {code}\n{info}"
    stderr = result.stderr.decode("utf-8", errors="replace")
    assert "Traceback" not in stderr, info
    assert b"Traceback" not in result.stdout, info
    assert result.stdout == b"", f"standard output must stay empty\n{info}"
    lines = stderr.splitlines()
    assert len(lines) == 1, f"expected exactly one line on stderr\n{info}"
    line = lines[0]
    assert line.strip(), info
    assert line.startswith(ERROR_PREFIX), f"stderr must start with {ERROR_PREFIX!r}\n{info}"
    assert contains.lower() in line.lower(), f"expected {contains!r} in the error\n{info}"
    if output is not None:
        assert not output.exists(), f"{output} must not exist after a failure\n{info}"
        leftovers = partial_files(output)
        assert not leftovers, f"temporary files left behind: {leftovers}\n{info}"
    return line
