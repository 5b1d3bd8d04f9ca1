"""Target layers: ViT tokens reshaped to the patch grid in the right order, prefix tokens dropped."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from imgclf.errors import ModelError
from imgclf.explain import explain

from .conftest import StandInTargetLayer


class TokenModel(nn.Module):
    """Patch embedding, one class token, an identity 'block' to hook and a mean-pool head.

    Weights are positive, so the only patch whose tokens are non-zero (the bright one) carries all the CAM.
    """

    def __init__(self, channels_last: bool = False) -> None:
        super().__init__()
        self.embed = nn.Conv2d(3, 4, 8, stride=8, bias=False)
        self.block = nn.Identity()
        self.head = nn.Linear(4, 2)
        self.channels_last = channels_last
        with torch.no_grad():
            self.embed.weight.fill_(0.1)
            self.head.weight.fill_(1.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        grid = self.embed(x)  # (B, 4, h, w)
        if self.channels_last:
            t = self.block(grid.permute(0, 2, 3, 1))  # (B, h, w, 4)
            return self.head(t.mean(dim=(1, 2)))
        tokens = grid.flatten(2).transpose(1, 2)  # (B, h*w, 4)
        cls = torch.zeros(x.shape[0], 1, 4)
        tokens = self.block(torch.cat([cls, tokens], dim=1))  # (B, 1 + h*w, 4)
        return self.head(tokens.mean(dim=1))  # (B, 2)


def _bright_patch_image(row: int, col: int) -> torch.Tensor:
    x = torch.zeros(1, 3, 32, 64)  # a 4 x 8 patch grid: not square, so a transposed reshape cannot pass
    x[:, :, row * 8 : (row + 1) * 8, col * 8 : (col + 1) * 8] = 1.0
    return x


@pytest.mark.parametrize("declared", [True, False], ids=["declared-prefix", "inferred-prefix"])
def test_tokens_map_back_to_their_patch(declared: bool) -> None:
    model = TokenModel()
    layer = StandInTargetLayer(model.block, "vit", 1) if declared else model.block
    for row, col in [(1, 6), (3, 0)]:
        heat = explain(model, _bright_patch_image(row, col), method="gradcam", layer=layer, target=0).maps[0]
        peak_row, peak_col = divmod(int(heat.argmax()), 64)
        assert (peak_row // 8, peak_col // 8) == (row, col)
        inside = heat[row * 8 : (row + 1) * 8, col * 8 : (col + 1) * 8].sum()
        assert inside / heat.sum() > 0.5


def test_channels_last_grids_of_vit_kind_layers() -> None:
    model = TokenModel(channels_last=True)
    layer = StandInTargetLayer(model.block, "vit", 0)
    heat = explain(model, _bright_patch_image(2, 5), method="gradcam++", layer=layer, target=0).maps[0]
    peak_row, peak_col = divmod(int(heat.argmax()), 64)
    assert (peak_row // 8, peak_col // 8) == (2, 5)


def test_layer_without_spatial_output_is_a_model_error() -> None:
    model = TokenModel()
    with pytest.raises(ModelError, match="head"):
        explain(model, _bright_patch_image(0, 0), method="gradcam", layer=model.head)
