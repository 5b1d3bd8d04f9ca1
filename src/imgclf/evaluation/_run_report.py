"""``report`` and ``audit``: the run's HTML report and model card, and the data audit."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from imgclf import data as D
from imgclf.bundle import Bundle, BundleMeta, load_bundle, split_samples
from imgclf.config import load_config
from imgclf.errors import DataError
from imgclf.evaluation._audit import audit_files
from imgclf.evaluation._audit_types import AuditReport
from imgclf.evaluation._evaluate import Evaluation, evaluate_bundle
from imgclf.evaluation._gallery import ErrorExample
from imgclf.evaluation._label_audit import LabelAudit, audit_labels
from imgclf.evaluation._label_issues import LabelIssues, find_label_issues
from imgclf.evaluation._label_issues_multilabel import find_multilabel_label_issues
from imgclf.evaluation._model_card import render_model_card
from imgclf.evaluation._report import render_report
from imgclf.evaluation._report_data import ReportData
from imgclf.tasks import MIN_CALIBRATION_IMAGES
from imgclf.utils import atomic_write_text

NEAR_DUPLICATE_LIMIT = 20_000  # pHash comparison above this many files is left to `imgclf audit`
#: Written into a run directory by the search it retrains (``imgclf tune``): its figures and plot files.
SEARCH_FILE = "search.json"


def audit_splits(splits: D.Splits, *, near_duplicates: bool = True, whole: bool = False) -> AuditReport | None:
    """Audit the file-backed splits of a source (None for in-memory built-ins); ``whole``: as one split ``all``
    (data held out entirely, whose seeded splits mean nothing: no leakage between them to report)."""
    parts = dict(splits.items())
    if any(s.paths is None for s in parts.values()):
        return None
    if whole:
        parts = {"all": D.SampleList.concat(list(parts.values()))}
    return audit_files({k: s.paths for k, s in parts.items()}, {k: s.labels for k, s in parts.items()},
                       splits.classes, near_duplicates=near_duplicates, skipped=splits.skipped)  # fmt: skip


def label_issues_of(ev: Evaluation, samples: Any, classes: tuple[str, ...]) -> LabelIssues | None:
    """Likely label errors among the evaluated images (cleanlab on held-out probabilities), with their paths."""
    if ev.labels.ndim == 2:
        issues = find_multilabel_label_issues(ev.probs, ev.labels, list(classes))
    else:
        issues = find_label_issues(ev.probs, ev.labels, list(classes))
    return issues.with_paths([samples.describe(int(i)) for i in issues.indices])


def audit(source: str, *, model: str | Path | None = None, near_duplicates: bool = True, seed: int = 0
          ) -> tuple[AuditReport | None, LabelAudit | None, D.Splits]:  # fmt: skip
    """`imgclf audit`: counts, sizes, unreadable files, duplicates and leakage; with a model, likely label errors
    of every split from out-of-fold probabilities (:func:`imgclf.evaluation.audit_labels`)."""
    splits = D.load_source(str(source), seed=seed)
    report = audit_splits(splits, near_duplicates=near_duplicates)
    labels = None if model is None else audit_labels(load_bundle(model), str(source), seed=seed)
    return report, labels, splits


@dataclass(frozen=True)
class ReportResult:
    """Where the report went, and the evaluation it shows."""

    html: Path
    model_card: Path
    evaluation: Evaluation | None

    def to_dict(self) -> dict[str, Any]:
        return {"html": str(self.html), "model_card": str(self.model_card)}


def _history(run_dir: Path) -> list[dict[str, Any]]:
    path = run_dir / "metrics.jsonl"
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _search(run_dir: Path) -> dict[str, Any] | None:
    """The ``search.json`` of a run ``imgclf tune`` retrained: facts, and plot paths resolved against the run."""
    path = run_dir / SEARCH_FILE
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"{path} is not valid JSON ({exc}); delete it or re-run `imgclf tune --resume`") from exc
    plots = {str(k): (run_dir / str(v)).resolve() for k, v in dict(record.get("plots") or {}).items()}
    return {"facts": dict(record.get("facts") or {}), "plots": plots}


def build_report(run_dir: str | Path, *, bundle: Bundle | None = None, source: str | None = None,
                 evaluation: Evaluation | None = None, splits: D.Splits | None = None,
                 audit_report: AuditReport | None = None, n_resamples: int = 1000) -> ReportResult:  # fmt: skip
    """Write ``RUN_DIR/report.html`` (self-contained) and ``RUN_DIR/model_card.md``, plots in ``RUN_DIR/plots``.

    Training passes what it already has (``evaluation`` of its held-out pass, the ``splits`` it scanned, the
    ``audit_report`` it made) and nothing is recomputed; ``imgclf report RUN_DIR`` passes nothing and everything
    is rebuilt from disk: the bundle evaluated on the same held-out split training used (class cap included),
    the data audited (near duplicates up to ``NEAR_DUPLICATE_LIMIT`` files).
    """
    run = Path(run_dir)
    if not (run / "config.yaml").is_file():
        raise DataError(f"{run} is not a run directory (config.yaml is missing); pass the folder `imgclf train` made")
    cfg = load_config(run / "config.yaml")
    bundle = bundle or load_bundle(run / "bundle")
    source = source or cfg.data.source
    samples, split, loaded = split_samples(bundle.meta, source, evaluation.split if evaluation else None)
    # split_samples chose all: data the model was not trained on, without split folders, is held out entirely
    all_held_out = evaluation is None and split == "all"
    splits = splits or loaded
    ev = evaluation or evaluate_bundle(bundle, source, split=split, n_resamples=n_resamples)
    n_files = sum(len(s) for _, s in splits.items())
    if audit_report is None:
        audit_report = audit_splits(splits, near_duplicates=n_files <= NEAR_DUPLICATE_LIMIT, whole=all_held_out)
    issues = label_issues_of(ev, samples, bundle.meta.classes)
    label_tiles = [] if issues is None else [ErrorExample(p, g, s, 1 - c) for p, g, s, c in issues.rows()[:20]]
    notes = []
    if n_files > NEAR_DUPLICATE_LIMIT:
        notes.append(f"near-duplicate search skipped ({n_files} files); run `imgclf audit {source}` for it")
    if splits.skipped:
        notes.append(f"WARNING: {len(splits.skipped)} unreadable file(s) were skipped while scanning the data")
    temperature = bundle.meta.temperature
    calibration_skipped = None if temperature is not None else _uncalibrated_reason(bundle.meta)
    evaluated = f"{ev.split} ({ev.n} images)"
    data_summary = {f"{k} images": len(s) for k, s in splits.items()}
    if all_held_out:
        evaluated = f"all ({ev.n} images: not the training data, and it has no train/val/test split of its own)"
        data_summary = {"images (all evaluated)": n_files}
    data = ReportData(
        title=f"{Path(str(source)).name} · {bundle.meta.architecture}",
        facts={"model": bundle.meta.architecture, "task": bundle.task.kind, "classes": len(bundle.meta.classes),
               "data": source, "evaluated split": evaluated, "run": str(run),
               "temperature": _temperature_fact(temperature, calibration_skipped),
               "rejection": _rejection_fact(bundle.meta.rejection), "created": bundle.meta.created,
               **_privacy_fact(bundle.meta.extra.get("privacy")),
               **_membership_fact(bundle.meta.extra.get("privacy_audit"))},
        data_summary=data_summary, audit=audit_report, calibration_skipped=calibration_skipped,
        label_issues=label_tiles, history=_history(run), notes=notes, search=_search(run), **ev.report_fields(),
    )  # fmt: skip
    html = render_report(data, run / "report.html", plots_dir=run / "plots")
    card = render_model_card(data, model_name=f"{bundle.meta.architecture} ({run.name})")
    card_path = atomic_write_text(run / "model_card.md", card)
    return ReportResult(html, card_path, ev)


def _uncalibrated_reason(meta: BundleMeta) -> str:
    """Why a bundle has no temperature, as far as its record tells (training prints the exact reason)."""
    if meta.training.get("train", {}).get("calibrate") is False:
        return "train.calibrate was off"
    n_val = meta.data.get("splits", {}).get("val", {}).get("n") if meta.data else None
    if meta.training and not n_val:
        return "there was no validation split to fit a temperature on"
    if n_val is not None and n_val < MIN_CALIBRATION_IMAGES:
        return f"the validation split has {n_val} images and fitting a temperature needs {MIN_CALIBRATION_IMAGES}"
    return "no temperature was fitted (the training log says why)"


def _temperature_fact(temperature: Any, skipped: str | None) -> str:
    if isinstance(temperature, float):
        return f"{temperature:.3f}"
    return f"none: calibration skipped ({skipped})" if temperature is None else str(temperature)


def _privacy_fact(dp: dict[str, Any] | None) -> dict[str, str]:
    """The DP-SGD guarantee a bundle records (``extra["privacy"]``), as one report / model-card fact."""
    if not dp:
        return {}
    return {"differential privacy": f"(epsilon {dp['epsilon']:.2f}, delta {dp['delta']:g}) DP-SGD with "
            f"{dp['library']}: {dp['steps']} steps, noise {dp['noise_multiplier']:.3f}, "
            f"sample rate {dp['sample_rate']:.4g}, "
            f"clip {dp['max_grad_norm']:g}, {dp['accountant']} accountant"
            + (f"; {dp['scope']}, largest of {len(dp['clients'])} clients" if dp.get("clients") else "")}


def _membership_fact(audit: dict[str, Any] | None) -> dict[str, str]:
    """The last ``imgclf privacy-audit`` of the bundle (``extra["privacy_audit"]``) as report / model-card facts."""
    if not audit:
        return {}
    facts = {}
    for key in ("loss", "lira", "control"):
        r = audit.get(key)
        if r:
            auc = r["auc"]
            low = "  ".join(f"TPR@{k} FPR {v:.3f}" for k, v in r["tpr_at_fpr"].items())
            facts[f"membership inference: {r['name']}"] = f"AUC {auc['value']:.3f} [{auc['low']:.3f}, " \
                                                          f"{auc['high']:.3f}]  {low}"
    return facts


def _rejection_fact(rule: dict[str, Any] | None) -> str:
    if not rule:
        return "none (run `imgclf robustness` to add one)"
    why = f"; why: {rule['reason']}" if rule.get("reason") else ""
    return (f"`{rule.get('score')}` >= {float(rule.get('threshold', 0)):.4g} "
            f"(accepts {float(rule.get('target_acceptance', 0)):.0%} of held-out images{why})")  # fmt: skip
