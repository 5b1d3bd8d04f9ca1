"""One self-contained ``report.html``: every figure embedded as a data URI, inline CSS, no script, no network."""

from __future__ import annotations

import datetime as _dt
import os
import tempfile
from pathlib import Path

from imgclf.evaluation._report_data import ReportData
from imgclf.evaluation._report_sections import Figures, build_sections
from imgclf.evaluation._template import REPORT_TEMPLATE
from imgclf.utils import atomic_write_text, optional_import

SECTION_IDS = ("data", "training", "search", "task", "metrics", "confusion", "calibration", "risk-coverage", "groups",
               "errors")


def render_report(data: ReportData, path: str | os.PathLike, *, plots_dir: str | os.PathLike | None = None) -> Path:
    """Write ``data`` as one HTML page that opens offline, and return its path.

    Sections, each present only when its data is: ``data`` (summary, audit findings with a loud leakage
    alert, likely label errors), ``training`` (curves), ``search`` (a tuning study's plots, when ``imgclf tune``
    retrained the run), ``metrics`` (headline figures with intervals,
    per-class table worst first, most-confused pairs), ``confusion``, ``calibration`` (reliability before /
    after temperature scaling), ``risk-coverage``, ``groups`` and ``errors`` (top-loss gallery); each
    ``<section>`` has that ``id``. Plots are also kept as PNG files in ``plots_dir`` when given (e.g. the
    run's ``plots/``). Needs Jinja2 (``imgclf[eval]``).

    >>> data = ReportData(metrics=report, intervals=ci)  # doctest: +SKIP
    >>> render_report(data, "runs/r1/report.html", plots_dir="runs/r1/plots")  # doctest: +SKIP
    PosixPath('runs/r1/report.html')
    """
    jinja2 = optional_import("jinja2", "eval")
    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    template = env.from_string(REPORT_TEMPLATE)
    with tempfile.TemporaryDirectory(prefix="imgclf-plots-") as tmp:
        directory = Path(plots_dir) if plots_dir is not None else Path(tmp)
        directory.mkdir(parents=True, exist_ok=True)
        sections = build_sections(data, Figures(directory))
    alerts = [str(n) for n in data.notes if str(n).upper().startswith(("LEAKAGE", "ERROR", "WARNING"))]
    notes = [str(n) for n in data.notes if str(n) not in alerts]
    html = template.render(
        title=data.title,
        facts=[(str(k), str(v)) for k, v in data.facts.items()],
        sections=sections,
        alerts=alerts,
        notes=notes,
        version=_version(),
        created=_dt.datetime.now().strftime("%Y-%m-%d %H:%M"),
    )
    return atomic_write_text(Path(path), html)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("imgclf")
    except PackageNotFoundError:
        return "unknown"
