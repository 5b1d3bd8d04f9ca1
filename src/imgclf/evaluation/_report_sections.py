"""The report's sections as plain data (headings, tables, figures) for the template; missing data, no section."""

from __future__ import annotations

import base64
import math
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from imgclf.evaluation import _plots as P
from imgclf.evaluation._gallery import plot_error_gallery
from imgclf.evaluation._pair_gallery import plot_pair_gallery
from imgclf.evaluation._report_data import ReportData, calibration_skipped_text
from imgclf.evaluation._report_task import task_section
from imgclf.metrics import most_confused

Block = dict[str, Any]
Section = dict[str, Any]

METRIC_NAMES = {
    "accuracy": "Accuracy",
    "balanced_accuracy": "Balanced accuracy",
    "macro_f1": "Macro F1",
    "macro_auc": "Macro ROC AUC (one-vs-rest)",
    "log_loss": "Log loss (NLL)",
    "brier": "Brier score",
    "ece": "Expected calibration error",
}


def num(x: Any, digits: int = 3) -> str:
    """A number for a table cell: fixed digits, ``n/a`` for None / NaN."""
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "n/a"
    if isinstance(x, int):
        return str(x)
    return f"{float(x):.{digits}f}"


class Figures:
    """Writes each plot as a PNG into ``directory`` and hands back a figure block with a data URI."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def block(self, name: str, draw: Callable[[Path], Path], caption: str) -> Block:
        path = draw(self.directory / f"{name}.png")
        uri = "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")
        return {"kind": "figure", "src": uri, "alt": caption, "caption": caption}


def table(header: list[str], rows: list[list[Any]], id: str | None = None) -> Block:
    return {"kind": "table", "header": header, "rows": rows, "id": id}


def text(kind: str, value: str, id: str | None = None) -> Block:
    return {"kind": kind, "text": value, "id": id}


def build_sections(data: ReportData, figs: Figures) -> list[Section]:
    """Every section the data allows, in reading order."""
    builders = (_data, _training, _search, task_section, _metrics, _confusion, _calibration, _risk, _groups, _errors)
    return [s for s in (b(data, figs) for b in builders) if s is not None]


def _data(d: ReportData, figs: Figures) -> Section | None:
    if not d.data_summary and d.audit is None and not d.label_issues:
        return None
    blocks: list[Block] = []
    if d.data_summary:
        blocks.append(table(["", "value"], [[str(k), str(v)] for k, v in d.data_summary.items()]))
    a = d.audit
    if a is not None:
        if a.has_leakage:
            blocks += [text("alert", w) for w in a.warnings if w.startswith("LEAKAGE")]
        else:
            blocks.append(text("okay", "No duplicates across splits: no train/test leakage found."))
        blocks += [text("note", w) for w in a.warnings if not w.startswith("LEAKAGE")]
        blocks.append(text("heading", "Splits"))
        rows = [
            [s.name, s.n_files, s.n_unreadable, num(s.imbalance_ratio, 2), ", ".join(s.missing_classes) or "-"]
            for s in a.splits
        ]
        blocks.append(table(["split", "files", "unreadable", "imbalance (max/min)", "missing classes"], rows))
        names = list(dict.fromkeys(c for s in a.splits for c in s.class_counts))
        if names:
            blocks.append(text("heading", "Images per class"))
            rows = [[c] + [s.class_counts.get(c, 0) for s in a.splits] for c in names]
            blocks.append(table(["class"] + [s.name for s in a.splits], rows, id="class-counts"))
        im = a.images
        blocks.append(text("heading", "Images"))
        blocks.append(table(["", "min", "median", "max"], [["width (px)", *im.width], ["height (px)", *im.height]]))
        blocks.append(
            text(
                "muted",
                "modes: "
                + ", ".join(f"{k} {v}" for k, v in im.modes.items())
                + " · formats: "
                + ", ".join(f"{k} {v}" for k, v in im.formats.items()),
            )
        )
        blocks += _duplicates(a, figs)
        if a.unreadable:
            blocks.append(text("heading", "Unreadable files"))
            blocks.append(table(["file", "reason"], [[str(u.file), u.reason] for u in a.unreadable[:50]]))
    if d.label_issues:
        blocks.append(text("heading", "Likely label errors", id="label-issues"))
        blocks.append(
            figs.block(
                "label_issues",
                lambda p: plot_error_gallery(
                    d.label_issues, p, title="Likely label errors (true = given label, pred = suggested)"
                ),
                "Images whose given label the held-out model doubts most.",
            )
        )
    return {"id": "data", "title": "Data", "blocks": blocks}


def _duplicates(a: Any, figs: Figures) -> list[Block]:
    """Duplicate tiers with counts and thresholds, the leaks (table and side-by-side gallery), the look-alikes."""
    t, st = a.tiers, a.settings
    blocks = [text("heading", "Duplicates: how sure the audit is", id="duplicates")]
    rows = [
        ["exact (same bytes)", t["exact"], "sha256 of the file", "yes"],
        ["confirmed near copy", t["confirmed near"], "pHash candidate, confirmed pixel by pixel", "yes"],
        ["look-alike", t["look-alike"], "pHash candidate, similar but not confirmed", "no (information)"],
    ]
    blocks.append(table(["tier", "pairs", "how found", "counts as leakage"], rows, id="duplicate-tiers"))
    if st.get("near_duplicates"):
        blocks.append(
            text(
                "muted",
                f"Thresholds: candidates within {st['max_bits']} pHash bits (direct, mirrored, or against a 94% "
                f"window for crops); confirmed when the aligned, size-normalised correlation is at least "
                f"{st['min_score']} and no pixel differs by more than {st['max_peak']:.0%} of the grey range "
                f"({st['low_entropy_min_score']} and {st['low_entropy_max_peak']:.0%} for low-content images, "
                f"grey entropy below {st['low_entropy_bits']} bits); look-alikes correlate at least "
                f"{st['look_alike_score']}. {a.n_leaks} pairs cross splits.",
            )
        )
    else:
        blocks.append(text("muted", "The near-duplicate search was not run; only exact copies were checked."))
    if a.leakage:
        blocks.append(text("heading", "Leakage (the same picture in two splits)", id="leakage"))
        rows = [[leak.kind, str(leak.a), str(leak.b), num(leak.score), leak.bits] for leak in a.leakage[:50]]
        blocks.append(table(["kind", "first copy", "second copy", "similarity", "pHash bits"], rows))
        blocks.append(
            figs.block(
                "leakage_pairs",
                lambda p: plot_pair_gallery(a.leakage[:12], p, title="Leakage: the same picture in two splits"),
                "Flagged copies side by side: split and file above each image, kind and similarity below.",
            )
        )
    cross = [p for p in a.look_alikes if p.a.split != p.b.split]
    if cross:
        blocks.append(text("heading", "Look-alikes across splits (information, not leakage)", id="look-alikes"))
        rows = [[str(p.a), str(p.b), num(p.score), f"{p.peak:.0%}"] for p in cross[:50]]
        blocks.append(table(["first", "second", "similarity", "largest pixel difference"], rows))
        blocks.append(
            figs.block(
                "look_alike_pairs",
                lambda p: plot_pair_gallery(cross[:8], p, title="Look-alikes (not confirmed as copies)"),
                "Similar images that the pixel check did not confirm as copies; judge them yourself.",
            )
        )
    return blocks


def _training(d: ReportData, figs: Figures) -> Section | None:
    if not d.history:
        return None
    last = d.history[-1]
    blocks = [
        figs.block("training_curves", lambda p: P.plot_training_curves(d.history, p), "Loss and accuracy per epoch.")
    ]
    rows = [[k, num(v, 4) if isinstance(v, float) else str(v)] for k, v in last.items()]
    blocks += [text("heading", f"Last epoch ({len(d.history)} in all)"), table(["metric", "value"], rows)]
    return {"id": "training", "title": "Training", "blocks": blocks}


SEARCH_PLOTS = {
    "history": "Optimization history: each trial's validation score and the best so far.",
    "importances": "Parameter importances (fANOVA): how much of the score's variation each parameter explains.",
    "parallel_coordinates": "Parallel coordinates: each trial's parameters, coloured by its validation score.",
}


def _copy(src: Path, dst: Path) -> Path:
    if src.resolve() != dst.resolve():
        shutil.copyfile(src, dst)
    return dst


def _search(d: ReportData, figs: Figures) -> Section | None:
    if not d.search:
        return None
    facts = d.search.get("facts") or {}
    blocks: list[Block] = [table(["", "value"], [[str(k), num(v, 4) if isinstance(v, float) else str(v)]
                                                 for k, v in facts.items()])]  # fmt: skip
    for name, path in (d.search.get("plots") or {}).items():
        if Path(path).is_file():  # copied next to the report's other plots, then embedded
            blocks.append(figs.block(f"search_{name}", lambda p, src=Path(path): _copy(src, p),
                                     SEARCH_PLOTS.get(name, name.replace("_", " "))))  # fmt: skip
    return {"id": "search", "title": "Hyperparameter search", "blocks": blocks}


def _metrics(d: ReportData, figs: Figures) -> Section | None:
    m = d.metrics
    if m is None and not d.intervals:
        return None
    where = f" on '{d.split}'" if d.split else ""
    blocks: list[Block] = []
    values = dict(m.headline()) if m is not None else {}
    if d.calibration_before is not None:
        values.setdefault("ece", d.calibration_before.ece)
    names = list(dict.fromkeys([*values, *d.intervals]))
    rows = []
    for name in names:
        iv = d.intervals.get(name)
        value = iv.value if iv is not None else values.get(name)
        ci = f"[{num(iv.low)}, {num(iv.high)}]" if iv is not None else "-"
        rows.append([METRIC_NAMES.get(name, name), num(value), ci])
    level = next(iter(d.intervals.values())).confidence if d.intervals else 0.95
    blocks.append(table(["metric", "value", f"{level:.0%} interval"], rows, id="headline"))
    if m is None:
        return {"id": "metrics", "title": f"Metrics{where}", "blocks": blocks}
    blocks.append(text("muted", f"{m.n} images, {len(m.class_names)} classes."))
    more = [[f"top-{k} accuracy", num(v)] for k, v in m.top_k.items() if k > 1]
    more += [
        ["weighted F1", num(m.weighted_f1)],
        ["macro precision", num(m.macro_precision)],
        ["macro recall", num(m.macro_recall)],
        ["Cohen's kappa", num(m.kappa)],
        ["MCC", num(m.mcc)],
        ["macro average precision", num(m.macro_average_precision)],
        ["Brier score", num(m.brier)],
    ]
    blocks.append(table(["other figures", "value"], more))
    if m.auc_undefined:
        blocks.append(
            text(
                "note",
                f"ROC AUC is undefined for {', '.join(m.auc_undefined)} (absent from this "
                "split); macro AUC averages the other classes.",
            )
        )
    blocks.append(text("heading", "Per class, worst first", id="per-class"))
    rows = []
    for c in m.worst_classes() + [c for c in m.per_class if c.support == 0]:
        acc = {"text": num(c.recall), "cls": "bad" if c.recall < m.accuracy else ""}
        rows.append([c.name, c.support, acc, num(c.precision), num(c.f1), num(c.auc), num(c.average_precision)])
    blocks.append(
        table(["class", "support", "accuracy (recall)", "precision", "F1", "AUC", "AP"], rows, id="per-class-table")
    )
    blocks.append(
        figs.block(
            "per_class_accuracy",
            lambda p: P.plot_per_class_accuracy(m, p),
            "Per-class accuracy; red bars are below the overall accuracy.",
        )
    )
    pairs = most_confused(m.confusion, m.class_names, k=10)
    if pairs:
        blocks.append(text("heading", "Most confused pairs"))
        rows = [[p.true, p.predicted, p.count, f"{p.rate:.1%}"] for p in pairs]
        blocks.append(table(["true", "predicted as", "images", "share of true class"], rows))
    return {"id": "metrics", "title": f"Metrics{where}", "blocks": blocks}


def _confusion(d: ReportData, figs: Figures) -> Section | None:
    m = d.metrics
    if m is None:
        return None
    fig = figs.block(
        "confusion_matrix",
        lambda p: P.plot_confusion_matrix(m.confusion, m.class_names, p),
        "Rows are true classes, columns predictions; the second panel divides each row by its support.",
    )
    return {"id": "confusion", "title": "Confusion matrix", "blocks": [fig]}


def _calibration(d: ReportData, figs: Figures) -> Section | None:
    before, after = d.calibration_before, d.calibration_after
    if before is None:
        return None
    caption = "Reliability: accuracy per confidence bin against the diagonal" + (
        ", before and after temperature scaling." if after is not None else "."
    )
    blocks = [figs.block("reliability", lambda p: P.plot_reliability(before, p, after=after), caption)]
    cols = [("raw", before)] + ([("temperature-scaled", after)] if after is not None else [])
    rows = [
        [label, *[num(getattr(r, attr), 4) for _, r in cols]]
        for label, attr in (
            ("ECE (equal width)", "ece"),
            ("ECE (equal mass)", "ece_equal_mass"),
            ("MCE", "mce"),
            ("NLL", "nll"),
            ("Brier", "brier"),
            ("accuracy", "accuracy"),
            ("mean confidence", "mean_confidence"),
        )
    ]
    blocks.append(table(["", *[name for name, _ in cols]], rows, id="calibration-table"))
    if d.temperature is not None:
        blocks.append(
            text("text", f"Fitted temperature T = {d.temperature:.3f} (probabilities = softmax(logits / T)).")
        )
    elif d.calibration_skipped and after is None:
        blocks.append(text("text", calibration_skipped_text(d.calibration_skipped)))
    return {"id": "calibration", "title": "Calibration", "blocks": blocks}


def _risk(d: ReportData, figs: Figures) -> Section | None:
    rc, hist = d.risk_coverage, d.confidence
    if rc is None and hist is None:
        return None
    blocks: list[Block] = []
    if rc is not None:
        blocks.append(
            figs.block(
                "risk_coverage",
                lambda p: P.plot_risk_coverage(rc, p),
                "Error rate on the images the model answers when it abstains below a confidence.",
            )
        )
        if rc.target_accuracy is not None:
            if rc.threshold is not None:
                blocks.append(
                    text(
                        "text",
                        f"Answering only when confidence ≥ {rc.threshold:.3f} reaches accuracy "
                        f"{num(rc.accuracy_at_threshold)} (target {num(rc.target_accuracy)}) on "
                        f"{rc.threshold_coverage:.1%} of the images.",
                    )
                )
            else:
                blocks.append(text("note", f"No confidence threshold reaches accuracy {num(rc.target_accuracy)}."))
    if hist is not None:
        blocks.append(
            figs.block(
                "confidence_histogram",
                lambda p: P.plot_confidence_histogram(hist, p),
                "Confidence of right and wrong predictions.",
            )
        )
    return {"id": "risk-coverage", "title": "Selective prediction", "blocks": blocks}


def _groups(d: ReportData, figs: Figures) -> Section | None:
    g = d.groups
    if g is None:
        return None
    rows = [[r.name, r.support, num(r.accuracy), num(r.macro_f1)] for r in g.groups]
    blocks = [
        text(
            "text",
            f"Worst group: {g.worst_group} (accuracy {num(g.worst_accuracy)}, {num(g.gap)} below overall "
            f"{num(g.overall_accuracy)}; best-worst spread {num(g.spread)}).",
        ),
        table(["group", "images", "accuracy", "macro F1"], rows, id="groups-table"),
    ]
    return {"id": "groups", "title": "Slices", "blocks": blocks}


def _errors(d: ReportData, figs: Figures) -> Section | None:
    if not d.errors:
        return None
    fig = figs.block(
        "error_gallery",
        lambda p: plot_error_gallery(d.errors, p),
        "The images with the highest loss: true label, prediction and its confidence.",
    )
    rows = [[e.caption or "-", e.true, e.predicted, num(e.confidence), num(e.loss)] for e in d.errors]
    return {
        "id": "errors",
        "title": "Errors",
        "blocks": [fig, table(["image", "true", "predicted", "confidence", "loss"], rows)],
    }
