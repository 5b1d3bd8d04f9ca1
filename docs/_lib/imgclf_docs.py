"""Helpers for the executed tutorials: shared datasets, seeded subsets, trained models shared across pages, the CLI.

Every tutorial page starts with ``import imgclf_docs as d`` (the docs hook puts this folder on ``sys.path``).

- ``d.dataset("mnist")`` extracts ``../shared/datasets/mnist.tar.gz`` once into ``~/.cache/imgclf/datasets``
  (keyed by the archive's sha256, as the tests do) and returns the dataset folder.
- ``d.subset("mnist", train=300, test=100)`` writes a seeded CSV manifest (``path,label,split``) of a small subset.
- ``d.train(data, model="lenet5", epochs=3)`` trains once per build: the run is cached under a key made of its
  arguments, so every page that asks for the same model gets the same run directory.
- ``d.imgclf("evaluate", bundle, data, "--json")`` runs the CLI (in this process) and returns its output (parsed
  JSON with ``json=True``); a failure raises with the command and the end of its output, which fails the build.
- ``d.figure(png_or_matplotlib_figure, "caption")`` saves the PNG beside the page in the built site and prints the
  ``<figure>`` HTML for it.

Trained models and subsets live in one cache folder per build (a temporary folder, removed at exit), so results
are recomputed on every build; set ``IMGCLF_DOCS_CACHE=DIR`` to keep them between builds while writing a page.
"""

from __future__ import annotations

import atexit
import csv
import hashlib
import html
import json as _json
import os
import random
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
SHARED = Path(os.environ.get("IMGCLF_SHARED_DATASETS", ROOT.parent / "shared" / "datasets"))
DATASET_CACHE = Path(os.environ.get("IMGCLF_TEST_CACHE", Path.home() / ".cache" / "imgclf" / "datasets"))
SPLITS = {  # archive folder -> split used in the tutorials' manifests
    "mnist": {"train": "train", "test": "test"},
    "cifar10": {"train": "train", "test": "test"},
    "hymenoptera": {"train": "train", "val": "test"},  # its val/ is the only held-out set: our test split
}
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg"}

# Filled by the docs hook before each page is rendered: where the page's figures go.
PAGE: dict[str, Any] = {"src": "", "out_dir": None, "figures": 0}
TIMINGS: dict[str, float] = {}
# The CLI runs in this process (see imgclf()): its consoles read these when imgclf.cli is first imported.
os.environ.update(COLUMNS="120", NO_COLOR="1", HF_HUB_OFFLINE="1", MPLBACKEND="Agg")

_cache: Path | None = None


def cache() -> Path:
    """This build's cache folder (``IMGCLF_DOCS_CACHE`` when set, else a temporary folder removed at exit)."""
    global _cache
    if _cache is None:
        given = os.environ.get("IMGCLF_DOCS_CACHE")
        if given:
            _cache = Path(given)
            _cache.mkdir(parents=True, exist_ok=True)
        else:
            _cache = Path(tempfile.mkdtemp(prefix="imgclf-docs-"))
            atexit.register(shutil.rmtree, _cache, True)
    return _cache


def _key(*parts: Any) -> str:
    return hashlib.sha256(_json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:12]


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def dataset(name: str) -> Path:
    """Extract ``shared/datasets/<name>.tar.gz`` once into the dataset cache; return the dataset folder."""
    archive = SHARED / f"{name}.tar.gz"
    if not archive.is_file():
        raise FileNotFoundError(f"{archive} is missing: the tutorials need the shared datasets beside the repository "
                                "(or IMGCLF_SHARED_DATASETS pointing at them)")
    target = DATASET_CACHE / f"{name}-{_sha256(archive)[:16]}"
    if not (target / ".complete").exists():
        tmp = target.with_suffix(".partial")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        with tarfile.open(archive) as tar:
            tar.extractall(tmp, filter="data")
        shutil.rmtree(target, ignore_errors=True)
        tmp.rename(target)
        (target / ".complete").touch()
    return target / name


def images(name: str, split: str, label: str) -> list[Path]:
    """Sorted image files of one class in one split of the archive (``split`` as named in the archive)."""
    folder = dataset(name) / split / label
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


def classes(name: str) -> list[str]:
    """Class names of a shared dataset."""
    return sorted(p.name for p in (dataset(name) / "train").iterdir() if p.is_dir())


def subset(name: str, *, train: int = 200, val: int = 0, test: int = 100, labels: list[str] | None = None,
           seed: int = 0, imbalance: dict[str, int] | None = None, rename: dict[str, str] | None = None) -> Path:
    """A seeded subset of a shared dataset as a CSV manifest ``path,label,split``; return its path.

    ``train``/``val``/``test`` are images per class (``val`` taken from the archive's training images; 0 lets
    imgclf carve its validation split). ``imbalance`` caps the training images of some classes, ``rename`` maps
    class folder names to labels.
    """
    key = _key("subset", name, train, val, test, labels, seed, imbalance, rename)
    path = cache() / "data" / f"{name}-{key}.csv"
    if path.exists():
        return path
    rng = random.Random(seed)
    rows = []
    for label in labels or classes(name):
        shown = (rename or {}).get(label, label)
        pool = images(name, "train", label)
        rng.shuffle(pool)
        n_train = min(train, (imbalance or {}).get(label, train))
        rows += [(p, shown, "train") for p in pool[:n_train]]
        rows += [(p, shown, "val") for p in pool[n_train:n_train + val]]
        held = [s for s, role in SPLITS[name].items() if role == "test"][0]
        pool = images(name, held, label)
        rng.shuffle(pool)
        rows += [(p, shown, "test") for p in pool[:test]]
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "label", "split"])
        w.writerows((str(p), label, split) for p, label, split in rows)
    return path


def folder(name: str, files: list[Path]) -> Path:
    """A folder of symlinks to ``files`` (for verbs that take a folder of images); return it."""
    out = cache() / "folders" / f"{name}-{_key('folder', [str(f) for f in files])}"
    if not out.exists():
        tmp = out.with_suffix(".partial")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        for i, f in enumerate(files):
            (tmp / f"{i:05d}-{f.parent.name}{f.suffix}").symlink_to(f)
        tmp.rename(out)
    return out


def imgclf(*args: Any, json: bool = False) -> Any:
    """Run ``imgclf ARGS`` in this process; return its stdout (parsed when ``json``); raise on a non-zero exit.

    In-process rather than a subprocess per call: each ``python -m imgclf`` pays several seconds of imports
    (torch, torchvision, timm), which over a whole build's hundred calls was a third of its time. The command
    runs exactly as the console script would (same Typer app, its own exit code), from the cache's work folder.
    """
    import contextlib
    import io

    import click
    import typer

    from imgclf.cli import app

    work = cache() / "work"
    work.mkdir(parents=True, exist_ok=True)
    out, err = io.StringIO(), io.StringIO()
    here = os.getcwd()
    start = time.perf_counter()
    try:
        os.chdir(work)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = typer.main.get_command(app).main(args=list(map(str, args)), prog_name="imgclf",
                                                        standalone_mode=False)
            except click.exceptions.Exit as e:
                code = e.exit_code
            except click.ClickException as e:
                e.show()
                code = e.exit_code
            except SystemExit as e:
                code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    finally:
        os.chdir(here)
        TIMINGS[PAGE["src"]] = TIMINGS.get(PAGE["src"], 0.0) + time.perf_counter() - start
    if code not in (0, None):
        tail = "\n".join((out.getvalue() + err.getvalue()).strip().splitlines()[-30:])
        raise RuntimeError(f"`imgclf {' '.join(map(str, args))}` exited with {code}:\n{tail}")
    if json:
        return _json.loads(out.getvalue())
    return out.getvalue()


def train(data: str | Path, *, model: str, epochs: int, seed: int = 0, sets: dict[str, Any] | None = None,
          extra: tuple[str, ...] = ()) -> Path:
    """Train once per build with ``imgclf train`` (cached by its arguments); return the run directory."""
    args = ["train", str(data), "--model", model, "--epochs", str(epochs), "--seed", str(seed)]
    # The data page shows the audit; repeating its near-duplicate search before every run would cost more than
    # the training itself on these small subsets (a page may turn it back on).
    for k, v in sorted({"data.near_duplicates": "false", **(sets or {})}.items()):
        args += ["--set", f"{k}={v}"]
    args += list(extra)
    key = _key(args)
    run_dir = cache() / "runs" / f"{model.replace('/', '_')}-{key}"
    if not (run_dir / "bundle" / "imgclf.json").exists():
        shutil.rmtree(run_dir, ignore_errors=True)
        imgclf(*args, "--out", run_dir.parent, "--name", run_dir.name)
    return run_dir


def metrics(run_dir: Path) -> list[dict[str, Any]]:
    """The per-epoch rows of ``RUN_DIR/metrics.jsonl``."""
    return [_json.loads(line) for line in (Path(run_dir) / "metrics.jsonl").read_text().splitlines() if line.strip()]


def figure(fig: Any, caption: str, *, name: str | None = None, width: int | None = None) -> str:
    """Save a matplotlib figure (or copy a PNG file) beside the page in the built site; return its HTML to print.

    Printed output of an executed block becomes part of the page: ``print(d.figure(fig, "what it shows"))``.
    """
    PAGE["figures"] += 1
    name = name or f"figure-{PAGE['figures']}.png"
    out_dir = PAGE["out_dir"] or cache() / "figures"
    out = Path(out_dir) / name
    out.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(fig, (str, Path)):
        shutil.copyfile(fig, out)
    else:
        fig.savefig(out, dpi=110, bbox_inches="tight")
        import matplotlib.pyplot as plt

        plt.close(fig)
    style = f' style="max-width:{width}px"' if width else ""
    alt = html.escape(caption, quote=True)
    return f'<figure><img src="{name}" alt="{alt}"{style}><figcaption>{html.escape(caption)}</figcaption></figure>\n'


def table(rows: list[dict[str, Any]], *, digits: int = 3) -> str:
    """A list of dicts as a Markdown table (to print)."""
    if not rows:
        return "*(no rows)*\n"
    cols = list(rows[0])

    def cell(v: Any) -> str:
        if isinstance(v, float):
            return f"{v:.{digits}f}"
        return str(v).replace("|", "\\|")

    lines = ["| " + " | ".join(cols) + " |", "| " + " | ".join("---" for _ in cols) + " |"]
    lines += ["| " + " | ".join(cell(r.get(c, "")) for c in cols) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def text(output: str, lines: int | None = None) -> str:
    """CLI output as a Markdown code block (its last ``lines`` lines when given), to print."""
    body = output.rstrip("\n").splitlines()
    if lines is not None:
        body = body[-lines:]
    return "```text\n" + "\n".join(body) + "\n```\n"


def cli_reference() -> str:
    """The CLI reference as Markdown, generated from the Typer app (one section per verb), to print."""
    import typer

    from imgclf.cli import app

    root = typer.main.get_command(app)
    commands = root.commands  # type: ignore[attr-defined]
    parts = [_help_markdown(root.help or ""), ""]
    parts.append(table([{"verb": f"[`{name}`](#imgclf-{name})", "what it does": _first_line(commands[name].help or "")}
                        for name in sorted(commands)]))
    for name in sorted(commands):
        cmd = commands[name]
        params = [p for p in cmd.params if p.name != "help"]
        args = [p for p in params if p.param_type_name == "argument"]
        opts = [p for p in params if p.param_type_name == "option"]
        usage = " ".join(["[OPTIONS]", *(_arg_usage(p) for p in args)])
        parts += [f"## imgclf {name}\n", f"```text\nimgclf {name} {usage}\n```\n", _help_markdown(cmd.help or "")]
        if args:
            parts += ["", "**Arguments**\n",
                      table([{"name": f"`{p.name.upper()}`", "required": "yes" if p.required else "no",
                              "help": _cell(getattr(p, "help", "") or "")} for p in args])]
        if opts:
            parts += ["", "**Options**\n", table([{"option": ", ".join(f"`{o}`" for o in (*p.opts, *p.secondary_opts)),
                                               "default": _default(p), "help": _cell(p.help or "")} for p in opts])]
    return "\n".join(parts)


def _arg_usage(p: Any) -> str:
    name = p.name.upper() + ("..." if p.nargs == -1 else "")
    return name if p.required else f"[{name}]"


def _first_line(text: str) -> str:
    return text.strip().split("\n\n")[0].replace("\n", " ")


def _cell(text: str) -> str:
    return html.escape(" ".join(text.split()), quote=False).replace("|", "\\|")


def _default(p: Any) -> str:
    if p.is_flag and not p.secondary_opts:
        return ""
    if p.default is None or p.default == [] or callable(p.default):
        return ""
    return f"`{p.default}`"


def _help_markdown(text: str) -> str:
    """A Typer help text (Markdown mode) as page Markdown: example lines become one console block."""
    out: list[str] = []
    for para in text.strip().split("\n\n"):
        lines = [ln.strip() for ln in para.strip().splitlines() if ln.strip()]
        if not lines:
            continue
        if all(ln.startswith(("imgclf ", "curl ", "torchrun ")) for ln in lines):
            if out and out[-1].startswith("```bash\n"):
                out[-1] = out[-1][: -len("\n```")] + "\n" + "\n".join(lines) + "\n```"
            else:
                out.append("```bash\n" + "\n".join(lines) + "\n```")
        else:
            out.append(html.escape(" ".join(lines), quote=False))
    return "\n\n".join(out)


# -- Shared recipes: pages that ask for the same data or model get the same files within one build. ----------------
FAST = {"data.augment": "none", "optim.lr": 0.003, "optim.warmup_epochs": 0, "train.report": "false"}


def mnist() -> Path:
    """MNIST, 200 training and 100 test images per digit (the tutorials' standard small multiclass set)."""
    return subset("mnist", train=200, test=100)


def mnist_lenet() -> Path:
    """LeNet-5 trained 3 epochs on :func:`mnist` (about 95% test accuracy); return the run directory."""
    return train(mnist(), model="lenet5", epochs=3, sets=FAST)


def mnist_second() -> Path:
    """A second, different model on :func:`mnist` (a small VGG), for comparisons and as a distillation teacher."""
    return train(mnist(), model="vgg_small", epochs=3, sets=FAST)


def hymenoptera() -> Path:
    """Ants vs bees: every training photo, the archive's val/ as the test split (imgclf carves its own val)."""
    return subset("hymenoptera", train=1000, test=1000)


def ood_images(n: int = 64) -> Path:
    """A folder of CIFAR-10 test photos: images from outside MNIST's world (for rejection and OOD pages)."""
    files = [f for label in classes("cifar10") for f in images("cifar10", "test", label)[: n // 10 + 1]]
    return folder("cifar10-ood", files[:n])


def bundle_copy(run_dir: Path, name: str) -> Path:
    """A private copy of ``RUN_DIR/bundle`` for verbs that write into a bundle (export, robustness)."""
    out = cache() / "bundles" / f"{name}-{_key(str(run_dir), name)}"
    if not out.exists():
        shutil.copytree(Path(run_dir) / "bundle", out)
    return out


_memo: dict[str, Any] = {}


def robustness(run_dir: Path) -> tuple[dict[str, Any], Path]:
    """``imgclf robustness`` on :func:`mnist` with CIFAR photos as outliers, once per build (shared by three
    pages); returns the JSON report and the bundle copy that now stores the rejection threshold."""
    key = _key("robustness", str(run_dir))
    if key not in _memo:
        bundle = bundle_copy(run_dir, "robust")
        out = cache() / "robustness" / key
        report = imgclf("robustness", bundle, mnist(), "--ood", ood_images(), "--max-images", 128,
                        "--out", out, "--json", json=True)
        _memo[key] = (report, out, bundle)
    return _memo[key][0], _memo[key][2]


def claim(condition: bool, statement: str) -> None:
    """Fail the build when a statement the page makes about its own results stops being true."""
    if not condition:
        raise AssertionError(f"the page says {statement!r}, but this build's results disagree")


def model_and_inputs(bundle: Path, paths: list[Path]) -> tuple[Any, Any]:
    """The bundle's ``torch.nn.Module`` (eval mode) and ``paths`` preprocessed as the bundle says, ``(B, 3, H, W)``.

    For pages that use the tensor-level functions (attributions, sanity checks) on a trained bundle.
    """
    import torch

    import imgclf
    from imgclf.data import build_eval_transform, open_image

    clf = imgclf.load(bundle)
    transform = build_eval_transform(clf.meta_.preprocessing)
    return clf.model_.eval(), torch.stack([transform(open_image(p)) for p in paths])


class Server:
    """``imgclf serve BUNDLE ARGS`` on a free port of 127.0.0.1, for a ``with`` block; stopped with SIGTERM after."""

    def __init__(self, bundle: Path, *args: Any, ready_timeout: float = 180) -> None:
        import socket

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.cmd = [sys.executable, "-m", "imgclf", "serve", str(bundle), "--port", str(self.port), *map(str, args)]
        self.ready_timeout = ready_timeout
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Server:
        import urllib.request

        log = cache() / "work" / f"serve-{self.port}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(log, "wb")
        env = {**os.environ, "HF_HUB_OFFLINE": "1"}
        self.proc = subprocess.Popen(self.cmd, stdout=self._log, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + self.ready_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                tail = log.read_text()[-3000:]
                raise RuntimeError(f"`{' '.join(self.cmd)}` exited with {self.proc.returncode}:\n{tail}")
            try:
                with urllib.request.urlopen(self.url + "/readyz", timeout=2) as r:
                    if r.status == 200:
                        return self
            except OSError:
                pass
            time.sleep(0.5)
        self.__exit__()
        raise RuntimeError(f"`{' '.join(self.cmd)}` was not ready after {self.ready_timeout:.0f} s")

    def __exit__(self, *exc: Any) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()

    def get(self, path: str) -> Any:
        """GET ``path``; parsed JSON, or text for other content types."""
        import urllib.request

        with urllib.request.urlopen(self.url + path, timeout=60) as r:
            body = r.read().decode()
            return _json.loads(body) if "json" in r.headers.get("content-type", "") else body

    def predict(self, paths: list[Path] | list[bytes], batch: int = 16) -> list[dict[str, Any]]:
        """POST images (files or encoded bytes) to ``/v1/predict`` as base64 JSON, ``batch`` per request."""
        import base64
        import urllib.request

        out: list[dict[str, Any]] = []
        for i in range(0, len(paths), batch):
            chunk = [p if isinstance(p, bytes) else Path(p).read_bytes() for p in paths[i:i + batch]]
            body = _json.dumps({"images": [base64.b64encode(b).decode() for b in chunk]}).encode()
            req = urllib.request.Request(self.url + "/v1/predict", data=body, method="POST",
                                         headers={"content-type": "application/json"})
            with urllib.request.urlopen(req, timeout=120) as r:
                out += _json.loads(r.read())["predictions"]
        return out


def screenshot(url: str, path: Path, *, width: int = 1100, height: int = 760, setup: Any = None) -> bool:
    """A PNG of ``url`` taken by the system's Chromium through Playwright; False when either is missing."""
    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(chromium).exists():
        return False
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        return False
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": width, "height": height})
            page.goto(url, wait_until="networkidle")
            if setup is not None:
                setup(page)
            page.screenshot(path=str(path))
        finally:
            browser.close()
    return True
