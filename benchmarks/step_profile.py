"""One 3DGS training step on the CPU, part by part: where the time of a fit goes.

    python benchmarks/step_profile.py results/scenes/synthetic/forward --ckpt results/gs/synthetic/forward/3dsr/ckpt.pt
    python benchmarks/step_profile.py SCENE --gaussians 1000 20000 200000 --scales 1 2 --json out.json   # the scaling curve
    python benchmarks/step_profile.py SCENE --ckpt CKPT --vs ../old-checkout/workflow --rounds 3        # today's code beside another's
    python benchmarks/step_profile.py --plot docs/images/step_scaling.png old.json new.json             # step time against size

The step is isr's (the default HR fit): the HR training views as targets, the loss L_hr + λ·L_lr with λ = 1, the
model's own render settings (Mip-Splatting's filters when it was fitted with them), Adam, gsplat's densification
strategy's bookkeeping (run every step; densification itself never happens, so the model keeps its size), and the
3D filter's update at its amortised share (once every 100 steps); --fit lr times pretrain_lr's step instead (the LR
views, the photometric loss alone). With --ckpt, the Gaussians of a fitted model (subsampled or
repeated with a small jitter to --gaussians); otherwise they are initialised from the scene's points as 3DGS does.
--scales multiplies the HR image size (intrinsics scaled with it). Each configuration: one warm-up step (numba compiles
on first use, then reads its cache), then --steps timed steps; medians are printed.

The parts are timed by wrapping the functions that do them (module attributes looked up when they are called), so the
same script profiles any version of the code: a part a version does not have is left out, and "autograd (rest)" is
the backward pass minus the parts timed inside it (projection, SH, activation, loss backward). --vs PATH runs this
script in a subprocess with PATH first on PYTHONPATH (another checkout's `workflow/`), alternating the two
(A B A B ...) --rounds times, and prints each figure's ratio other / this per round and their median.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from contextlib import ExitStack, contextmanager
from pathlib import Path

import numpy as np
import torch

from threedsr.data.scene import PreparedScene
from threedsr.imaging import to_float
from threedsr.methods.training_views import train_view
from threedsr.splat import gaussians
from threedsr.splat.trainer import TrainConfig, Trainer, load_params

TIMES: dict[str, float] = defaultdict(float)

# (label, module, attribute): the functions whose time is a part of the step, in the order of the step. Each is
# looked up by name, so renamed or absent parts of another version are skipped.
PARTS = [
    ("activation + 3D filter", "threedsr.splat.render", "activated"),
    ("projection", "threedsr.splat.rasterization", "project"),
    ("projection", "threedsr.splat.rasterization", "covariance"),
    ("SH colours", "threedsr.splat.rasterization", "sh_to_color"),
    ("projection + SH colours", "threedsr.splat.cpu_project", "project_forward"),
    ("projection + SH backward", "threedsr.splat.cpu_project", "project_backward"),
    ("binning", "threedsr.splat.cpu_raster", "bin_gaussians"),
    ("compositing forward", "threedsr.splat.cpu_raster", "composite_forward"),
    ("compositing backward", "threedsr.splat.cpu_raster", "composite_backward"),
    ("scatter", "threedsr.splat.cpu_raster", "scatter_gradients"),
    ("loss forward (L1 + SSIM, HR and LR)", "threedsr.splat.trainer", "photometric_loss"),
    ("loss forward (L1 + SSIM, HR and LR)", "threedsr.methods.fit", "photometric_loss"),
    ("loss forward (L1 + SSIM, HR and LR)", "threedsr.methods.fit", "resize"),
]
# parts that run inside loss.backward() (their own backward is timed in their forward's custom Function)
INSIDE_BACKWARD = ("compositing backward", "scatter", "projection + SH backward", "SSIM backward")


def _timed(label, fn):
    def wrapper(*args, **kwargs):
        t0 = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            TIMES[label] += time.perf_counter() - t0

    wrapper.__wrapped__ = fn
    return wrapper


@contextmanager
def _patched(obj, attr, label):
    own = attr in vars(obj)  # an instance's bound method is restored by removing the wrapper
    fn = getattr(obj, attr)
    setattr(obj, attr, _timed(label, fn))
    try:
        yield
    finally:
        setattr(obj, attr, fn) if own else delattr(obj, attr)


def _instrument(stack: ExitStack, trainer: Trainer) -> None:
    import importlib

    for label, module, attr in PARTS:
        try:
            m = importlib.import_module(module)
        except ImportError:
            continue
        if hasattr(m, attr):
            stack.enter_context(_patched(m, attr, label))
    stack.enter_context(_patched(torch.Tensor, "backward", "backward (all)"))
    for opt in trainer.optimizers.values():
        stack.enter_context(_patched(opt, "step", "optimizer (Adam)"))
        stack.enter_context(_patched(opt, "zero_grad", "optimizer (Adam)"))
    stack.enter_context(_patched(trainer.scheduler, "step", "optimizer (Adam)"))
    stack.enter_context(_patched(trainer.strategy, "step_pre_backward", "densification bookkeeping"))
    stack.enter_context(_patched(trainer.strategy, "step_post_backward", "densification bookkeeping"))


def _model(scene: PreparedScene, ckpt: str | None, n: int | None, seed: int = 0):
    """Gaussians (ParameterDict) and the config they render with."""
    if ckpt:
        params, stored = load_params(ckpt)
        cfg = dict(stored["config"])
        state = {k: v.detach() for k, v in params.items()}
    else:
        from threedsr.splat.gaussians import init_from_points

        xyz, rgb = scene.points()
        cfg = {}
        state = {k: v.detach() for k, v in init_from_points(xyz, rgb, 3, seed=seed).items()}
        state["opacities"] = torch.logit(torch.rand(len(xyz), generator=torch.Generator().manual_seed(seed)) * 0.9 + 0.05)
    have = len(state["means"])
    if n and n != have:
        g = torch.Generator().manual_seed(seed)
        idx = torch.randperm(have, generator=g)[:n] if n < have else torch.randint(0, have, (n,), generator=g)
        state = {k: v[idx].clone() for k, v in state.items()}
        if n > have:  # repeated Gaussians jittered by a tenth of their size, so they do not coincide
            size = torch.exp(state["scales"]).mean(dim=1, keepdim=True)
            state["means"] += torch.randn(state["means"].shape, generator=g) * size * 0.1
    return gaussians.from_state(state), cfg


def _views(scene: PreparedScene, scale: float):
    """The HR training views (HR ground truth as H, the LR image for L_lr), their size times `scale`."""
    out = []
    for v in scene.train_views:
        hr = to_float(scene.image(v, "hr"))
        lr = to_float(scene.image(v, "lr"))
        tv = train_view(v, "hr", hr, lr_target=lr)
        if scale != 1:
            w, h = round(tv.width * scale), round(tv.height * scale)
            K = tv.K.clone()
            K[0] *= w / tv.width
            K[1] *= h / tv.height
            target = torch.nn.functional.interpolate(hr.permute(2, 0, 1)[None], size=(h, w), mode="bilinear", antialias=True)
            lr_size = (max(1, round(lr.shape[0] * scale)), max(1, round(lr.shape[1] * scale)))
            lr_t = torch.nn.functional.interpolate(lr.permute(2, 0, 1)[None], size=lr_size, mode="bilinear", antialias=True)
            tv = type(tv)(tv.world_to_camera, K, w, h, target[0].permute(1, 2, 0).contiguous(), lr_t[0].permute(1, 2, 0).contiguous())
        out.append(tv)
    return out


def profile(scene_dir: str, ckpt: str | None, n: int | None, scale: float, steps: int, fit: str = "hr") -> dict:
    from threedsr.methods.fit import hr_lr_loss
    from threedsr.methods.training_views import lr_views

    scene = PreparedScene(scene_dir)
    params, stored = _model(scene, ckpt, n)
    views = _views(scene, scale) if fit == "hr" else lr_views(scene)
    known = {f for f in TrainConfig.__dataclass_fields__}
    cfg = TrainConfig(**{k: v for k, v in stored.items() if k in known})
    # densification's bookkeeping runs every step, densification itself never (the model keeps its size); SH at full degree
    cfg.iterations, cfg.refine_start, cfg.refine_stop, cfg.sh_degree_start = 10**6, 10**9, 10**9, cfg.sh_degree
    trainer = Trainer(params, views, cfg, 1.0)
    # isr's loss at HR (L_hr + L_lr), pretrain_lr's at LR (the photometric loss alone)
    loss_fn = hr_lr_loss(1.0, cfg.delta_dssim) if fit == "hr" else None
    t0 = time.perf_counter()
    trainer.train(2, loss_fn=loss_fn, desc="warm-up")
    warmup = time.perf_counter() - t0
    steps_s, parts, marks = [], defaultdict(list), {}

    def on_step(_trainer, _loss):  # one step's time and parts, from the previous step's end
        now = time.perf_counter()
        steps_s.append(now - marks["t"])
        for k in set(TIMES) | set(marks["parts"]):
            parts[k].append(TIMES.get(k, 0.0) - marks["parts"].get(k, 0.0))
        marks["t"], marks["parts"] = time.perf_counter(), dict(TIMES)

    TIMES.clear()
    with ExitStack() as stack:
        _instrument(stack, trainer)
        marks["t"], marks["parts"] = time.perf_counter(), {}
        trainer.train(trainer.step + steps, loss_fn=loss_fn, desc="steps", on_step=on_step)
    filter_s = []
    for _ in range(3):
        t0 = time.perf_counter()
        trainer.update_filter()
        filter_s.append(time.perf_counter() - t0)
    med = {k: statistics.median(v) for k, v in parts.items()}
    inside = sum(med.get(k, 0.0) for k in INSIDE_BACKWARD)
    # the loss's own backward and the autograd graph of activation and the rest are what remains of backward
    med["autograd (rest of backward)"] = med.pop("backward (all)", 0.0) - inside
    step = statistics.median(steps_s)
    filt = statistics.median(filter_s) / 100 if cfg.filter_3d else 0.0
    med["3D filter update (1/100)"] = filt
    med["other (Python, glue)"] = step - sum(v for k, v in med.items() if k != "3D filter update (1/100)")
    info_n = len(trainer.params["means"])
    return {
        "width": views[0].width,
        "height": views[0].height,
        "gaussians": info_n,
        "threads": torch.get_num_threads(),
        "numba_threads": int(os.environ.get("NUMBA_NUM_THREADS", 0)) or None,
        "warmup_s": warmup,
        "step_s": step + filt,
        "rasterizer_s": sum(med.get(k, 0.0) for k in ("binning", "compositing forward", "compositing backward", "scatter")),
        "parts": med,
    }


def _print(r: dict, label: str = "") -> None:
    print(
        f"{label}{r['width']}x{r['height']}, {r['gaussians']} Gaussians, torch threads {r['threads']}: "
        f"step {r['step_s'] * 1e3:.1f} ms (rasterizer {r['rasterizer_s'] * 1e3:.1f} ms); first two steps {r['warmup_s']:.1f} s (numba compiles "
        "here when its cache is empty)"
    )
    for k, v in r["parts"].items():
        print(f"    {k:<40s} {v * 1e3:8.2f} ms  {100 * v / r['step_s']:5.1f} %")


def _run_other(path: str, argv: list[str]) -> list[dict]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(Path(path).resolve()), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep))
    out = subprocess.run([sys.executable, __file__, *argv, "--json", "-"], env=env, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def plot(out: str, files: list[str]) -> None:
    """Step time against the number of Gaussians, one line per image size and results file (--json of each version)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    styles = ["--", "-", ":", "-."]  # one per file (version); one colour per image size
    colours = {}
    for f, style in zip(files, styles):
        runs = json.loads(Path(f).read_text())
        label = Path(f).stem
        for size in sorted({(r["width"], r["height"]) for r in runs}):
            pts = sorted((r["gaussians"], r["step_s"] * 1e3) for r in runs if (r["width"], r["height"]) == size)
            colour = colours.setdefault(size, f"C{len(colours)}")
            ax.plot(*zip(*pts), style, color=colour, marker="o", label=f"{label}, {size[0]}x{size[1]}")
    ax.set(xscale="log", yscale="log", xlabel="Gaussians", ylabel="one training step (ms)", title="3DGS step on 2 CPU cores")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=120)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("scene", nargs="?")
    p.add_argument("--plot", nargs="+", metavar=("PNG", "JSON"), help="draw PNG from the --json files that follow, then exit")
    p.add_argument("--ckpt", help="the Gaussians of this fitted checkpoint (and its render settings)")
    p.add_argument("--gaussians", type=int, nargs="*", default=[0], help="subsample/repeat the model to each count (0: as it is)")
    p.add_argument("--scales", type=float, nargs="*", default=[1.0], help="HR image size multipliers")
    p.add_argument("--steps", type=int, default=20, help="timed steps per configuration")
    p.add_argument("--fit", choices=("hr", "lr"), default="hr", help="isr's step at HR (default) or pretrain_lr's at LR")
    p.add_argument("--json", help="write the results as JSON here (- for stdout)")
    p.add_argument("--vs", metavar="WORKFLOW_DIR", help="another checkout's workflow/ folder: run both, alternating, and print ratios")
    p.add_argument("--rounds", type=int, default=3, help="with --vs: alternations")
    a = p.parse_args()

    if a.plot:
        plot(a.plot[0], a.plot[1:])
        return
    if not a.scene:
        p.error("a prepared scene is needed")
    if a.vs:
        argv = [a.scene, "--steps", str(a.steps), "--fit", a.fit, "--gaussians", *map(str, a.gaussians), "--scales", *map(str, a.scales)]
        argv += ["--ckpt", a.ckpt] if a.ckpt else []
        rounds = []
        here = str(Path(__file__).resolve().parents[1] / "workflow")
        for _ in range(a.rounds):
            rounds.append((_run_other(a.vs, argv), _run_other(here, argv)))
        for i in range(len(rounds[0][0])):
            other, this = rounds[0][0][i], rounds[0][1][i]
            print(f"\n== {this['width']}x{this['height']}, {this['gaussians']} Gaussians: {a.vs} (A) vs this checkout (B)")
            for key in ("rasterizer_s", "step_s"):
                ratios = [r[0][i][key] / r[1][i][key] for r in rounds]
                a_ms = statistics.median(r[0][i][key] for r in rounds) * 1e3
                b_ms = statistics.median(r[1][i][key] for r in rounds) * 1e3
                print(
                    f"  {key[:-2]:<11s} A {a_ms:8.1f} ms  B {b_ms:8.1f} ms  A/B per round {' '.join(f'{x:.2f}' for x in ratios)}  median {statistics.median(ratios):.2f}"
                )
            _print(other, "  A: ")
            _print(this, "  B: ")
        if a.json:
            Path(a.json).write_text(json.dumps({"vs": a.vs, "rounds": rounds}, indent=1))
        return

    torch.manual_seed(0)
    np.random.seed(0)
    results = []
    for n in a.gaussians:
        for s in a.scales:
            r = profile(a.scene, a.ckpt, n or None, s, a.steps, a.fit)
            results.append(r)
            if a.json != "-":
                _print(r)
    if a.json == "-":
        print(json.dumps(results))
    elif a.json:
        Path(a.json).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
