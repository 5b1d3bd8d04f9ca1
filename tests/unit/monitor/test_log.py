"""Reading the audit log back (rotated parts, torn lines, other model versions) and cutting it into windows."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from imgclf.errors import DataError
from imgclf.monitor import monitor_log, read_audit_log, read_audit_records, reference_stats, windows


def _rec(i: int, model: str = "m1", feats: bool = True) -> dict:
    rec = {"time": f"2026-01-01T00:00:{i:02d}", "class_index": i % 3, "confidence": 0.5 + (i % 5) / 10,
           "model": model}  # fmt: skip
    if feats:
        rec["features"] = [float(i), 0.0]
    return rec


def _write(path: Path, recs: list[dict], tail: str = "") -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in recs) + tail)


def test_rotated_parts_are_read_oldest_first(tmp_path: Path) -> None:
    log = tmp_path / "audit.jsonl"
    _write(tmp_path / "audit.jsonl.2", [_rec(0), _rec(1)])
    _write(tmp_path / "audit.jsonl.1", [_rec(2)])
    _write(log, [_rec(3), _rec(4, model="m2")], tail='{"time": "2026-01-01T00:00:05", "class_')  # torn last line
    recs = read_audit_log(log)
    assert [r["time"][-2:] for r in recs] == ["00", "01", "02", "03", "04"]
    assert [r["time"][-2:] for r in read_audit_log(log, model="m2")] == ["04"]


def test_torn_lines_anywhere_are_skipped_and_counted(tmp_path: Path) -> None:
    log = tmp_path / "audit.jsonl"
    torn = '{"time": "2026-01-01T00:00:09", "class_'
    _write(tmp_path / "audit.jsonl.1", [_rec(0)], tail=torn + "\n")  # torn at the end of a rotated part
    log.write_text(json.dumps(_rec(1)) + "\n" + torn + json.dumps(_rec(2)) + "\n" + json.dumps(_rec(3)) + "\n"
                   + torn)  # torn in the middle (a write cut short, then the next one appended) and at the end
    read = read_audit_records(log)
    assert [r["time"][-2:] for r in read.records] == ["00", "01", "03"]
    assert read.torn == 3 and read.torn_at == f"{tmp_path / 'audit.jsonl.1'}:2"
    assert [r["time"][-2:] for r in read_audit_log(log)] == ["00", "01", "03"]


def test_the_wrong_file_is_refused_naming_file_and_line(tmp_path: Path) -> None:
    log = tmp_path / "audit.jsonl"
    log.write_text(json.dumps(_rec(0)) + "\n" + json.dumps({"name": "package.json"}) + "\n")
    with pytest.raises(DataError, match=r"audit.jsonl:2: not an imgclf audit record"):
        read_audit_log(log)
    (tmp_path / "notes.txt").write_text("hello\nworld\n")
    with pytest.raises(DataError, match="none of its 2 line"):
        read_audit_log(tmp_path / "notes.txt")
    with pytest.raises(DataError, match="no such audit log"):
        read_audit_log(tmp_path / "missing.jsonl")


def test_windows_cut_consecutive_records_and_keep_a_long_enough_remainder() -> None:
    recs = [_rec(i) for i in range(47)]
    wins = windows(recs, 20)
    assert [w.n for w in wins] == [20, 20]  # the remainder of 7 is too short to test
    assert [w.index for w in wins] == [0, 1]
    assert wins[1].start == recs[20]["time"] and wins[1].end == recs[39]["time"]
    assert wins[0].features.shape == (20, 2)
    assert np.array_equal(wins[0].predicted, [i % 3 for i in range(20)])
    assert [w.n for w in windows([_rec(i) for i in range(52)], 20)] == [20, 20, 12]
    assert [w.n for w in windows([_rec(i) for i in range(15)], 20)] == [15]  # less than one window: use it all
    mixed = [_rec(i) for i in range(10)] + [_rec(10, feats=False)] + [_rec(i) for i in range(11, 20)]
    assert windows(mixed, 20)[0].features is None
    with pytest.raises(DataError, match="at least 10"):
        windows(recs, 5)


def test_monitor_log_end_to_end_with_plots(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    z = rng.normal(size=(600, 3)) * 2
    probs = np.exp(z) / np.exp(z).sum(1, keepdims=True)
    ref = reference_stats(probs[:400], rng.normal(size=(400, 6)))
    proj = np.asarray(ref["features"]["components"])
    mean = np.asarray(ref["features"]["mean"])

    def recs(p: np.ndarray, f: np.ndarray, model: str = "abc") -> list[dict]:
        return [{"time": "t", "class_index": int(row.argmax()), "confidence": float(row.max()), "model": model,
                 "features": ((feat - mean) @ proj.T).tolist()} for row, feat in zip(p, f)]  # fmt: skip

    same = recs(probs[400:], rng.normal(size=(200, 6)))
    shifted = recs(probs[400:], rng.normal(size=(200, 6)) + 1.5)  # same predictions, moved embeddings
    log = tmp_path / "audit.jsonl"
    _write(log, same + shifted + recs(probs[:50], rng.normal(size=(50, 6)), model="old"))
    log.write_text('{"time": "t", "class_in\n' + log.read_text())  # a torn line: skipped and counted
    res = monitor_log(ref, log, window=100, model="abc", out_dir=tmp_path / "plots", class_names=["a", "b", "c"])
    assert [r.drifted for r in res.reports] == [False, False, True, True]
    assert res.records == 400 and res.skipped_other_model == 50 and res.torn_lines == 1
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and p.stat().st_size > 5000 for p in res.plots)
    assert json.loads(json.dumps(res.to_dict()))["drifted"] is True
    with pytest.raises(DataError, match=r"450 record\(s\) belong to another model version \(abc, old; this bundle "
                                        r"is nobody\).*--all-models"):  # fmt: skip
        monitor_log(ref, log, window=100, model="nobody")


def test_a_log_of_another_model_says_so_and_names_the_option(tmp_path: Path) -> None:
    ref = reference_stats(np.full((50, 3), 1 / 3), np.random.default_rng(0).normal(size=(50, 4)))
    log = tmp_path / "audit.jsonl"
    _write(log, [_rec(i, model="c3-weights-sha") for i in range(48)])
    with pytest.raises(DataError) as info:
        monitor_log(ref, log, window=200, model="m3-weights-sha")
    msg = str(info.value)
    assert "0 usable" in msg and "48 record(s) belong to another model version (c3-weights-s" in msg
    assert "--all-models" in msg and "lower --window" not in msg  # a smaller window would not help
    _write(log, [_rec(i, model="m3-weights-sha") for i in range(5)])
    with pytest.raises(DataError, match="5 usable prediction record.*fewer than the 10 a window needs; wait for more"):
        monitor_log(ref, log, model="m3-weights-sha")
    # --all-models with another model's 2-wide features: named as another model, not a projection bug
    _write(log, [_rec(i, model="c3-weights-sha") for i in range(48)])
    with pytest.raises(DataError, match="logged 2-wide features but this bundle's reference has .*different model"):
        monitor_log(ref, log, window=20)


def test_p_value_plot_reaches_the_smallest_p_and_counts_whole_windows() -> None:
    """#18: the y axis stopped at 1e-6 while p-values were 1e-36; the x axis showed windows 0.2, 0.4, ..."""
    from imgclf.monitor import DriftReport, DriftTest, p_value_figure

    def report(i: int, p_ks: float, p_chi: float) -> DriftReport:
        tests = (DriftTest("confidence_ks", 1.0, p_ks / 2, p_ks, p_ks < 0.05),
                 DriftTest("class_chi2", 1.0, p_chi / 2, p_chi, p_chi < 0.05))  # fmt: skip
        return DriftReport(p_ks < 0.05 or p_chi < 0.05, 0.05, 100, tests, i)

    reports = [report(0, 0.6, 0.6), report(1, 1e-36, 1e-36), report(2, 1e-12, 0.3)]
    ax = p_value_figure(reports).axes[0]
    assert ax.get_ylim()[0] <= 1e-36  # the smallest p-value is on the plot, not clipped to 1e-6
    assert all(float(t).is_integer() for t in ax.get_xticks())
    lines = [line for line in ax.get_lines() if line.get_label() in ("confidence_ks", "class_chi2")]
    assert len(lines) == 2 and lines[0].get_marker() != lines[1].get_marker()  # equal p-values stay apart
    assert lines[0].get_linestyle() != lines[1].get_linestyle()
    assert "class_chi2 p=1e-36 DRIFT" in reports[1].describe() and "{" not in reports[1].describe()
