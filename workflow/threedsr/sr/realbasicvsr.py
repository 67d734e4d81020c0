"""RealBasicVSR ×4 (Chan et al., CVPR 2022): the video upsampler that SuperGaussian's public code ships.

A video model: every output frame draws on the whole sequence. An image-cleaning module (residual
blocks) removes degradations from each LR frame (repeated, at most 3 times, while the mean
residual is above a threshold; the released model's threshold of 255/255 stops after one pass);
then BasicVSR propagates features backward and forward in time, aligned by SPyNet optical flow
computed on the cleaned LR frames, fuses both directions and upsamples ×4 with two pixel
shuffles, on top of a bilinear ×4 of the cleaned frame. RGB in [0, 1] in and out.

Written from the architecture as published (OpenMMLab's RealBasicVSRNet / BasicVSRNet / SPyNet),
with the parameter names of its checkpoints, so `RealBasicVSR_x4.pth` (an mmcv checkpoint:
{"meta", "state_dict"} with the generator under `generator_ema.`) loads as it is, with
torch.load(weights_only=True). No weights ship with any package: without them, a clear error.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import DataError, ModelUnavailable
from .base import auto_dtype, frozen
from .names import REALBASICVSR_WEIGHTS_HINT as WEIGHTS_HINT


class ResidualBlock(nn.Module):
    """x + conv2(ReLU(conv1(x))), no normalisation."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, 1, 1)
        self.conv2 = nn.Conv2d(channels, channels, 3, 1, 1)

    def forward(self, x):
        return x + self.conv2(F.relu(self.conv1(x)))


class ResidualBlocksWithInputConv(nn.Module):
    def __init__(self, in_channels: int, channels: int, blocks: int):
        super().__init__()
        self.main = nn.Sequential(
            nn.Conv2d(in_channels, channels, 3, 1, 1), nn.LeakyReLU(0.1), nn.Sequential(*[ResidualBlock(channels) for _ in range(blocks)])
        )

    def forward(self, x):
        return self.main(x)


class _Conv(nn.Module):
    """A 7×7 convolution (parameters under `.conv`, as in the checkpoints), optionally followed by ReLU."""

    def __init__(self, cin: int, cout: int, relu: bool):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 7, 1, 3)
        self.relu = relu

    def forward(self, x):
        x = self.conv(x)
        return F.relu(x) if self.relu else x


class SPyNetLevel(nn.Module):
    def __init__(self):
        super().__init__()
        chans = [8, 32, 64, 32, 16, 2]
        self.basic_module = nn.Sequential(*[_Conv(a, b, relu=i < 4) for i, (a, b) in enumerate(zip(chans, chans[1:]))])

    def forward(self, x):
        return self.basic_module(x)


def flow_warp(x: torch.Tensor, flow: torch.Tensor, padding_mode: str = "zeros") -> torch.Tensor:
    """Sample x (N, C, H, W) at pixel + flow (N, H, W, 2; x then y, in pixels), bilinearly."""
    n, _, h, w = x.shape
    gy, gx = torch.meshgrid(torch.arange(h, device=x.device, dtype=x.dtype), torch.arange(w, device=x.device, dtype=x.dtype), indexing="ij")
    gx, gy = gx + flow[..., 0], gy + flow[..., 1]
    grid = torch.stack([2 * gx / max(w - 1, 1) - 1, 2 * gy / max(h - 1, 1) - 1], dim=-1)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode=padding_mode, align_corners=True)


class SPyNet(nn.Module):
    """Coarse-to-fine optical flow over a 6-level pyramid (ImageNet-normalised input)."""

    def __init__(self):
        super().__init__()
        self.basic_module = nn.ModuleList([SPyNetLevel() for _ in range(6)])
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1))

    def _flow(self, ref, supp):
        ref, supp = [(ref - self.mean) / self.std], [(supp - self.mean) / self.std]
        for _ in range(5):
            ref.append(F.avg_pool2d(ref[-1], 2, 2, count_include_pad=False))
            supp.append(F.avg_pool2d(supp[-1], 2, 2, count_include_pad=False))
        ref, supp = ref[::-1], supp[::-1]
        n, _, h, w = ref[0].shape
        flow = ref[0].new_zeros(n, 2, h, w)
        for level, module in enumerate(self.basic_module):
            up = flow if level == 0 else F.interpolate(flow, scale_factor=2, mode="bilinear", align_corners=True) * 2.0
            warped = flow_warp(supp[level], up.permute(0, 2, 3, 1), padding_mode="border")
            flow = up + module(torch.cat([ref[level], warped, up], 1))
        return flow

    def forward(self, ref, supp):
        """Flow (N, 2, H, W) in pixels: where in `supp` each pixel of `ref` is found."""
        h, w = ref.shape[-2:]
        hu, wu = -(-h // 32) * 32, -(-w // 32) * 32
        resize = lambda x: F.interpolate(x, size=(hu, wu), mode="bilinear", align_corners=False)  # noqa: E731
        flow = F.interpolate(self._flow(resize(ref), resize(supp)), size=(h, w), mode="bilinear", align_corners=False)
        return torch.stack([flow[:, 0] * (w / wu), flow[:, 1] * (h / hu)], 1)


class PixelShufflePack(nn.Module):
    def __init__(self, channels: int, scale: int = 2):
        super().__init__()
        self.upsample_conv = nn.Conv2d(channels, channels * scale * scale, 3, 1, 1)
        self.scale = scale

    def forward(self, x):
        return F.pixel_shuffle(self.upsample_conv(x), self.scale)


class BasicVSRNet(nn.Module):
    def __init__(self, channels: int = 64, blocks: int = 20):
        super().__init__()
        self.spynet = SPyNet()
        self.backward_resblocks = ResidualBlocksWithInputConv(channels + 3, channels, blocks)
        self.forward_resblocks = ResidualBlocksWithInputConv(channels + 3, channels, blocks)
        self.fusion = nn.Conv2d(channels * 2, channels, 1, 1, 0)
        self.upsample1 = PixelShufflePack(channels)
        self.upsample2 = PixelShufflePack(channels)
        self.conv_hr = nn.Conv2d(channels, channels, 3, 1, 1)
        self.conv_last = nn.Conv2d(channels, 3, 3, 1, 1)
        self.channels = channels

    def forward(self, lrs: torch.Tensor) -> torch.Tensor:
        """(N, T, 3, H, W) -> (N, T, 3, 4H, 4W)."""
        n, t, c, h, w = lrs.shape
        a, b = lrs[:, :-1].reshape(-1, c, h, w), lrs[:, 1:].reshape(-1, c, h, w)
        flows_backward = self.spynet(a, b).view(n, t - 1, 2, h, w)  # frame i -> i + 1
        flows_forward = self.spynet(b, a).view(n, t - 1, 2, h, w)  # frame i + 1 -> i
        feat = lrs.new_zeros(n, self.channels, h, w)
        backward = [None] * t
        for i in range(t - 1, -1, -1):
            if i < t - 1:
                feat = flow_warp(feat, flows_backward[:, i].permute(0, 2, 3, 1))
            feat = self.backward_resblocks(torch.cat([lrs[:, i], feat], 1))
            backward[i] = feat
        feat = torch.zeros_like(feat)
        out = []
        for i in range(t):
            if i > 0:
                feat = flow_warp(feat, flows_forward[:, i - 1].permute(0, 2, 3, 1))
            feat = self.forward_resblocks(torch.cat([lrs[:, i], feat], 1))
            x = F.leaky_relu(self.fusion(torch.cat([backward[i], feat], 1)), 0.1)
            x = F.leaky_relu(self.upsample1(x), 0.1)
            x = F.leaky_relu(self.upsample2(x), 0.1)
            x = self.conv_last(F.leaky_relu(self.conv_hr(x), 0.1))
            out.append(x + F.interpolate(lrs[:, i], scale_factor=4, mode="bilinear", align_corners=False))
        return torch.stack(out, 1)


class RealBasicVSRNet(nn.Module):
    def __init__(self, channels: int = 64, propagation_blocks: int = 20, cleaning_blocks: int = 20, refine_threshold: float = 1.0):
        super().__init__()
        self.image_cleaning = nn.Sequential(ResidualBlocksWithInputConv(3, channels, cleaning_blocks), nn.Conv2d(channels, 3, 3, 1, 1))
        self.basicvsr = BasicVSRNet(channels, propagation_blocks)
        self.refine_threshold = refine_threshold

    def forward(self, lrs: torch.Tensor) -> torch.Tensor:
        n, t, c, h, w = lrs.shape
        for _ in range(3):  # clean until the residual is small (the released threshold stops after one pass)
            residues = torch.stack([self.image_cleaning(lrs[:, i]) for i in range(t)], 1)
            lrs = lrs + residues
            if residues.abs().mean() < self.refine_threshold:
                break
        return self.basicvsr(lrs)


def _count(state: dict, pattern: str) -> int:
    return len({m.group(1) for k in state if (m := re.fullmatch(pattern, k))})


def generator_state(ckpt: dict, path: Path) -> dict[str, torch.Tensor]:
    """The generator's tensors from an mmcv checkpoint (EMA weights first, as the official inference uses)."""
    state = ckpt.get("state_dict", ckpt) if isinstance(ckpt, dict) else None
    if not isinstance(state, dict):
        raise DataError(f"{path}: not a RealBasicVSR checkpoint (no state dict)")
    state = {k.removeprefix("module."): v for k, v in state.items()}
    for prefix in ("generator_ema.", "generator.", ""):
        picked = {
            k[len(prefix) :]: v
            for k, v in state.items()
            if k.startswith(prefix) and k[len(prefix) :].startswith(("image_cleaning.", "basicvsr."))
        }
        if picked:
            return picked
    raise DataError(f"{path}: no RealBasicVSR generator weights (keys under generator_ema., generator. or image_cleaning. / basicvsr.)")


def build_from_state(state: dict[str, torch.Tensor], path: Path) -> RealBasicVSRNet:
    """The network with the sizes the state dict has, loaded strictly (every key used, none missing)."""
    try:
        channels = state["image_cleaning.0.main.0.weight"].shape[0]
    except KeyError:
        raise DataError(f"{path}: image_cleaning.0.main.0.weight missing") from None
    net = RealBasicVSRNet(
        channels,
        _count(state, r"basicvsr\.backward_resblocks\.main\.2\.(\d+)\.conv1\.weight"),
        _count(state, r"image_cleaning\.0\.main\.2\.(\d+)\.conv1\.weight"),
    )
    expected = net.state_dict()
    # the SPyNet normalisation constants may be missing from a checkpoint; everything else must be there
    missing = [k for k in expected if k not in state and k not in ("basicvsr.spynet.mean", "basicvsr.spynet.std")]
    unexpected = [k for k in state if k not in expected]
    if missing or unexpected:
        raise DataError(f"{path}: does not match RealBasicVSR: missing {missing[:5]}, unexpected {unexpected[:5]}")
    # checked before loading: load_state_dict raises a bare RuntimeError on a size mismatch
    for k, v in state.items():
        if v.shape != expected[k].shape:
            raise DataError(f"{path}: {k} has shape {tuple(v.shape)}, expected {tuple(expected[k].shape)}")
    net.load_state_dict(state, strict=False)
    return net


class RealBasicVSR:
    """×4 video SR of a whole frame sequence (a video upsampler for SuperGaussian, not a per-image SR model)."""

    name = "realbasicvsr"
    scale = 4
    is_video = True
    is_diffusion = False

    def __init__(self, net: RealBasicVSRNet, device: torch.device, dtype: torch.dtype, max_seq_len: int = 100):
        self.net, self.device, self.dtype, self.max_seq_len = frozen(net, device, dtype), torch.device(device), dtype, max_seq_len

    @classmethod
    def from_pretrained(
        cls, path: str | Path | None, device: torch.device, dtype: torch.dtype | None = None, max_seq_len: int = 100
    ) -> "RealBasicVSR":
        if not path:
            raise ModelUnavailable(f"RealBasicVSR weights not configured: {WEIGHTS_HINT}")
        path = Path(path)
        if not path.is_file():
            raise ModelUnavailable(f"RealBasicVSR weights not found at {path}: {WEIGHTS_HINT}")
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            ckpt = load_file(path)
        else:
            try:
                ckpt = torch.load(path, map_location="cpu", weights_only=True)
            except Exception as e:  # unpickling refused (a global outside the allowed set) or a corrupt file
                raise DataError(f"{path}: cannot be loaded with weights_only=True ({e}); convert it to safetensors") from None
        return cls(build_from_state(generator_state(ckpt, path), path), device, dtype or auto_dtype(torch.device(device)), max_seq_len)

    @torch.no_grad()
    def super_resolve_video(self, frames: torch.Tensor) -> torch.Tensor:
        """(T, 3, H, W) in [0, 1] -> (T, 3, 4H, 4W), in chunks of `max_seq_len` frames (memory grows with T)."""
        out = []
        for i in range(0, len(frames), self.max_seq_len):
            chunk = frames[i : i + self.max_seq_len].to(self.device, self.dtype)[None]
            out.append(self.net(chunk)[0].clamp(0, 1).float().cpu())
        return torch.cat(out)
