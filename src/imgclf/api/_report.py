"""``report`` and ``audit``: the run's HTML report and model card, and the data audit."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from imgclf import data as D
from imgclf import evaluation as V
from imgclf.api._evaluate import Evaluation, evaluate_bundle, load_split
from imgclf.bundle import Bundle, load_bundle
from imgclf.config import load_config
from imgclf.errors import DataError
from imgclf.utils import atomic_write_text

NEAR_DUPLICATE_LIMIT = 20_000  # pHash comparison above this many files is left to `imgclf audit`


def audit_splits(splits: D.Splits, *, near_duplicates: bool = True) -> V.AuditReport | None:
    """Audit the file-backed splits of a source (None for in-memory built-ins)."""
    parts = dict(splits.items())
    if any(s.paths is None for s in parts.values()):
        return None
    return V.audit_files({k: s.paths for k, s in parts.items()}, {k: s.labels for k, s in parts.items()},
                         splits.classes, near_duplicates=near_duplicates)  # fmt: skip


def audit(source: str, *, model: str | Path | None = None, near_duplicates: bool = True, seed: int = 0
          ) -> tuple[V.AuditReport | None, V.LabelAudit | None, D.Splits]:  # fmt: skip
    """`imgclf audit`: counts, sizes, unreadable files, duplicates and leakage; with a model, likely label errors
    of every split from out-of-fold probabilities (:func:`imgclf.evaluation.audit_labels`)."""
    splits = D.load_source(str(source), seed=seed)
    report = audit_splits(splits, near_duplicates=near_duplicates)
    labels = None if model is None else V.audit_labels(load_bundle(model), str(source), seed=seed)
    return report, labels, splits


@dataclass(frozen=True)
class ReportResult:
    """Where the report went."""

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


def build_report(run_dir: str | Path, *, bundle: Bundle | None = None, source: str | None = None,
                 n_resamples: int = 1000, audit_report: V.AuditReport | None = None) -> ReportResult:  # fmt: skip
    """Write ``RUN_DIR/report.html`` (self-contained) and ``RUN_DIR/model_card.md``, plots in ``RUN_DIR/plots``.

    Evaluates the bundle on the held-out split of the training data (test, else val) and audits the data
    (near duplicates up to ``NEAR_DUPLICATE_LIMIT`` files; above it ``audit_report``, e.g. the cheap audit
    training made, is used as it is).
    """
    run = Path(run_dir)
    if not (run / "config.yaml").is_file():
        raise DataError(f"{run} is not a run directory (config.yaml is missing); pass the folder `imgclf train` made")
    cfg = load_config(run / "config.yaml")
    bundle = bundle or load_bundle(run / "bundle")
    source = source or cfg.data.source
    samples, split, splits = load_split(bundle.meta, source, None)
    ev = evaluate_bundle(bundle, source, split=split, n_resamples=n_resamples)
    n_files = sum(len(s) for _, s in splits.items())
    if audit_report is None or n_files <= NEAR_DUPLICATE_LIMIT:
        audit_report = audit_splits(splits, near_duplicates=n_files <= NEAR_DUPLICATE_LIMIT)
    issues = V.find_label_issues(ev.probs, ev.labels, list(bundle.meta.classes))
    label_tiles = [V.ErrorExample(samples.describe(int(i)), bundle.meta.classes[int(g)],
                                  bundle.meta.classes[int(s)], float(1 - c))
                   for i, g, s, c in list(zip(issues.indices, issues.given, issues.suggested,
                                              issues.self_confidence))[:20]]  # fmt: skip
    notes = []
    if n_files > NEAR_DUPLICATE_LIMIT:
        notes.append(f"near-duplicate search skipped ({n_files} files); run `imgclf audit {source}` for it")
    if splits.skipped:
        notes.append(f"WARNING: {len(splits.skipped)} unreadable file(s) were skipped while scanning the data")
    data = V.ReportData(
        title=f"{Path(str(source)).name} · {bundle.meta.architecture}",
        facts={"model": bundle.meta.architecture, "classes": len(bundle.meta.classes), "data": source,
               "evaluated split": f"{split} ({ev.metrics.n} images)", "run": str(run),
               "temperature": f"{ev.temperature:.3f}", "created": bundle.meta.created},
        data_summary={f"{k} images": len(s) for k, s in splits.items()}, audit=audit_report,
        label_issues=label_tiles, history=_history(run), notes=notes, **ev.report_fields(),
    )  # fmt: skip
    html = V.render_report(data, run / "report.html", plots_dir=run / "plots")
    card = V.render_model_card(data, model_name=f"{bundle.meta.architecture} ({run.name})")
    card_path = atomic_write_text(run / "model_card.md", card)
    return ReportResult(html, card_path, ev)
