"""The audit log: one JSON line per prediction, appended, rotated by size (``log`` -> ``log.1`` -> ...).

Logging never fails a prediction: a record that cannot be written (full disk, revoked permissions, a failed
rotation) is dropped, counted (``failures``, and ``on_error`` for /metrics) and warned about once per episode;
the file is reopened on the next write, so logging resumes by itself when the cause goes away.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from imgclf.errors import ConfigError

log = logging.getLogger("imgclf.serve")

_FLAGS = os.O_RDWR | os.O_APPEND | os.O_CREAT | getattr(os, "O_CLOEXEC", 0)  # read: to see a torn last line


class AuditLog:
    """Append-only JSONL, safe to call from several threads; rotated when the next line would pass ``max_bytes``.

    Rotation keeps ``backups`` old files: ``log.1`` is the newest of them. ``imgclf.monitor.read_audit_log``
    reads them back in order. Each line goes to the file in one unbuffered ``write``. A log whose last line was
    torn (the process died mid-write) gets a newline first, so only that line is lost. ``write`` never raises
    for I/O: see the module docstring.

    >>> # log = AuditLog("audit.jsonl", max_bytes=50 << 20); log.write({"time": ..., "sha256": ...})
    """

    #: After a failed rotation, records go on into the current file; rotation is tried again this much later
    #: (not at every write: a half-done rotation retried in a loop would shift the backups away).
    rotation_retry_s = 30.0

    def __init__(self, path: str | os.PathLike, *, max_bytes: int = 50 << 20, backups: int = 5,
                 on_error: Callable[[], None] | None = None) -> None:  # fmt: skip
        self.path, self.max_bytes, self.backups = Path(path), int(max_bytes), int(backups)
        self.on_error = on_error
        self.failures = 0  # records that could not be written, and failed rotations
        self._lock = threading.Lock()
        self._closed = False
        self._warned: set[str] = set()  # kinds of failure warned about in the current episode
        self._fd: int | None = None
        self._size = 0
        self._retry_rotation_at = 0.0  # monotonic time: after a failed rotation, wait before trying again
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._open()
        except OSError as exc:
            raise ConfigError(f"cannot open the audit log {self.path} ({exc.strerror}); choose a writable --log") \
                from exc  # fmt: skip

    def _open(self) -> None:
        fd = os.open(self.path, _FLAGS, 0o666)
        try:
            size = os.fstat(fd).st_size
            if size and os.pread(fd, 1, size - 1) != b"\n":
                size += self._write_all(fd, b"\n")  # end a torn last line so the next record starts clean
        except OSError:
            os.close(fd)
            raise
        self._fd, self._size = fd, size

    @staticmethod
    def _write_all(fd: int, data: bytes) -> int:
        view = memoryview(data)
        while view:
            n = os.write(fd, view)
            if n <= 0:
                raise OSError("short write to the audit log")
            view = view[n:]
        return len(data)

    def _drop_fd(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):  # a close error loses nothing: every line was written unbuffered
                os.close(self._fd)
            self._fd = None

    def _rotate(self) -> None:
        self._drop_fd()
        try:
            if self.backups == 0:
                self.path.unlink(missing_ok=True)
            else:
                for i in range(self.backups - 1, 0, -1):
                    older = self.path.with_name(f"{self.path.name}.{i}")
                    if older.exists():
                        os.replace(older, self.path.with_name(f"{self.path.name}.{i + 1}"))
                os.replace(self.path, self.path.with_name(f"{self.path.name}.1"))
        finally:
            self._open()  # whether or not the renames worked: go on in the current file rather than none

    def _failed(self, exc: BaseException, kind: str) -> None:
        self.failures += 1
        if self.on_error is not None:
            self.on_error()
        if kind not in self._warned:  # once per episode, not once per record
            self._warned.add(kind)
            if kind == "rotation":
                log.warning("audit log %s: rotation failed (%s); records go on into the current file, past its size "
                            "limit, and rotation is retried later", self.path, exc)  # fmt: skip
            else:
                log.warning("audit log %s: %s failed (%s); predictions are still answered, but their records are "
                            "dropped and counted in imgclf_audit_log_errors_total until it works again", self.path,
                            kind, exc)  # fmt: skip

    def _recovered(self, kind: str) -> None:
        if kind in self._warned:
            self._warned.discard(kind)
            log.warning("audit log %s: %s works again (%d failure(s) so far)", self.path, kind, self.failures)

    def write(self, record: dict[str, Any]) -> None:
        """Append ``record`` as one line; an I/O failure drops the record (counted, warned once), never raises."""
        try:
            data = (json.dumps(record, separators=(",", ":"), allow_nan=False) + "\n").encode("utf-8")
        except (TypeError, ValueError) as exc:
            with self._lock:
                self._failed(exc, "encoding a record")
            return
        with self._lock:
            if self._closed:
                return  # closed during shutdown: nothing more is written
            try:
                if self._fd is None:
                    self._open()
                full = self._size and self._size + len(data) > self.max_bytes
                if full and time.monotonic() >= self._retry_rotation_at:
                    try:
                        self._rotate()
                        self._recovered("rotation")
                    except OSError as exc:
                        self._retry_rotation_at = time.monotonic() + self.rotation_retry_s
                        self._failed(exc, "rotation")
                        if self._fd is None:
                            self._open()  # the reopen after the renames failed too: try once more, else drop
                self._size += self._write_all(self._fd, data)
            except OSError as exc:
                self._drop_fd()  # reopened (and a torn line ended) on the next write
                self._failed(exc, "writing a record")
                return
            self._recovered("writing a record")

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._drop_fd()
