"""The ``--tta`` / ``--mc-dropout`` options shared by predict and evaluate (answers then carry their uncertainty)."""

from __future__ import annotations

import typer

from imgclf.api import Classifier, hedge

TTA = typer.Option(None, "--tta", help="Test-time augmentation: flip, flip+crop (adds 4 corner crops) or flip+shift "
                   "(adds 1/32-side shifts, for small images); averages "
                   "probabilities over the views, the original image included.")  # fmt: skip
MC_DROPOUT = typer.Option(0, "--mc-dropout", help="MC dropout: average T stochastic passes with only the dropout "
                          "layers on (the model must have dropout).")  # fmt: skip


def hedged(clf: Classifier, tta: str | None, mc_dropout: int) -> Classifier:
    """``clf`` wrapped for ``--tta`` / ``--mc-dropout`` (unchanged when both are off)."""
    return hedge(clf, tta=tta, mc_dropout=mc_dropout)
