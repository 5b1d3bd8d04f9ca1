"""The ``--tta`` / ``--mc-dropout`` options shared by predict and evaluate, and the per-image uncertainty they add."""

from __future__ import annotations

from typing import Any

import typer

from imgclf.api import Classifier, Prediction, hedge, uncertainty
from imgclf.models import EnsembleNet, HedgedNet

TTA = typer.Option(None, "--tta", help="Test-time augmentation: flip, flip+crop (adds 4 corner crops) or flip+shift "
                   "(adds 1/32-side shifts, for small images); averages "
                   "probabilities over the views, the original image included.")  # fmt: skip
MC_DROPOUT = typer.Option(0, "--mc-dropout", help="MC dropout: average T stochastic passes with only the dropout "
                          "layers on (the model must have dropout).")  # fmt: skip


def hedged(clf: Classifier, tta: str | None, mc_dropout: int) -> Classifier:
    """``clf`` wrapped for ``--tta`` / ``--mc-dropout`` (unchanged when both are off)."""
    return hedge(clf, tta=tta, mc_dropout=mc_dropout)


def with_uncertainty(clf: Classifier, preds: list[Prediction]) -> list[dict[str, Any]]:
    """``p.to_dict()`` rows, each with ``uncertainty`` (members' / views' mutual information, nats) when the model
    is an ensemble or hedged."""
    rows = [p.to_dict() for p in preds]
    if not isinstance(clf.model_, EnsembleNet | HedgedNet):
        return rows
    ok = [i for i, p in enumerate(preds) if not p.error]
    values = uncertainty(clf, [preds[i].path for i in ok]) if ok else []
    for i, u in zip(ok, values):
        rows[i]["uncertainty"] = float(u)
    return rows
