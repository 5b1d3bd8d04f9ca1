"""Digital corruptions of ImageNet-C on ``(B, C, H, W)`` tensors in [0, 1]: brightness, contrast, elastic
transform, pixelation and JPEG compression."""

from __future__ import annotations

import io

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from imgclf.robustness._filters import gaussian_blur, warp


def brightness(x: torch.Tensor, severity: int, rng: np.random.Generator) -> torch.Tensor:
    """Raise the HSV value channel by 0.1 .. 0.5 (clipped at 1), keeping hue and saturation.

    With hue and saturation fixed, RGB scales linearly with the value ``V = max(R, G, B)``, so the new image is
    ``x * min(V + c, 1) / V`` (black pixels, whose saturation is 0, become grey ``c``).
    """
    shift = (0.1, 0.2, 0.3, 0.4, 0.5)[severity - 1]
    value = x.amax(dim=1, keepdim=True)  # (B, 1, H, W)
    target = (value + shift).clamp(max=1.0)
    scaled = x * target / value.clamp_min(1e-8)
    return torch.where(value > 1e-8, scaled, target.expand_as(x))


def contrast(x: torch.Tensor, severity: int, rng: np.random.Generator) -> torch.Tensor:
    """Pull every channel towards its image mean: ``(x - mean) * c + mean`` with ``c`` = 0.4 .. 0.05."""
    factor = (0.4, 0.3, 0.2, 0.1, 0.05)[severity - 1]
    mean = x.mean(dim=(2, 3), keepdim=True)  # (B, C, 1, 1)
    return (x - mean) * factor + mean


def elastic_transform(x: torch.Tensor, severity: int, rng: np.random.Generator) -> torch.Tensor:
    """A random corner-jitter (near-affine) warp plus a smooth random displacement field.

    ImageNet-C's schedule (affine jitter, field amplitude, smoothness) is not monotone in displacement, so here
    the sizes are fractions of the image side that grow with severity: corners move up to 2 .. 6 % of the side,
    the elastic field has an RMS of 1 .. 4 % of the side and a smoothness of 8 .. 4 %.
    """
    corner, rms, smooth = (
        (0.02, 0.010, 0.08),
        (0.03, 0.016, 0.07),
        (0.04, 0.023, 0.06),
        (0.05, 0.031, 0.05),
        (0.06, 0.040, 0.04),
    )[severity - 1]
    b, _, h, w = x.shape
    side = min(h, w)
    corners = torch.from_numpy(rng.uniform(-corner, corner, size=(b, 2, 2, 2)).astype(np.float32)) * side
    affine = F.interpolate(corners.to(x), size=(h, w), mode="bilinear", align_corners=True)  # (B, 2, H, W)
    field = torch.from_numpy(rng.uniform(-1, 1, size=(b, 2, h, w)).astype(np.float32)).to(x)
    field = gaussian_blur(field, smooth * side)  # (B, 2, H, W)
    field = field / field.pow(2).mean(dim=(1, 2, 3), keepdim=True).sqrt().clamp_min(1e-12) * (rms * side)
    flow = (affine + field).permute(0, 2, 3, 1)  # (B, H, W, 2)
    return warp(x, flow, padding_mode="reflection")


def pixelate(x: torch.Tensor, severity: int, rng: np.random.Generator) -> torch.Tensor:
    """Replace the image by 60 .. 25 % as many blocks per side, each filled with the mean of its pixels.

    ImageNet-C box-resizes down and up with Pillow; the blocks here partition the image exactly (sizes differ by
    at most one pixel), so a coarser grid never aliases into a closer copy of the image.
    """
    factor = (0.6, 0.5, 0.4, 0.3, 0.25)[severity - 1]
    h, w = x.shape[-2:]
    rows, cols = _block_mean(h, round(h * factor), x), _block_mean(w, round(w * factor), x)  # (H, H), (W, W)
    return rows @ x @ cols.T  # (B, C, H, W)


def _block_mean(size: int, blocks: int, like: torch.Tensor) -> torch.Tensor:
    """``(size, size)`` matrix averaging each pixel's block when ``size`` pixels form ``blocks`` blocks."""
    block = torch.arange(size, device=like.device) * max(1, blocks) // size  # (size,) block of each pixel
    same = (block[:, None] == block[None, :]).to(like.dtype)  # (size, size)
    return same / same.sum(dim=1, keepdim=True)


def jpeg_compression(x: torch.Tensor, severity: int, rng: np.random.Generator) -> torch.Tensor:
    """Encode and decode with Pillow's JPEG at quality 25 .. 7 (RGB, or each channel as greyscale)."""
    quality = (25, 18, 15, 10, 7)[severity - 1]
    pixels = (x.detach().float().clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()  # (B, C, H, W)
    out = np.empty_like(pixels)
    for i, image in enumerate(pixels):
        if image.shape[0] == 3:
            out[i] = _jpeg(image.transpose(1, 2, 0), quality).transpose(2, 0, 1)
        else:
            out[i] = np.stack([_jpeg(channel, quality) for channel in image])
    return torch.from_numpy(out).to(device=x.device, dtype=x.dtype) / 255


def _jpeg(array: np.ndarray, quality: int) -> np.ndarray:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="JPEG", quality=quality)
    buffer.seek(0)
    with Image.open(buffer) as decoded:
        return np.asarray(decoded.convert("RGB" if array.ndim == 3 else "L"))
