"""The HTML report is one self-contained page with stable section ids; the model card reads the same data."""

from __future__ import annotations

import base64
import io
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from imgclf.evaluation import SECTION_IDS, ErrorExample, ReportData, audit_files, render_model_card, render_report
from imgclf.metrics import (
    apply_temperature,
    bootstrap_ci,
    calibration_metrics,
    classification_metrics,
    confidence_histogram,
    fit_temperature,
    group_metrics,
    risk_coverage,
)


class Page(HTMLParser):
    """Collects every tag, the attributes that load resources, section ids and visible text."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.links: list[str] = []
        self.images: list[str] = []
        self.sections: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        a = dict(attrs)
        self.links += [v for k, v in a.items() if k in ("src", "href", "srcset", "data", "action") and v]
        if tag == "img":
            self.images.append(a.get("src") or "")
        if tag == "section":
            self.sections.append(a.get("id") or "")

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def _parse(path: Path) -> Page:
    page = Page()
    page.feed(path.read_text(encoding="utf-8"))
    return page


@pytest.fixture
def full_data(image_tree: dict, tmp_path: Path) -> ReportData:
    rng = np.random.default_rng(0)
    study_plot = tmp_path / "study" / "history.png"  # what `imgclf tune` leaves in its folder
    study_plot.parent.mkdir()
    Image.new("RGB", (320, 200), (40, 90, 160)).save(study_plot)
    names = ["cat", "dog", "<b>fox</b>"]
    y = rng.integers(0, 3, 400)
    logits = rng.normal(size=(400, 3)) * 3
    logits[np.arange(400), y] += 4
    raw = apply_temperature(logits, 1.0)
    t = fit_temperature(logits, y)
    report = classification_metrics(raw, y, names)
    errors = [ErrorExample(image_tree["paths"]["train"][i], "cat", "dog", 0.9, 2.3, f"{i}.png") for i in range(3)]
    return ReportData(
        title="test run",
        facts={"model": "tiny-cnn", "dataset": "generated"},
        data_summary={"train images": 12},
        audit=audit_files(image_tree["paths"], image_tree["labels"], image_tree["names"]),
        label_issues=errors[:2],
        history=[{"epoch": e, "train_loss": 1 / e, "val_loss": 1.1 / e, "val_acc": 0.5 + e / 20} for e in range(1, 4)],
        metrics=report,
        intervals=bootstrap_ci(raw, y, n_resamples=100),
        split="test",
        calibration_before=calibration_metrics(raw, y),
        calibration_after=calibration_metrics(apply_temperature(logits, t), y),
        temperature=t,
        risk_coverage=risk_coverage(raw, y, target_accuracy=0.95),
        confidence=confidence_histogram(raw, y),
        groups=group_metrics(raw, y, [f"site{i % 3}" for i in range(400)]),
        errors=errors,
        search={"facts": {"trials": 20, "best validation accuracy": 0.9731},
                "plots": {"history": study_plot, "importances": tmp_path / "gone.png"}},  # a missing plot is skipped
    )


def test_report_is_self_contained_with_every_section(full_data: ReportData, tmp_path: Path) -> None:
    out = render_report(full_data, tmp_path / "run" / "report.html", plots_dir=tmp_path / "run" / "plots")
    page = _parse(out)
    html = out.read_text(encoding="utf-8")
    # Nothing is fetched from anywhere: no scripts, no stylesheets, no remote URLs, every image inline.
    assert "script" not in page.tags and "link" not in page.tags and "iframe" not in page.tags
    assert not [u for u in page.links if u.startswith(("http://", "https://", "//", "file:"))]
    assert "http://" not in html and "https://" not in html
    assert len(page.images) >= 8 and all(src.startswith("data:image/png;base64,") for src in page.images)
    for src in page.images:
        with Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1]))) as im:
            assert im.format == "PNG" and im.size[0] > 100
    # Every section, in order, with its stable id; plots also saved next to the report.
    assert page.sections == [s for s in SECTION_IDS if s != "task"]  # "task": multi-label / hierarchical runs only
    assert len(list((tmp_path / "run" / "plots").glob("*.png"))) == len(page.images)
    text = " ".join(page.text)
    assert "LEAKAGE: 1 test image is an exact copy of a train image" in text
    iv = full_data.intervals["accuracy"]
    assert f"[{iv.low:.3f}, {iv.high:.3f}]" in text
    assert f"T = {full_data.temperature:.3f}" in text
    # A class name is data, not markup.
    assert "<b>fox</b>" in text and "&lt;b&gt;fox&lt;/b&gt;" in html


def test_per_class_table_lists_the_worst_class_first(full_data: ReportData, tmp_path: Path) -> None:
    html = render_report(full_data, tmp_path / "report.html").read_text(encoding="utf-8")
    table = html[html.index('id="per-class-table"') :]
    worst = full_data.metrics.worst_classes()
    positions = [table.index(f"<td>{c.name.replace('<', '&lt;').replace('>', '&gt;')}</td>") for c in worst]
    assert positions == sorted(positions)


def test_missing_sections_are_left_out(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    p = rng.dirichlet(np.ones(4), 100)
    y = rng.integers(0, 4, 100)
    page = _parse(render_report(ReportData(metrics=classification_metrics(p, y)), tmp_path / "a.html"))
    assert page.sections == ["metrics", "confusion"]
    empty = _parse(render_report(ReportData(title="nothing yet"), tmp_path / "b.html"))
    assert empty.sections == [] and "nothing yet" in " ".join(empty.text)


def test_model_card_has_intended_use_metrics_calibration_and_limits(full_data: ReportData) -> None:
    card = render_model_card(full_data, intended_use="Sorting pet photos.", limitations=["Trained on 12 images."])
    assert card.startswith("# Model card: tiny-cnn")
    for heading in ("## Intended use", "## Data", "## Metrics on the `test` split", "## Calibration",
                    "## Known limitations"):  # fmt: skip
        assert heading in card
    assert "Sorting pet photos." in card and "- Trained on 12 images." in card
    iv = full_data.intervals["macro_f1"]
    assert f"| Macro F1 | {iv.value:.3f} | [{iv.low:.3f}, {iv.high:.3f}] |" in card
    assert "overlaps the training data" in card  # the audit's leak becomes a known limitation
    assert f"T = {full_data.temperature:.3f}" in card


def test_report_shows_duplicate_tiers_thresholds_and_flagged_pairs_side_by_side(
    full_data: ReportData, tmp_path: Path
) -> None:
    out = render_report(full_data, tmp_path / "run" / "report.html", plots_dir=tmp_path / "run" / "plots")
    html = out.read_text(encoding="utf-8")
    tiers = html[html.index('id="duplicate-tiers"') :]
    tiers = tiers[: tiers.index("</table>")]
    assert "exact (same bytes)" in tiers and "confirmed near copy" in tiers and "look-alike" in tiers
    a = full_data.audit
    assert f"<td>{a.tiers['exact']}</td>" in tiers and f"<td>{a.tiers['confirmed near']}</td>" in tiers
    assert "Thresholds: candidates within 8 pHash bits" in html  # the thresholds used are stated
    gallery = tmp_path / "run" / "plots" / "leakage_pairs.png"
    with Image.open(gallery) as im:  # both images of each flagged pair, side by side
        assert im.size[0] > im.size[1] and im.size[0] >= 400
    assert "Flagged copies side by side" in html
    assert "copys" not in html
