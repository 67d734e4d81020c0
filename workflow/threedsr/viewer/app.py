"""The viewer: a viser server showing each 3D method's model of one scene as a Gaussian-splat layer the browser renders.

Per browser tab (a viser client) a method menu switches the layer under the same camera (a layer is sent to a tab the
first time it is shown there, then only shown or hidden: memory does not grow with switches); the scene's training
cameras (grey) and test cameras (orange) are frustums, and clicking a test camera moves the view there and lists the
ground truth, the LR input and every method's render of that view with its scores. 3DSR's images after every diffusion
step are on a slider. The side-by-side page holds two tabs of the viewer next to each other with their cameras linked.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np

from ..errors import DataError
from ..io import read_image
from ..progress import progress
from .catalog import SceneResults
from .layers import SplatLayer, load_layer

log = logging.getLogger(__name__)

TRAIN_COLOR, TEST_COLOR = (150, 150, 150), (255, 140, 0)


@dataclass(frozen=True)
class ViewerConfig:
    host: str = "127.0.0.1"  # the address served: loopback by default; 0.0.0.0 (--host) shares it on the network, deliberately
    port: int = 0  # the viewer's port; 0: a free one
    max_splats: int = 300_000  # per layer: above it, the splats covering most are kept (layers.py)
    left: str = "isr"  # the side-by-side page's two methods (a tab starts on the one fewer tabs show)
    right: str = "3dsr"


def check_port_free(host: str, port: int) -> None:
    """A port asked for explicitly must be free: viser would quietly take the next one."""
    if port == 0:
        return
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        try:
            s.bind((host, port))
        except OSError as e:
            raise DataError(
                f"port {port} on {host} is not free ({e.strerror}): choose another with --port, or leave it out for a free one"
            ) from None


def camera_pose(view) -> tuple[np.ndarray, np.ndarray]:
    """(wxyz, position) of a scene view's camera in the world (OpenCV axes, as viser's cameras)."""
    import viser.transforms as vtf

    c2w = np.linalg.inv(view.world_to_camera)
    return vtf.SO3.from_matrix(c2w[:3, :3]).wxyz, c2w[:3, 3]


def vertical_fov(intr) -> float:
    return float(2 * np.arctan(intr.height / (2 * intr.fy)))


def up_direction(views) -> np.ndarray:
    """The scene's up: the mean of the cameras' -y axes (OpenCV: y points down in the image)."""
    ups = [-np.linalg.inv(v.world_to_camera)[:3, 1] for v in views]
    up = np.mean(ups, axis=0)
    return up / max(np.linalg.norm(up), 1e-12)


def frustum_scale(views) -> float:
    """A frustum size that does not hide its neighbours: a third of the median distance to the nearest other camera."""
    centres = np.array([np.linalg.inv(v.world_to_camera)[:3, 3] for v in views])
    if len(centres) < 2:
        return 0.1
    d = np.linalg.norm(centres[:, None] - centres[None], axis=-1)
    np.fill_diagonal(d, np.inf)
    return float(max(np.median(d.min(axis=1)) / 3, 1e-3))


def add_cameras(scene, views) -> dict:
    """The scene's cameras as frustums (test views orange and larger): {view name: handle}."""
    scale = frustum_scale(views)
    frustums = {}
    for v in views:
        wxyz, pos = camera_pose(v)
        test = v.split == "test"
        frustums[v.name] = scene.add_camera_frustum(
            f"/cameras/{v.split}/{v.name}",
            fov=vertical_fov(v.hr),
            aspect=v.hr.width / v.hr.height,
            scale=scale * (1.3 if test else 1.0),
            thickness=2.5 if test else 1.5,  # screen pixels: a camera placed at a view is not framed by thick bars
            thickness_units="screen",
            color=TEST_COLOR if test else TRAIN_COLOR,
            wxyz=wxyz,
            position=pos,
        )
    return frustums


def add_scene(server, prepared, layers: dict[str, SplatLayer]) -> dict:
    """What every page of a scene shows: its up direction, the starting camera and the cameras' frustums (returned)."""
    server.scene.set_up_direction(tuple(up_direction(prepared.views)))
    initial_view(server, prepared, layers)
    return add_cameras(server.scene, prepared.views)


def initial_view(server, prepared, layers: dict[str, SplatLayer]) -> None:
    """Where a new tab's camera starts and "Reset view" returns: the first test view (else training view) of the
    prepared scene, looking at the models' centre along its axis."""
    view = (prepared.test_views or prepared.train_views)[0]
    c2w = np.linalg.inv(view.world_to_camera)
    centre = np.mean([layer.centers.mean(axis=0) for layer in layers.values()], axis=0)
    forward = c2w[:3, 2]
    depth = max(float(np.dot(centre - c2w[:3, 3], forward)), 1e-3)
    server.initial_camera.position = tuple(c2w[:3, 3])
    server.initial_camera.look_at = tuple(c2w[:3, 3] + depth * forward)
    server.initial_camera.up = tuple(-c2w[:3, 1])
    server.initial_camera.fov = vertical_fov(view.hr)


class Viewer:
    def __init__(self, results: SceneResults, cfg: ViewerConfig = ViewerConfig()):
        import viser

        self.results, self.cfg = results, cfg
        check_port_free(cfg.host, cfg.port)
        self.layers: dict[str, SplatLayer] = {}
        for method, ckpt in progress(results.models.items(), desc="load models", unit="model", total=len(results.models)):
            self.layers[method] = load_layer(ckpt, cfg.max_splats)
            layer = self.layers[method]
            log.info("%s: %d splats%s", method, layer.count, f" of {layer.total} (the cap)" if layer.count < layer.total else "")
        self.methods = list(self.layers)
        self._lock = threading.RLock()
        self._shown: dict[int, str] = {}  # client -> method shown
        self._sent: dict[int, dict] = {}  # client -> {method: splat handle}
        self._echo: dict[int, np.ndarray] = {}  # client -> the position the server last set (its update is not re-linked)
        self._panels: dict[int, list] = {}  # client -> GUI handles of the test view shown
        self._menus: dict[int, object] = {}  # client -> its method menu
        self._links: dict[int, object] = {}  # client -> its "Link cameras" checkbox
        self.server = viser.ViserServer(host=cfg.host, port=cfg.port, label=f"threedsr · {results.dataset}/{results.scene}", verbose=False)
        self.frustums = add_scene(self.server, results.prepared, self.layers)
        for v in results.test_views:
            self.frustums[v.name].on_click(lambda event, v=v: self.show_test_view(event.client.client_id, v.name))
        self.server.on_client_connect(self._connect)
        self.server.on_client_disconnect(self._disconnect)
        self._page = _serve_side_by_side(cfg.host, self.port, self.pair())

    # -- what the server shows to every client ------------------------------------------------------------------

    @property
    def port(self) -> int:
        return self.server.get_port()

    @property
    def url(self) -> str:
        return f"http://{_display_host(self.cfg.host)}:{self.port}"

    @property
    def side_by_side_url(self) -> str:
        return f"http://{_display_host(self.cfg.host)}:{self._page.server_address[1]}"

    def pair(self) -> tuple[str, str]:
        """The side-by-side methods: the configured ones where present, else the last two models."""
        pick = [m for m in (self.cfg.left, self.cfg.right) if m in self.layers]
        rest = [m for m in reversed(self.methods) if m not in pick]
        pair = (pick + rest)[:2]
        return (pair[0], pair[-1])

    # -- per client --------------------------------------------------------------------------------------------

    def _connect(self, client) -> None:
        with self._lock:
            shown = list(self._shown.values())
            left, right = self.pair()
            start = right if shown.count(right) < shown.count(left) else left  # the first tab (the left pane): left
            self._sent[client.client_id] = {}
        note = client.add_notification(f"Loading {start}", f"{self.layers[start].count:,} splats", loading=True, with_close_button=False)
        self._build_gui(client, start)
        self.set_method(client.client_id, start)
        others = self._linked(client)
        if others:  # join the linked clients where they are
            cam = others[0].camera
            self._set_camera(client, cam.wxyz, cam.position, cam.fov)
        else:
            start_view = (self.results.test_views or self.results.train_views)[0]
            self._set_camera(client, *camera_pose(start_view), vertical_fov(start_view.hr))
        client.camera.on_update(lambda cam: self._camera_moved(client))
        note.remove()

    def _disconnect(self, client) -> None:
        with self._lock:
            for d in (self._shown, self._sent, self._echo, self._panels, self._menus, self._links):
                d.pop(client.client_id, None)

    def _build_gui(self, client, start: str) -> None:
        r = self.results
        gui = client.gui
        lines = [f"**{r.dataset}/{r.scene}** — orange frustums: test views (click one)"]
        for m, layer in self.layers.items():
            capped = f" of {layer.total:,} (the {self.cfg.max_splats:,} covering most)" if layer.count < layer.total else ""
            lines.append(f"- `{m}`: {layer.count:,} splats{capped}")
        for m, cmd in r.missing.items():
            lines.append(f"- `{m}`: no model yet — `{cmd}`")
        lines.append("\nColours from SH degree 0 (no view dependence); the Mip-Splatting filter is baked in.")
        gui.add_markdown("\n".join(lines))
        menu = gui.add_dropdown("Method", tuple(self.methods), initial_value=start)
        menu.on_update(lambda _: self.set_method(client.client_id, menu.value))
        self._menus[client.client_id] = menu
        link = gui.add_checkbox("Link cameras across tabs", initial_value=True, hint="the side-by-side page's panes move together")
        self._links[client.client_id] = link
        tests = [v.name for v in r.test_views]
        if tests:
            pick = gui.add_dropdown("Test view", tuple(tests), initial_value=tests[0])
            pick.on_update(lambda _: self.show_test_view(client.client_id, pick.value))
        for method, steps in r.steps.items():
            self._add_step_slider(client, method, steps)

    def _add_step_slider(self, client, method: str, steps) -> None:
        gui = client.gui
        with gui.add_folder(f"{method} step by step", expand_by_default=False):
            view_names = tuple(steps[-1].views)
            which = gui.add_dropdown("View", view_names, initial_value=view_names[0])
            slider = gui.add_slider("Diffusion step", min=steps[0].step, max=steps[-1].step, step=1, initial_value=steps[-1].step)
            text = gui.add_markdown("")
            h_img = gui.add_image(np.zeros((8, 8, 3), np.uint8), label="H: the SR model's estimate")
            r_img = gui.add_image(np.zeros((8, 8, 3), np.uint8), label="R: the 3D model's render")

            def update(_=None):
                step = next(s for s in steps if s.step == int(slider.value))
                h, rr = step.views.get(which.value, next(iter(step.views.values())))
                h_img.image, r_img.image = read_image(h), read_image(rr)
                keys = [k for k in ("test_psnr", "test_ssim", "test_lpips", "psnr", "lpips") if step.scores.get(k)]
                text.content = f"after step {step.step} of {steps[-1].step}" + "".join(f" · {k} {float(step.scores[k]):.3f}" for k in keys)

            slider.on_update(update)
            which.on_update(update)
            update()

    def set_method(self, client_id: int, method: str) -> None:
        """Show `method`'s layer to one client (sent the first time, afterwards only made visible)."""
        if method not in self.layers:
            raise DataError(f"no model of {method!r} here; the models: {', '.join(self.methods)}")
        client = self.server.get_clients().get(client_id)
        if client is None:
            return
        with self._lock:
            sent = self._sent.setdefault(client_id, {})
            if method not in sent:
                layer = self.layers[method]
                note = client.add_notification(f"Loading {method}", f"{layer.count:,} splats", loading=True, with_close_button=False)
                sent[method] = client.scene.add_gaussian_splats(
                    f"/models/{method}", layer.centers, layer.covariances, layer.rgbs, layer.opacities, visible=False
                )
                note.remove()
            with client.atomic():  # one switch: the old layer hidden and the new one shown in the same frame
                for m, handle in sent.items():
                    handle.visible = m == method
            self._shown[client_id] = method
            menu = self._menus.get(client_id)
            if menu is not None and menu.value != method:
                menu.value = method

    def shown(self, client_id: int) -> str | None:
        return self._shown.get(client_id)

    def move_camera(self, client_id: int, view_name: str) -> None:
        """Put a client's camera (and its linked clients') at a scene view."""
        view = next(v for v in self.results.prepared.views if v.name == view_name)
        client = self.server.get_clients().get(client_id)
        if client is None:
            return
        wxyz, pos = camera_pose(view)
        for c in [client, *self._linked(client)]:
            self._set_camera(c, wxyz, pos, vertical_fov(view.hr))

    def _linked(self, client) -> list:
        """The other clients that follow this one's camera: both have "Link cameras" on."""
        links = self._links
        if client.client_id not in links or not links[client.client_id].value:
            return []
        return [c for i, c in self.server.get_clients().items() if i != client.client_id and i in links and links[i].value]

    def _set_camera(self, client, wxyz, position, fov) -> None:
        with self._lock:
            self._echo[client.client_id] = np.asarray(position, dtype=np.float64)
        with client.atomic():
            client.camera.fov = float(fov)
            client.camera.wxyz = tuple(float(x) for x in wxyz)
            client.camera.position = tuple(float(x) for x in position)

    def _camera_moved(self, client) -> None:
        """A user moved a client's camera: its linked clients follow (not after the server's own moves: they would
        echo back and forth)."""
        with self._lock:
            echo = self._echo.pop(client.client_id, None)
        if echo is not None and np.allclose(echo, client.camera.position, atol=1e-6):
            return
        cam = client.camera
        for other in self._linked(client):
            self._set_camera(other, cam.wxyz, cam.position, cam.fov)

    def show_test_view(self, client_id: int, view_name: str) -> None:
        """Move the client there and list the ground truth, the LR input and each method's render with its scores."""
        client = self.server.get_clients().get(client_id)
        if client is None:
            return
        self.move_camera(client_id, view_name)
        view = next(v for v in self.results.test_views if v.name == view_name)
        r = self.results
        with self._lock:
            for handle in self._panels.pop(client_id, []):
                handle.remove()
            folder = client.gui.add_folder(f"Test view {view_name}")
            handles = [folder]
            with folder:
                handles.append(client.gui.add_image(read_image(r.image(view, "hr")), label="ground truth (HR)"))
                handles.append(client.gui.add_image(read_image(r.image(view, "lr")), label="LR input"))
                for method, renders in r.renders.items():
                    if view_name in renders:
                        s = r.scores.get(method, {}).get(view_name, {})
                        score = " · ".join(f"{k.upper()} {s[k]:.3f}" for k in ("psnr", "lpips") if k in s and s[k] == s[k])  # not NaN
                        handles.append(client.gui.add_image(read_image(renders[view_name]), label=f"{method}  {score}".strip()))
            self._panels[client_id] = handles

    # -- lifetime ---------------------------------------------------------------------------------------------

    def wait_for_clients(self, n: int, timeout: float) -> dict:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            clients = self.server.get_clients()
            if len(clients) >= n and all(c in self._shown for c in clients):
                return clients
            time.sleep(0.1)
        raise TimeoutError(f"{n} browser client(s) did not connect to {self.url} within {timeout:.0f} s")

    def stop(self) -> None:
        self._page.shutdown()
        self._page.server_close()
        self.server.stop()


def _display_host(host: str) -> str:
    return "127.0.0.1" if host in ("0.0.0.0", "") else (f"[{host}]" if ":" in host else host)


SIDE_BY_SIDE = """<!doctype html><html><head><meta charset="utf-8"><title>threedsr · side by side</title>
<style>html,body{{margin:0;height:100%;background:#222;color:#ddd;font:13px sans-serif}}
#panes{{display:flex;height:calc(100% - 22px)}}iframe{{flex:1;border:0;border-right:2px solid #888}}
#bar{{height:22px;line-height:22px;padding:0 8px}}</style></head><body>
<div id="bar">threedsr · two tabs of the viewer, cameras linked: each pane starts on one of <b>{left}</b> / <b>{right}</b>
(its Method menu switches it)</div>
<div id="panes"><iframe id="a"></iframe><iframe id="b"></iframe></div>
<script>const u = location.protocol + "//" + location.hostname + ":{port}/";
document.getElementById("a").src = u; setTimeout(() => document.getElementById("b").src = u, 1500);</script>
</body></html>
"""


def _serve_side_by_side(host: str, viewer_port: int, pair: tuple[str, str]) -> ThreadingHTTPServer:
    """A page of two viewer tabs side by side, on a port of its own (viser serves only its client)."""
    page = SIDE_BY_SIDE.format(port=viewer_port, left=pair[0], right=pair[1]).encode()

    class Page(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server's name)
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(page)))
            self.end_headers()
            self.wfile.write(page)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer((host, 0), Page)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def run(results: SceneResults, cfg: ViewerConfig) -> None:
    """Serve until Ctrl-C."""
    logging.getLogger("websockets").setLevel(logging.WARNING)  # its connection lines would drown the ones below
    viewer = Viewer(results, cfg)
    print(f"threedsr viewer of {results.dataset}/{results.scene}: {viewer.url}")
    print(f"side by side ({' | '.join(viewer.pair())}, cameras linked): {viewer.side_by_side_url}")
    for m, cmd in results.missing.items():
        print(f"  {m}: no model yet; make it with: {cmd}")
    for m in {cfg.left, cfg.right} - set(viewer.layers) - set(results.missing):
        print(f"  {m} (asked for side by side): no model of it here; the models: {', '.join(viewer.methods)}")
    print("Ctrl-C stops it.")
    try:
        while True:
            time.sleep(1)
    except KeyboardInterrupt:
        pass
    finally:
        viewer.stop()
