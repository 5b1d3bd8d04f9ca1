"""Learning from fewer labels on a bundle's backbone: embeddings and neighbours, few-shot prototype heads,
zero-shot CLIP text heads. Every head is written as an ordinary bundle (DESIGN.md section 2).

>>> # from imgclf.adapt import embed_images, fewshot_bundle, episodes, zeroshot_bundle
>>> # fewshot_bundle(load_bundle("runs/x/bundle"), "support/", "runs/fewshot")
"""

from imgclf.adapt._embed import Embeddings, Neighbours, embed_images, load_embeddings, nearest, save_embeddings
from imgclf.adapt._prototype import (
    DEFAULT_GUARD,
    DEFAULT_SCALE,
    DEFAULT_SHRINKAGE,
    EpisodeResult,
    FewShotResult,
    episode_indices,
    episodes,
    fewshot_bundle,
    prototypes,
    whitening,
)
from imgclf.adapt._zeroshot import (
    DEFAULT_TEMPLATES,
    ClipModel,
    check_templates,
    load_clip,
    read_lines,
    text_head,
    zeroshot_bundle,
)
from imgclf.utils import publish

__all__ = [
    "DEFAULT_GUARD",
    "DEFAULT_SCALE",
    "DEFAULT_SHRINKAGE",
    "DEFAULT_TEMPLATES",
    "ClipModel",
    "Embeddings",
    "EpisodeResult",
    "FewShotResult",
    "Neighbours",
    "check_templates",
    "embed_images",
    "episode_indices",
    "episodes",
    "fewshot_bundle",
    "load_clip",
    "load_embeddings",
    "nearest",
    "prototypes",
    "read_lines",
    "save_embeddings",
    "text_head",
    "whitening",
    "zeroshot_bundle",
]

publish(__name__, globals(), __all__)
