"""How every diffusion SR model samples (no torch here: params.yaml's checks and the Snakefile read it).

SamplerConfig is the sampler's one definition: its fields are params.yaml's threedsr.{steps, update, eta, init, seed}
(SAMPLER_KEYS), its defaults theirs (settings.ThreeDSRBlock takes them from here), so the SR models and the 3DSR loop
read their sampler without going through the app's settings.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from .names import INITS, UPDATES


@dataclass(frozen=True)
class SamplerConfig:
    """How to sample: `steps` respaced timesteps, the update rule, DDIM's η, the start latent, the base seed."""

    steps: int = 4  # sampling steps (paper: 4: timesteps 999, 666, 333, 0)
    update: str = "ddim"  # ddim (paper eq. 3, with eta) or ddpm_posterior (official code)
    eta: float = 0.0  # DDIM's eta (0: deterministic)
    init: str = "noised_lr"  # start latent: the LR image noised to the first timestep, or pure noise
    seed: int = 0  # base seed; each view's noise is drawn from its own seed (sampling.view_seeds)

    def __post_init__(self):
        if self.steps < 1:
            raise ValueError(f"steps must be >= 1, got {self.steps}")
        if self.update not in UPDATES:
            raise ValueError(f"update must be one of {UPDATES}, got {self.update!r}")
        if self.init not in INITS:
            raise ValueError(f"init must be one of {INITS}, got {self.init!r}")
        if not 0.0 <= self.eta <= 1.0:
            raise ValueError(f"eta must be in [0, 1], got {self.eta}")


SAMPLER_KEYS = tuple(f.name for f in fields(SamplerConfig))  # the threedsr keys every diffusion sampler reads
