"""imgclf's defaults vs the hand-written loop (../shared/benchmarks/plain_baseline.py), side by side, in turns.

    .venv/bin/python benchmarks/vs_plain.py [--sets mnist,cifar10,hymenoptera] [--repeats 3] [--epochs 5]
        [--train-per-class 300] [--test-per-class 200] [--json FILE] [--imgclf-set KEY=VALUE ...]

For each shared dataset it builds a small subset (symlinks, seeded): MNIST and CIFAR-10 with ``--train-per-class``
training and ``--test-per-class`` test images per class (3,000 / 2,000 by default), ants/bees with its full train and
val folders (val used as the test set). Then, ``--repeats`` times, it runs both in fresh processes, one after the
other (the order alternating between repeats), the same way: same interpreter, same environment
(``OMP_WAIT_POLICY=PASSIVE`` for both, as ``import imgclf`` sets it), same thread count, same seed:

- plain: ``plain_baseline.py ROOT SIZE EPOCHS MODEL [rgb]`` (grayscale for MNIST, ``rgb`` for the photos), its
  ``torch.manual_seed(0)`` replaced by the repeat's seed;
- imgclf: ``python -m imgclf train ROOT --epochs E --img-size SIZE --model MODEL --seed S``: all defaults, the
  report and calibration included.

Both are scored on the same test images (plain: its accuracy after the last epoch; imgclf: the bundle's test
accuracy). It prints, per dataset, the median accuracy of each with its range over repeats, and the median of
the per-repeat time ratios imgclf / plain (wall clock of the whole process, and CPU seconds) with their range.
Targets: imgclf's accuracy >= plain's on every set, time ratio <= 1.2x.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import tarfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
CACHE = Path(os.environ.get("IMGCLF_TEST_CACHE", Path.home() / ".cache" / "imgclf" / "datasets"))
SETS = {  # name: (image size, rgb for the plain loop)
    "mnist": (32, False),
    "cifar10": (32, True),
    "hymenoptera": (128, True),
}
PLAIN_WITH_SEED = (
    "import runpy, sys, torch\n"
    "seed = int(sys.argv[1]); sys.argv = sys.argv[2:]  # [script, its arguments]\n"
    "manual_seed = torch.manual_seed\n"
    "torch.manual_seed = lambda _: manual_seed(seed)  # the script seeds with 0; every repeat gets its own seed\n"
    "runpy.run_path(sys.argv[0], run_name='__main__')\n"
)


def shared_dataset(name: str, datasets: Path) -> Path:
    """``datasets/<name>.tar.gz`` extracted once into the cache (as tests/conftest.py does); the folder inside."""
    archive = datasets / f"{name}.tar.gz"
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()[:16]
    target = CACHE / f"{name}-{digest}"
    if not (target / ".complete").exists():
        tmp = target.with_suffix(".partial")
        tmp.mkdir(parents=True, exist_ok=True)
        with tarfile.open(archive) as tar:
            tar.extractall(tmp, filter="data")
        tmp.rename(target)
        (target / ".complete").touch()
    return target / name


def make_subset(src: Path, dst: Path, train_per_class: int | None, test_per_class: int | None) -> Path:
    """``dst/{train,test}/<class>/`` symlinks to a seeded sample of ``src``'s train and test (or val) images."""
    if (dst / ".complete").exists():
        return dst
    test_dir = "test" if (src / "test").is_dir() else "val"
    for split, per_class, source in (("train", train_per_class, "train"), ("test", test_per_class, test_dir)):
        for class_dir in sorted(p for p in (src / source).iterdir() if p.is_dir()):
            files = sorted(class_dir.iterdir())
            random.Random(0).shuffle(files)
            out = dst / split / class_dir.name
            out.mkdir(parents=True, exist_ok=True)
            for f in files[:per_class] if per_class else files:
                (out / f.name).symlink_to(f)
    (dst / ".complete").touch()
    return dst


def timed(cmd: list[str], env: dict[str, str], log: Path) -> tuple[float, float, int]:
    """Run ``cmd``, output to ``log``; (wall seconds, CPU seconds of the process and its children, return code)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    with open(log, "w") as out:
        rc = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=ROOT).returncode
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, rc


def run_plain(root: Path, size: int, rgb: bool, args: argparse.Namespace, seed: int, env: dict, log: Path) -> dict:
    script = SHARED / "benchmarks" / "plain_baseline.py"
    cmd = [sys.executable, "-c", PLAIN_WITH_SEED, str(seed), str(script), str(root), str(size), str(args.epochs),
           args.model, *(["rgb"] if rgb else [])]  # fmt: skip
    wall, cpu, rc = timed(cmd, env, log)
    if rc != 0:
        raise SystemExit(f"plain loop failed (exit {rc}); see {log}")
    last = log.read_text().strip().splitlines()[-1].split()
    return {"acc": float(last[1]), "wall_s": wall, "cpu_s": cpu}


def run_imgclf(root: Path, size: int, args: argparse.Namespace, seed: int, env: dict, log: Path, out: Path) -> dict:
    name = f"{root.name}-s{seed}-{time.strftime('%H%M%S')}"
    sets = [x for s in args.imgclf_set for x in ("--set", s)]
    cmd = [sys.executable, "-m", "imgclf", "train", str(root), "--epochs", str(args.epochs), "--img-size", str(size),
           "--model", args.model, "--seed", str(seed), "--out", str(out), "--name", name, *sets]  # fmt: skip
    wall, cpu, rc = timed(cmd, env, log)
    if rc != 0:
        raise SystemExit(f"imgclf train failed (exit {rc}); see {log}")
    meta = json.loads((out / name / "bundle" / "imgclf.json").read_text())
    resolved = (out / name / "config.yaml").read_text()
    return {"acc": meta["metrics"]["test"]["acc"], "wall_s": wall, "cpu_s": cpu, "run_dir": str(out / name),
            "resolved": {k: v for k, v in _pick(resolved).items()}}  # fmt: skip


def _pick(config_yaml: str) -> dict[str, str]:
    """The auto-resolved keys of a run's config.yaml, for the printout."""
    keys = ("batch_size", "augment", "lr", "warmup_epochs", "ema", "ema_decay")
    found = {}
    for line in config_yaml.splitlines():
        key, _, value = line.strip().partition(": ")
        if key in keys:
            found[key] = value
    return found


def spread(values: list[float], fmt: str = "{:.4f}") -> str:
    med = statistics.median(values)
    return f"{fmt.format(med)} [{fmt.format(min(values))}-{fmt.format(max(values))}]"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sets", default="mnist,cifar10,hymenoptera")
    ap.add_argument("--repeats", type=int, default=3, help="runs of each loop per set, seeds 0..N-1, in turns")
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--model", default="resnet18")
    ap.add_argument("--train-per-class", type=int, default=300, help="MNIST / CIFAR-10 (ants/bees: all)")
    ap.add_argument("--test-per-class", type=int, default=200, help="MNIST / CIFAR-10 (ants/bees: all of val)")
    ap.add_argument("--datasets", type=Path, default=SHARED / "datasets", help="folder of the shared archives")
    ap.add_argument("--work", type=Path, default=Path("/tmp/imgclf-vs-plain"), help="subsets, logs and runs")
    ap.add_argument("--imgclf-set", action="append", default=[], help="extra --set for imgclf (default: none)")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE", "HF_HUB_OFFLINE": "1",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT / "src"), os.environ.get("PYTHONPATH")]))}  # fmt: skip
    logs = args.work / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    roots = {}
    for name in args.sets.split(","):
        small = name != "hymenoptera"
        src = shared_dataset(name, args.datasets)
        roots[name] = make_subset(src, args.work / "data" / (f"{name}-{args.train_per_class}" if small else name),
                                  args.train_per_class if small else None, args.test_per_class if small else None)
    results: dict[str, dict[str, list[dict]]] = {n: {"plain": [], "imgclf": []} for n in roots}
    load_before = os.getloadavg()[0]
    for seed in range(args.repeats):
        for name, root in roots.items():
            size, rgb = SETS[name]
            order = ("plain", "imgclf") if seed % 2 == 0 else ("imgclf", "plain")
            for kind in order:
                log = logs / f"{name}-{kind}-s{seed}.log"
                if kind == "plain":
                    r = run_plain(root, size, rgb, args, seed, env, log)
                else:
                    r = run_imgclf(root, size, args, seed, env, log, args.work / "runs")
                results[name][kind].append(r)
                print(f"{name:12s} seed {seed} {kind:7s} acc {r['acc']:.4f}  wall {r['wall_s']:6.1f} s  "
                      f"cpu {r['cpu_s']:6.1f} s  {r.get('resolved', '')}", flush=True)  # fmt: skip
    load_after = os.getloadavg()[0]
    print(f"\n{args.model}, {args.epochs} epochs, {args.repeats} repeats (median [min-max]); {os.cpu_count()} cores, "
          f"1-min load {load_before:.1f} before, {load_after:.1f} after")  # fmt: skip
    print(f"{'set':12s} {'plain acc':>24s} {'imgclf acc':>24s} {'acc diff':>8s} {'wall ratio':>20s} "
          f"{'cpu ratio':>20s}  target")  # fmt: skip
    summary = {}
    for name, r in results.items():
        p_acc, i_acc = [x["acc"] for x in r["plain"]], [x["acc"] for x in r["imgclf"]]
        wall = [i["wall_s"] / p["wall_s"] for p, i in zip(r["plain"], r["imgclf"], strict=True)]
        cpu = [i["cpu_s"] / p["cpu_s"] for p, i in zip(r["plain"], r["imgclf"], strict=True)]
        diff = statistics.median(i_acc) - statistics.median(p_acc)
        met = diff >= 0 and statistics.median(wall) <= 1.2
        print(f"{name:12s} {spread(p_acc):>24s} {spread(i_acc):>24s} {diff:+8.4f} {spread(wall, '{:.2f}'):>20s} "
              f"{spread(cpu, '{:.2f}'):>20s}  {'met' if met else 'NOT met'}")  # fmt: skip
        summary[name] = {"plain": r["plain"], "imgclf": r["imgclf"], "acc_diff": diff, "wall_ratio": wall,
                         "cpu_ratio": cpu, "met": met}  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "load_before": load_before,
                                         "load_after": load_after, "results": summary}, indent=2))  # fmt: skip


if __name__ == "__main__":
    main()
