"""Scoring jobs and tables: NIQE and FID's features beside PSNR/SSIM/LPIPS, offline and with placed weights; the paper's
table shape; the MEt3R export and column."""

import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from threedsr import weights as fetching
from threedsr.data.scene import PreparedScene
from threedsr.io import write_json, write_png
from threedsr.methods import registry as method_registry
from threedsr.metrics import met3r, niqe, scoring, weights
from threedsr.metrics.fid import FIDInceptionV3
from threedsr.reporting import tables

REPO = Path(__file__).resolve().parents[1]
# summary.csv's columns: the paper's six metrics (and pooled FID, KID) per dataset, scene and method
SUMMARY_COLUMNS = "dataset scene method psnr ssim lpips niqe met3r fid fid_pooled kid kid_se kind".split()

W, H = 128, 96  # one 96x96 NIQE block


def _scene(root, n_test=3, n_train=1):
    """A prepared scene (scene.json + hr/ images) with cameras along x, its test views textured by a photo."""
    import skimage.data

    photo = skimage.data.coffee()
    views = []
    for i in range(n_test + n_train):
        name, split = f"v{i}", "test" if i < n_test else "train"
        w2c = np.eye(4)
        w2c[0, 3] = -0.1 * i  # camera centre at x = 0.1 i
        hr = {"fx": 100.0, "fy": 100.0, "cx": W / 2, "cy": H / 2, "width": W, "height": H}
        lr = {k: v / 4 for k, v in hr.items() if k not in ("width", "height")} | {"width": W // 4, "height": H // 4}
        views.append({"name": name, "split": split, "world_to_camera": w2c.tolist(), "hr": hr, "lr": lr})
        write_png(root / "hr" / f"{name}.png", np.ascontiguousarray(photo[10 * i : 10 * i + H, 20 * i : 20 * i + W]))
    write_json(root / "scene.json", {"format_version": 1, "scale": 4, "views": views})
    return root


def _renders(scene, out, noise, seed=0):
    rng = np.random.default_rng(seed)
    for v in [v for v in PreparedScene(scene).test_views]:
        gt = PreparedScene(scene).image(v, "hr").astype(np.float64)
        write_png(out / f"{v.name}.png", np.clip(gt + rng.normal(0, noise, gt.shape), 0, 255).round().astype(np.uint8))
    return out


@pytest.fixture
def hub(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(fetching, "_warned", set())
    path = tmp_path / "torch" / "hub" / "checkpoints"
    path.mkdir(parents=True)
    return path


def test_offline_the_new_columns_are_na_with_one_warning_each(tmp_path, hub):
    scene = _scene(tmp_path / "scene")
    renders = _renders(scene, tmp_path / "renders", 8)
    with pytest.warns(UserWarning) as record:
        table = scoring.evaluate_renders(
            renders, scene, tmp_path / "m.csv", "d", "s", "bicubic", features_out=tmp_path / "m.npz", fetch=False
        )
    missing = sorted(spec.file for spec in (weights.ALEXNET, weights.INCEPTION, weights.NIQE_MODEL))
    assert sorted(f for f in missing for w in record if f in str(w.message)) == missing and len(record) == 3
    assert table.psnr.notna().all() and table.lpips.isna().all() and table.niqe.isna().all()
    assert list(pd.read_csv(tmp_path / "m.csv").columns) == ["dataset", "scene", "method", "view", "psnr", "ssim", "lpips", "niqe"]
    feats = scoring.read_features(tmp_path / "m.npz")
    assert not feats["available"] and list(feats["views"]) == ["v0", "v1", "v2"]
    summary = tables.aggregate([tmp_path / "m.csv"], tmp_path / "out", features=[tmp_path / "m.npz"])
    assert summary[["lpips", "niqe", "fid", "fid_pooled", "kid", "met3r"]].isna().all().all()
    assert "| bicubic | " in (tmp_path / "out" / "d.md").read_text() and "n/a" in (tmp_path / "out" / "d.md").read_text()
    assert pd.read_json(tmp_path / "out" / "summary.json").loc["bicubic", "d"]["fid"] is None


def test_with_the_files_placed_every_column_is_filled(tmp_path, hub, monkeypatch):
    import skimage.data

    from threedsr.metrics import fid

    monkeypatch.setattr(fid, "INPUT_SIZE", 75)  # the plumbing at 1/16 of the cost (tests/test_fid.py checks the network at 299)
    from test_metrics import _alexnet_state

    torch.save(_alexnet_state(), hub / weights.ALEXNET.file)
    niqe.save_model(niqe.fit_model([skimage.data.chelsea(), skimage.data.rocket()]), hub / weights.NIQE_MODEL.file)
    torch.manual_seed(0)  # random Inception weights (torch's default initialisation) in the official layout
    torch.save(FIDInceptionV3().state_dict(), hub / weights.INCEPTION.file)
    scene = _scene(tmp_path / "scene")
    renders = _renders(scene, tmp_path / "bicubic", 8)
    with pytest.warns(UserWarning, match="not comparable"):  # the fitted NIQE model is not the published one
        scoring.evaluate_renders(renders, scene, tmp_path / "m.csv", "d", "s", "bicubic", features_out=tmp_path / "m.npz", fetch=False)
    feats = scoring.read_features(tmp_path / "m.npz")
    assert feats["available"] and feats["render"].shape == feats["gt"].shape == (3, 2048)
    summary = tables.aggregate([tmp_path / "m.csv"], tmp_path / "out", features=[tmp_path / "m.npz"])
    mean = summary[summary.scene == "mean"].iloc[0]
    assert mean[["psnr", "ssim", "lpips", "niqe", "fid", "fid_pooled", "kid", "kid_se"]].notna().all() and mean.fid > 0
    assert mean.fid == pytest.approx(mean.fid_pooled)  # one scene: the pooled FID is the scene's


def _fake_scene_scores(tmp_path, dataset, scene, method, psnr, n_views=3, seed=0):
    rng = np.random.default_rng(seed)
    views = [f"{scene}_{i}" for i in range(n_views)]
    pd.DataFrame(
        {
            "dataset": dataset,
            "scene": scene,
            "method": method,
            "view": views,
            "psnr": psnr + rng.normal(0, 0.1, n_views),
            "ssim": 0.5,
            "lpips": np.nan,
            "niqe": 5.0 - psnr / 10,
        }
    ).to_csv(tmp_path / f"{scene}_{method}.csv", index=False)
    render, gt = rng.normal(size=(n_views, 2048)) + psnr / 10, rng.normal(size=(n_views, 2048))
    scoring.write_features(
        tmp_path / f"{scene}_{method}.npz", dataset, scene, method, views, render.astype(np.float32), gt.astype(np.float32)
    )
    return tmp_path / f"{scene}_{method}.csv", tmp_path / f"{scene}_{method}.npz"


def test_tables_have_the_papers_shape(tmp_path):
    methods = ["lr3dgs", "sr2d", "bicubic", "3dsr"]  # params' order, not alphabetical
    csvs, npzs = [], []
    for scene in ("fern", "room"):
        for i, (m, p) in enumerate(zip(methods, (15.0, 22.0, 21.0, 23.0))):
            c, n = _fake_scene_scores(tmp_path, "llff", scene, m, p, seed=i)
            csvs.append(c)
            npzs.append(n)
    renders = [tmp_path / "renders" / "llff" / "fern" / m for m in ("3dsr", "bicubic")]
    for folder in renders:
        folder.mkdir(parents=True)
        for i in range(3):
            (folder / f"fern_{i}.png").write_bytes(f"{folder.name} {i}".encode())
    digests = [met3r.renders_digest(f, [f"fern_{i}" for i in range(3)]) for f in renders]
    pd.DataFrame(
        {"dataset": "llff", "scene": "fern", "method": ["3dsr", "bicubic"], "view_a": "a", "view_b": "b", "renders_sha256": digests}
    ).assign(met3r=[0.2, 0.3]).to_csv(tmp_path / "met3r.csv", index=False)
    summary = tables.aggregate(
        list(reversed(csvs)), tmp_path / "out", methods=methods, features=npzs, met3r=tmp_path / "met3r.csv", renders=renders
    )
    assert list(summary.columns) == SUMMARY_COLUMNS
    assert list(summary[summary.scene == "mean"].method) == methods and list(summary[summary.scene == "fern"].method) == methods
    assert summary.set_index(["scene", "method"]).loc[("fern", "sr2d"), "kind"] == "2D"
    assert summary.set_index(["scene", "method"]).loc[("fern", "3dsr"), "met3r"] == 0.2
    assert math.isnan(summary.set_index(["scene", "method"]).loc[("room", "3dsr"), "met3r"])  # no MEt3R scores for room
    assert summary[summary.scene == "mean"].met3r.isna().all()  # so no dataset mean: it would be fern's alone
    md = (tmp_path / "out" / "llff.md").read_text()
    head = "| method | PSNR ↑ | SSIM ↑ | LPIPS ↓ | NIQE ↓ | MEt3R ↓ | FID ↓ † |"
    assert md.count(head) == 3  # the mean table (then pooled FID and KID) and one table per scene
    first = md.split("\n## ")[0]
    rows = [ln.split(" | ")[0][2:] for ln in first.splitlines() if ln.startswith("| ") and not ln.startswith("| method")]
    assert rows == ["lr3dgs", "sr2d (2D)", "bicubic", "3dsr"]
    assert "| 3dsr | **23.0" in first  # the best PSNR in bold
    assert md.index("## fern") < md.index("## room") and "| mean" not in md and "mean |" not in md
    assert "pooled FID ↓ | KID ×10³ ↓" in first and "±" in first and "not a reliable estimate" in first
    assert "**0.500**" not in md  # equal values: no best to bold
    html = (tmp_path / "out" / "llff.html").read_text()
    assert html.count("<table>") == 3 and "<b>23.0" in html
    json = pd.read_json(tmp_path / "out" / "summary.json")
    assert set(json.loc["3dsr", "llff"]) == {"psnr", "ssim", "lpips", "niqe", "met3r", "fid", "fid_pooled", "kid", "kid_se"}


def test_met3r_export_and_scores_with_a_stand_in(tmp_path, monkeypatch):
    """The real MEt3R cannot be installed here (GitHub, pytorch3d, CUDA): a stand-in with its call signature checks the
    plumbing: pairs of nearest test views, square images in [-1, 1], scores.csv, and the column aggregate fills."""
    scenes, renders = tmp_path / "scenes", tmp_path / "renders"
    scene = _scene(scenes / "d" / "s", n_test=3)
    for m in ("bicubic", "3dsr"):
        _renders(scene, renders / "d" / "s" / m, 5)
    pairs = met3r.export(renders, scenes, tmp_path / "met3r", size=64)
    assert list(zip(pairs.view_a, pairs.view_b))[:2] == [("v0", "v1"), ("v1", "v2")] and len(pairs) == 4  # 2 pairs x 2 methods
    cams = pd.read_json(tmp_path / "met3r" / "d" / "s" / "cameras.json", typ="series")
    assert cams["views"]["v0"]["intrinsics"]["width"] == 64 and cams["views"]["v0"]["intrinsics"]["cx"] == 32

    class StandIn:
        def __call__(self, images, return_overlap_mask=False, return_score_map=False, return_projections=False):
            assert images.shape[1:] == (2, 3, 64, 64) and images.min() >= -1 and images.max() <= 1
            return ((images[:, 0] - images[:, 1]).abs().mean(dim=(1, 2, 3)),)

    scores = met3r.score(pairs, tmp_path / "met3r", StandIn(), device="cpu", batch_size=3)
    assert list(pd.read_csv(tmp_path / "met3r" / "scores.csv").columns) == met3r.SCORE_COLUMNS and scores.met3r.gt(0).all()
    monkeypatch.setitem(sys.modules, "met3r", None)  # not installed: the command says how to install it
    with pytest.raises(met3r.ThreeDSRError, match="pip install git\\+https://github.com/mohammadasim98/met3r"):
        met3r.load_met3r(64, "cpu")


def test_a_metric_is_one_function_and_one_registry_entry(tmp_path, hub, monkeypatch):
    """A per-view score added to metric_registry.METRICS alone is scored per view, meaned in summary.csv and
    summary.json, and shown in every table with its header, decimals and bold."""
    from threedsr.metrics import registry as metric_registry

    mae = metric_registry.Metric("mae", "MAE ↓", False, 4, "view", score=lambda _, v: float((v.render - v.gt).abs().mean()))
    monkeypatch.setattr(metric_registry, "METRICS", metric_registry.METRICS + (mae,))
    scene = _scene(tmp_path / "scene")
    csvs = []
    with pytest.warns(UserWarning):  # offline: LPIPS and NIQE n/a
        for method, noise in (("bicubic", 4), ("3dsr", 12)):
            renders = _renders(scene, tmp_path / method, noise)
            scoring.evaluate_renders(renders, scene, tmp_path / f"{method}.csv", "d", "s", method, fetch=False)
            csvs.append(tmp_path / f"{method}.csv")
    per_view = pd.read_csv(csvs[0])
    assert list(per_view.columns)[-1] == "mae" and per_view.mae.between(0.005, 0.05).all()
    summary = tables.aggregate(csvs, tmp_path / "out", methods=["bicubic", "3dsr"]).set_index(["scene", "method"])
    assert (
        summary.columns[-2:].tolist() == ["mae", "kind"] and summary.loc[("mean", "bicubic"), "mae"] < summary.loc[("mean", "3dsr"), "mae"]
    )
    assert pd.read_json(tmp_path / "out" / "summary.json").loc["bicubic", "d"]["mae"] == round(summary.loc[("mean", "bicubic"), "mae"], 4)
    md = (tmp_path / "out" / "d.md").read_text()
    scene_table = md.split("## s")[1]
    assert "| MAE ↓ |" in scene_table and "<th>MAE ↓</th>" in (tmp_path / "out" / "d.html").read_text()
    rows = {
        ln.split(" | ")[0][2:]: ln.strip(" |").split(" | ") for ln in scene_table.splitlines() if ln.startswith("| ") and "---" not in ln
    }
    assert rows["bicubic"][-1] == f"**{summary.loc[('s', 'bicubic'), 'mae']:.4f}**" and not rows["3dsr"][-1].startswith("**")


def test_met3r_scores_of_changed_renders_are_not_shown(tmp_path, caplog):
    """MEt3R's scores carry the digest of the renders they scored: after a refit changes the renders, the tables show
    no MEt3R for that method (and say why) instead of a stale score beside new PSNRs."""
    folder = tmp_path / "renders" / "d" / "s" / "3dsr"
    folder.mkdir(parents=True)
    for v in ("a", "b"):
        (folder / f"{v}.png").write_bytes(v.encode())
    digest = met3r.renders_digest(folder, ["b", "a"])  # the views' order does not matter
    scores = pd.DataFrame(
        {"dataset": "d", "scene": "s", "method": "3dsr", "view_a": ["a"], "view_b": ["b"], "renders_sha256": [digest], "met3r": [0.1]}
    )
    now = {("d", "s", "3dsr"): (folder, ["a", "b"])}
    assert len(met3r.fresh_scores(scores, now)) == 1
    assert met3r.fresh_scores(scores, {}).empty  # a method the tables no longer have
    (folder / "a.png").write_bytes(b"refit")
    assert met3r.fresh_scores(scores, now).empty and "d/s/3dsr was scored on other renders" in caplog.text
    (folder / "a.png").unlink()  # renders gone: nothing to vouch for the scores
    assert met3r.fresh_scores(scores, now).empty
    assert met3r.fresh_scores(scores.drop(columns="renders_sha256"), now).empty  # a scores.csv from before the digest


def test_the_tables_say_when_the_hr_budgets_differ(tmp_path):
    from threedsr import config

    csvs = [
        _fake_scene_scores(tmp_path, "llff", "fern", m, p, seed=i)[0]
        for i, (m, p) in enumerate(zip(("bicubic", "isr", "3dsr"), (21.0, 22.0, 23.0)))
    ]
    params = config.load(REPO / "params.yaml", REPO / "workflow" / "presets" / "paper-llff.yaml")
    budgets = method_registry.hr_budgets({**params, "methods": ["bicubic", "isr", "3dsr"]})
    assert budgets == {"bicubic": 30000, "isr": 20000, "3dsr": 20000}  # isr gets 3dsr's 4 x 5000 unless set
    tables.aggregate(csvs, tmp_path / "out", methods=["bicubic", "isr", "3dsr"], budgets=budgets)
    assert "3DGS steps at HR differ: bicubic 30000, isr 20000, 3dsr 20000" in (tmp_path / "out" / "llff.md").read_text()
    tables.aggregate(csvs, tmp_path / "same", methods=["bicubic", "isr", "3dsr"], budgets={"bicubic": 600, "isr": 600, "3dsr": 600})
    assert "steps at HR differ" not in (tmp_path / "same" / "llff.md").read_text()


def test_the_footnote_names_only_the_columns_that_are_missing(tmp_path):
    """The note said "LPIPS, NIQE and FID need weights" under tables whose LPIPS was filled."""
    made = [_fake_scene_scores(tmp_path, "llff", "fern", m, p, seed=i) for i, (m, p) in enumerate(zip(("bicubic", "3dsr"), (21.0, 23.0)))]
    tables.aggregate([c for c, _ in made], tmp_path / "out", methods=["bicubic", "3dsr"], features=[f for _, f in made])
    note = next(line for line in (tmp_path / "out" / "llff.md").read_text().splitlines() if line.startswith("n/a"))
    assert note.startswith("n/a: not computed — LPIPS needs weights that were not on this machine")  # NIQE and FID are filled
    assert "NIQE" not in note and "FID" not in note and "MEt3R needs `threedsr met3r`" in note
