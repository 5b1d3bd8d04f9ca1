from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.table import Table

from imgclf.adapt import embed_images, nearest, save_embeddings
from imgclf.bundle import load_bundle
from imgclf.cli._common import console, err_console, friendly_errors


@friendly_errors
def embed(
    model: Path = typer.Argument(..., help="A bundle directory (RUN_DIR/bundle): its backbone makes the embeddings."),
    inputs: list[str] = typer.Argument(..., help="Image files, folders (searched recursively) or globs."),
    out: Path = typer.Option(..., "--out", help="FILE.parquet (path + embedding columns), FILE.npy (+ FILE.paths.txt) "
                             "or a directory: a neighbour index for `imgclf neighbours --index`."),
    batch_size: int = typer.Option(64, "--batch-size", help="Images per forward pass."),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON summary."),
) -> None:
    """Write one embedding (the pooled pre-logit features) per image.

    Examples:

        imgclf embed runs/x/bundle photos/ --out photos.parquet

        imgclf embed runs/x/bundle photos/ --out runs/index    # then: imgclf neighbours ... --index runs/index
    """
    emb = embed_images(load_bundle(model), inputs, batch_size=batch_size)
    where = save_embeddings(emb, out)
    if as_json:
        print(json.dumps({**emb.to_dict(), "out": str(where)}, indent=2))
    else:
        console.print(f"wrote {len(emb.paths)} embeddings of dimension {emb.vectors.shape[1]} to {where}")
    if emb.skipped:
        err_console.print(f"{len(emb.skipped)} input(s) could not be read: {', '.join(emb.skipped[:5])}")
        raise typer.Exit(1)


@friendly_errors
def neighbours(
    model: Path = typer.Argument(..., help="The bundle that built the index."),
    query: list[str] = typer.Argument(..., help="Query images (files, folders or globs)."),
    index: Path = typer.Option(..., "--index", help="An index directory (or .parquet) written by `imgclf embed`."),
    k: int = typer.Option(5, "--k", "-k", help="Neighbours per query."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON: [{query, neighbours: [{path, similarity}]}]."),
) -> None:
    """Find the indexed images most similar (cosine) to each query image: retrieval and data curation.

    Examples:

        imgclf neighbours runs/x/bundle query.jpg --index runs/index -k 10
    """
    found = nearest(load_bundle(model), query, index, k=k)
    if as_json:
        print(json.dumps([n.to_dict() for n in found], indent=2))
        return
    table = Table("query", "rank", "neighbour", "similarity")
    for n in found:
        for rank, (p, s) in enumerate(zip(n.paths, n.similarities), 1):
            table.add_row(n.query if rank == 1 else "", str(rank), p, f"{s:.3f}")
    console.print(table)
