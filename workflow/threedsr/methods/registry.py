"""Every method the benchmark compares, in one list: whether it is 3D or 2D, which SR model it runs, its 3DGS budget at
HR and what its model is fitted to (as sr/registry.py is for the SR models, metrics/registry.py for the scores).

From METHODS derive: the names `methods` accepts (config.schema() puts method_names() into the schema), the config
checks (x4 SR, a diffusion model for 3dsr, the SR models whose weights must exist), each method's budget and the keys
it is read from (its fit job declares them; the tables' note), which methods have a 3DGS model to render (the rules'
GS_METHODS) or are 2D rows, which write SR images of the views, and which are fitted by the generic rule fit_hr_targets.

Adding a method whose model is the LR model fitted further at HR to one image per training view: a module in this
folder with `hr_target(scene, view)` (methods/bicubic.py) and one entry below with `targets` naming it; nothing else.
A method with jobs of its own (SR of the views, sampling) also needs its rules in workflow/rules/ and its command in
cli/ (README, "Adding a method"). No torch here: the Snakefile imports it while it is parsed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from ..errors import ConfigError, lookup
from ..sr import registry


def threedsr_budget(config: dict) -> int:
    """3DSR's 3DGS steps at HR: threedsr.steps rounds of threedsr.iters_per_step."""
    return config["threedsr"]["steps"] * config["threedsr"]["iters_per_step"]


def hr_iterations(config: dict, block: str) -> int:
    """The 3DGS steps at HR of `isr` or `supergaussian`: their own `iterations`, or by default (null) 3DSR's budget,
    so that the methods compare at equal 3DGS budgets."""
    return config[block]["iterations"] or threedsr_budget(config)


def hr_iteration_keys(config: dict, block: str) -> list[str]:
    """The params keys hr_iterations(config, block) reads (a job declares them: it reruns when one changes)."""
    return [f"{block}.iterations"] + (["threedsr.steps", "threedsr.iters_per_step"] if config[block]["iterations"] is None else [])


@dataclass(frozen=True)
class Budget:
    """A method's 3DGS steps at HR, from params, and the params keys they are read from (its fit job declares them)."""

    steps: Callable[[dict], int]
    keys: Callable[[dict], list[str]]


THREEDSR_BUDGET = Budget(threedsr_budget, lambda c: ["threedsr.steps", "threedsr.iters_per_step"])


def own_iterations(block: str) -> Budget:
    """`<block>.iterations`, or by default (null) 3DSR's budget (hr_iterations)."""
    return Budget(lambda c: hr_iterations(c, block), lambda c: hr_iteration_keys(c, block))


@dataclass(frozen=True)
class Method:
    name: str  # its name in params.yaml's `methods`; with `sr_models`, also `<name>-<SR model>` for each model it can run
    dims: int  # 3: a 3DGS model, rendered at the test views; 2: SR of each test view's own LR image (no 3D model)
    trains_on: str  # what its model is fitted to, in a few words
    sr_models: tuple[str, ...] = ()  # the SR models it can run (after a hyphen, else sr.model); () when it names none
    upsampler_key: str | None = None  # the params key naming the SR model it runs instead ("block.key")
    hr_budget: Budget | None = None  # its 3DGS steps at HR from params; None: it fits no 3DGS at HR
    sr_images: bool = False  # it super-resolves the scene's views image by image first (results/sr/<model>)
    targets: str | None = None  # a module of threedsr.methods with hr_target(scene, view): fit_hr_targets fits those

    def sr_model(self, config: dict, method: str) -> str | None:
        """The SR model `method` (this method's name or a `-<model>` variant) runs, if any."""
        if self.upsampler_key:
            block, key = self.upsampler_key.split(".")
            return config[block][key]
        if self.sr_models:
            return split(method)[1] or config["sr"]["model"]
        return None


METHODS: tuple[Method, ...] = (
    Method("lr3dgs", 3, "the LR views (the LR model every HR method starts from)"),
    Method(
        "bicubic",
        3,
        "bicubic x4 of the LR views",
        hr_budget=Budget(lambda c: c["bicubic"]["iterations"], lambda c: ["bicubic.iterations"]),
        targets="bicubic",
    ),
    Method(
        "supergaussian",
        3,
        "x4 SR of LR renders along a path between the training cameras",
        upsampler_key="supergaussian.upsampler",
        hr_budget=own_iterations("supergaussian"),
    ),
    Method(
        "isr",
        3,
        "x4 SR of each LR view",
        sr_models=registry.IMAGE_MODELS,
        hr_budget=own_iterations("isr"),
        sr_images=True,
    ),
    Method("sr2d", 2, "nothing: x4 SR of each test view's LR image", sr_models=registry.IMAGE_MODELS, sr_images=True),
    Method("3dsr", 3, "the decoded x0 of each view, step by step", sr_models=registry.DIFFUSION_MODELS, hr_budget=THREEDSR_BUDGET),
)
BY_NAME = {m.name: m for m in METHODS}


def split(method: str) -> tuple[str, str | None]:
    """A method name's base and the SR model it names: 'sr2d-realesrgan' -> ('sr2d', 'realesrgan'), 'isr' -> ('isr', None)."""
    base, _, model = method.partition("-")
    return base, model or None


def of(method: str) -> Method:
    """The registry entry of a method name (its base: 'sr2d-realesrgan' -> sr2d)."""
    return lookup(BY_NAME, split(method)[0], "method", ConfigError)


def method_names() -> list[str]:
    """Every name `methods` accepts: each method, then each SR method with each model it can run."""
    return [m.name for m in METHODS] + [f"{m.name}-{model}" for m in METHODS for model in m.sr_models]


def hr_budgets(config: dict) -> dict[str, int]:
    """Each configured method's 3DGS steps at HR (the methods that fit a 3DGS at HR; lr3dgs and sr2d have none)."""
    return {m: spec.hr_budget.steps(config) for m in config["methods"] if (spec := of(m)).hr_budget}


def hr_budget_keys(config: dict) -> list[str]:
    """The params keys hr_budgets(config) reads: `methods` and each configured method's budget keys."""
    return ["methods", *sorted({k for m in config["methods"] if (b := of(m).hr_budget) for k in b.keys(config)})]


def with_method_names(schema: dict) -> dict:
    """params.schema.yaml's content with the names `methods` accepts (method_names()) as its enum: one list, here."""
    schema["properties"]["methods"]["items"]["enum"] = method_names()
    return schema
