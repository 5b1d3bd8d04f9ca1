"""CIFAR-10 time to accuracy: ``imgclf train --recipe cifar-speed`` against the airbench94 CPU yardstick, in turns.

    .venv/bin/python benchmarks/speedrun.py [--runs 1] [--seed 0] [--precision auto|bf16|fp32] [--subset N]
        [--epochs E] [--skip-anchor] [--json FILE]

Both start from the same JPEG folder (the shared CIFAR-10: 50,000 training and 10,000 test images), in fresh
processes, one after the other (the order alternating between runs), in the same environment (the same
``OMP_WAIT_POLICY``, as ``import imgclf`` sets it, and the same thread count):

- anchor: ``../shared/benchmarks/cifar_to_tensors.py`` packs the folder into uint8 tensors (``pack_s``), then
  ``airbench94_cpu.py`` trains (its ``train_s``: whitening init + 9.9 epochs; evaluation excluded) and prints its
  test accuracy with its TTA (mirror + 1 px translations) and, per epoch, without (``AIRBENCH_EPOCH_EVAL=1``,
  untimed);
- imgclf: ``train_run`` of the ``cifar-speed`` recipe (this script with ``--child``): ``setup_s`` is everything
  before the first step (listing files, the exact-copy audit, decoding into memory, the whitening init),
  ``train_s`` the loop's own epoch times; after each epoch a callback scores the test set (untimed: it is not in
  the epoch time). The bundle is then scored without TTA, with ``flip`` and with ``flip+shift``.

Both train at the same ``--precision``: ``bf16`` (the anchor's own bf16 autocast; the recipe's ``train.amp=bf16``)
or ``fp32`` (the anchor with its low-precision dtype set to fp32, which turns its autocast off; the recipe with
``train.amp=off``). ``auto`` (default) is bf16 on a CPU with bf16 instructions, else fp32: there bf16 is emulated
and several times slower, so neither side would run in it.

It prints the accuracy curve over training time of each and the time each needs to reach the anchor's final
accuracy: training seconds, and from the JPEG folder (``pack_s`` / ``setup_s`` added). ``--subset N`` (N training
images per class) and ``--epochs`` (both runs) make smoke runs; the comparison is at full size and length.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from vs_plain import SHARED, make_subset, shared_dataset  # noqa: E402  (a sibling script, not a package)

ANCHOR = SHARED / "benchmarks"
ROW = re.compile(r"^\|\s+(\d+)\s+\|\s+([\d.]+)\s+\|\s+([\d.]+)\s+\|\s+([\d.]+)\s+\|\s+([\d.]+)\s+\|")


# The anchor at fp32: its module with LOWP (the bf16 it stands in for fp16 with) set to fp32, run as its __main__ does.
ANCHOR_FP32 = """
import sys, torch
sys.path.insert(0, {path!r})
import airbench94_cpu as anchor
anchor.LOWP = torch.float32  # autocast to fp32 is refused by torch, which turns it off: the whole net runs in fp32
acc, tta, seconds = anchor.main(sys.argv[1], int(sys.argv[2]))
print('airbench94-cpu acc_no_tta=%.4f' % acc, flush=True)
print('airbench94-cpu acc=%.4f train_s=%.1f' % (tta, seconds), flush=True)
"""


def child(data: Path, seed: int, epochs: int | None, out: str, precision: str) -> dict:
    """One imgclf run in this process: timings, the per-epoch test accuracy, the final one with and without TTA."""
    start = time.perf_counter()
    import torch

    from imgclf import data as D
    from imgclf import engine as E
    from imgclf.api import hedge, load, train_run
    from imgclf.config import recipe, update

    amp = {"bf16": "bf16", "fp32": "off"}[precision]
    changes = {"data": {"source": str(data)}, "train": {"seed": seed, "out": out, "report": False, "amp": amp}}
    if epochs:
        changes["train"]["epochs"] = epochs
    cfg = update(recipe("cifar-speed"), changes)
    test = D.load_source(str(data / "test"), val_fraction=0.0, test_fraction=0.0, seed=0).train
    marks: dict[str, float] = {}

    def score(model: torch.nn.Module, batches: list[tuple[torch.Tensor, torch.Tensor]]) -> float:
        was = model.training
        model.eval()
        with torch.no_grad(), torch.autocast("cpu", torch.bfloat16, enabled=precision == "bf16"):
            correct = sum(int((model(x).float().argmax(1) == y).sum()) for x, y in batches)
        model.train(was)
        return correct / sum(len(y) for _, y in batches)

    class Curve(E.Callback):
        def __init__(self) -> None:
            self.batches: list[tuple[torch.Tensor, torch.Tensor]] = []
            self.points: list[dict[str, float]] = []

        def on_fit_start(self, state: E.TrainState) -> None:
            marks["first_step"] = time.perf_counter()
            pre = state.train_loader.mean, state.train_loader.std  # the recipe's memory loader
            images, labels, _ = D.decode_to_memory(test, _preprocessing(cfg), what="test images")
            for i in range(0, len(images), 1000):
                x = D.normalize(images[i : i + 1000].float() / 255, *pre).contiguous(memory_format=torch.channels_last)
                self.batches.append((x, labels[i : i + 1000]))

        def on_epoch_end(self, state: E.TrainState, metrics: dict) -> None:
            trained = sum(h["epoch_time_s"] for h in state.history)
            self.points.append({"epoch": metrics["epoch"], "train_s": round(trained, 1),
                                "acc": round(score(state.model_for_eval(), self.batches), 4)})  # fmt: skip

    curve = Curve()
    result = train_run(cfg, callbacks=[curve])
    clf = load(result.bundle_dir)
    accs = {tta or "none": round(score((hedge(clf, tta=tta) if tta else clf).bundle_.model, curve.batches), 4)
            for tta in (None, "flip", "flip+shift")}  # fmt: skip
    return {"setup_s": round(marks["first_step"] - start, 1), "train_s": curve.points[-1]["train_s"],
            "curve": curve.points, "acc": accs}  # fmt: skip


def _preprocessing(cfg):  # noqa: ANN001, ANN202
    from imgclf.models import create_model, model_data_config

    return model_data_config(create_model(cfg.model.name, 10)).with_size(cfg.data.img_size)


def run_imgclf(data: Path, seed: int, epochs: int | None, env: dict[str, str], log: Path, precision: str) -> dict:
    with tempfile.TemporaryDirectory() as out:
        cmd = [sys.executable, __file__, "--child", str(data), "--seed", str(seed), "--out", out, "--precision",
               precision]  # fmt: skip
        cmd += ["--epochs", str(epochs)] if epochs else []
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    log.write_text(proc.stdout + proc.stderr)
    if proc.returncode:
        raise SystemExit(f"imgclf run failed (exit {proc.returncode}); see {log}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run_anchor(data: Path, seed: int, epochs: int | None, env: dict[str, str], log: Path, precision: str) -> dict:
    with tempfile.TemporaryDirectory() as tensors:
        start = time.perf_counter()
        subprocess.run([sys.executable, str(ANCHOR / "cifar_to_tensors.py"), str(data), tensors], env=env, check=True,
                       capture_output=True)  # fmt: skip
        pack = time.perf_counter() - start
        run_env = {**env, "AIRBENCH_EPOCH_EVAL": "1", **({"AIRBENCH_EPOCHS": str(epochs)} if epochs else {})}
        fp32 = ["-c", ANCHOR_FP32.format(path=str(ANCHOR))]
        script = fp32 if precision == "fp32" else [str(ANCHOR / "airbench94_cpu.py")]
        proc = subprocess.run([sys.executable, *script, tensors, str(seed)], env=run_env, capture_output=True,
                              text=True)  # fmt: skip
    log.write_text(proc.stdout + proc.stderr)
    final = re.search(r"airbench94-cpu acc=([\d.]+) train_s=([\d.]+)", proc.stdout)
    if proc.returncode or final is None:
        raise SystemExit(f"anchor run failed (exit {proc.returncode}); see {log}")
    curve = [{"epoch": int(m.group(1)) + 1, "train_s": float(m.group(5)), "acc": float(m.group(4))}
             for m in map(ROW.match, proc.stdout.splitlines()) if m]  # fmt: skip
    plain = re.search(r"acc_no_tta=([\d.]+)", proc.stdout)
    return {"pack_s": round(pack, 1), "train_s": float(final.group(2)), "curve": curve,
            "acc": {"none": float(plain.group(1)) if plain else None, "tta": float(final.group(1))}}  # fmt: skip


def time_to(curve: list[dict], target: float) -> float | None:
    """Training seconds at the first epoch whose (untimed, no-TTA) test accuracy reaches ``target``."""
    return next((p["train_s"] for p in curve if p["acc"] >= target), None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--subset", type=int, default=None, help="training images per class (smoke runs)")
    parser.add_argument("--epochs", type=float, default=None, help="override both runs' epochs (smoke runs)")
    parser.add_argument("--precision", choices=("auto", "bf16", "fp32"), default="auto",
                        help="both runs' precision; auto: bf16 where the CPU has bf16 instructions, else fp32")
    parser.add_argument("--skip-anchor", action="store_true")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--child", type=Path, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--out", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.precision == "auto":
        from imgclf.utils import cpu_supports_bf16

        args.precision = "bf16" if cpu_supports_bf16() else "fp32"
    if args.child is not None:
        epochs = int(args.epochs) if args.epochs else None
        print(json.dumps(child(args.child, args.seed, epochs, args.out, args.precision)))
        return
    data = shared_dataset("cifar10", SHARED / "datasets")
    work = Path(tempfile.mkdtemp(prefix="speedrun-"))
    if args.subset:
        data = make_subset(data, work / "subset", args.subset, max(100, args.subset // 5))
    import imgclf  # noqa: F401  (sets OMP_WAIT_POLICY in os.environ, which both children inherit)

    env = dict(os.environ)
    print(f"data {data}; precision {args.precision}; OMP_WAIT_POLICY={env.get('OMP_WAIT_POLICY')}, OMP_NUM_THREADS="
          f"{env.get('OMP_NUM_THREADS', '(torch default)')}; logs in {work}", flush=True)  # fmt: skip
    results: dict[str, list[dict]] = {"anchor": [], "imgclf": []}
    for r in range(args.runs):
        order = ["anchor", "imgclf"] if r % 2 == 0 else ["imgclf", "anchor"]
        for who in order:
            if who == "anchor" and args.skip_anchor:
                continue
            run = run_anchor if who == "anchor" else run_imgclf
            out = run(data, args.seed + r, args.epochs, env, work / f"{who}-{r}.log", args.precision)
            results[who].append(out)
            print(f"run {r} {who}: {json.dumps(out)}", flush=True)
    report(results)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


def report(results: dict[str, list[dict]]) -> None:
    for who, runs in results.items():
        for i, r in enumerate(runs):
            points = "  ".join(f"{p['train_s']:.0f}s:{100 * p['acc']:.1f}" for p in r["curve"])
            print(f"{who} run {i} curve (training s: test % without TTA): {points}")
    anchors, ours = results["anchor"], results["imgclf"]
    if not ours:
        return
    med = statistics.median
    acc = {k: med(r["acc"][k] for r in ours) for k in ("none", "flip", "flip+shift")}
    train_s, setup_s = med(r["train_s"] for r in ours), med(r["setup_s"] for r in ours)
    print(f"imgclf: acc {acc['none']:.4f} none / {acc['flip']:.4f} flip / {acc['flip+shift']:.4f} flip+shift; "
          f"train_s {train_s:.0f}, setup_s {setup_s:.0f}")
    if not anchors:
        return
    target = med(a["acc"]["tta"] for a in anchors)
    print(f"anchor: acc {target:.4f} with its TTA ({med(a['acc']['none'] for a in anchors):.4f} without); train_s "
          f"{med(a['train_s'] for a in anchors):.0f}, pack_s {med(a['pack_s'] for a in anchors):.0f}")
    best = med(max(r["acc"]["flip"], r["acc"]["flip+shift"]) for r in ours)
    anchor_s = med(a["train_s"] for a in anchors)
    verdict = "beats" if best >= target and train_s < anchor_s else "does NOT beat"
    print(f"imgclf {verdict} the anchor: {best:.4f} with TTA in {train_s:.0f} s of training "
          f"({med(r['setup_s'] + r['train_s'] for r in ours):.0f} s from the JPEG folder) vs {target:.4f} in "
          f"{anchor_s:.0f} s ({med(a['pack_s'] + a['train_s'] for a in anchors):.0f} s)")
    for name, runs in (("anchor", anchors), ("imgclf", ours)):
        reach = [time_to(r["curve"], 0.94) for r in runs]
        print(f"{name}: time to 94% without TTA: " + ", ".join("not reached" if t is None else f"{t:.0f} s"
                                                             for t in reach))  # fmt: skip


if __name__ == "__main__":
    main()
