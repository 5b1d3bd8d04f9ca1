"""The audit log: one JSON line per prediction, appended, rotated by size (``log`` -> ``log.1`` -> ...)."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import IO, Any

from imgclf.errors import ConfigError


class AuditLog:
    """Append-only JSONL, safe to call from several threads; rotated when the next line would pass ``max_bytes``.

    Rotation keeps ``backups`` old files: ``log.1`` is the newest of them. ``imgclf.monitor.read_audit_log``
    reads them back in order. Each line is flushed as it is written.

    >>> # log = AuditLog("audit.jsonl", max_bytes=50 << 20); log.write({"time": ..., "sha256": ...})
    """

    def __init__(self, path: str | os.PathLike, *, max_bytes: int = 50 << 20, backups: int = 5) -> None:
        self.path, self.max_bytes, self.backups = Path(path), int(max_bytes), int(backups)
        self._lock = threading.Lock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file: IO[str] | None = open(self.path, "a", encoding="utf-8")  # noqa: SIM115
        except OSError as exc:
            raise ConfigError(f"cannot open the audit log {self.path} ({exc.strerror}); choose a writable --log") \
                from exc  # fmt: skip
        self._size = self.path.stat().st_size

    def _rotate(self) -> None:
        if self._file is not None:
            self._file.close()
        if self.backups == 0:
            self.path.unlink(missing_ok=True)
        else:
            for i in range(self.backups - 1, 0, -1):
                older = self.path.with_name(f"{self.path.name}.{i}")
                if older.exists():
                    os.replace(older, self.path.with_name(f"{self.path.name}.{i + 1}"))
            os.replace(self.path, self.path.with_name(f"{self.path.name}.1"))
        self._file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115
        self._size = 0

    def write(self, record: dict[str, Any]) -> None:
        line = json.dumps(record, separators=(",", ":"), allow_nan=False) + "\n"
        size = len(line.encode("utf-8"))
        with self._lock:
            if self._file is None:
                return  # closed during shutdown: nothing more is written
            if self._size and self._size + size > self.max_bytes:
                self._rotate()
            self._file.write(line)
            self._file.flush()
            self._size += size

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None
