"""The audit log: JSONL, rotated by size, complete under concurrent writers, readable by the monitor."""

from __future__ import annotations

import json
import threading
from pathlib import Path

from imgclf.monitor import read_audit_log
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
