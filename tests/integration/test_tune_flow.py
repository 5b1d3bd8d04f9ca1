"""imgclf tune: a search that never reads the test split, survives a kill, and ends in a normal bundle."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tests.integration._helpers import cli

from imgclf import data as D
from imgclf.api import Classifier
from imgclf.bundle import read_meta
from imgclf.errors import ConfigError, ModelError
from imgclf.workflows import load_space, tune

ARGS = ["--model", "lenet5", "--epochs", "1", "--set", "data.max_per_class=40", "--set", "data.workers=0"]


def _trials(journal: Path) -> dict[int, tuple[str, dict, float | None]]:
    """The study's trials as its journal records them: ``{number: (state, params, value)}``."""
    if not journal.is_file():
        return {}
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    study = optuna.load_study(study_name="imgclf-tune", storage=JournalStorage(JournalFileBackend(str(journal))))
    return {t.number: (t.state.name, dict(t.params), t.value) for t in study.trials}


def _finished(journal: Path) -> int:
    """Trials the study's journal records as finished (completed or pruned)."""
    return sum(state in ("COMPLETE", "PRUNED") for state, _, _ in _trials(journal).values())


def test_search_never_reads_test_and_writes_a_bundle(tmp_path: Path) -> None:
    out = tmp_path / "t"
    r = cli("tune", "digits", *ARGS, "--trials", "3", "--sampler", "random", "--out", str(out), "--json")
    assert r.returncode == 0, r.stderr[-3000:]
    res = json.loads(r.stdout)
    assert res["trials"] == 3 and res["completed"] + res["pruned"] == 3
    assert 0 < res["best_value"] <= 1 and res["default_value"] is not None
    assert set(res["best_params"]) == {"optim.lr", "optim.weight_decay", "data.augment", "train.label_smoothing",
                                       "data.batch_size"}  # --model fixed the architecture  # fmt: skip
    manifest = (out / "trial-data.csv").read_text().splitlines()
    assert {line.rsplit(",", 1)[1] for line in manifest[1:]} == {"train", "val"}
    for run in (out / "trials").iterdir():  # every trial (and the default run) trained on train + val only
        split = json.loads((run / "split.json").read_text())
        assert set(split["sizes"]) == {"train", "val"}
        assert split["info"]["fingerprint"] == res["trial_data_fingerprint"]
    for number, (state, _, _) in _trials(out / "study.journal").items():  # a pruned trial stops without a bundle
        assert (out / "trials" / f"trial-{number:03d}" / "bundle" / "imgclf.json").is_file() == (state == "COMPLETE")
    meta = read_meta(res["bundle_dir"])  # the retrain: a normal bundle, evaluated on the real test split
    assert meta.metrics["test"]["n"] > 0 and meta.data["fingerprint"] != res["trial_data_fingerprint"]
    assert {"history", "importances"} <= set(res["plots"])
    # the retrained run's report shows the study: its facts and the plots, embedded
    html = (Path(res["run_dir"]) / "report.html").read_text()
    section = html.split('<section id="search"', 1)[1].split("</section>", 1)[0]
    assert "Hyperparameter search" in section and f"{res['best_value']:.4f}" in section
    assert section.count('src="data:image/png;base64,') == len(res["plots"]) >= 2


@pytest.mark.slow
def test_a_killed_search_resumes_and_finishes_the_same_number_of_trials(tmp_path: Path) -> None:
    out = tmp_path / "t"
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    cmd = [sys.executable, "-m", "imgclf", "tune", "digits", *ARGS, "--trials", "4", "--pruner", "none",
           "--out", str(out), "--no-retrain"]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    deadline = time.monotonic() + 600
    while _finished(out / "study.journal") < 2 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.5)
    proc.send_signal(signal.SIGKILL)  # mid-search: a trial is left RUNNING in the journal
    proc.wait()
    before = _trials(out / "study.journal")
    assert 2 <= _finished(out / "study.journal") < 4
    r = cli("tune", "--resume", str(out), "--json")
    assert r.returncode == 0, r.stderr[-3000:]
    res = json.loads(r.stdout)
    after = _trials(out / "study.journal")
    done = {n: t for n, t in after.items() if t[0] in ("COMPLETE", "PRUNED")}
    assert res["trials"] == 4 and len(done) == 4
    for n, (state, params, value) in before.items():
        if state in ("COMPLETE", "PRUNED"):  # nothing finished before the kill is lost or run again
            assert after[n] == (state, params, value)
        else:  # the trial the kill cut short is marked failed and its parameters run once more, once
            assert state == "RUNNING" and after[n][0] == "FAIL"
            assert [t[1] for m, t in done.items() if m not in before].count(params) == 1
    # one run folder per trial number that got as far as training (a run is claimed once its set-up has worked)
    folders = {p.name for p in (out / "trials").glob("trial-*")}
    assert {f"trial-{n:03d}" for n in done} <= folders <= {f"trial-{n:03d}" for n in after}


def test_space_files_are_checked() -> None:
    assert "model.name" not in load_space(None, {"model.name"})
    with pytest.raises(ConfigError, match="low < high"):
        load_space_from_text("optim.lr: {type: float, low: 1, high: 0.1}")


def load_space_from_text(text: str) -> dict:
    import tempfile

    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
        f.write(text)
    try:
        return load_space(f.name)
    finally:
        os.unlink(f.name)


def test_a_mistyped_search_is_refused_before_its_folder_exists(tmp_path: Path) -> None:
    src = D.make_synthetic_dataset(tmp_path / "d", per_class=6, size=16, layout="flat", seed=0)
    out = tmp_path / "tune"

    def search(space: dict | None = None, **kw: object) -> None:
        cfg = Classifier(epochs=1, sets=["data.workers=0"], **kw).resolved_config(str(src))
        tune(cfg, trials=1, out=out, space=space, retrain=False)

    with pytest.raises(ModelError, match="unknown model 'nosuchmodel'"):
        search(model="nosuchmodel")
    with pytest.raises(ModelError, match="unknown model 'lenet55'"):
        search({"model.name": {"type": "categorical", "choices": ["lenet5", "lenet55"]}}, model="lenet5")
    with pytest.raises(ConfigError, match="optim.lrr"):
        search({"optim.lrr": {"type": "float", "low": 1e-4, "high": 1e-2}}, model="lenet5")
    assert not out.exists()  # nothing for a corrected command to trip over ("already holds a study")
    with pytest.raises(ModelError, match="--img-size 8"):
        search(model="lenet5", img_size=8)  # found by the default run, once the study exists: it is removed again
    assert not out.exists()
    out.mkdir()  # a folder that was there keeps what it held, and loses only what the failed search wrote
    (out / "notes.txt").write_text("mine")
    (out / "trials").mkdir()  # even one named like the search's own
    (out / "trials" / "keep.txt").write_text("mine")
    with pytest.raises(ModelError, match="--img-size 8"):
        search(model="lenet5", img_size=8)
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*")) == ["notes.txt", "trials", "trials/keep.txt"]
