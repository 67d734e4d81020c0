"""The viewer (threedsr/viewer/): splat layers from fitted models, cameras, what a run left for a scene, and the viewer in a
real browser (headless Chromium: fails in CI when it is missing, skips elsewhere)."""

import math
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import REPO

from threedsr.errors import DataError
from threedsr.io import write_png
from threedsr.splat import filter3d
from threedsr.splat.sh import C0
from threedsr.viewer import app, catalog
from threedsr.viewer.layers import layer_from_params, load_layer, rotation_matrices


def params(n=50, seed=0, filter_sigma=None):
    g = torch.Generator().manual_seed(seed)
    p = {
        "means": torch.randn(n, 3, generator=g),
        "scales": torch.randn(n, 3, generator=g) - 3,
        "quats": torch.randn(n, 4, generator=g),
        "opacities": torch.randn(n, generator=g),
        "sh0": torch.randn(n, 1, 3, generator=g),
        "shN": torch.randn(n, 3, 3, generator=g),
    }
    if filter_sigma is not None:
        p[filter3d.KEY] = torch.full((n,), filter_sigma)
    return p


def test_layer_counts_colours_and_filter_baked():
    p = params(filter_sigma=0.02)
    layer = layer_from_params(p)
    assert layer.count == layer.total == 50
    assert layer.centers.shape == (50, 3) and layer.covariances.shape == (50, 3, 3)
    assert layer.rgbs.shape == (50, 3) and layer.opacities.shape == (50, 1)
    assert layer.centers.dtype == np.float32
    np.testing.assert_allclose(layer.rgbs, (p["sh0"][:, 0] * C0 + 0.5).clamp(0, 1).numpy(), atol=1e-6)  # SH degree 0 only
    scales, opacities = filter3d.apply(torch.exp(p["scales"]), torch.sigmoid(p["opacities"]), p[filter3d.KEY])
    np.testing.assert_allclose(layer.opacities[:, 0], opacities.numpy(), rtol=1e-5)
    # the covariance's eigenvalues are the filtered scales squared: the filter widens every splat
    eig = np.sort(np.linalg.eigvalsh(layer.covariances.astype(np.float64)), axis=1)
    np.testing.assert_allclose(eig, np.sort((scales**2).numpy(), axis=1), rtol=2e-3, atol=1e-9)
    unfiltered = layer_from_params({k: v for k, v in p.items() if k != filter3d.KEY})
    assert (unfiltered.opacities >= layer.opacities - 1e-7).all() and (unfiltered.opacities > layer.opacities).any()


def test_rotation_matrices():
    half = math.sqrt(0.5)
    R = rotation_matrices(torch.tensor([[half, 0, 0, half], [2.0, 0, 0, 0]]))  # 90° about z; unnormalised identity
    np.testing.assert_allclose(R[0].numpy(), [[0, -1, 0], [1, 0, 0], [0, 0, 1]], atol=1e-6)
    np.testing.assert_allclose(R[1].numpy(), np.eye(3), atol=1e-6)
    R = rotation_matrices(torch.randn(20, 4))
    np.testing.assert_allclose((R @ R.transpose(1, 2)).numpy(), np.broadcast_to(np.eye(3), (20, 3, 3)), atol=1e-5)


def test_layer_cap_keeps_the_splats_covering_most():
    p = params(n=100)
    p["opacities"][:10] = 8.0  # ten opaque, large splats
    p["scales"][:10] = -1.0
    layer = layer_from_params(p, max_splats=10)
    assert layer.count == 10 and layer.total == 100
    np.testing.assert_allclose(layer.centers, p["means"][:10].numpy())


def test_frustum_poses_are_the_scene_cameras(small_scene_and_lr_model):
    from viser import transforms as vtf

    from threedsr.data.scene import PreparedScene

    scene = PreparedScene(small_scene_and_lr_model[0])
    for v in scene.views:
        wxyz, position = app.camera_pose(v)
        c2w = np.linalg.inv(v.world_to_camera)
        np.testing.assert_allclose(vtf.SO3(np.asarray(wxyz)).as_matrix(), c2w[:3, :3], atol=1e-6)
        np.testing.assert_allclose(position, c2w[:3, 3], atol=1e-9)
        # a frustum's vertical field of view and aspect are the HR camera's
        assert app.vertical_fov(v.hr) == pytest.approx(2 * math.atan(v.hr.height / 2 / v.hr.fy))
    up = app.up_direction(scene.views)
    assert np.linalg.norm(up) == pytest.approx(1.0)
    # every camera's image "up" (-y) points the same way as the scene's up
    assert all(np.dot(-np.linalg.inv(v.world_to_camera)[:3, 1], up) > 0.5 for v in scene.views)
    assert app.frustum_scale(scene.views) > 0


@pytest.fixture
def results_tree(tmp_path, small_scene_and_lr_model):
    """A results folder of one scene as a run leaves it: lr3dgs and 3dsr models, test renders and scores, 3DSR's steps."""
    scene_dir, ckpt = small_scene_and_lr_model
    r = tmp_path / "results"
    shutil.copytree(scene_dir, r / "scenes" / "synthetic" / "forward")
    gs = r / "gs" / "synthetic" / "forward"
    state = torch.load(ckpt, weights_only=True)
    for i, method in enumerate(("lr3dgs", "3dsr")):
        (gs / method).mkdir(parents=True)
        s = {**state, "params": dict(state["params"])}
        s["params"]["sh0"] = state["params"]["sh0"] + i  # a different colour per method: the browser sees the switch
        torch.save(s, gs / method / "ckpt.pt")
    from threedsr.data.scene import PreparedScene

    scene = PreparedScene(scene_dir)
    rows = ["dataset,scene,method,view,psnr,ssim,lpips"]
    for method in ("lr3dgs", "3dsr", "sr2d"):
        for v in scene.test_views:
            write_png(r / "renders" / "synthetic" / "forward" / method / f"{v.name}.png", scene.image(v, "hr"))
            rows.append(f"synthetic,forward,{method},{v.name},20.5,0.7,0.3")
    (r / "metrics").mkdir()
    (r / "metrics" / "per_view.csv").write_text("\n".join(rows) + "\n")
    kept = scene.train_views[0]
    for step in (1, 2):
        write_png(gs / "3dsr" / "steps" / f"{step:02d}" / f"{kept.name}_H.png", scene.image(kept, "hr"))
        write_png(gs / "3dsr" / "steps" / f"{step:02d}" / f"{kept.name}_R.png", scene.image(kept, "hr"))
    (gs / "3dsr" / "steps.csv").write_text("step,t,test_psnr,test_lpips\n0,999,20,0.5\n1,666,21,0.4\n2,0,22,0.35\n")
    return r


def test_catalog_finds_models_renders_scores_steps_and_names_what_is_missing(results_tree):
    config = {"methods": ["lr3dgs", "bicubic", "isr", "sr2d", "3dsr"]}
    r = catalog.find(results_tree, "synthetic", "forward", config)
    assert list(r.models) == ["lr3dgs", "3dsr"]  # params' order
    assert set(r.missing) == {"bicubic", "isr"}  # 3D methods only: sr2d has no model
    assert r.missing["isr"] == f"snakemake --cores all {results_tree}/gs/synthetic/forward/isr/ckpt.pt"
    assert set(r.renders) == {"lr3dgs", "3dsr", "sr2d"}
    test = r.test_views[0].name
    assert r.scores["3dsr"][test] == {"psnr": 20.5, "ssim": 0.7, "lpips": 0.3}
    steps = r.steps["3dsr"]
    assert [s.step for s in steps] == [1, 2]
    assert steps[1].scores["test_psnr"] == "22"
    (h, rr) = steps[0].views[r.train_views[0].name]
    assert h.name.endswith("_H.png") and rr.name.endswith("_R.png")


def test_catalog_one_line_for_a_scene_without_results(tmp_path, results_tree):
    with pytest.raises(DataError, match=r"synthetic/orbit has not been run: .*snakemake --cores all"):
        catalog.find(results_tree, "synthetic", "orbit")
    shutil.rmtree(results_tree / "gs")
    with pytest.raises(DataError, match=r"no 3D model under .*lr3dgs/ckpt.pt"):
        catalog.find(results_tree, "synthetic", "forward")
    for bad in ("..", "a/b", ""):
        with pytest.raises(DataError, match="plain folder name"):
            catalog.find(results_tree, "synthetic", bad)


def test_truncated_checkpoint_is_one_line(results_tree):
    ckpt = results_tree / "gs" / "synthetic" / "forward" / "3dsr" / "ckpt.pt"
    ckpt.write_bytes(ckpt.read_bytes()[:1000])
    with pytest.raises(DataError, match=r"3dsr/ckpt.pt: truncated, corrupt or not a checkpoint"):
        load_layer(ckpt)


def test_port_in_use_is_one_line():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        with pytest.raises(DataError, match=rf"port {port} on 127.0.0.1 is not free"):
            app.check_port_free("127.0.0.1", port)


def test_view_command_serves_prints_and_names_missing_models(results_tree, tmp_path):
    """`threedsr view` in a subprocess: it prints the URLs and the missing models' commands, serves viser's client and
    the side-by-side page, and stops on Ctrl-C; a scene without results is one line."""
    shutil.copy(REPO / "params.yaml", tmp_path / "params.yaml")  # read by default from the folder it runs in
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    bad = subprocess.run(
        [sys.executable, "-m", "threedsr", "view", "synthetic/orbit", "--results", str(results_tree), "--configfile"],
        capture_output=True, text=True, env=env, cwd=tmp_path,
    )  # fmt: skip
    assert bad.returncode == 1 and bad.stderr.count("\n") == 1 and "has not been run" in bad.stderr
    p = subprocess.Popen(
        [sys.executable, "-m", "threedsr", "view", "synthetic/forward", "--results", str(results_tree)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=tmp_path,
    )  # fmt: skip
    try:
        lines = []
        end = time.monotonic() + 120
        while not any(line.startswith("Ctrl-C") for line in lines) and time.monotonic() < end:
            lines.append(p.stdout.readline())
        text = "".join(lines)
        assert "isr: no model yet; make it with: snakemake --cores all" in text, text
        url = next(line.split(": ", 1)[1].strip() for line in lines if line.startswith("threedsr viewer of"))
        side = next(line.split(": ", 1)[1].strip() for line in lines if line.startswith("side by side"))
        assert url.startswith("http://127.0.0.1:")
        with urllib.request.urlopen(url, timeout=30) as page:
            assert b"<html" in page.read(2000).lower()
        with urllib.request.urlopen(side, timeout=30) as page:
            assert url.rsplit(":", 1)[1].encode() in page.read()
    finally:
        p.send_signal(2)
        p.wait(30)
    assert p.returncode == 0


def test_view_page_is_one_offline_file(results_tree, tmp_path):
    """`threedsr view-page` (the viewer_page rule): viser's client with the recording inside; nothing fetched from the
    network or from beside it."""
    import base64
    import re

    out = tmp_path / "page.html"
    ckpts = [f"{m}={results_tree}/gs/synthetic/forward/{m}/ckpt.pt" for m in ("lr3dgs", "3dsr")]
    scene = results_tree / "scenes" / "synthetic" / "forward"
    cmd = [
        sys.executable,
        "-m",
        "threedsr",
        "view-page",
        "--scene",
        str(scene),
        "--out",
        str(out),
        "--ckpts",
        *ckpts,
        "--max-splats",
        "100",
    ]
    subprocess.run(cmd, check=True, capture_output=True)
    html = out.read_text()
    first = html.index("<script")
    assert "threedsr-scene.viser" in html[first : first + 200]  # the page's first script: it answers the client's fetch
    data = base64.b64decode(re.search(r'b64 = "([A-Za-z0-9+/=]+)"', html).group(1))
    assert len(data) > 100 * 2 * 32 / 4  # two layers of 100 splats (32 bytes each), compressed
    assert not re.search(r'(src|href)="https?://', html)  # offline
    bad = subprocess.run([*cmd[:-5], "--ckpts", f"lr3dgs={tmp_path}/missing.pt"], capture_output=True, text=True)
    assert bad.returncode == 1 and "missing.pt: file not found" in bad.stderr and not (tmp_path / "missing").exists()


# -- in a real browser --------------------------------------------------------------------------------------------


def chromium_or_skip():
    from threedsr.viewer.browser import find_chromium

    if find_chromium() is None:
        if os.environ.get("CI") == "true":
            pytest.fail("no Chromium: CI installs Debian's `chromium` (.ci/run) for the viewer's browser test")
        pytest.skip("no Chromium here (apt-get install chromium): the viewer's browser test needs it")


def settled(tab, box, timeout=60.0) -> np.ndarray:
    """The canvas once two screenshots a moment apart agree (the client sorts and draws splats over several frames)."""
    end = time.monotonic() + timeout
    last = tab.screenshot(box)
    while time.monotonic() < end:
        time.sleep(1.0)
        shot = tab.screenshot(box)
        if np.abs(shot.astype(int) - last).mean() < 0.5 and shot.std() > 5:
            return shot
        last = shot
    return last


def canvas(tab, timeout=60.0):
    end = time.monotonic() + timeout
    while (box := tab.canvas_box()) is None and time.monotonic() < end:
        time.sleep(0.5)
    assert box is not None, "the viewer's page has no canvas"
    return box


@pytest.mark.slow
def test_viewer_in_headless_chromium(results_tree, tmp_path):
    """The viewer drawn by a real browser: the canvas is not uniform and changes when the server switches the method or
    moves the camera; the side-by-side page connects two clients showing the pair, and a move in one moves the other.
    THREEDSR_VIEWER_RESULTS=<a run's results> runs it on that run's synthetic/forward (the README's screenshot,
    written to THREEDSR_VIEWER_SCREENSHOT)."""
    chromium_or_skip()
    from threedsr.viewer.browser import Chromium

    real = os.environ.get("THREEDSR_VIEWER_RESULTS")
    results = catalog.find(Path(real) if real else results_tree, "synthetic", "forward")
    viewer = app.Viewer(results, app.ViewerConfig())
    try:
        with Chromium(width=1400, height=700) as browser:
            with browser.tab(viewer.url) as tab:
                (client_id,) = viewer.wait_for_clients(1, timeout=60)
                box = canvas(tab)
                first = settled(tab, box)
                assert first.std() > 5, "the canvas is uniform: nothing was drawn"
                other = next(m for m in viewer.methods if m != viewer.shown(client_id))
                viewer.set_method(client_id, other)
                switched = settled(tab, box)
                assert np.abs(switched.astype(int) - first).mean() > 1.0, "switching the method did not change the canvas"
                viewer.move_camera(client_id, results.train_views[-1].name)
                moved = settled(tab, box)
                assert np.abs(moved.astype(int) - switched).mean() > 1.0, "moving the camera did not change the canvas"
                # a test view: the camera goes there, the panel lists ground truth, LR and every method's render
                view = results.test_views[0]
                viewer.show_test_view(client_id, view.name)
                np.testing.assert_allclose(viewer.server.get_clients()[client_id].camera.position, app.camera_pose(view)[1], atol=1e-6)
                renders = [m for m, r in results.renders.items() if view.name in r]
                assert len(viewer._panels[client_id]) == 1 + 2 + len(renders) and len(renders) >= 2
                write_png(tmp_path / "viewer.png", tab.screenshot())
            # the static page (the report's): drawn from disk, no server
            page_file = tmp_path / "page.html"
            ckpts = [f"{m}={p}" for m, p in results.models.items()]
            subprocess.run(
                [sys.executable, "-m", "threedsr", "view-page", "--scene", str(results.prepared.root), "--out", str(page_file), "--ckpts", *ckpts],
                check=True, capture_output=True,
            )  # fmt: skip
            with browser.tab(page_file.as_uri()) as tab:
                static = settled(tab, canvas(tab))
                assert static.std() > 5, "the static page draws nothing"
                write_png(tmp_path / "static.png", static)

            # a client that leaves takes its layers with it (the server's memory does not grow with tabs)
            end = time.monotonic() + 30
            while viewer.server.get_clients() and time.monotonic() < end:
                time.sleep(0.2)
            assert not viewer.server.get_clients() and not viewer._sent and not viewer._shown

            # the side-by-side page: two clients, one of the pair each, cameras linked
            with browser.tab(viewer.side_by_side_url) as tab:
                clients = viewer.wait_for_clients(2, timeout=90)
                assert sorted(viewer.shown(i) for i in clients) == sorted(viewer.pair())
                a, b = clients.values()
                view = results.test_views[0]
                viewer.move_camera(a.client_id, view.name)
                np.testing.assert_allclose(b.camera.position, app.camera_pose(view)[1], atol=1e-6)
                time.sleep(1.0)
                page = settled(tab, tuple(tab.evaluate("[0, 0, innerWidth, innerHeight]")))
                assert page.std() > 5
                write_png(tmp_path / "side_by_side.png", page)
                if dest := os.environ.get("THREEDSR_VIEWER_SCREENSHOT"):  # the README's picture: this test's screenshot
                    write_png(dest, page)
    finally:
        viewer.stop()
