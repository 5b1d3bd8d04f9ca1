from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from tests.unit.adapt.conftest import make_bundle
from typer.testing import CliRunner

from imgclf.adapt import embed_images, load_embeddings, nearest, save_embeddings
from imgclf.bundle import Bundle
from imgclf.cli._app import app
from imgclf.data import InputImages, sample_tensors
from imgclf.errors import ConfigError, DataError


def test_embeddings_are_the_models_pooled_features_in_input_order(backbone: Bundle, images: Path) -> None:
    emb = embed_images(backbone, [images / "red", images / "blue"])
    assert emb.vectors.shape == (24, backbone.model.num_features)
    assert [Path(p).parent.name for p in emb.paths] == ["red"] * 12 + ["blue"] * 12
    x, _ = sample_tensors(InputImages(list(emb.paths[:3])), backbone.meta.preprocessing)
    with torch.no_grad():
        expected = backbone.model.forward_head(backbone.model.forward_features(x), pre_logits=True)
    np.testing.assert_allclose(emb.vectors[:3], expected.numpy(), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", ["e.parquet", "e.npy", "index"])
def test_every_format_round_trips_vectors_and_paths(backbone: Bundle, images: Path, tmp_path: Path,
                                                   name: str) -> None:  # fmt: skip
    emb = embed_images(backbone, [images / "green"])
    back = load_embeddings(save_embeddings(emb, tmp_path / name))
    assert back.paths == emb.paths
    np.testing.assert_array_equal(back.vectors, emb.vectors)


def test_unknown_extension_is_refused_before_writing(backbone: Bundle, images: Path, tmp_path: Path) -> None:
    emb = embed_images(backbone, [images / "green"])
    with pytest.raises(ConfigError, match="parquet"):
        save_embeddings(emb, tmp_path / "e.csv")
    assert not (tmp_path / "e.csv").exists()


def test_neighbours_rank_the_query_itself_then_its_own_class_first(backbone: Bundle, images: Path,
                                                                  tmp_path: Path) -> None:  # fmt: skip
    save_embeddings(embed_images(backbone, [images]), tmp_path / "idx")
    query = sorted((images / "yellow").iterdir())[0]
    [res] = nearest(backbone, [query], tmp_path / "idx", k=5)
    assert Path(res.paths[0]) == query and res.similarities[0] == pytest.approx(1.0, abs=1e-5)
    assert [Path(p).parent.name for p in res.paths] == ["yellow"] * 5
    assert list(res.similarities) == sorted(res.similarities, reverse=True)


def test_an_index_from_other_weights_is_refused(backbone: Bundle, images: Path, tmp_path: Path) -> None:
    save_embeddings(embed_images(backbone, [images / "red"]), tmp_path / "idx")
    other = make_bundle(tmp_path / "other", seed=1)
    with pytest.raises(DataError, match="other weights"):
        nearest(other, [images / "red"], tmp_path / "idx")


def test_cli_embed_then_neighbours_and_unreadable_files_exit_1(backbone: Bundle, images: Path,
                                                              tmp_path: Path) -> None:  # fmt: skip
    folder = tmp_path / "imgs"
    shutil.copytree(images / "blue", folder)
    (folder / "broken.png").write_bytes(b"not a png")
    runner = CliRunner()
    res = runner.invoke(app, ["embed", str(backbone.path), str(folder), "--out", str(tmp_path / "idx")])
    assert res.exit_code == 1, res.output
    assert "12 embeddings" in res.output and "broken.png" in res.output
    query = str(sorted(folder.glob("*.png"))[0])
    res = runner.invoke(app, ["neighbours", str(backbone.path), query, "--index", str(tmp_path / "idx"),
                              "-k", "2", "--json"])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert '"similarity"' in res.output and query in res.output
