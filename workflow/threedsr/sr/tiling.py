"""Apply a network to large images in overlapping tiles and blend the seams away.

All inputs live on one grid (the latent grid); an input with `scale` s has s pixels per grid cell
(the LR image and the latent: 1; an HR image under a ×4 latent: 4). Outputs are blended with
weights that ramp linearly across each overlap (`blend="linear"`), or with a Gaussian over the
whole tile (`blend="gaussian"`, StableSR's latent tiles), so tiles meet without visible seams.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F


def _starts(size: int, tile: int, overlap: int) -> list[int]:
    if size <= tile:
        return [0]
    stride = tile - overlap
    starts = list(range(0, size - tile, stride)) + [size - tile]
    return sorted(set(starts))


def _ramp(length: int, overlap: int, at_start: bool, at_end: bool) -> torch.Tensor:
    w = torch.ones(length)
    if overlap > 0:
        ramp = torch.arange(1, overlap + 1, dtype=torch.float32) / (overlap + 1)
        if not at_start:
            w[:overlap] = ramp
        if not at_end:
            w[-overlap:] = ramp.flip(0)
    return w


def _gaussian(h: int, w: int, var: float = 0.01) -> torch.Tensor:
    """StableSR's tile weights: exp(-d²/(2·var·size²)) per axis. Its y centre is h/2 (x: (w-1)/2); kept."""
    x = torch.arange(w, dtype=torch.float64)
    y = torch.arange(h, dtype=torch.float64)
    wx = torch.exp(-((x - (w - 1) / 2) ** 2) / (w * w) / (2 * var))
    wy = torch.exp(-((y - h / 2) ** 2) / (h * h) / (2 * var))
    return (wy[:, None] * wx[None, :]).float()


def _pad_to_multiple(x: torch.Tensor, scale: int, multiple: int) -> torch.Tensor:
    h, w = x.shape[-2] // scale, x.shape[-1] // scale
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph == 0 and pw == 0:
        return x
    return F.pad(x, (0, pw * scale, 0, ph * scale), mode="replicate")


def apply_padded(
    fn: Callable[..., torch.Tensor], inputs: list[torch.Tensor], scales: list[int], out_scale: int, multiple: int
) -> torch.Tensor:
    """fn on inputs padded (replicate) so the grid is a multiple of `multiple`, output cropped back."""
    h, w = inputs[0].shape[-2] // scales[0], inputs[0].shape[-1] // scales[0]
    out = fn(*[_pad_to_multiple(x, s, multiple) for x, s in zip(inputs, scales, strict=True)])
    return out[..., : h * out_scale, : w * out_scale]


def tiled(
    fn: Callable[..., torch.Tensor],
    inputs: list[torch.Tensor],
    scales: list[int],
    out_scale: int = 1,
    tile: int = 128,
    overlap: int = 16,
    multiple: int = 1,
    blend: str = "linear",
) -> torch.Tensor:
    """fn(*input_tiles) -> output tile, over overlapping `tile`×`tile` grid windows, blended."""
    if blend not in ("linear", "gaussian"):
        raise ValueError(f"blend must be linear or gaussian, got {blend!r}")
    if not 0 <= overlap < tile:
        raise ValueError(f"tile overlap must be in [0, tile), got overlap={overlap}, tile={tile}")
    h, w = inputs[0].shape[-2] // scales[0], inputs[0].shape[-1] // scales[0]
    for x, s in zip(inputs, scales, strict=True):
        if x.shape[-2:] != (h * s, w * s):
            raise ValueError(f"input of size {tuple(x.shape[-2:])} does not match the {h}x{w} grid at scale {s}")
    if h <= tile and w <= tile:
        return apply_padded(fn, inputs, scales, out_scale, multiple)
    ys, xs = _starts(h, tile, overlap), _starts(w, tile, overlap)
    out = weight = None
    o = out_scale
    for y in ys:
        th = min(tile, h)
        wy = _ramp(th * o, overlap * o, y == 0, y + th >= h)
        for x in xs:
            tw = min(tile, w)
            wx = _ramp(tw * o, overlap * o, x == 0, x + tw >= w)
            crops = [t[..., y * s : (y + th) * s, x * s : (x + tw) * s] for t, s in zip(inputs, scales)]
            piece = apply_padded(fn, crops, scales, o, multiple)
            if out is None:
                out = piece.new_zeros(*piece.shape[:-2], h * o, w * o)
                weight = piece.new_zeros(h * o, w * o)
            win = (_gaussian(th * o, tw * o) if blend == "gaussian" else wy[:, None] * wx[None, :]).to(piece)
            out[..., y * o : (y + th) * o, x * o : (x + tw) * o] += piece * win
            weight[y * o : (y + th) * o, x * o : (x + tw) * o] += win
    return out / weight
