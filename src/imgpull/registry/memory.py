"""What earlier runs learned about endpoints: which answered and which did not, so the
next run does not wait on the same dead mirror first.

A small JSON file (``endpoints.json`` in the cache directory), read once per run and
written at its end, atomically and under a lock, so concurrent runs never leave a torn
file (the last writer wins per endpoint). A failure is remembered for a day; a success
after it forgets it. Only failures are worth remembering, so a success is written down
only when it forgets one: a run whose endpoints all answer writes nothing, and pays
neither the write nor the lock's import (a fresh cache directory per run is common in
CI). ``imgpull config`` shows the file, ``imgpull cache forget`` clears it.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

from imgpull.config.settings import RegistryHost

FAILURE_TTL: Final = 24 * 3600.0
FILE_NAME: Final = "endpoints.json"
_LIMIT: Final = 1024 * 1024


class EndpointMemory:
    def __init__(self, path: Path | None, *, clock: Any = time.time) -> None:
        self.path = path
        self._clock = clock
        self._lock = threading.Lock()
        self._known = self._load()
        self._changes: dict[tuple[str, str], dict[str, Any]] = {}

    @classmethod
    def in_cache(cls, cache_dir: Path | None) -> EndpointMemory:
        return cls(None if cache_dir is None else cache_dir / FILE_NAME)

    def _load(self) -> dict[str, dict[str, dict[str, Any]]]:
        if self.path is None:
            return {}
        try:
            with self.path.open("rb") as handle:
                data = json.loads(handle.read(_LIMIT))
        except (OSError, ValueError, RecursionError):
            return {}  # no memory, or a damaged one: start afresh
        registries = data.get("registries") if isinstance(data, dict) else None
        if not isinstance(registries, dict):
            return {}
        return {
            name: {label: entry for label, entry in hosts.items() if isinstance(entry, dict)}
            for name, hosts in registries.items()
            if isinstance(hosts, dict)
        }

    def _entry(self, registry: str, label: str) -> dict[str, Any]:
        with self._lock:
            changed = self._changes.get((registry, label))
            if changed is not None:
                return changed
            return dict(self._known.get(registry, {}).get(label, {}))

    def failed_recently(self, registry: str, label: str) -> str | None:
        """Why this endpoint failed in the last day (and has not answered since), or None."""
        entry = self._entry(registry, label)
        failed, ok = entry.get("failed"), entry.get("ok")
        if not isinstance(failed, int | float) or self._clock() - failed > FAILURE_TTL:
            return None
        if isinstance(ok, int | float) and ok > failed:
            return None
        why = entry.get("why")
        return why if isinstance(why, str) else "it failed"

    def order(self, registry: str, hosts: Sequence[RegistryHost]) -> list[RegistryHost]:
        """``hosts`` in their configured order, those that failed recently last."""
        return sorted(hosts, key=lambda h: self.failed_recently(registry, h.label) is not None)

    def record(self, registry: str, label: str, *, ok: bool, why: str = "") -> None:
        entry = self._entry(registry, label)
        now = round(self._clock(), 1)
        if ok:
            if not self._forgets_a_failure(entry):
                return
            entry["ok"] = now
        else:
            entry.update(failed=now, why=why[:200])
        with self._lock:
            self._changes[(registry, label)] = entry

    def entries(self) -> dict[str, dict[str, dict[str, Any]]]:
        """Everything remembered, for ``imgpull config``."""
        merged = {name: dict(hosts) for name, hosts in self._known.items()}
        with self._lock:
            for (registry, label), entry in self._changes.items():
                merged.setdefault(registry, {})[label] = entry
        return merged

    @staticmethod
    def _forgets_a_failure(entry: dict[str, Any]) -> bool:
        failed = entry.get("failed")
        return isinstance(failed, int | float) and failed >= _number(entry.get("ok"))

    def save(self) -> None:
        """Write what this run learned (merged with what another run wrote meanwhile)."""
        with self._lock:
            changes = dict(self._changes)
        if self.path is None or not changes:
            return
        from filelock import FileLock, Timeout  # 15 ms to import: only for runs that write

        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with FileLock(str(self.path) + ".lock", timeout=5):
                current = EndpointMemory(self.path, clock=self._clock)._known
                for (registry, label), entry in changes.items():
                    current.setdefault(registry, {})[label] = entry
                self._write(current)
        except (OSError, Timeout):
            pass  # a read-only or busy cache: the next run just learns it again

    def _write(self, registries: dict[str, dict[str, dict[str, Any]]]) -> None:
        assert self.path is not None
        now = self._clock()
        kept = {
            name: {
                label: entry
                for label, entry in hosts.items()
                if now - max(_number(entry.get("ok")), _number(entry.get("failed"))) < 30 * 86400
            }
            for name, hosts in registries.items()
        }
        temp = self.path.with_name(f".{self.path.name}.{os.getpid()}")
        try:
            temp.write_text(json.dumps({"version": 1, "registries": kept}, indent=1))
            os.replace(temp, self.path)
        except OSError:
            with contextlib.suppress(OSError):
                temp.unlink()  # a full disk must not keep one file per run
            raise

    def forget(self) -> bool:
        """Remove the file; True when there was one."""
        if self.path is None:
            return False
        with self._lock:
            self._changes.clear()
            self._known = {}
        try:
            self.path.unlink()
        except FileNotFoundError:
            return False
        except OSError:
            return False
        with contextlib.suppress(OSError):
            Path(str(self.path) + ".lock").unlink()
        return True


def _number(value: object) -> float:
    return float(value) if isinstance(value, int | float) else 0.0
