"""``tune``: hyperparameter search with Optuna over whole training runs, then one retrain of the best setting.

Trials train on a manifest of the train and validation splits only (``trial-data.csv``), so the test split is
never read during the search -- the trials' data fingerprint proves it. A pruning callback reports each epoch's
validation accuracy to Optuna (several times per epoch for trials of 1-3 epochs) and stops trials that fall behind,
mid-epoch if need be. The study lives in a JournalStorage file
(``study.journal``), so a killed search resumes with ``--resume DIR`` and finishes the same number of trials.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import yaml
from rich.console import Console

from imgclf import data as D
from imgclf import engine as E
from imgclf.api import train_run
from imgclf.config import RunConfig, from_dict, to_dict, update
from imgclf.errors import ConfigError, MissingDependencyError, TrainingInterrupted
from imgclf.evaluation import SEARCH_FILE
from imgclf.models import describe_model
from imgclf.utils import atomic_write_text

STUDY_FILE = "study.journal"
STATE_FILE = "tune.json"
TRIAL_DATA = "trial-data.csv"
SAMPLERS = ("tpe", "random", "grid", "gp")
PRUNERS = ("halving", "median", "hyperband", "none")
MODEL_CHOICES = ("lenet5", "resnet20_cifar")

#: The default search space: ``section.key`` -> a distribution (float with low/high/log, int, or categorical).
DEFAULT_SPACE: dict[str, dict[str, Any]] = {
    "optim.lr": {"type": "float", "low": 1e-4, "high": 3e-2, "log": True},
    "optim.weight_decay": {"type": "float", "low": 1e-6, "high": 1e-1, "log": True},
    "data.augment": {"type": "categorical", "choices": ["none", "flip", "light"]},
    "train.label_smoothing": {"type": "float", "low": 0.0, "high": 0.2},
    "data.batch_size": {"type": "categorical", "choices": [32, 64, 128]},
    "model.name": {"type": "categorical", "choices": list(MODEL_CHOICES)},
}


def _optuna():
    try:
        import optuna
    except ImportError as exc:
        raise MissingDependencyError("imgclf tune needs optuna: pip install 'imgclf[tune]'") from exc
    return optuna


@dataclass(frozen=True)
class TuneResult:
    """The search's outcome: best parameters and validation accuracy, the default configuration's, trial counts,
    epochs saved by pruning, and the retrained best run (``run_dir`` / ``bundle_dir``; None with ``retrain=False``)."""

    out: Path
    best_params: dict[str, Any]
    best_value: float
    default_value: float | None
    trials: int
    completed: int
    pruned: int
    epochs_run: float
    epochs_budget: int
    run_dir: Path | None
    bundle_dir: Path | None
    plots: dict[str, str]
    data_fingerprint: str

    @property
    def epochs_saved(self) -> float:
        """Share of the full-length epoch budget that pruning did not spend."""
        return 1.0 - self.epochs_run / self.epochs_budget if self.epochs_budget else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"best_params": self.best_params, "best_value": self.best_value, "default_value": self.default_value,
                "metric": "val_acc", "trials": self.trials, "completed": self.completed, "pruned": self.pruned,
                "epochs_run": self.epochs_run, "epochs_budget": self.epochs_budget,
                "epochs_saved": self.epochs_saved, "out": str(self.out),
                "run_dir": str(self.run_dir) if self.run_dir else None,
                "bundle_dir": str(self.bundle_dir) if self.bundle_dir else None, "plots": self.plots,
                "trial_data_fingerprint": self.data_fingerprint}  # fmt: skip


# -- the search space ----------------------------------------------------------------------------------------
def load_space(path: str | Path | None, fixed: set[str] = frozenset()) -> dict[str, dict[str, Any]]:
    """The search space from a YAML file (``section.key: {type, low, high[, log] | choices}``), or the default
    one without the keys the user fixed (e.g. ``model.name`` when ``--model`` is given)."""
    if path is None:
        return {k: v for k, v in DEFAULT_SPACE.items() if k not in fixed}
    try:
        raw = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: cannot read the search space ({exc})") from exc
    if not isinstance(raw, dict) or not raw:
        raise ConfigError(f"{path}: the search space must map section.key to a distribution, e.g. "
                          "optim.lr: {type: float, low: 1e-4, high: 1e-1, log: true}")  # fmt: skip
    for key, dist in raw.items():
        _check_dist(path, key, dist)
    return raw


def _check_dist(path: Any, key: str, dist: Any) -> None:
    if "." not in str(key):
        raise ConfigError(f"{path}: {key!r} must be section.key (e.g. optim.lr)")
    kind = dist.get("type") if isinstance(dist, dict) else None
    if kind == "categorical" and dist.get("choices"):
        return
    if kind in ("float", "int") and "low" in dist and "high" in dist and dist["low"] < dist["high"]:
        return
    raise ConfigError(f"{path}: {key} needs type float|int with low < high, or type categorical with choices "
                      f"(got {dist!r})")  # fmt: skip


def _suggest(trial: Any, space: dict[str, dict[str, Any]]) -> dict[str, Any]:
    params = {}
    for key, d in space.items():
        if d["type"] == "categorical":
            params[key] = trial.suggest_categorical(key, list(d["choices"]))
        elif d["type"] == "int":
            params[key] = trial.suggest_int(key, int(d["low"]), int(d["high"]), log=bool(d.get("log")))
        else:
            params[key] = trial.suggest_float(key, float(d["low"]), float(d["high"]), log=bool(d.get("log")))
    return params


def _with_params(cfg: RunConfig, params: dict[str, Any]) -> RunConfig:
    changes: dict[str, dict[str, Any]] = {}
    for key, value in params.items():
        section, name = key.split(".", 1)
        changes.setdefault(section, {})[name] = value
    return update(cfg, changes)


def _sampler(name: str, space: dict[str, dict[str, Any]], seed: int) -> Any:
    optuna = _optuna()
    if name == "tpe":
        return optuna.samplers.TPESampler(seed=seed)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if name == "gp":
        return optuna.samplers.GPSampler(seed=seed)
    if name == "grid":
        grid = {}
        for key, d in space.items():
            if d["type"] != "categorical":
                raise ConfigError(f"--sampler grid needs every parameter as a list of choices; {key} is a range. "
                                  "Give it `type: categorical, choices: [...]` in --space")  # fmt: skip
            grid[key] = list(d["choices"])
        return optuna.samplers.GridSampler(grid, seed=seed)
    raise ConfigError(f"--sampler {name!r} is not one of {', '.join(SAMPLERS)}")


def checks_per_epoch(epochs: int) -> int:
    """How often a trial reports its validation accuracy per epoch: at least four times per trial, so that a pruner
    can stop a short trial (1-3 epochs) before its first epoch ends; once per epoch from 4 epochs on.

    >>> checks_per_epoch(2), checks_per_epoch(10)
    (2, 1)
    """
    return max(1, math.ceil(4 / max(1, epochs)))


def _pruner(name: str, epochs: int) -> Any:
    optuna = _optuna()
    if name == "halving":  # asynchronous successive halving: a trial goes on past a rung (first check, then every
        # 3x further) only while it is in the top third of the trials that reached that rung
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=3)
    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=0)
    if name == "hyperband":  # resources in validation checks, not epochs (see checks_per_epoch)
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=max(1, epochs) * checks_per_epoch(epochs))
    if name == "none":
        return optuna.pruners.NopPruner()
    raise ConfigError(f"--pruner {name!r} is not one of {', '.join(PRUNERS)}")


# -- trials --------------------------------------------------------------------------------------------------
class PruningCallback(E.Callback):
    """Reports the validation accuracy to an Optuna trial ``checks`` times per epoch (at the end of each epoch and,
    for ``checks > 1``, at evenly spaced optimizer steps within it, validating there); stops the run, mid-epoch if
    need be, when the pruner says so. ``epochs_run`` is the training done, in (fractional) epochs."""

    name = "optuna_pruning"

    def __init__(self, trial: Any, checks: int = 1, metric: str = "val_acc") -> None:
        self.trial = trial
        self.checks = max(1, int(checks))
        self.metric = metric
        self.pruned = False
        self.epochs_run = 0.0
        self._next = 1  # the next mid-epoch check of this epoch (1 .. checks - 1)

    def on_epoch_start(self, state: E.TrainState) -> None:
        self._next = 1

    def on_step_end(self, state: E.TrainState, stats: dict[str, float]) -> None:
        n = len(state.train_loader)
        self.epochs_run = state.epoch + state.batch_in_epoch / max(n, 1)
        due = self._next < self.checks and self._next * n / self.checks <= state.batch_in_epoch < n
        if not due:  # not yet, or the epoch's last step (the epoch's end reports)
            return
        step = state.epoch * self.checks + self._next
        self._next += 1
        self._report(state, E.validate(state), step)

    def on_epoch_end(self, state: E.TrainState, metrics: dict[str, Any]) -> None:
        if self.pruned:  # stopped mid-epoch: already reported
            return
        self.epochs_run = float(state.epoch)
        self._report(state, metrics, state.epoch * self.checks)

    def _report(self, state: E.TrainState, metrics: dict[str, Any], step: int) -> None:
        value = metrics.get(self.metric)
        if value is None or not math.isfinite(float(value)):
            return
        self.trial.report(float(value), step=step)
        if self.trial.should_prune():
            self.pruned = True  # a pruned trial's model is never used: no last validation, held-out passes or bundle
            state.stop, state.discard = True, True
            state.stop_reason = f"pruned by the tuner after {self.epochs_run:.2g} epochs"


class _SearchRecord(E.Callback):
    """Writes the search's figures and plot paths into the retrained run's directory (``search.json``) as the
    run starts, so its report (built at the end of training, or later by ``imgclf report``) shows the study."""

    name = "tune_search_record"

    def __init__(self, run_dir: Path, facts: dict[str, Any], plots: dict[str, str]) -> None:
        self.run_dir, self.facts, self.plots = run_dir, facts, plots

    def on_fit_start(self, state: E.TrainState) -> None:
        if self.run_dir.is_dir():
            plots = {k: os.path.relpath(v, self.run_dir) for k, v in self.plots.items()}
            atomic_write_text(self.run_dir / SEARCH_FILE,
                              json.dumps({"facts": self.facts, "plots": plots}, indent=2) + "\n")  # fmt: skip


def _write_trial_data(splits: D.Splits, out: Path) -> Path:
    """A manifest of the train and val splits only (images without files are written as PNGs first)."""
    buf = io.StringIO()
    w = csv.writer(buf)
    multi = splits.train.is_multilabel
    w.writerow(["path", "labels" if multi else "label", "split"])
    for split, samples in (("train", splits.train), ("val", splits.val)):
        if samples is None:
            continue
        paths = samples.paths
        for i in range(len(samples)):
            if paths is None:
                img, _ = samples[i]
                path = out / "trial-images" / split / f"{i:06d}.png"
                path.parent.mkdir(parents=True, exist_ok=True)
                img.save(path)
                path_s = str(path)
            else:
                path_s = str(Path(paths[i]).resolve())
            if multi:
                row = samples.multi_hot[i]
                label = ";".join(c for c, on in zip(splits.classes, row) if on)
            else:
                label = splits.classes[samples.labels[i]]
            w.writerow([path_s, label, split])
    manifest = out / TRIAL_DATA
    atomic_write_text(manifest, buf.getvalue())
    return manifest


def _state(out: Path) -> dict[str, Any]:
    path = out / STATE_FILE
    return json.loads(path.read_text()) if path.is_file() else {}


def _save_state(out: Path, state: dict[str, Any]) -> None:
    atomic_write_text(out / STATE_FILE, json.dumps(state, indent=2) + "\n")


def _study(out: Path, sampler: Any, pruner: Any) -> Any:
    optuna = _optuna()
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    storage = JournalStorage(JournalFileBackend(str(out / STUDY_FILE)))
    return optuna.create_study(study_name="imgclf-tune", storage=storage, sampler=sampler, pruner=pruner,
                               direction="maximize", load_if_exists=True)  # fmt: skip


def _requeue_interrupted(study: Any) -> int:
    """Trials a killed search left RUNNING: mark them failed and queue their parameters again."""
    from optuna.trial import TrialState

    stale = [t for t in study.get_trials(deepcopy=False) if t.state == TrialState.RUNNING]
    for t in stale:
        study._storage.set_trial_state_values(t._trial_id, TrialState.FAIL)
        study.enqueue_trial(t.params, skip_if_exists=False)
    return len(stale)


def tune(cfg: RunConfig | None, *, trials: int = 20, timeout_min: float | None = None,
         space: dict[str, dict[str, Any]] | None = None, sampler: str = "tpe", pruner: str = "halving",
         out: str | Path = "runs/tune", resume: str | Path | None = None, retrain: bool = True,
         console: Console | None = None) -> TuneResult:  # fmt: skip
    """Search ``space`` (default: :data:`DEFAULT_SPACE`) with ``trials`` training runs of ``cfg`` scored by
    validation accuracy, then retrain the best configuration into a normal run directory and bundle.

    ``resume``: a tune folder from an earlier (killed) search -- its configuration, space and study are reused
    and the search finishes the remaining trials.

    >>> # res = tune(Classifier(epochs=2).resolved_config("digits"), trials=20, out="runs/tune")
    >>> # res.best_params, res.best_value, res.default_value
    """
    console = console or Console(stderr=True)
    optuna = _optuna()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if resume is not None:
        out = Path(resume)
        saved = _state(out)
        if not saved:
            raise ConfigError(f"{out} is not a tune folder ({STATE_FILE} is missing); start one with imgclf tune")
        cfg = from_dict(RunConfig, saved["config"])
        space, sampler, pruner, trials = saved["space"], saved["sampler"], saved["pruner"], saved["trials"]
    elif cfg is None:
        raise ConfigError("tune needs a configuration (the data source at least)")
    else:
        out = Path(out)
        if (out / STUDY_FILE).exists():
            raise ConfigError(f"{out} already holds a study; continue it with --resume {out} or pick another --out")
        space = space if space is not None else load_space(None)
    if trials < 1:
        raise ConfigError(f"--trials {trials} must be >= 1")
    for key, dist in space.items():
        _check_dist("the search space", key, dist)
    state = _state(out)
    # a new search whose default run fails removes what it wrote: its folder when it made it, else only the names
    # it created there
    created = not out.exists()
    written = [] if state else [n for n in (STATE_FILE, STUDY_FILE, TRIAL_DATA, "trial-images", "trials")
                                if not (out / n).exists()]  # fmt: skip
    if not state:  # a new search: what can be checked cheaply is, before its folder is written
        _check_search(cfg, space)
        splits = D.load_source(cfg.data.source, val_fraction=cfg.data.val_fraction,
                               test_fraction=cfg.data.test_fraction, seed=cfg.train.seed,
                               max_per_class=cfg.data.max_per_class, task=cfg.data.task)  # fmt: skip
        if splits.val is None or not len(splits.val):
            raise ConfigError("tuning scores trials on the validation split, and this data has none; set "
                              "--set data.val_fraction=0.1")  # fmt: skip
        out.mkdir(parents=True, exist_ok=True)
        manifest = _write_trial_data(splits, out)
        state = {"config": to_dict(cfg), "space": space, "sampler": sampler, "pruner": pruner, "trials": trials,
                 "manifest": str(manifest), "test_fingerprint_excluded": True}  # fmt: skip
        _save_state(out, state)
    base = replace(cfg, data=replace(cfg.data, source=state["manifest"], max_per_class=None, folds=None))
    base = update(base, {"train": {"out": str(out / "trials"), "report": False}})
    epochs = base.train.epochs
    study = _study(out, _sampler(sampler, space, base.train.seed), _pruner(pruner, epochs))
    requeued = _requeue_interrupted(study)
    if requeued:
        console.print(f"resuming: {requeued} interrupted trial(s) queued again")

    if "default" not in state:
        console.print("[bold]default configuration[/bold] (for comparison)")
        _drop_partial(out / "trials" / "default")
        try:
            res = train_run(update(base, {"train": {"name": "default"}}), console=console)
        except Exception as exc:  # e.g. an --img-size the model cannot take: a corrected command may use this --out
            if written and not isinstance(exc, TrainingInterrupted):  # (an interrupted search is resumed instead)
                for name in [""] if created else written:
                    _drop_partial(out / name)
            raise
        state["default"] = {"value": float(res.metrics.get("val", {}).get("acc", float("nan"))),
                            "data": res.bundle.meta.data if res.bundle else {}}  # fmt: skip
        _save_state(out, state)

    def objective(trial: Any) -> float:
        params = _suggest(trial, space)
        # the same files as the default run, which audited them: no near-duplicate search per trial
        run_cfg = update(_with_params(base, params), {"train": {"name": f"trial-{trial.number:03d}"},
                                                      "data": {"near_duplicates": False}})  # fmt: skip
        cb = PruningCallback(trial, checks=checks_per_epoch(epochs))
        res = train_run(run_cfg, console=Console(quiet=True), callbacks=[cb])
        trial.set_user_attr("epochs_run", cb.epochs_run)
        trial.set_user_attr("fingerprint", (res.bundle.meta.data if res.bundle else {}).get("fingerprint", ""))
        if cb.pruned:
            raise optuna.TrialPruned()
        return float(res.metrics.get("val", {}).get("acc", float("nan")))

    def progress(study: Any, trial: Any) -> None:
        done = [t for t in study.trials if t.state.is_finished() and t.state.name != "FAIL"]
        pruned = sum(t.state.name == "PRUNED" for t in done)
        best = study.best_value if any(t.state.name == "COMPLETE" for t in done) else float("nan")
        value = "pruned" if trial.state.name == "PRUNED" else f"val_acc {trial.value:.4f}" if trial.value else "-"
        console.print(f"trial {len(done)}/{trials}: {value}  best {best:.4f}  pruned {pruned}  {trial.params}")

    remaining = trials - _finished(study)
    if remaining > 0:
        study.optimize(objective, n_trials=remaining, timeout=timeout_min * 60 if timeout_min else None,
                       callbacks=[progress], catch=())  # fmt: skip
    return _finish_tune(study, state, base, cfg, out, trials, epochs, retrain, console)


def _check_search(cfg: RunConfig, space: dict[str, dict[str, Any]]) -> None:
    """A ModelError for a model name the search would build that does not exist (``--model``, or one of the
    space's ``model.name`` choices), a ConfigError for a searched key that is no config key or a value it refuses
    (each choice, each range's ends): raised before a study exists, which would replay them on ``--resume``."""
    for name in {cfg.model.name, *space.get("model.name", {}).get("choices", ())}:
        describe_model(name)  # unknown: close matches listed
    for key, dist in space.items():
        ends = dist["choices"] if dist["type"] == "categorical" else (dist["low"], dist["high"])
        for value in ends:
            _with_params(cfg, {key: int(value) if dist["type"] == "int" else value})


def _drop_partial(path: Path) -> None:
    """Remove what a killed or failed search left half-written: a run directory (it is trained again) or a file."""
    if path.is_dir():
        import shutil

        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def _finished(study: Any) -> int:
    return sum(t.state.name in ("COMPLETE", "PRUNED") for t in study.trials)


def _finish_tune(study: Any, state: dict[str, Any], base: RunConfig, cfg: RunConfig, out: Path, trials: int,
                 epochs: int, retrain: bool, console: Console) -> TuneResult:  # fmt: skip
    done = [t for t in study.trials if t.state.name in ("COMPLETE", "PRUNED")]
    complete = [t for t in done if t.state.name == "COMPLETE"]
    if not complete:
        raise ConfigError(f"no trial in {out} completed (all pruned or failed); raise --trials or use --pruner none")
    best = study.best_trial
    epochs_run = sum(float(t.user_attrs.get("epochs_run", epochs)) for t in done)
    result = TuneResult(out=out, best_params=dict(best.params), best_value=float(best.value),
                        default_value=state.get("default", {}).get("value"), trials=len(done),
                        completed=len(complete), pruned=len(done) - len(complete), epochs_run=epochs_run,
                        epochs_budget=len(done) * epochs, run_dir=None, bundle_dir=None, plots=_plots(study, out),
                        data_fingerprint=_fingerprint(state))  # fmt: skip
    if retrain:
        console.print(f"[bold]retraining the best configuration[/bold] {best.params}")
        final = update(_with_params(cfg, best.params), {"train": {"name": "best"}})
        final = update(final, {"train": {"out": str(out)}})
        if (out / "best" / "bundle" / "imgclf.json").is_file():
            result = replace(result, run_dir=out / "best", bundle_dir=out / "best" / "bundle")
        else:
            _drop_partial(out / "best")
            facts = {"study": str(out), "trials": result.trials, "completed": result.completed,
                     "pruned": result.pruned, "best validation accuracy": result.best_value,
                     "default configuration's validation accuracy": result.default_value,
                     "epochs saved by pruning": f"{result.epochs_saved:.0%}" if epochs else "n/a",
                     "best parameters": ", ".join(f"{k}={v}" for k, v in best.params.items())}  # fmt: skip
            res = train_run(final, console=console, callbacks=[_SearchRecord(out / "best", facts, result.plots)])
            result = replace(result, run_dir=res.run_dir, bundle_dir=res.bundle_dir)
    atomic_write_text(out / "result.json", json.dumps(result.to_dict(), indent=2) + "\n")
    return result


def _fingerprint(state: dict[str, Any]) -> str:
    """The data fingerprint the trials trained on (train + val only)."""
    return str(state.get("default", {}).get("data", {}).get("fingerprint", ""))


def _plots(study: Any, out: Path) -> dict[str, str]:
    """History, parameter importances and parallel coordinates as PNGs (those the study can support)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna.visualization import matplotlib as ovm

    made: dict[str, str] = {}
    (out / "plots").mkdir(exist_ok=True)
    for name, fn in (("history", ovm.plot_optimization_history), ("importances", ovm.plot_param_importances),
                     ("parallel_coordinates", ovm.plot_parallel_coordinate)):  # fmt: skip
        try:
            with warnings.catch_warnings():  # optuna's plots are "experimental"; a short study warns about axes
                warnings.simplefilter("ignore")
                ax = fn(study)
        except (ValueError, RuntimeError, ZeroDivisionError):  # e.g. importances need 2+ completed trials
            continue
        fig = ax.figure if hasattr(ax, "figure") else ax.flat[0].figure
        path = out / "plots" / f"{name}.png"
        fig.savefig(path, dpi=90, bbox_inches="tight")
        plt.close(fig)
        made[name] = str(path)
    return made
