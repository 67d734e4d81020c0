"""StableSR's three networks on diffusers building blocks.

- `SFTUNet`: the Stable Diffusion 2.1-base UNet (diffusers' `UNet2DConditionModel`) with a spatial
  feature transform in every ResNet block: h ← GroupNorm(h)·(1 + γ(f)) + β(f) applied to the block's
  body output before the skip add, f = the time-aware encoder's feature map at h's resolution.
  StableSR implements it with SPADE's layers (a shared 3×3 conv + ReLU, then 3×3 convs for γ and β).
- `TimeAwareEncoder`: StableSR's `EncoderUNetModelWT`, a half UNet on the LR latent that is told the
  same timestep as the UNet and returns one feature map per resolution.
- `CFWAutoencoder`: the SD VAE (diffusers' `AutoencoderKL`) with controllable feature wrapping:
  encoder features of the (bicubic-upsampled) LR image are fused into two decoder levels,
  dec + w·F(cat(enc, dec)), F = ResBlock → RRDB×2 → ResBlock.

The SFT and CFW layers ride on forward hooks of diffusers' own blocks, so the diffusers networks and
their checkpoint conversion stay untouched. All three are diffusers `ModelMixin`s
(`save_pretrained` / `from_pretrained`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from diffusers import AutoencoderKL, UNet2DConditionModel
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.embeddings import TimestepEmbedding, Timesteps
from diffusers.models.modeling_utils import ModelMixin
from diffusers.models.resnet import ResnetBlock2D
from torch import nn

from .realesrgan import RRDB

# The LDM code's GroupNorm: 32 groups, eps 1e-5 (UNet, encoder, SFT) or 1e-6 (VAE, CFW).
GROUPS = 32


def norm_fp32(norm: nn.GroupNorm, x: torch.Tensor) -> torch.Tensor:
    """GroupNorm computed in fp32 whatever the model's dtype, as the LDM code's GroupNorm32 does."""
    w = None if norm.weight is None else norm.weight.float()
    b = None if norm.bias is None else norm.bias.float()
    return F.group_norm(x.float(), norm.num_groups, w, b, norm.eps).to(x.dtype)


class SFT(nn.Module):
    """GroupNorm(h)·(1 + γ(f)) + β(f); f has h's size (the encoder's map at that resolution)."""

    def __init__(self, channels: int, cond_channels: int, hidden: int = 128):
        super().__init__()
        self.param_free_norm = nn.GroupNorm(GROUPS, channels, eps=1e-5)  # "param-free" in name only: it is affine
        self.mlp_shared = nn.Sequential(nn.Conv2d(cond_channels, hidden, 3, padding=1), nn.ReLU())
        self.mlp_gamma = nn.Conv2d(hidden, channels, 3, padding=1)
        self.mlp_beta = nn.Conv2d(hidden, channels, 3, padding=1)

    def forward(self, h: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
        normalized = norm_fp32(self.param_free_norm, h)
        a = self.mlp_shared(f)
        return normalized * (1 + self.mlp_gamma(a)) + self.mlp_beta(a)


class SFTUNet(ModelMixin, ConfigMixin):
    """UNet2DConditionModel + an SFT layer per ResNet block, conditioned on {width: feature map}."""

    @register_to_config
    def __init__(self, unet_config: dict, cond_channels: int = 256):
        super().__init__()
        self.unet = UNet2DConditionModel.from_config(unet_config)
        self.sft = nn.ModuleDict()
        self._features: dict[int, torch.Tensor] | None = None
        for name, module in self.unet.named_modules():
            if isinstance(module, ResnetBlock2D):
                key = name.replace(".", "_")
                self.sft[key] = SFT(module.conv2.out_channels, cond_channels)
                module.conv2.register_forward_hook(self._hook(key))

    def _hook(self, key: str):
        def apply(_module, _args, out):
            if self._features is None:
                raise RuntimeError("SFTUNet called without structure features")
            f = self._features.get(out.shape[-1])
            if f is None:
                raise ValueError(f"no structure feature of width {out.shape[-1]} (have {sorted(self._features)})")
            return self.sft[key](out, f.to(out.dtype))

        return apply

    def forward(self, sample, timestep, encoder_hidden_states, features: dict[int, torch.Tensor]) -> torch.Tensor:
        self._features = features
        try:
            return self.unet(sample, timestep, encoder_hidden_states=encoder_hidden_states, return_dict=False)[0]
        finally:
            self._features = None


class LegacyAttention(nn.Module):
    """The LDM UNet's AttentionBlock with the legacy head order (q, k, v interleaved per head)."""

    def __init__(self, channels: int, num_heads: int):
        super().__init__()
        self.num_heads = num_heads
        self.norm = nn.GroupNorm(GROUPS, channels, eps=1e-5)
        self.qkv = nn.Conv1d(channels, channels * 3, 1)
        self.proj_out = nn.Conv1d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, *spatial = x.shape
        x = x.reshape(b, c, -1)
        qkv = self.qkv(norm_fp32(self.norm, x))
        q, k, v = qkv.reshape(b * self.num_heads, 3 * c // self.num_heads, -1).chunk(3, dim=1)
        h = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2))
        h = h.transpose(1, 2).reshape(b, c, -1)
        return (x + self.proj_out(h)).reshape(b, c, *spatial)


class TimeAwareEncoder(ModelMixin, ConfigMixin):
    """The LR latent and timestep -> {width: feature map} at every UNet resolution (StableSR's EncoderUNetModelWT)."""

    @register_to_config
    def __init__(
        self,
        in_channels: int = 4,
        model_channels: int = 256,
        out_channels: int = 256,
        num_res_blocks: int = 2,
        channel_mult: tuple[int, ...] = (1, 1, 2, 2),
        attention_resolutions: tuple[int, ...] = (4, 2, 1),
        num_heads: int = 4,
    ):
        super().__init__()
        temb = model_channels * 4
        self.time_proj = Timesteps(model_channels, flip_sin_to_cos=True, downscale_freq_shift=0)
        self.time_embedding = TimestepEmbedding(model_channels, temb)
        self.conv_in = nn.Conv2d(in_channels, model_channels, 3, padding=1)

        def resnet(cin, cout):
            return ResnetBlock2D(in_channels=cin, out_channels=cout, temb_channels=temb, eps=1e-5, groups=GROUPS)

        self.resnets, self.attentions, self.downsamplers = nn.ModuleList(), nn.ModuleList(), nn.ModuleList()
        ch, ds, level_channels = model_channels, 1, []
        for level, mult in enumerate(channel_mult):
            for _ in range(num_res_blocks):
                self.resnets.append(resnet(ch, mult * model_channels))
                ch = mult * model_channels
                self.attentions.append(LegacyAttention(ch, num_heads) if ds in attention_resolutions else nn.Identity())
            if level != len(channel_mult) - 1:
                level_channels.append(ch)
                self.downsamplers.append(nn.Conv2d(ch, ch, 3, stride=2, padding=1))
                ds *= 2
        self.mid = nn.ModuleList([resnet(ch, ch), LegacyAttention(ch, num_heads), resnet(ch, ch)])
        level_channels.append(ch)
        self.heads = nn.ModuleList([resnet(c, out_channels) for c in level_channels])

    def forward(self, z: torch.Tensor, timestep: torch.Tensor) -> dict[int, torch.Tensor]:
        emb = self.time_embedding(self.time_proj(timestep).to(z.dtype))
        h = self.conv_in(z)
        per_level = self.config.num_res_blocks
        outs = []
        for i, (res, attn) in enumerate(zip(self.resnets, self.attentions)):
            h = attn(res(h, emb))
            level = i // per_level
            if (i + 1) % per_level == 0 and level < len(self.downsamplers):
                outs.append(h)  # the level's last features, before halving
                h = self.downsamplers[level](h)
        h = self.mid[2](self.mid[1](self.mid[0](h, emb)), emb)
        outs.append(h)
        return {f.shape[-1]: head(f, emb) for f, head in zip(outs, self.heads)}


class CFWResBlock(nn.Module):
    """GN-swish-conv ×2 with a 1×1 skip when the channel count changes (the LDM autoencoder's ResBlock)."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.norm1 = nn.GroupNorm(GROUPS, cin, eps=1e-6)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.norm2 = nn.GroupNorm(GROUPS, cout, eps=1e-6)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.conv_out = nn.Conv2d(cin, cout, 1) if cin != cout else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv2(F.silu(self.norm2(self.conv1(F.silu(self.norm1(x))))))
        return h + (x if self.conv_out is None else self.conv_out(x))


class CFWFusion(nn.Module):
    """F(cat(enc, dec)): ResBlock(2C → C), RRDB × n, ResBlock(C → C)."""

    def __init__(self, channels: int, num_block: int = 2, num_grow_ch: int = 32):
        super().__init__()
        self.encode_enc_1 = CFWResBlock(2 * channels, channels)
        self.encode_enc_2 = nn.Sequential(*[RRDB(channels, num_grow_ch) for _ in range(num_block)])
        self.encode_enc_3 = CFWResBlock(channels, channels)

    def forward(self, enc: torch.Tensor, dec: torch.Tensor, w: float) -> torch.Tensor:
        return dec + w * self.encode_enc_3(self.encode_enc_2(self.encode_enc_1(torch.cat([enc, dec], 1))))


class CFWAutoencoder(ModelMixin, ConfigMixin):
    """AutoencoderKL whose decoder takes the LR image's encoder features (`decode(z, lr_up, w)`)."""

    @register_to_config
    def __init__(self, vae_config: dict, fusion_levels: tuple[int, ...] = (1, 2), num_fuse_block: int = 2):
        super().__init__()
        self.vae = AutoencoderKL.from_config(vae_config)
        n = len(self.vae.config.block_out_channels)
        self.fusion = nn.ModuleDict({str(lv): CFWFusion(self.vae.config.block_out_channels[lv], num_fuse_block) for lv in fusion_levels})
        self._enc: dict[int, torch.Tensor] = {}
        self._fuse: tuple[dict[int, torch.Tensor], float] | None = None
        for lv in fusion_levels:
            # level lv's features: after its ResNets, before it is halved (encoder) / doubled (decoder)
            self.vae.encoder.down_blocks[lv].resnets[-1].register_forward_hook(self._keep(lv))
            self.vae.decoder.up_blocks[n - 1 - lv].resnets[-1].register_forward_hook(self._fuse_at(lv))

    def _keep(self, level: int):
        def keep(_module, _args, out):
            self._enc[level] = out

        return keep

    def _fuse_at(self, level: int):
        def fuse(_module, _args, out):
            if self._fuse is None:
                return None
            enc, w = self._fuse
            return self.fusion[str(level)](enc[level].to(out.dtype), out, w)

        return fuse

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, dict[int, torch.Tensor]]:
        """x in [-1, 1] -> (the posterior's mean, unscaled; the features CFW fuses)."""
        self._enc = {}
        mean = self.vae.encode(x).latent_dist.mode()
        enc, self._enc = self._enc, {}
        return mean, enc

    def decode(self, z: torch.Tensor, enc: dict[int, torch.Tensor] | None, w: float) -> torch.Tensor:
        """Unscaled latents -> images in [-1, 1]; without features (or w = 0) the plain SD decoder."""
        self._fuse = (enc, float(w)) if enc else None
        try:
            return self.vae.decode(z).sample
        finally:
            self._fuse = None
