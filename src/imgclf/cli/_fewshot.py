from __future__ import annotations

import json
from pathlib import Path

import typer

from imgclf.adapt import DEFAULT_GUARD, DEFAULT_SCALE, DEFAULT_SHRINKAGE, episodes, fewshot_bundle
from imgclf.bundle import load_bundle
from imgclf.cli._common import console, friendly_errors


@friendly_errors
def fewshot(
    model: Path = typer.Argument(..., help="A bundle whose backbone embeds the images (RUN_DIR/bundle)."),
    support: str = typer.Argument(..., help="Support images: SUPPORT/CLASS/IMAGE files (1-5 per class is "
                                  "enough) or a CSV."),
    out: Path = typer.Option(None, "--out", help="Write the prototype bundle here."),
    extend: Path = typer.Option(None, "--extend", help="Add SUPPORT's classes to this bundle's (same backbone)."),
    n_episodes: int = typer.Option(0, "--episodes", help="Instead of a bundle: evaluate N random episodes."),
    ways: int = typer.Option(5, "--ways", help="Classes per episode."),
    shots: int = typer.Option(5, "--shots", help="Support images per class per episode."),
    queries: int = typer.Option(15, "--queries", help="Query images per class per episode."),
    scale: float = typer.Option(DEFAULT_SCALE, "--scale", help="Logit = scale x cosine similarity."),
    center: bool = typer.Option(False, "--center/--no-center", help="Centre embeddings on the support mean before "
                                "normalising (compare both with --episodes on your backbone)."),
    base: str = typer.Option(None, "--base", help="The backbone's training images (class folders or a CSV; loose "
                             "files for an `imgclf pretrain` backbone; up to 5000 are read): centre and whiten "
                             "embeddings by their within-class spread. Often several points better; compare with "
                             "--episodes."),
    shrinkage: float = typer.Option(DEFAULT_SHRINKAGE, "--shrinkage", help="--base: shrink the within-class "
                                    "covariance this far towards the identity (0: none, 1: centring only)."),
    guard: float = typer.Option(DEFAULT_GUARD, "--guard", help="--extend: lower each new class's bias by this "
                                "fraction of its support images' smallest lead over the old classes (0: none)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the episode draw."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Few-shot classification: a prototype head (normalised mean embedding per class) as an ordinary bundle,
    or episodic evaluation of a backbone with a 95% confidence interval.

    Examples:

        imgclf fewshot runs/x/bundle support/ --out runs/fewshot

        imgclf fewshot runs/x/bundle support/ --base data/train --out runs/fewshot   # whitened by base classes

        imgclf fewshot runs/x/bundle new_class/ --extend runs/fewshot --out runs/fewshot2

        imgclf fewshot runs/x/bundle labelled/ --episodes 500 --ways 5 --shots 1
    """
    bundle = load_bundle(model)
    if n_episodes:
        res = episodes(bundle, support, n_episodes=n_episodes, ways=ways, shots=shots, queries=queries, seed=seed,
                       center=center, base=base, shrinkage=shrinkage)
        if as_json:
            print(json.dumps(res.to_dict(), indent=2))
        else:
            console.print(f"{res.ways}-way {res.shots}-shot accuracy over {res.episodes} episodes: "
                          f"{res.accuracy:.2%} (95% CI {res.ci_low:.2%} – {res.ci_high:.2%})")  # fmt: skip
            _tip(bundle.meta.data, base is not None or center)
        return
    if out is None:
        raise typer.BadParameter("give --out DIR (a bundle) or --episodes N (an evaluation)")
    res = fewshot_bundle(bundle, support, out, extend=load_bundle(extend) if extend else None, scale=scale,
                         center=center, guard=guard, base=base, shrinkage=shrinkage)
    if as_json:
        print(json.dumps(res.to_dict(), indent=2))
    else:
        shots_txt = ", ".join(f"{c} {n}" for c, n in res.shots.items())
        console.print(f"wrote {res.bundle.path}: {len(res.classes)} classes (support images: {shots_txt})")
        _tip(bundle.meta.data, base is not None or center or extend is not None)


def _tip(data: dict, mapped: bool) -> None:
    """Point at --base when the backbone's training data is still where it was read from."""
    source = data.get("manifest") or data.get("root")
    if not mapped and source and Path(source).exists() and data.get("kind") != "support":
        console.print(f"tip: whitening by the backbone's own training images often helps (MNIST: +4 to +11 points): "
                      f"add --base {source} (compare with --episodes)", soft_wrap=True)  # fmt: skip
