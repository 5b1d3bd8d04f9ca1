from __future__ import annotations

import json
from pathlib import Path

import typer

from imgclf.api import Classifier
from imgclf.cli._common import console, err_console, friendly_errors
from imgclf.config import parse_set
from imgclf.workflows import load_space, tune


@friendly_errors
def tune_cmd(
    data: str = typer.Argument(None, help="Training data (folder, CSV or built-in name). Not needed with --resume."),
    trials: int = typer.Option(20, "--trials", "-n", help="Number of trials (finished ones, pruned included)."),
    timeout: float = typer.Option(None, "--timeout", help="Stop starting new trials after this many minutes."),
    space: Path = typer.Option(None, "--space", help="YAML search space: section.key: {type: float, low, high, "
                               "log} or {type: categorical, choices: [...]} (default: lr, weight decay, augment, "
                               "label smoothing, batch size, model)."),
    sampler: str = typer.Option("tpe", "--sampler", help="tpe, random, grid (categorical spaces) or gp."),
    pruner: str = typer.Option("halving", "--pruner", help="halving (successive halving: keep the top third at "
                               "each rung), median (stop below the median of earlier trials), hyperband or none. "
                               "Trials of 1-3 epochs report validation accuracy 4 times in all, so a weak one "
                               "stops mid-epoch."),  # fmt: skip
    out: Path = typer.Option(Path("runs/tune"), "--out", help="Folder for the study, trials and the best run."),
    resume: Path = typer.Option(None, "--resume", help="Continue a killed search in this folder."),
    model: str = typer.Option(None, "--model", "-m", help="Fix the architecture (else searched over a short list)."),
    epochs: int = typer.Option(None, "--epochs", "-e", help="Epochs per trial and for the final retrain."),
    batch_size: int = typer.Option(None, "--batch-size", "-b", help="Fix the batch size (else searched)."),
    img_size: int = typer.Option(None, "--img-size", help="Input size in pixels."),
    seed: int = typer.Option(None, "--seed", help="Seed of the sampler and of every training run."),
    sets: list[str] = typer.Option([], "--set", "-s", help="Fix any other config key, as for train."),
    no_retrain: bool = typer.Option(False, "--no-retrain", help="Skip the final retrain of the best setting."),
    as_json: bool = typer.Option(False, "--json", help="Print best parameters and scores as JSON."),
) -> None:
    """Hyperparameter search with Optuna: N training runs scored on the validation split (the test split is never
    read), weak trials pruned early, then one retrain of the best configuration (a normal run and bundle).

    Examples:

        imgclf tune path/to/images --trials 20 --epochs 2 --out runs/tune

        imgclf tune digits --model lenet5 --trials 30 --sampler random --pruner hyperband

        imgclf tune --resume runs/tune            (after the search was killed)
    """
    if data is None and resume is None:
        raise typer.BadParameter("give DATA (a folder, CSV or built-in name) or --resume DIR")
    cfg, search = None, None
    if resume is None:
        clf = Classifier(sets=sets, model=model, epochs=epochs, batch_size=batch_size, img_size=img_size, seed=seed)
        cfg = clf.resolved_config(data)
        fixed = {f"{section}.{key}" for section, keys in parse_set(sets).items() for key in keys}
        fixed |= {"model.name"} if model else set()
        fixed |= {"data.batch_size"} if batch_size else set()
        search = load_space(space, fixed)
    res = tune(cfg, trials=trials, timeout_min=timeout, space=search, sampler=sampler, pruner=pruner, out=out,
               resume=resume, retrain=not no_retrain, console=err_console if as_json else console)  # fmt: skip
    if as_json:
        print(json.dumps(res.to_dict(), indent=2))
        return
    default = "n/a" if res.default_value is None else f"{res.default_value:.4f}"
    console.print(f"best val_acc {res.best_value:.4f} (default configuration {default}) with {res.best_params}")
    console.print(f"{res.trials} trials, {res.pruned} pruned: {res.epochs_saved:.0%} of the epoch budget saved")
    if res.bundle_dir:
        console.print(f"best run: {res.run_dir}  bundle: {res.bundle_dir}")
