"""``privacy-audit``: how much a bundle's outputs reveal about which images it was trained on.

Members are the bundle's own training split of DATA, re-made with the seed and fractions the bundle recorded;
non-members are its held-out images (val and test). Three measurements: the loss-threshold attack, LiRA with K
shadow models trained by imgclf (same recipe as the bundle) on random halves of members + non-members, and a control
(the loss attack on non-members against non-members, which must sit at chance: an AUC away from 0.5 means the two
groups differ for another reason, and the audit should not be trusted).
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console

from imgclf import data as D
from imgclf import engine as E
from imgclf import privacy as P
from imgclf.api import train_run
from imgclf.bundle import Bundle, load_bundle, split_samples, training_source, update_meta
from imgclf.config import load_config
from imgclf.errors import DataError
from imgclf.utils import atomic_write_text


@dataclass(frozen=True)
class PrivacyAudit:
    """The attacks' results (``loss``, ``lira`` when shadows were trained, ``control``), where the files went."""

    loss: P.AttackROC
    control: P.AttackROC
    lira: P.AttackROC | None = None
    shadows: int = 0
    out_dir: Path | None = None
    files: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"loss": self.loss.to_dict(), "lira": self.lira.to_dict() if self.lira else None,
                "control": self.control.to_dict(), "shadows": self.shadows, "files": self.files}  # fmt: skip

    def summary(self) -> str:
        """One line per attack, e.g. ``loss attack: AUC 0.712 [0.690, 0.733]  TPR@0.1%FPR 0.004  TPR@1%FPR 0.031``."""
        lines = []
        for r in (self.loss, self.lira, self.control):
            if r is not None:
                lows = "  ".join(f"TPR@{k}FPR {v:.3f}" for k, v in r.tpr_at_fpr.items())
                lines.append(f"{r.name}: AUC {r.auc}  {lows}")
        return "\n".join(lines)


def _statistics(bundle: Bundle, samples: D.SampleList, batch_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-example loss and LiRA statistic of ``bundle`` on ``samples``, and the indices that were readable."""
    out = E.run_inference(bundle.model, samples, bundle.meta.preprocessing, batch_size=batch_size, workers=0)
    return P.cross_entropy(out.logits, out.labels), P.true_class_logit(out.logits, out.labels), out.indices


def audit_bundle(bundle_path: str | Path, data: str | None = None, *, shadows: int = 0, out: str | Path | None = None,
                 seed: int = 0, console: Console | None = None) -> PrivacyAudit:  # fmt: skip
    """Audit ``bundle_path`` against its training data (``data`` or the source it recorded).

    ``shadows`` > 0 trains that many shadow models with the bundle's own training config, each on a random half
    of members + non-members (every example is IN for about half of them), for online LiRA. ``out`` (default
    ``BUNDLE/../privacy``) receives ``privacy_audit.json`` and ``roc.png``; the bundle's metadata gains
    ``extra["privacy_audit"]`` so the report and model card show it.

    >>> # audit = audit_bundle("runs/x/bundle", shadows=8); print(audit.summary())
    """
    console = console or Console()
    bundle = load_bundle(bundle_path)
    if bundle.task.kind != "single":
        raise DataError(f"privacy-audit needs a single-label bundle; {bundle_path} is {bundle.task.kind}")
    source = training_source(bundle.meta, data, option="DATA")
    members, _, splits = split_samples(bundle.meta, source, "train")
    held = [s for s in (splits.val, splits.test) if s is not None and len(s)]
    if not held:
        raise DataError(f"{source} has no held-out images for the bundle (no val or test split): the audit needs "
                        "non-members; train with data.val_fraction or data.test_fraction above 0")  # fmt: skip
    remap = [bundle.meta.classes.index(c) for c in splits.classes]
    non_members = D.SampleList.concat(held).relabel(remap)
    rng = np.random.default_rng(seed)
    n = min(len(members), len(non_members))  # balanced: equal numbers, so AUC and TPR@FPR compare like for like
    members = members.subset(sorted(rng.choice(len(members), n, replace=False).tolist()))
    non_members = non_members.subset(sorted(rng.choice(len(non_members), n, replace=False).tolist()))
    pool = D.SampleList.concat([members, non_members])
    is_member = np.r_[np.ones(n, bool), np.zeros(n, bool)]
    batch = int(bundle.meta.training.get("data", {}).get("batch_size", 64))
    loss, stat, idx = _statistics(bundle, pool, batch)
    truth = is_member[idx]
    loss_roc = P.attack_roc("loss attack", P.loss_attack(loss), truth, seed=seed)
    control = _control(bundle, held, remap, batch, seed)
    out_dir = Path(out) if out else Path(bundle.path).parent / "privacy"
    out_dir.mkdir(parents=True, exist_ok=True)
    lira = None
    if shadows:
        shadow_stat, shadow_in = _train_shadows(bundle, pool, shadows, out_dir, seed, batch, console)
        lira = P.attack_roc(f"LiRA ({shadows} shadows)", P.lira_scores(stat, shadow_stat[:, idx], shadow_in[:, idx]),
                            truth, seed=seed)  # fmt: skip
    results = [r for r in (loss_roc, lira, control) if r is not None]
    files = {"roc": str(P.plot_attack_rocs(results, out_dir / "roc.png"))}
    audit = PrivacyAudit(loss_roc, control, lira, shadows, out_dir, files)
    files["json"] = str(atomic_write_text(out_dir / "privacy_audit.json", json.dumps(audit.to_dict(), indent=2)))
    update_meta(bundle.path, extra={**bundle.meta.extra, "privacy_audit": audit.to_dict()})
    return audit


def _control(bundle: Bundle, held: list[D.SampleList], remap: list[int], batch: int, seed: int) -> P.AttackROC:
    """The loss attack between two groups of non-members: val against test when the data has both (this also
    catches a shift between the held-out splits), else two random halves of the one held-out split."""
    if len(held) == 2:
        a, b = (h.relabel(remap) for h in held)
        loss, _, idx = _statistics(bundle, D.SampleList.concat([a, b]), batch)
        truth = np.r_[np.ones(len(a), bool), np.zeros(len(b), bool)][idx]
        name = "control (val vs test, both non-members)"
    else:
        loss = _statistics(bundle, held[0].relabel(remap), batch)[0]
        truth = np.zeros(len(loss), bool)
        truth[np.random.default_rng(seed + 2).permutation(len(loss))[: len(loss) // 2]] = True
        name = "control (non-members vs non-members)"
    return P.attack_roc(name, P.loss_attack(loss), truth, seed=seed)


def _train_shadows(bundle: Bundle, pool: D.SampleList, k: int, out_dir: Path, seed: int, batch: int,
                   console: Console) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """Train ``k`` shadows (the bundle's recipe) on random halves of ``pool``; their LiRA statistic on all of it
    ``(k, N)`` and which examples each trained on ``(k, N)``. Shadow ``i`` trains on half ``i`` of a balanced
    design: each example is IN for exactly half of the shadows when ``k`` is even. The recipe includes DP-SGD (same
    epsilon, delta and clip) when the bundle was trained with it: LiRA compares the target with models from the
    target's own training algorithm, and for a DP bundle that algorithm is DP-SGD."""
    paths = pool.paths
    if paths is None:
        raise DataError("LiRA shadows are trained from image files; this data has none (a built-in array "
                        "dataset): export it to a folder first, or run without --shadows")  # fmt: skip
    rng = np.random.default_rng(seed + 1)
    n = len(pool)
    order = np.stack([rng.permutation(k) for _ in range(n)], axis=1)  # (k, N)
    shadow_in = order < (k + 1) // 2
    classes = list(bundle.meta.classes)
    stats = np.zeros((k, n))
    base = load_config(None, bundle.meta.training)
    for i in range(k):
        manifest = out_dir / "shadows" / f"shadow{i}.csv"
        manifest.parent.mkdir(parents=True, exist_ok=True)
        with manifest.open("w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["path", "label", "split"])
            for j in np.flatnonzero(shadow_in[i]):
                w.writerow([paths[j], classes[pool.labels[j]], "train"])
        cfg = replace(base, data=replace(base.data, source=str(manifest), val_fraction=0.0, test_fraction=0.0,
                                         max_per_class=None, folds=None, near_duplicates=False),
                      model=replace(base.model, init=None),
                      train=replace(base.train, out=str(manifest.parent), name=f"shadow{i}", seed=seed + 100 + i,
                                    report=False, calibrate=False, patience=None))  # fmt: skip
        console.print(f"shadow {i + 1}/{k}: training on {int(shadow_in[i].sum())} images")
        result = train_run(cfg, console=console)
        shadow = load_bundle(result.bundle_dir)
        if list(shadow.meta.classes) != classes:
            raise DataError(f"shadow {i} saw only classes {shadow.meta.classes} of {classes}: too few images per "
                            "class for shadows on half the data; audit with more images or fewer classes")  # fmt: skip
        _, stat, idx = _statistics(shadow, pool, batch)
        stats[i, idx] = stat
    return stats, shadow_in
