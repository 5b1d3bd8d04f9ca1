from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.table import Table

from imgclf.api import load
from imgclf.cli._common import console, err_console, friendly_errors


@friendly_errors
def explain(
    model: Path = typer.Argument(..., help="A bundle directory (RUN_DIR/bundle)."),
    images: list[str] = typer.Argument(..., help="Image files, folders (gallery mode) or globs."),
    method: str = typer.Option("gradcam", "--method", help="gradcam, gradcam++, smoothgrad, integrated-gradients, "
                               "occlusion, lime or shap."),
    target: str = typer.Option(None, "--target", help="Class to explain (default: the predicted class)."),
    out: Path = typer.Option(Path("explanations"), "--out", help="Folder for the PNG overlays."),
    faithfulness: bool = typer.Option(False, "--faithfulness", help="Also score deletion / insertion AUC."),
    as_json: bool = typer.Option(False, "--json", help="Print the results as JSON."),
) -> None:
    """Show why the model decided: attribution heatmaps beside each input, saved as PNG.

    The layer for Grad-CAM is found automatically (last convolutional stage; ViT tokens on the patch grid).

    Examples:

        imgclf explain runs/x/bundle cat.jpg

        imgclf explain runs/x/bundle photos/ --method integrated-gradients --target bee --faithfulness
    """
    report = load(model).explain(images, out, method=method, target=target, faithfulness=faithfulness)
    if as_json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        table = Table("image", "predicted", "explaining", "overlay", title=f"{method} explanations")
        if faithfulness:
            table.add_column("deletion AUC (lower better)")
            table.add_column("insertion AUC (higher better)")
        for r in report.images:
            row = [Path(r.path).name, f"{r.label} {r.score:.2f}", r.target, r.overlay]
            if faithfulness:
                row += [f"{r.deletion_auc:.3f}", f"{r.insertion_auc:.3f}"]
            table.add_row(*row)
        console.print(table)
        if report.gallery:
            console.print(f"gallery: {report.gallery}")
    for path, reason in report.errors.items():
        err_console.print(f"[red]skipped[/red] {path}: {reason}")
    if report.errors:
        raise typer.Exit(1)
