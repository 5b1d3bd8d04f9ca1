"""``ensemble``: several trained bundles become one bundle that averages their probabilities.

The ensemble is an ordinary bundle (architecture ``ensemble``, the members' records in ``arch_args``, their
weights under ``members.<i>.`` in one safetensors file), so predict, evaluate, calibrate, export (one ONNX graph)
and serve use it unchanged. It is calibrated and given a rejection rule on the members' validation split; the
members' disagreement (mutual information) is measured per image there and written to ``disagreement.csv``.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.console import Console

from imgclf import engine as E
from imgclf.bundle import Bundle, BundleMeta, load_bundle, read_meta, save_bundle, split_samples, training_source
from imgclf.errors import ConfigError
from imgclf.models import EnsembleNet, ensemble_head_stats, mutual_information
from imgclf.tasks import DEFAULT_ACCEPTANCE, fit_rejection
from imgclf.utils import atomic_write_text

DISAGREEMENT_FILE = "disagreement.csv"
#: The rejection rules ``imgclf ensemble --rule`` can store: calibrated top probability, or the members' disagreement.
ENSEMBLE_RULES = ("msp", "disagreement")


@dataclass(frozen=True)
class EnsembleResult:
    """Where the ensemble bundle is, figures of the ensemble and of each member on the held-out split
    (``rows``: ``{name: {acc, nll, n}}``), and how well disagreement flags the ensemble's errors (AUROC)."""

    bundle_dir: Path
    rows: dict[str, dict[str, float]]
    split: str
    disagreement_auroc: float | None
    mean_disagreement: float

    @property
    def ensemble(self) -> dict[str, float]:
        return self.rows["ensemble"]

    @property
    def members(self) -> dict[str, dict[str, float]]:
        return {k: v for k, v in self.rows.items() if k != "ensemble"}

    def to_dict(self) -> dict[str, Any]:
        return {"bundle_dir": str(self.bundle_dir), "split": self.split, "rows": self.rows,
                "disagreement_auroc": self.disagreement_auroc, "mean_disagreement": self.mean_disagreement}  # fmt: skip


def _activation(meta: BundleMeta) -> str:
    return "sigmoid" if meta.task.get("kind") == "multilabel" else "softmax"


def _check_members(metas: list[BundleMeta], paths: list[Path]) -> None:
    first, p0 = metas[0], paths[0]
    for meta, p in zip(metas[1:], paths[1:]):
        if meta.classes != first.classes:
            raise ConfigError(f"{p} has classes {list(meta.classes)}, {p0} has {list(first.classes)}: ensemble "
                              "members must be trained on the same classes (in the same order)")  # fmt: skip
        if meta.task.get("kind") != first.task.get("kind"):
            raise ConfigError(f"{p} is a {meta.task.get('kind')} model, {p0} a {first.task.get('kind')} one: "
                              "ensemble members must share the kind of label")  # fmt: skip
        if meta.preprocessing != first.preprocessing:
            raise ConfigError(f"{p} preprocesses images differently from {p0} ({meta.preprocessing} vs "
                              f"{first.preprocessing}): retrain the members with the same --img-size")  # fmt: skip


def _member_name(path: Path, i: int) -> str:
    name = path.parent.name if path.name == "bundle" else path.name
    return f"member{i}:{name}"


def _write_disagreement(path: Path, names: list[str], mi: np.ndarray, probs: np.ndarray, labels: np.ndarray,
                        classes: tuple[str, ...]) -> None:  # fmt: skip
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["path", "label", "predicted", "score", "disagreement"])
    single = labels.ndim == 1
    for name, m, p, y in zip(names, mi, probs, labels):
        truth = classes[int(y)] if single else ";".join(c for c, t in zip(classes, y) if t)
        w.writerow([name, truth, classes[int(p.argmax())], f"{p.max():.6f}", f"{m:.6f}"])
    atomic_write_text(path, buf.getvalue())


def build_ensemble(bundles: list[str | Path], out: str | Path, *, data: str | None = None, split: str = "val",
                   batch_size: int = 64, rule: str = "msp", target_acceptance: float = DEFAULT_ACCEPTANCE,
                   console: Console | None = None) -> EnsembleResult:  # fmt: skip
    """Average the probabilities of ``bundles`` in one bundle written to ``out``; calibrate it, fit its rejection
    rule and measure per-image disagreement on ``split`` (default val) of ``data`` (default: the first member's
    training data).

    ``rule``: the stored rejection rule, ``"msp"`` or ``"disagreement"`` (minus the members' mutual information;
    the members' heads go to ``rejection.safetensors``), its threshold accepting ``target_acceptance`` of the
    split's images; predict, evaluate and serve then answer ``unknown`` below it.

    >>> # res = build_ensemble(["runs/a/bundle", "runs/b/bundle", "runs/c/bundle"], "runs/ens")
    >>> # res.ensemble["nll"] < min(r["nll"] for r in res.members.values())
    """
    console = console or Console(stderr=True)
    if rule not in ENSEMBLE_RULES:
        raise ConfigError(f"--rule {rule!r}: an ensemble stores one of {', '.join(ENSEMBLE_RULES)} (other rules: "
                          "`imgclf robustness ENSEMBLE DATA --rule NAME`)")  # fmt: skip
    if len(bundles) < 2:
        raise ConfigError(f"an ensemble needs at least 2 bundles, got {len(bundles)}")
    paths = [Path(b) for b in bundles]
    metas = [read_meta(p) for p in paths]
    _check_members(metas, paths)
    loaded: list[Bundle] = [load_bundle(p) for p in paths]
    first = metas[0]
    activation = _activation(first)
    net = EnsembleNet([b.model for b in loaded], activation).eval()
    records = [{"architecture": m.architecture, "arch_args": m.arch_args} for m in metas]
    source = training_source(first, data, option="--data")
    samples, split_name, _ = split_samples(first, source, split)
    task = first.make_task()
    console.print(f"ensemble of {len(paths)}: measuring on {split_name} of {source} ({len(samples)} images)")
    out_f = E.run_inference(net, samples, first.preprocessing, batch_size=batch_size, features=True)
    with torch.inference_mode():
        member_logits = net.member_logits(torch.from_numpy(out_f.features))  # (K, N, C)
    logits, labels = out_f.logits, out_f.labels
    rows: dict[str, dict[str, float]] = {}
    for i, (p, z) in enumerate(zip(paths, member_logits.numpy())):
        rows[_member_name(p, i)] = task.summary(task.probabilities(z, None), labels)
    rows["ensemble"] = task.summary(task.probabilities(logits, None), labels)
    temperature, reason = task.fit_calibration(logits, labels)
    if temperature is None:
        console.print(f"[yellow]calibration skipped: {reason}[/yellow]")
    mi = mutual_information(member_logits, activation).numpy()  # (N,)
    probs = task.probabilities(logits, temperature)
    auroc = None
    if labels.ndim == 1:
        wrong = probs.argmax(1) != labels
        if 0 < wrong.sum() < len(wrong):
            from sklearn.metrics import roc_auc_score

            auroc = float(roc_auc_score(wrong.astype(np.int64), mi))
    rejection, head_stats = None, {}
    if task.supports_rejection:
        if rule == "disagreement":
            head_stats = ensemble_head_stats(net)
        rejection = fit_rejection(logits, score=rule, temperature=temperature, features=out_f.features,
                                  stats=head_stats, target_acceptance=target_acceptance,
                                  ood_source=f"none ({split_name} images only)")  # fmt: skip
    elif rule != "msp":
        raise ConfigError(f"--rule {rule}: a {first.task.get('kind')} model has no rejection rule")
    info = {"members": [str(p.resolve()) for p in paths], "split": split_name, "rows": rows,
            "disagreement": {"score": "mutual_information", "mean": float(mi.mean()) if len(mi) else 0.0,
                             "auroc_errors": auroc,
                             "threshold_95": float(np.quantile(mi, 0.95)) if len(mi) else None}}  # fmt: skip
    training = dict(first.training)
    training["data"] = {**training.get("data", {}), "source": source}
    meta = BundleMeta(
        architecture="ensemble", classes=first.classes, preprocessing=first.preprocessing,
        arch_args={"members": records, "activation": activation}, temperature=temperature, task=first.task,
        rejection=rejection, training=training, metrics={split_name: task.summary(probs, labels)},
        data=first.data, extra={"ensemble": info, **({"pruned": True} if any(m.extra.get("pruned") for m in metas)
                                                     else {})},
    )  # fmt: skip
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    save_bundle(out, net, meta, rejection_stats=head_stats)
    names = [samples.describe(int(i)) for i in out_f.indices]
    _write_disagreement(out / DISAGREEMENT_FILE, names, mi, probs, labels, first.classes)
    return EnsembleResult(out, rows, split_name, auroc, info["disagreement"]["mean"])

