from __future__ import annotations

import typer

from imgclf.cli import (
    _batch,
    _compress,
    _demo,
    _embed,
    _ensemble,
    _evaluate,
    _explain,
    _export,
    _federate,
    _fewshot,
    _monitor,
    _predict,
    _pretrain,
    _privacy,
    _report,
    _robustness,
    _serve,
    _train,
    _tune,
    _zeroshot,
)
from imgclf.cli._common import DEBUG, brief_warnings, console

app = typer.Typer(
    name="imgclf",
    help="From a folder of labelled images to a classifier you can trust and ship.\n\n"
    "Start with `imgclf demo`, then `imgclf train DATA` and `imgclf predict RUN_DIR/bundle IMAGES`.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="markdown",
)


def _version(value: bool) -> None:
    if value:
        from imgclf import __version__

        console.print(f"imgclf {__version__}", highlight=False)
        raise typer.Exit()


@app.callback()
def _root(debug: bool = typer.Option(False, "--debug", help="Show full tracebacks and Python's warnings as they "
                                     "are, not one-line errors and warnings."),
          version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                       help="Print imgclf's version and exit.")) -> None:  # fmt: skip
    DEBUG["on"] = debug
    if not debug:
        brief_warnings()


app.command("train")(_train.train)
app.command("predict")(_predict.predict)
app.command("models")(_train.models)
app.command("demo")(_demo.demo)
app.command("explain")(_explain.explain)
app.command("evaluate")(_evaluate.evaluate_cmd)
app.command("calibrate")(_evaluate.calibrate_cmd)
app.command("compare")(_evaluate.compare_cmd)
app.command("audit")(_report.audit_cmd)
app.command("report")(_report.report)
app.command("robustness")(_robustness.robustness_cmd)
app.command("export")(_export.export_cmd)
app.command("benchmark")(_export.benchmark_cmd)
app.command("prune")(_compress.prune_cmd)
app.command("distill")(_compress.distill_cmd)
app.command("serve")(_serve.serve)
app.command("monitor")(_monitor.monitor)
app.command("batch")(_batch.batch)
app.command("privacy-audit")(_privacy.privacy_audit)
app.command("federate")(_federate.federate_cmd)
app.command("ensemble")(_ensemble.ensemble_cmd)
app.command("tune")(_tune.tune_cmd)
app.command("pretrain")(_pretrain.pretrain_cmd)
app.command("embed")(_embed.embed)
app.command("neighbours")(_embed.neighbours)
app.command("fewshot")(_fewshot.fewshot)
app.command("zeroshot")(_zeroshot.zeroshot)


def main() -> None:
    """Entry point of the ``imgclf`` console script."""
    app()
