#!/usr/bin/env bash
# The GPU path, checked where a GPU is available (never required by CI):
#   1. the CUDA tests (pytest mark `gpu`: AMP fp16/bf16, channels-last, torch.compile, DDP over NCCL on the devices
#      present; the DDP test needs 2 GPUs and says so when skipped);
#   2. a short speed run: imgclf train on CUDA (bf16 + channels-last, 3 epochs) on a CIFAR-10 subset when the shared
#      archive is beside the repository (else generated images), printing training images/s per epoch;
#   3. the speed recipe, when this imgclf has one (`imgclf train --help` lists --recipe): a short run of $RECIPE.
# Usage: benchmarks/gpu_check.sh            (PYTHON=path/to/python to choose the interpreter; RECIPE=name)
# Without CUDA it prints a message and exits 0.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-}
if [ -z "$PY" ]; then
  if [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY=python3; fi
fi
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" HF_HUB_OFFLINE=1 OMP_WAIT_POLICY=PASSIVE
RECIPE=${RECIPE:-cifar-speed}

if ! "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
  echo "gpu_check: no CUDA device visible to $PY (torch.cuda.is_available() is False); nothing to check here."
  exit 0
fi
"$PY" - <<'EOF'
import torch
names = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
print(f"gpu_check: torch {torch.__version__}, CUDA {torch.version.cuda}, {len(names)} device(s): {names}; "
      f"bf16: {torch.cuda.is_bf16_supported()}")
EOF

echo "== 1. CUDA tests (pytest -m gpu)"
status=0
"$PY" -m pytest -q -rs -m gpu tests -p no:cacheprovider || status=$?

echo "== 2. speed run (imgclf train on CUDA, bf16 + channels-last)"
export GPU_CHECK_WORK; GPU_CHECK_WORK=$(mktemp -d /tmp/imgclf-gpu-XXXX)
"$PY" - <<'EOF' || status=$?
import json, os, statistics, time
from pathlib import Path
import imgclf
from imgclf.data import make_synthetic_dataset

work = Path(os.environ["GPU_CHECK_WORK"])
archive = Path("..") / "shared" / "datasets" / "cifar10.tar.gz"
if archive.is_file():
    import tarfile
    with tarfile.open(archive) as tar:
        members = [m for m in tar.getmembers() if m.isdir() or "/train/" in m.name or "/test/" in m.name]
        tar.extractall(work, members=members, filter="data")
    data, what = work / "cifar10", "CIFAR-10 (shared JPEGs, 50,000 train)"
else:
    data = make_synthetic_dataset(work / "imgs", per_class=2000, size=32, layout="split")
    what = "generated images (6,000 train)"
(work / "data_path").write_text(str(data))
start = time.perf_counter()
clf = imgclf.fit(str(data), model="resnet18", epochs=3, img_size=32, batch_size=256, out=str(work / "runs"),
                 name="speed", sets=["train.amp=bf16", "train.channels_last=true", "train.report=false",
                                     "data.workers=" + str(min(8, os.cpu_count() or 1))])
lines = [json.loads(x) for x in (work / "runs" / "speed" / "metrics.jsonl").read_text().splitlines()]
rates = [x["images_per_s"] for x in lines]
print(f"speed run: resnet18 @ 32 px, batch 256, bf16 + channels-last on {what}")
print("  images/s per epoch: " + ", ".join(f"{r:.0f}" for r in rates)
      + f"; median after the first: {statistics.median(rates[1:]):.0f}")
print(f"  wall {time.perf_counter() - start:.0f} s; metrics: {clf.result_.metrics.get('test', clf.result_.metrics.get('val'))}")
EOF

echo "== 3. speed recipe"
if "$PY" -m imgclf train --help 2>/dev/null | grep -q -- "--recipe"; then
  data=$(cat "$GPU_CHECK_WORK/data_path" 2>/dev/null || true)
  if [ -n "$data" ]; then
    "$PY" -m imgclf train "$data" --recipe "$RECIPE" --set train.device=cuda --out "$GPU_CHECK_WORK/recipe" \
      || status=$?
    grep -h images_per_s "$GPU_CHECK_WORK"/recipe/*/metrics.jsonl 2>/dev/null | tail -3 || true
  else
    echo "no data from step 2; recipe skipped"
  fi
else
  echo "this imgclf has no --recipe yet; skipped"
fi
echo "gpu_check: done (exit $status)"
exit $status
