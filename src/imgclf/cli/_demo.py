from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from imgclf.api import Classifier
from imgclf.cli._common import console, friendly_errors, heading
from imgclf.errors import TrainingError

DEMO_SETS = ["data.augment=none", "optim.lr=3e-3", "data.batch_size=32"]  # 8x8 digits: flips and crops hurt


@friendly_errors
def demo(
    out: str = typer.Option("runs", "--out", help="Parent folder of the run directory."),
    epochs: int = typer.Option(20, "--epochs", help="Training epochs."),
) -> None:
    """Train a small CNN on scikit-learn's bundled digits (offline, about a minute on 2 CPU cores).

    Prints the test accuracy, writes a bundle and predicts a few held-out images saved as PNG files.
    """
    heading(console, "imgclf demo: handwritten digits (8x8, scikit-learn's bundled set)")
    clf = Classifier(model="lenet5", epochs=epochs, img_size=32, out=out, name="demo", sets=DEMO_SETS)
    clf.fit("digits", console=console)
    result = clf.result_
    if result is None or "test" not in result.metrics:
        raise TrainingError("the demo run finished without test metrics")
    acc = result.metrics["test"]["acc"]
    console.print(f"[bold]test accuracy: {acc:.2%}[/bold] on {result.metrics['test']['n']} held-out images")
    paths = _save_examples(result.run_dir / "demo_images")
    table = Table("image", "true", "predicted", "confidence", title="predictions on held-out images")
    for pred, (path, true) in zip(clf.predict([str(p) for p, _ in paths], top_k=3), paths):
        mark = "[green]✓[/green]" if pred.label == true else "[red]✗[/red]"
        table.add_row(path.name, true, f"{pred.label} {mark}", f"{pred.score:.3f}")
    console.print(table)
    console.print(f"bundle: {result.bundle_dir}\nnext: imgclf predict {result.bundle_dir} "
                  f"{result.run_dir / 'demo_images'}")  # fmt: skip


def _save_examples(folder: Path, n: int = 8) -> list[tuple[Path, str]]:
    """Write the first ``n`` test images of the digits split as PNG files; return (path, true label)."""
    from imgclf.data import load_source

    splits = load_source("digits", seed=0)  # the same seeded split the demo trained on
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    test = splits.test
    for i in range(min(n, len(test))):
        image, label = test[i]
        path = folder / f"digit_{i}.png"
        image.save(path)
        out.append((path, splits.classes[label]))
    return out
