"""Test-time augmentation and MC dropout for a loaded classifier: one switch that wraps its model, so predict,
predict_proba, evaluate and calibrate all average probabilities without knowing about it."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from imgclf.api._classifier import Classifier
from imgclf.errors import ConfigError
from imgclf.models import HedgedNet


def hedge(clf: Classifier, *, tta: str | None = None, mc_dropout: int = 0) -> Classifier:
    """``clf`` with its model wrapped for test-time augmentation and/or MC dropout (unchanged when neither is on).

    ``tta``: ``"flip"``, ``"flip+crop"`` or ``"flip+shift"``; ``mc_dropout``: T stochastic passes with only the
    dropout layers on (a model without dropout raises ModelError). Probabilities are averaged, the original image
    included; the bundle's calibration is applied on top (refit with ``clf.calibrate()`` for the hedged model).

    >>> # clf = hedge(imgclf.load("runs/x/bundle"), tta="flip"); clf.predict(["a.jpg"])
    """
    if not tta and not mc_dropout:
        return clf
    if clf.engine_ is not None:
        raise ConfigError("--tta / --mc-dropout run the PyTorch model several times per image; use --engine torch")
    bundle = clf._bundle()
    activation = "sigmoid" if bundle.meta.task.get("kind") == "multilabel" else "softmax"
    model = HedgedNet(bundle.model, tta=tta or None, mc_dropout=int(mc_dropout or 0), activation=activation)
    clf.bundle_ = replace(bundle, model=model.eval())
    return clf


def uncertainty(clf: Classifier, inputs: Any, *, batch_size: int = 32) -> np.ndarray:
    """Disagreement ``(N,)`` (mutual information, nats) of the readable inputs between an ensemble's members, or
    between the TTA views / MC-dropout passes of a :func:`hedge` d classifier; 0 = all agree. ``clf.predict``
    reports the same figure per answer (``Prediction.uncertainty``) from the passes that gave its probabilities;
    this runs passes of its own (new dropout draws).

    >>> # u = uncertainty(hedge(imgclf.load("runs/x/bundle"), mc_dropout=10), ["a.jpg"])
    """
    hedger = clf.hedger()
    if hedger is None:
        raise ConfigError("uncertainty needs an ensemble bundle or a hedged model (pass --tta / --mc-dropout) on the "
                          "torch engine")  # fmt: skip
    clf._outputs(inputs, batch_size, runner=hedger)
    return hedger.values()
