"""A tiny open_clip model trained contrastively on captioned real MNIST digits, saved the way users get CLIP
models offline: a folder with ``open_clip_config.json`` (``model_cfg`` + ``preprocess_cfg``) and
``open_clip_model.safetensors``. Tests then run the exact user path (``imgclf zeroshot FOLDER``) without a network.

Captions are drawn from many generated templates (a prefix phrase, the digit's name, a suffix phrase) so the text
tower learns to read the digit's name whatever surrounds it. HELD_OUT_TEMPLATES are kept for the zero-shot test:
no caption uses them, nor any of their words that are not also in TRAIN_WORDS' everyday core ("a", "of", "the",
"number"): "scan", "this", "is", "black", "and", "white" never occur in training. The loss is CLIP's symmetric
cross-entropy with soft targets (captions of the same digit in a batch count as matches).

>>> # folder = train_tiny_clip(mnist_dir, tmp_path_factory.mktemp("clip"))
"""

from __future__ import annotations

import itertools
import json
import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image

DIGITS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
PREFIXES = ("", "a", "the", "one", "my", "an image of a", "a photo of the", "a picture of a", "a drawing of the",
            "a handwritten", "a sketch of a", "a small", "a large", "a blurry", "a thin", "a bold", "a neat",
            "a messy", "an old", "a written", "a printed", "the digit", "the number", "a digit", "a numeral",
            "here we have a", "look at the", "we see a", "there was a", "i wrote a", "someone drew a", "a pencil",
            "an ink", "a grey", "a centered", "a tilted", "a photo of the digit", "a picture of the number",
            "digit:", "label:", "class", "an example of a", "a sample of the", "a crop of a",
            "a close up of a")  # fmt: skip
SUFFIXES = ("", ".", " digit.", " on paper.", " in ink.", " written by hand.", " on a page.", " from a form.",
            " drawn quickly.", " character.", "!", " glyph.")  # fmt: skip
#: every prefix x suffix pair: 45 x 12 = 540 caption templates
TRAIN_TEMPLATES = tuple(f"{p} {{}}{s}".strip() for p, s in itertools.product(PREFIXES, SUFFIXES))
HELD_OUT_TEMPLATES = ("a scan of the number {}.", "this is a {}.", "a black and white {}.")
MEAN, STD = (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)
#: open_clip's ModifiedResNet image tower (a list of ``layers`` selects it: one bottleneck per stage, stem width 16,
#: attention pooling; 32 px input, a multiple of 32): a small conv tower learns digits far faster than a ViT
MODEL_CFG = {
    "embed_dim": 64,
    "vision_cfg": {"image_size": 32, "layers": [1, 1, 1, 1], "width": 16, "head_width": 32},
    "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2, "mlp_ratio": 2.0},
}
PREPROCESS_CFG = {"size": 32, "mean": list(MEAN), "std": list(STD), "interpolation": "bilinear",
                  "resize_mode": "shortest"}  # fmt: skip


def _held_out_words() -> set[str]:
    return {w.strip(".") for t in HELD_OUT_TEMPLATES for w in t.split()} - {"a", "of", "the", "number", "{}"}


def _load_digits(split_dir: Path, per_class: int, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    xs, ys = [], []
    for d in range(10):
        files = sorted((split_dir / str(d)).iterdir())
        for f in rng.choice(len(files), size=min(per_class, len(files)), replace=False):
            with Image.open(files[int(f)]) as im:
                xs.append(np.asarray(im.convert("L").resize((32, 32), Image.BILINEAR), np.float32) / 255.0)
            ys.append(d)
    x = (torch.from_numpy(np.stack(xs))[:, None].expand(-1, 3, -1, -1) - 0.5) / 0.5  # (N, 3, 32, 32)
    return x.contiguous(), torch.tensor(ys)


def _shift(x: torch.Tensor, rng: np.random.Generator, pad: int = 2) -> torch.Tensor:
    """Random translation by up to ``pad`` pixels (background -1), one offset per batch: cheap augmentation."""
    dx, dy = (int(v) for v in rng.integers(-pad, pad + 1, size=2))
    return torch.roll(torch.nn.functional.pad(x, (pad,) * 4, value=-1.0), (dy, dx), dims=(2, 3))[
        :, :, pad:-pad, pad:-pad]  # fmt: skip


def train_tiny_clip(mnist_dir: str | os.PathLike, out_dir: str | os.PathLike, *, per_class: int = 500,
                    steps: int = 600, batch: int = 96, lr: float = 2e-3, seed: int = 0,
                    model_cfg: dict | None = None) -> Path:  # fmt: skip
    """Train and save the tiny CLIP into ``out_dir`` (reused when already there with the same settings)."""
    import open_clip
    from safetensors.torch import save_file

    cfg = model_cfg or MODEL_CFG
    assert not (_held_out_words() & {w.strip(".:!") for t in TRAIN_TEMPLATES for w in t.split()})
    out = Path(out_dir)
    params = {"per_class": per_class, "steps": steps, "batch": batch, "lr": lr, "seed": seed, "cfg": cfg,
              "templates": len(TRAIN_TEMPLATES)}  # fmt: skip
    marker = out / ".complete"
    if marker.is_file() and json.loads(marker.read_text()) == params:
        return out
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    x, y = _load_digits(Path(mnist_dir) / "train", per_class, rng)
    model = open_clip.CLIP(**cfg)
    tokenizer = open_clip.SimpleTokenizer(context_length=cfg["text_cfg"]["context_length"])
    captions = tokenizer([t.format(d) for d in DIGITS for t in TRAIN_TEMPLATES])  # (10*T, L), digit-major
    n_t = len(TRAIN_TEMPLATES)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.05)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.1)
    model.train()
    for _ in range(steps):
        idx = torch.from_numpy(rng.choice(len(y), size=batch, replace=False))
        labels = y[idx]
        tok = captions[labels * n_t + torch.from_numpy(rng.integers(0, n_t, size=batch))]
        img, txt, scale = model(_shift(x[idx], rng), tok)  # (B, E) normalised, (B, E), logit scale
        logits = scale * img @ txt.T  # (B, B)
        same = (labels[:, None] == labels[None, :]).float()
        target = same / same.sum(dim=1, keepdim=True)
        loss = (torch.sum(-target * logits.log_softmax(1), 1).mean()
                + torch.sum(-target * logits.log_softmax(0).T, 1).mean()) / 2  # fmt: skip
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
    out.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(out / "open_clip_model.safetensors"))
    (out / "open_clip_config.json").write_text(json.dumps({"model_cfg": cfg, "preprocess_cfg": PREPROCESS_CFG}))
    marker.write_text(json.dumps(params))
    return out
