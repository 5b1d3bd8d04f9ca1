"""A run's data record (split.json) and the resume check: changed data is refused, naming what changed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from imgclf import data as D
from imgclf.errors import DataError


def _src(tmp_path: Path) -> Path:
    return D.make_synthetic_dataset(tmp_path / "d", per_class=10, size=16, layout="flat", seed=0)


def test_record_lists_every_sample_with_its_size(tmp_path: Path) -> None:
    src = _src(tmp_path)
    splits = D.load_source(str(src), seed=0)
    record = json.loads(D.record_data(tmp_path / "run", splits).read_text())
    assert record["info"]["fingerprint"] == splits.info["fingerprint"]
    assert sum(len(v) for v in record["samples"].values()) == 30
    name, cls = record["samples"]["train"][0]
    assert record["bytes"]["train"][0] == (src / name).stat().st_size and name.startswith(cls + "/")


def test_unchanged_data_resumes_and_changed_data_is_refused_naming_what_changed(tmp_path: Path) -> None:
    src = _src(tmp_path)
    run = tmp_path / "run"
    D.record_data(run, D.load_source(str(src), seed=0))
    before = (run / "split.json").read_text()
    D.record_data(run, D.load_source(str(src), seed=0), resume=True)  # same data: fine
    assert (run / "split.json").read_text() == before

    blue = sorted((src / "blue").iterdir())
    (src / "blue" / "new_1.png").write_bytes(blue[0].read_bytes())
    (src / "blue" / "new_2.png").write_bytes(blue[0].read_bytes())
    blue[1].unlink()
    red = sorted((src / "red").iterdir())[0]
    red.write_bytes(red.read_bytes() + b"\0" * 7)  # same name, other content
    with pytest.raises(DataError) as err:
        D.record_data(run, D.load_source(str(src), seed=0), resume=True)
    msg = str(err.value)
    assert "2 file(s) added (e.g. blue/new_1.png)" in msg
    assert f"1 removed (e.g. blue/{blue[1].name})" in msg
    assert f"1 changed (e.g. red/{red.name}: " in msg and "bytes" in msg
    assert "\n" not in msg and str(run) in msg
    assert (run / "split.json").read_text() == before  # the record of what the run trained on is kept


def test_a_file_moved_to_another_class_counts_as_changed(tmp_path: Path) -> None:
    src = _src(tmp_path)
    splits = D.load_source(str(src), seed=0)
    record = json.loads(D.record_data(tmp_path / "run", splits).read_text())
    rows = record["samples"]["train"]
    rows[0][1] = "green" if rows[0][1] != "green" else "red"  # recorded under another class
    change = D.compare_data(record, splits)
    assert change and len(change.changed) == 1 and "class" in change.changed[0][1]
    assert not D.compare_data(json.loads((tmp_path / "run" / "split.json").read_text()), splits)
