from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from imgclf.api import Classifier
from imgclf.cli._common import console, friendly_errors, parse_fraction
from imgclf.config import recipe as recipe_config
from imgclf.workflows import train_repeated


@friendly_errors
def train(
    data: str = typer.Argument(None, help="Image-folder tree, CSV manifest (path,label) or built-in name (digits, "
                               "mnist, fashion-mnist, cifar10, cifar100). Not needed with --resume."),
    model: str = typer.Option(None, "--model", "-m", help="Architecture (see `imgclf models`). Default resnet18."),
    epochs: int = typer.Option(None, "--epochs", "-e", help="Number of epochs (default 10)."),
    batch_size: int = typer.Option(None, "--batch-size", "-b", help="Images per batch and process (default 64, "
                                   "halved down to 16 so that a small dataset gets 16 batches an epoch)."),
    img_size: int = typer.Option(None, "--img-size", help="Input size in pixels (default: the model's, or the "
                                 "images' own size when they are much smaller)."),
    weights: str = typer.Option(None, "--weights", help="'pretrained' (timm/torchvision, needs the network), a "
                                "FILE.safetensors or a RUN_DIR of `imgclf pretrain` (its backbone; --model defaults "
                                "to its architecture) to start from; default random init."),
    freeze: str = typer.Option(None, "--freeze", help="'backbone': train only the new head (a linear probe); "
                               "default 'none' (full fine-tuning, backbone at a 10x lower learning rate)."),
    out: str = typer.Option(None, "--out", help="Parent folder of run directories (default runs/)."),
    name: str = typer.Option(None, "--name", help="Run directory name (default: DATA-MODEL-TIME, e.g. "
                             "flowers-resnet18-20260101-120000)."),
    seed: int = typer.Option(None, "--seed", help="Random seed; the same seed repeats a run on the same machine."),
    config: Path = typer.Option(None, "--config", "-c", help="YAML config (e.g. a run's config.yaml)."),
    recipe: str = typer.Option(None, "--recipe", help="Start from a named recipe; other flags still win. "
                               "cifar-speed: time to accuracy on small images (speednet, Muon, batch 2000, 9 "
                               "epochs, images kept in memory, no validation split); evaluate with --tta flip+shift."),
    sets: list[str] = typer.Option([], "--set", "-s", help="Override any config key: --set optim.lr=3e-4 "
                                   "--set train.amp=bf16 (sections: data, model, optim, train)."),
    resume: Path = typer.Option(None, "--resume", help="Continue an interrupted run from RUN_DIR exactly."),
    adv_train: str = typer.Option(None, "--adv-train", help="'pgd': PGD adversarial training (robust accuracy "
                                  "is tracked per epoch as val_robust_acc)."),
    adv_eps: str = typer.Option(None, "--adv-eps", help="L-inf budget for --adv-train, e.g. 8/255."),
    noise_augment: float = typer.Option(None, "--noise-augment", help="Add Gaussian noise of this std (pixels in "
                                        "[0, 1], e.g. 0.25) to training images: the base model for randomized "
                                        "smoothing (imgclf.robustness.SmoothedClassifier)."),
    dp_epsilon: float = typer.Option(None, "--dp-epsilon", help="Differentially private training (DP-SGD, "
                                     "Opacus): the run's privacy budget epsilon, e.g. 8; BatchNorm becomes GroupNorm."),
    dp_delta: float = typer.Option(None, "--dp-delta", help="DP delta (default 1e-5; keep it below 1/images)."),
    dp_max_grad_norm: float = typer.Option(None, "--dp-max-grad-norm", help="Per-example gradient clip (default 1)."),
    seeds: int = typer.Option(1, "--seeds", help="Train N times with seeds seed..seed+N-1; report mean ± std."),
    folds: int = typer.Option(None, "--folds", help="Stratified K-fold cross-validation over train+val."),
    task: str = typer.Option(None, "--task", help="single or multilabel (default: inferred from the data; a CSV "
                             "with a `labels` column, or `;` in its labels, is multi-label)."),
    hierarchy: Path = typer.Option(None, "--hierarchy", help="YAML mapping each inner node to its children, whose "
                                   "leaves are the class names: hierarchical predictions with back-off."),
) -> None:
    """Train a classifier and write RUN_DIR with checkpoints, metrics and a bundle.

    Examples:

        imgclf train path/to/images --model resnet18 --epochs 5

        imgclf train data.csv --model convnext_tiny --weights pretrained --freeze backbone

        imgclf train digits --model lenet5 --set train.amp=bf16 --set train.channels_last=true

        imgclf train --resume runs/images-resnet18-20260101-120000

        imgclf train small/folder --model resnet20_cifar --folds 5       (cross-validation, mean ± std)

        imgclf train cifar_folder --model resnet20_cifar --adv-train pgd --adv-eps 8/255

        imgclf train photos.csv --task multilabel         (CSV path,labels with labels joined by ;)

        imgclf train cifar_folder --hierarchy taxonomy.yaml --set train.hierarchy_loss=soft-labels

        imgclf train mnist --model lenet5 --epochs 5 -b 256 --dp-epsilon 8      (DP-SGD; epsilon in the bundle)

        imgclf train cifar10_folder --recipe cifar-speed        (a CIFAR-10 speedrun; see benchmarks/README.md)

    Multi-GPU / multi-node: torchrun --nproc-per-node 4 -m imgclf train DATA ...
    """
    if data is None and resume is None:
        raise typer.BadParameter("give DATA (a folder, CSV or built-in name) or --resume RUN_DIR")
    if recipe is not None and config is not None:
        raise typer.BadParameter("give --recipe or --config, not both (a run's config.yaml already holds its recipe)")
    # Typed values straight into the config (only the user's own --set strings are parsed).
    adv = [f"train.adv_train={adv_train}"] if adv_train else []
    if adv_eps:
        adv.append(f"train.adv_eps={parse_fraction(adv_eps, '--adv-eps')}")
    if noise_augment:
        adv.append(f"train.noise_augment={noise_augment}")
    for key, value in (("dp_epsilon", dp_epsilon), ("dp_delta", dp_delta), ("dp_max_grad_norm", dp_max_grad_norm)):
        if value is not None:
            adv.append(f"train.{key}={value}")
    start = recipe_config(recipe) if recipe is not None else config
    clf = Classifier(start, sets=[*adv, *sets], model=model, epochs=epochs, batch_size=batch_size,
                     img_size=img_size, weights=weights, out=out, name=name, seed=seed, freeze=freeze, task=task,
                     hierarchy=str(hierarchy) if hierarchy else None)  # fmt: skip
    if seeds > 1 or folds:
        if resume is not None:
            raise typer.BadParameter("--resume continues one run; it cannot be combined with --seeds / --folds")
        train_repeated(clf.resolved_config(data), seeds=seeds, folds=folds, console=console)
        return
    clf.fit(data, resume=resume, console=console)
    if clf.result_ is not None:
        console.print(f"next: imgclf predict {clf.result_.bundle_dir} IMAGES...")


@friendly_errors
def models(
    filter: str = typer.Option(None, "--filter", "-f", help="Glob or substring, e.g. '*resnet*' or vit."),
) -> None:
    """List architecture names: built-in classics, every timm model, torchvision models as tv/NAME."""
    from imgclf.models import describe_model, list_models

    names = list_models(filter)
    table = Table("name", "source", "default input", title=f"{len(names)} models")
    for n in names[:500] if filter is None else names:
        d = describe_model(n)
        table.add_row(n, str(d.get("source", "")), str(d.get("input_size", "")))
    console.print(table)
    if filter is None and len(names) > 500:
        console.print(f"... {len(names) - 500} more; narrow with --filter")
