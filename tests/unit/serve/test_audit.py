"""The audit log: JSONL, rotated by size, complete under concurrent writers, readable by the monitor."""

from __future__ import annotations

import json
import logging
import os
import threading
from pathlib import Path

import pytest

from imgclf.monitor import read_audit_log, read_audit_records
from imgclf.serve import AuditLog


def _rec(i: int) -> dict:
    return {"time": f"t{i:05d}", "class_index": 0, "confidence": 0.5, "pad": "x" * 50}


def test_rotation_keeps_backups_and_the_monitor_reads_them_in_order(tmp_path: Path) -> None:
    path = tmp_path / "logs" / "audit.jsonl"
    log = AuditLog(path, max_bytes=1000, backups=2)
    for i in range(60):
        log.write(_rec(i))
    log.close()
    files = sorted(p.name for p in path.parent.iterdir())
    assert files == ["audit.jsonl", "audit.jsonl.1", "audit.jsonl.2"]
    assert all(p.stat().st_size <= 1000 for p in path.parent.iterdir())
    times = [r["time"] for r in read_audit_log(path)]
    assert times == sorted(times) and times[-1] == "t00059"  # the oldest were rotated away, order is kept
    assert len(times) < 60


def test_concurrent_writers_produce_whole_lines(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    log = AuditLog(path, max_bytes=10 << 20)

    def writer(k: int) -> None:
        for i in range(200):
            log.write(_rec(k * 1000 + i))

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    log.close()
    lines = path.read_text().splitlines()
    assert len(lines) == 1600 and len({json.loads(line)["time"] for line in lines}) == 1600
    log.write(_rec(0))  # after close: ignored, not an error
    assert len(path.read_text().splitlines()) == 1600


def test_appends_to_an_existing_log_and_zero_backups(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    path.write_text(json.dumps(_rec(0)) + "\n")
    log = AuditLog(path, max_bytes=200, backups=0)
    log.write(_rec(1))
    log.write(_rec(2))
    log.close()
    assert [r["time"] for r in read_audit_log(path)] == ["t00002"]
    assert not (tmp_path / "audit.jsonl.1").exists()


def test_a_full_disk_never_fails_a_prediction_and_is_counted_and_warned_once(base_bundle: Path, caplog) -> None:
    from imgclf.serve import ServeSettings, create_app

    from .conftest import client_for, png_bytes

    if not Path("/dev/full").exists():
        pytest.skip("needs /dev/full (Linux)")
    blob = png_bytes(1)
    app = create_app(base_bundle, ServeSettings(log=Path("/dev/full")))
    with caplog.at_level(logging.WARNING, logger="imgclf.serve"), client_for(app) as c:
        answers = [c.post("/v1/predict", files=[("file", ("x.png", blob, "image/png"))]) for _ in range(3)]
        metrics = c.get("/metrics").text
        ready = c.get("/readyz").status_code
    assert [r.status_code for r in answers] == [200, 200, 200]
    assert all(r.json()["predictions"][0]["label"] for r in answers)
    assert "imgclf_audit_log_errors_total 3" in metrics
    assert ready == 200
    warnings = [r for r in caplog.records if "audit log" in r.getMessage() and "failed" in r.getMessage()]
    assert len(warnings) == 1 and "No space left" in warnings[0].getMessage()


def test_a_failed_write_drops_one_record_and_logging_resumes(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "audit.jsonl"
    errors = []
    log = AuditLog(path, on_error=lambda: errors.append(1))
    log.write(_rec(0))
    real_write = os.write
    monkeypatch.setattr(os, "write", lambda fd, data: (_ for _ in ()).throw(OSError(28, "No space left on device")))
    log.write(_rec(1))  # dropped, not raised
    monkeypatch.setattr(os, "write", real_write)
    log.write(_rec(2))
    log.close()
    assert [r["time"] for r in read_audit_log(path)] == ["t00000", "t00002"]
    assert log.failures == 1 and errors == [1]


def test_a_failed_rotation_keeps_logging_in_the_current_file_and_rotates_later(tmp_path: Path, monkeypatch,
                                                                               caplog) -> None:  # fmt: skip
    import imgclf.serve._audit as audit

    path = tmp_path / "audit.jsonl"
    log = AuditLog(path, max_bytes=1000, backups=9)  # room for every record: none is rotated away
    for i in range(9):  # 9 x 110 bytes: the next record needs a rotation
        log.write(_rec(i))
    assert not (tmp_path / "audit.jsonl.1").exists()
    real_replace = os.replace
    monkeypatch.setattr(os, "replace", lambda *a: (_ for _ in ()).throw(PermissionError(13, "Permission denied")))
    with caplog.at_level(logging.WARNING, logger="imgclf.serve"):
        for i in range(9, 14):
            log.write(_rec(i))  # rotation fails once, is not retried at every write; the records still land
    assert log.failures == 1 and sum("rotation failed" in r.getMessage() for r in caplog.records) == 1
    monkeypatch.setattr(os, "replace", real_replace)
    clock = audit.time.monotonic() + log.rotation_retry_s + 1
    monkeypatch.setattr(audit.time, "monotonic", lambda: clock)  # the retry delay has passed
    for i in range(14, 40):
        log.write(_rec(i))
    log.close()
    assert [r["time"] for r in read_audit_log(path)] == [f"t{i:05d}" for i in range(40)]  # none lost, in order
    assert (tmp_path / "audit.jsonl.2").exists()  # rotation resumed once it worked again
    assert log.failures == 1


def test_a_torn_last_line_is_ended_on_reopen_so_only_it_is_lost(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    path.write_text(json.dumps(_rec(0)) + "\n" + '{"time": "t00001", "class_in')  # the server died mid-write
    log = AuditLog(path)
    log.write(_rec(2))
    log.close()
    read = read_audit_records(path)
    assert [r["time"] for r in read.records] == ["t00000", "t00002"] and read.torn == 1


def test_saved_log_follows_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        AuditLog(tmp_path / "audit.jsonl").close()
    finally:
        os.umask(old)
    assert (tmp_path / "audit.jsonl").stat().st_mode & 0o777 == 0o644
