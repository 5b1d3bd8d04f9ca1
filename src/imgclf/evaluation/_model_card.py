"""``model_card.md``: intended use, data, metrics with intervals, calibration and known limits, in Markdown."""

from __future__ import annotations

from collections.abc import Sequence

from imgclf.evaluation._report_data import ReportData, calibration_skipped_text
from imgclf.evaluation._report_sections import METRIC_NAMES, num

DEFAULT_USE = (
    "Image classification into the classes listed below, on images like those it was trained and evaluated "
    "on. Not validated for other image sources, for classes outside this list, or for decisions about people "
    "without human review."
)


def render_model_card(
    data: ReportData,
    *,
    model_name: str | None = None,
    intended_use: str | None = None,
    limitations: Sequence[str] = (),
) -> str:
    """The model card as Markdown: intended use, data, metrics with intervals, calibration, and known limits
    (the caller's ``limitations`` plus ones read off the results: weak classes, leakage, imbalance, wide
    intervals, poor calibration, worst slice).

    >>> card = render_model_card(ReportData(metrics=report, intervals=ci), model_name="resnet18")  # doctest: +SKIP
    >>> card.splitlines()[0]  # doctest: +SKIP
    '# Model card: resnet18'
    """
    name = model_name or data.facts.get("model") or data.title
    out = [f"# Model card: {name}", ""]
    if data.facts:
        out += [f"- **{k}**: {v}" for k, v in data.facts.items()] + [""]
    out += ["## Intended use", "", intended_use or DEFAULT_USE, ""]
    m = data.metrics
    if m is not None:
        out += [f"Classes ({len(m.class_names)}): " + ", ".join(m.class_names), ""]
    out += _data(data)
    out += _task(data)
    out += _metrics(data)
    out += _calibration(data)
    limits = [*limitations, *_derived_limits(data)]
    out += ["## Known limitations", ""]
    out += [f"- {x}" for x in limits] if limits else ["- None found in the evaluation; evaluate on your own data."]
    out.append("")
    return "\n".join(out)


def _data(d: ReportData) -> list[str]:
    lines: list[str] = []
    if d.data_summary:
        lines += [f"- {k}: {v}" for k, v in d.data_summary.items()]
    if d.audit is not None:
        for s in d.audit.splits:
            ratio = f", imbalance {s.imbalance_ratio:.1f}x" if s.imbalance_ratio is not None else ""
            lines.append(f"- split `{s.name}`: {s.n_files} files{ratio}")
        lines += [f"- {w}" for w in d.audit.warnings]
    return ["## Data", "", *lines, ""] if lines else []


def _task(d: ReportData) -> list[str]:
    """The figures of the kind of label (multi-label mAP, hierarchical F1 and mistake severity)."""
    tm = d.task_metrics
    if tm is None or d.task_kind == "single":
        return []
    lines = [f"## {d.task_kind.capitalize()} metrics", "", "| metric | value | interval |", "|---|---|---|"]
    for key, value in tm.values.items():
        iv = tm.intervals.get(key)
        interval = f"[{num(iv[0])}, {num(iv[1])}]" if iv else "-"
        lines.append(f"| {key} | {num(value)} | {interval} |")
    excluded = tm.detail.get("map_excluded_classes")
    if excluded:
        lines += ["", f"Left out of mAP (no positives in the split): {', '.join(excluded)}."]
    return [*lines, ""]


def _metrics(d: ReportData) -> list[str]:
    m = d.metrics
    if m is None and not d.intervals:
        return []
    where = f" on the `{d.split}` split" if d.split else ""
    lines = [f"## Metrics{where}", ""]
    if m is not None:
        lines += [f"{m.n} images. Intervals are 95% stratified bootstrap intervals.", ""]
    lines += ["| metric | value | interval |", "|---|---|---|"]
    values = dict(m.headline()) if m is not None else {}
    for key in dict.fromkeys([*values, *d.intervals]):
        iv = d.intervals.get(key)
        value = iv.value if iv is not None else values[key]
        interval = f"[{num(iv.low)}, {num(iv.high)}]" if iv is not None else "-"
        lines.append(f"| {METRIC_NAMES.get(key, key)} | {num(value)} | {interval} |")
    if m is not None:
        worst = m.worst_classes(5)
        lines += ["", "Weakest classes: " + ", ".join(f"{c.name} {num(c.recall)} (n={c.support})" for c in worst)]
    return [*lines, ""]


def _calibration(d: ReportData) -> list[str]:
    before, after = d.calibration_before, d.calibration_after
    if before is None:
        return []
    lines = ["## Calibration", ""]
    if d.temperature is not None:
        lines.append(f"Temperature scaling with T = {d.temperature:.3f} is applied to the logits by default.")
    elif after is None:
        lines += [f"{calibration_skipped_text(d.calibration_skipped)} `imgclf calibrate` fits a temperature on a "
                  "validation split.", ""]
    if after is None:
        lines.append(f"- ECE: {num(before.ece)} (NLL {num(before.nll)})")
    else:
        lines.append(f"- ECE before: {num(before.ece)} (NLL {num(before.nll)})")
        lines.append(f"- ECE after temperature scaling: {num(after.ece)} (NLL {num(after.nll)})")
    return [*lines, ""]


def _derived_limits(d: ReportData) -> list[str]:
    out = []
    m = d.metrics
    if m is not None:
        weak = [c for c in m.worst_classes() if c.recall < m.accuracy - 0.1]
        if weak:
            out.append(
                "Much weaker on "
                + ", ".join(f"{c.name} ({num(c.recall)})" for c in weak[:5])
                + f" than overall ({num(m.accuracy)})."
            )
        if m.auc_undefined:
            out.append(f"Not evaluated on {', '.join(m.auc_undefined)}: absent from the evaluation data.")
        small = [c for c in m.per_class if 0 < c.support < 30]
        if small:
            out.append(f"{len(small)} classes have fewer than 30 evaluation images; their figures are noisy.")
    for name, iv in d.intervals.items():
        if iv.width > 0.1 and name != "log_loss":
            out.append(f"{METRIC_NAMES.get(name, name)} is uncertain: {iv} (interval wider than 0.1).")
    if d.audit is not None and d.audit.has_leakage:
        out.append(
            f"The evaluation data overlaps the training data ({d.audit.n_leaks} duplicate pairs): "
            "reported figures are optimistic."
        )
    if d.audit is not None:
        out += [
            f"Imbalanced split '{s.name}' ({s.imbalance_ratio:.1f}x)."
            for s in d.audit.splits
            if s.imbalance_ratio is not None and s.imbalance_ratio >= 10
        ]
    cal = d.calibration_after or d.calibration_before
    if cal is not None and cal.ece > 0.05:
        out.append(f"Confidences are miscalibrated (ECE {num(cal.ece)}); do not read them as probabilities.")
    if d.groups is not None and d.groups.worst_group is not None and d.groups.gap > 0.05:
        out.append(f"Group '{d.groups.worst_group}' is {num(d.groups.gap)} below the overall accuracy.")
    return out
