"""Fixtures of the kube tests."""

from __future__ import annotations

import pytest

from imgpull.kube import parse


@pytest.fixture(params=["libyaml", "python"])
def loader(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run a test with libyaml's parser (when PyYAML has it) and with the pure-Python one."""
    if request.param == "python":
        monkeypatch.setattr(parse, "_FAST_LOADER", None)
    elif parse._FAST_LOADER is None:
        pytest.fail("PyYAML was built without libyaml")
    return str(request.param)
