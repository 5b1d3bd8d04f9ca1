from __future__ import annotations

import json
from pathlib import Path

import typer

from imgclf.adapt import DEFAULT_TEMPLATES, read_lines, zeroshot_bundle
from imgclf.cli._common import console, friendly_errors


@friendly_errors
def zeroshot(
    clip_model: str = typer.Argument(..., help="ARCH:TAG (ViT-B-32:laion2b_s34b_b79k; downloads), hf-hub:ORG/REPO, "
                                     "a folder with open_clip_config.json + .safetensors, or a .safetensors file "
                                     "with --config."),
    classes: str = typer.Option(None, "--classes", help="Comma-separated class names, e.g. 'cat,dog'."),
    classes_file: Path = typer.Option(None, "--classes-file", help="One class name per line."),
    templates: Path = typer.Option(None, "--templates", help="One prompt per line with {} for the name "
                                   "(default: CLIP's 7-prompt ensemble)."),
    config: Path = typer.Option(None, "--config", help="open_clip_config.json for a bare .safetensors CLIP_MODEL."),
    out: Path = typer.Option(..., "--out", help="Write the bundle here."),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON summary."),
) -> None:
    """Zero-shot classifier from class names: the head is each name's template-averaged CLIP text embedding.
    The bundle holds only the image tower, so predict, evaluate, calibrate, export and serve work as usual.

    Examples:

        imgclf zeroshot ViT-B-32:laion2b_s34b_b79k --classes "ant,bee" --out runs/zs

        imgclf zeroshot models/my_clip/ --classes-file names.txt --templates prompts.txt --out runs/zs
    """
    if (classes is None) == (classes_file is None):
        raise typer.BadParameter("give exactly one of --classes A,B,C or --classes-file FILE")
    names = read_lines(classes_file, "classes") if classes_file else classes.split(",")
    prompts = read_lines(templates, "templates") if templates else list(DEFAULT_TEMPLATES)
    bundle = zeroshot_bundle(clip_model, names, out, templates=prompts, config=config)
    if as_json:
        print(json.dumps({"bundle": str(bundle.path), "classes": list(bundle.meta.classes),
                          "templates": prompts}, indent=2))  # fmt: skip
    else:
        console.print(f"wrote {bundle.path}: {len(bundle.meta.classes)} classes, {len(prompts)} prompt templates")
