"""The data audit measured against planted truth: near-duplicate recall and precision, clean false alarms.

    nice .venv/bin/python benchmarks/audit_precision.py [--datasets mnist,cifar10,hymenoptera] [--train 3000]
        [--test 1000] [--per-kind 60] [--seed 0] [--json FILE]

For each dataset (the shared archives, extracted into ``~/.cache/imgclf/datasets`` as the tests do) it takes a
seeded subset of the training split and of the test split (hymenoptera: val), then

1. **clean**: audits train vs test as they are and lists every confirmed cross-split pair (false alarms, or real
   duplicates the dataset already holds: look at them);
2. **planted**: writes ``--per-kind`` copies of random training images into the test split for each
   transformation (resized 0.5x-2x, JPEG quality 30-90, cropped to 90-98% of each side, brightness and contrast
   +-10%, mirrored) and audits again. Recall: planted copies reported as a leak of their source (mirrored ones
   as kind ``mirror``). Precision: confirmed cross-split findings that are planted pairs, over all confirmed
   cross-split findings that involve a planted file (findings between two original files are the clean run's).

With ``--labels`` it measures the label-error finder instead: a seeded subset (``--train`` / ``--test`` images)
is copied into a folder tree with 5% of the labels flipped, either uniformly to another class or along a
class-confusion map (3<->5, 4<->9, cat<->dog, ...); ``--model`` (default lenet5) is trained on it for
``--epochs``, and ``imgclf.evaluation.audit_labels`` ranks likely errors with 5-fold out-of-fold probabilities
on the bundle's frozen features. Reported: precision at K = the number of planted flips.

Results go to stdout (a Markdown table per dataset) and, with ``--json``, to a file. The functions ``plant``,
``score_findings``, ``noisy_tree`` and ``precision_at_k`` are also used by ``tests/integration/test_audit_real.py``.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PIL import Image, ImageEnhance, ImageOps

CACHE = Path(os.environ.get("IMGCLF_TEST_CACHE", Path.home() / ".cache" / "imgclf" / "datasets"))
KINDS = ("resize", "jpeg", "crop", "brightness", "mirror")
SUFFIXES = (".png", ".jpg", ".jpeg")


def dataset_dir(name: str) -> Path:
    """The extracted shared dataset ``name`` (see tests/conftest.py); fails with a hint when absent."""
    found = sorted(CACHE.glob(f"{name}-*/{name}"))
    if not found:
        sys.exit(f"{name} is not extracted under {CACHE}: run the real-data tests once (pytest -m real) first")
    return found[0]


def subset(root: Path, split: str, n: int, seed: int) -> list[Path]:
    """A seeded random subset of ``n`` image files of ``root/split`` (all of them when fewer)."""
    files = sorted(p for p in (root / split).rglob("*") if p.suffix.lower() in SUFFIXES)
    random.Random(seed).shuffle(files)
    return files[:n]


def transform(img: Image.Image, kind: str, rng: random.Random) -> tuple[Image.Image, str, dict[str, Any]]:
    """One copy of ``img``: the image, the file suffix to save it with and the parameters drawn."""
    w, h = img.size
    if kind == "resize":
        f = rng.uniform(0.5, 2.0)
        return img.resize((max(8, round(w * f)), max(8, round(h * f))), Image.Resampling.BICUBIC), ".png", {"f": f}
    if kind == "jpeg":
        q = rng.randint(30, 90)
        buf = io.BytesIO()
        img.save(buf, "JPEG", quality=q)
        return Image.open(io.BytesIO(buf.getvalue())), ".jpg", {"quality": q}
    if kind == "crop":
        c = rng.uniform(0.90, 0.98)
        cw, ch = round(w * c), round(h * c)
        x, y = rng.randint(0, w - cw), rng.randint(0, h - ch)
        return img.crop((x, y, x + cw, y + ch)), ".png", {"crop": c}
    if kind == "brightness":
        b, k = rng.uniform(-0.1, 0.1), rng.uniform(-0.1, 0.1)
        out = ImageEnhance.Contrast(ImageEnhance.Brightness(img).enhance(1 + b)).enhance(1 + k)
        return out, ".png", {"brightness": b, "contrast": k}
    if kind == "mirror":
        return ImageOps.mirror(img), ".png", {}
    raise ValueError(f"unknown transformation {kind!r}; pick one of {', '.join(KINDS)}")


def plant(
    train: list[Path], out_dir: Path, per_kind: int, seed: int, kinds: tuple[str, ...] = KINDS
) -> dict[str, tuple[str, str, dict[str, Any]]]:
    """Write ``per_kind`` copies per transformation of random ``train`` images into ``out_dir``; returns
    ``{copy path: (source path, kind, parameters)}``. Each source is used at most once."""
    rng = random.Random(seed)
    sources = rng.sample(range(len(train)), per_kind * len(kinds))
    truth = {}
    for k, src in enumerate(sources):
        kind = kinds[k // per_kind]
        with Image.open(train[src]) as im:
            img = im.convert("L" if im.mode in ("1", "L") else "RGB")
        copy, suffix, params = transform(img, kind, rng)
        path = out_dir / f"planted_{kind}_{k:05d}{suffix}"
        path.parent.mkdir(parents=True, exist_ok=True)
        copy.save(path)
        truth[str(path)] = (str(train[src]), kind, params)
    return truth


def score_findings(report: Any, truth: dict[str, tuple[str, str, dict[str, Any]]]) -> dict[str, Any]:
    """Recall per transformation and precision of confirmed cross-split findings against the planted ``truth``."""
    found = {(leak.b.path, leak.a.path): leak.kind for leak in report.leakage}
    found.update({(leak.a.path, leak.b.path): leak.kind for leak in report.leakage})
    per_kind: dict[str, dict[str, int]] = {}
    for copy, (src, kind, _) in truth.items():
        row = per_kind.setdefault(kind, {"planted": 0, "found": 0, "right_kind": 0})
        row["planted"] += 1
        got = found.get((copy, src))
        row["found"] += got is not None
        row["right_kind"] += got is not None and (got == "mirror") == (kind == "mirror")
    involved = [leak for leak in report.leakage if leak.a.path in truth or leak.b.path in truth]
    right = [leak for leak in involved if truth.get(leak.b.path, ("",))[0] == leak.a.path]
    wrong = [(leak.a.path, leak.b.path, leak.kind, leak.score) for leak in involved if leak not in right]
    for row in per_kind.values():
        row["recall"] = row["right_kind"] / row["planted"]
    n_planted = sum(r["planted"] for r in per_kind.values())
    return {
        "per_kind": per_kind,
        "recall": sum(r["right_kind"] for r in per_kind.values()) / max(n_planted, 1),
        "precision": len(right) / max(len(involved), 1),
        "n_findings": len(involved),
        "wrong": wrong,
    }


def flagged_test_images(report: Any, test_split: str = "test") -> list[tuple[str, str, str, float]]:
    """Every confirmed cross-split pair that involves the test split: (train file, test file, kind, score)."""
    return [(leak.a.path, leak.b.path, leak.kind, leak.score) for leak in report.leakage if leak.b.split == test_split]


def run_dataset(name: str, n_train: int, n_test: int, per_kind: int, seed: int, audit: Callable) -> dict[str, Any]:
    root = dataset_dir(name)
    test_split = "val" if name == "hymenoptera" else "test"
    train = subset(root, "train", n_train, seed)
    test = subset(root, test_split, n_test, seed + 1)
    t0 = time.perf_counter()
    clean = audit({"train": [str(p) for p in train], test_split: [str(p) for p in test]})
    clean_s = time.perf_counter() - t0
    flagged = flagged_test_images(clean, test_split)
    with tempfile.TemporaryDirectory() as tmp:
        truth = plant(train, Path(tmp), per_kind, seed + 2)
        t0 = time.perf_counter()
        planted = audit({"train": [str(p) for p in train], test_split: [str(p) for p in test] + list(truth)})
        planted_s = time.perf_counter() - t0
        scored = score_findings(planted, truth)
    return {
        "dataset": name,
        "train": len(train),
        "test": len(test),
        "clean_flagged_images": len({f[1] for f in flagged}),
        "clean_flag_rate": len({f[1] for f in flagged}) / max(len(test), 1),
        "clean_flagged_pairs": flagged,
        "clean_look_alikes": clean.n_cross_look_alikes,
        "clean_seconds": round(clean_s, 1),
        "planted_seconds": round(planted_s, 1),
        **scored,
    }


CONFUSIONS = {
    "mnist": {"3": "5", "5": "3", "4": "9", "9": "4", "7": "1", "1": "7", "8": "3", "2": "7", "6": "0", "0": "6"},
    "cifar10": {"cat": "dog", "dog": "cat", "automobile": "truck", "truck": "automobile", "deer": "horse",
                "horse": "deer", "airplane": "ship", "ship": "airplane", "bird": "frog", "frog": "bird"},
}  # fmt: skip


def noisy_tree(
    root: Path, out: Path, n_train: int, n_test: int, *, rate: float = 0.05, shape: str = "uniform", seed: int = 0
) -> set[str]:
    """Link a seeded subset of ``root``'s train and test splits into ``out/<split>/<class>/`` with ``rate`` of
    each split's labels flipped (``uniform``: to a random other class; ``confusion``: along ``CONFUSIONS``).
    Returns the paths (under ``out``) of the flipped images."""
    rng = random.Random(seed)
    classes = sorted(p.name for p in (root / "train").iterdir() if p.is_dir())
    confusion = CONFUSIONS.get(root.name, {c: classes[(k + 1) % len(classes)] for k, c in enumerate(classes)})
    flipped = set()
    for split, n in (("train", n_train), ("test", n_test)):
        files = subset(root, split, n, seed + (split == "test"))
        chosen = set(rng.sample(range(len(files)), round(rate * len(files))))
        for k, src in enumerate(files):
            label = src.parent.name
            if k in chosen:
                label = rng.choice([c for c in classes if c != label]) if shape == "uniform" else confusion[label]
            dst = out / split / label / f"{k:06d}{src.suffix}"
            dst.parent.mkdir(parents=True, exist_ok=True)
            dst.symlink_to(src.resolve())
            if k in chosen:
                flipped.add(str(dst))
    return flipped


def precision_at_k(ranked_paths: list[str], flipped: set[str]) -> float:
    """Share of planted flips among the first ``len(flipped)`` ranked images."""
    k = len(flipped)
    return sum(p in flipped for p in ranked_paths[:k]) / max(k, 1)


def run_labels(name: str, n_train: int, n_test: int, shape: str, model: str, epochs: int, seed: int) -> dict:
    import imgclf
    from imgclf.bundle import load_bundle
    from imgclf.evaluation import audit_labels

    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        flipped = noisy_tree(dataset_dir(name), data, n_train, n_test, shape=shape, seed=seed)
        t0 = time.perf_counter()
        clf = imgclf.fit(
            data,
            model=model,
            epochs=epochs,
            batch_size=64,
            out=str(Path(tmp) / "runs"),
            name="noisy",
            sets=["data.augment=none", "optim.lr=2e-3", "train.label_smoothing=0.0"],
        )
        train_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        audit = audit_labels(load_bundle(clf.result_.bundle_dir), str(data), seed=seed)
        audit_s = time.perf_counter() - t0
        found = list(audit.issues.paths)
    return {"dataset": name, "shape": shape, "images": audit.n_images, "flips": len(flipped),
            "flagged": len(found), "precision_at_k": precision_at_k(found, flipped),
            "recall_flagged": len(set(found) & flipped) / max(len(flipped), 1), "oof_accuracy": audit.oof_accuracy,
            "method": audit.method, "train_seconds": round(train_s, 1), "audit_seconds": round(audit_s, 1)}  # fmt: skip


def _markdown(r: dict[str, Any]) -> str:
    lines = [
        f"### {r['dataset']}: {r['train']} train, {r['test']} test images",
        "",
        "| transformation | planted | found (right kind) | recall |",
        "|---|---|---|---|",
    ]
    for kind, row in r["per_kind"].items():
        lines.append(f"| {kind} | {row['planted']} | {row['right_kind']} | {row['recall']:.1%} |")
    lines += [
        f"| **all** | {sum(v['planted'] for v in r['per_kind'].values())} | | **{r['recall']:.1%}** |",
        "",
        f"Precision of confirmed findings involving a planted file: **{r['precision']:.1%}** "
        f"({r['n_findings']} findings). Clean test vs train: **{r['clean_flag_rate']:.2%}** of test images "
        f"flagged ({r['clean_flagged_images']}), {r['clean_look_alikes']} look-alike pairs listed as information. "
        f"Audit time {r['clean_seconds']} s clean, {r['planted_seconds']} s planted.",
    ]
    for a, b, kind, score in r["clean_flagged_pairs"][:20]:
        lines.append(f"- clean flag: `{b}` ~ `{a}` ({kind}, similarity {score:.3f})")
    for a, b, kind, score in r["wrong"][:20]:
        lines.append(f"- wrong finding: `{b}` ~ `{a}` ({kind}, similarity {score:.3f})")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", default="mnist,cifar10,hymenoptera")
    ap.add_argument("--train", type=int, default=3000)
    ap.add_argument("--test", type=int, default=1000)
    ap.add_argument("--per-kind", type=int, default=60)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path)
    ap.add_argument("--labels", action="store_true", help="measure the label-error finder instead")
    ap.add_argument("--model", default="lenet5")
    ap.add_argument("--epochs", type=int, default=8)
    args = ap.parse_args()
    from imgclf.evaluation import audit_files

    results = []
    if args.labels:
        print("| dataset | noise | images | planted flips | flagged | precision at K | out-of-fold accuracy |")
        print("|---|---|---|---|---|---|---|")
        for name in args.datasets.split(","):
            for shape in ("uniform", "confusion"):
                r = run_labels(name, args.train, args.test, shape, args.model, args.epochs, args.seed)
                results.append(r)
                print(f"| {name} | {shape} | {r['images']} | {r['flips']} | {r['flagged']} | "
                      f"**{r['precision_at_k']:.2f}** | {r['oof_accuracy']:.3f} |", flush=True)  # fmt: skip
        if args.json:
            args.json.write_text(json.dumps(results, indent=2))
        return
    for name in args.datasets.split(","):
        per_kind = min(args.per_kind, 40) if name == "hymenoptera" else args.per_kind  # 245 training photos
        r = run_dataset(name, args.train, args.test, per_kind, args.seed, audit_files)
        results.append(r)
        print(_markdown(r), "\n", flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
