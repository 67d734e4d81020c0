"""The viewer's scene as one static, offline HTML file: viser's own client (it ships inside the wheel as one page) with
the scene recorded in it (viser's .viser serialisation, embedded as base64). It plays back the methods one after another,
a few seconds each (the timeline below the view picks one), under a camera the reader moves freely; no server, no
network, opens from disk (file://) and from the report.

Viser's client reads a recording with fetch() from the URL in its `playbackPath` query parameter, which a page opened
from disk cannot do for a file beside it; the page therefore carries the recording and answers that one fetch itself
(a script placed before the client's). That relies on the client asking for `playbackPath` through URLSearchParams and
loading it with fetch(), as viser 1.x does; a client that does otherwise shows an empty scene, which the browser test
catches.
"""

from __future__ import annotations

import base64
import json
from importlib import resources
from pathlib import Path

from ..data.scene import PreparedScene
from ..io import atomic_path
from .app import add_scene
from .layers import SplatLayer

EMBEDDED = "threedsr-scene.viser"

LOADER = """<script>
(() => {
  document.title = %(title)s;
  const name = "%(name)s", b64 = "%(data)s";
  const get = URLSearchParams.prototype.get;
  URLSearchParams.prototype.get = function (key) {
    const value = get.call(this, key);
    return key === "playbackPath" && value === null ? name : value;
  };
  const fetch0 = window.fetch.bind(window);
  window.fetch = (input, init) => {
    if (String(input).endsWith(name)) {
      const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
      return Promise.resolve(new Response(bytes, { headers: { "Content-Length": String(bytes.length) } }));
    }
    return fetch0(input, init);
  };
})();
</script>"""


def client_page() -> str:
    """Viser's client: one self-contained index.html inside the installed package."""
    return resources.files("viser").joinpath("client/build/index.html").read_text(encoding="utf-8")


def record(prepared: PreparedScene, layers: dict[str, SplatLayer], seconds_per_method: float = 4.0) -> bytes:
    """The scene as a viser recording: the cameras, then each method's layer shown alone for `seconds_per_method`."""
    import viser

    server = viser.ViserServer(host="127.0.0.1", port=0, verbose=False)
    try:
        add_scene(server, prepared, layers)
        handles = {
            m: server.scene.add_gaussian_splats(
                f"/models/{m}", layer.centers, layer.covariances, layer.rgbs, layer.opacities, visible=False
            )
            for m, layer in layers.items()
        }
        serializer = server.get_scene_serializer()
        for shown in layers:
            for m, h in handles.items():
                h.visible = m == shown
            server.scene.add_label("/method", f"{shown}", position=tuple(layers[shown].centers.mean(axis=0)))
            serializer.insert_sleep(seconds_per_method)
        return serializer.serialize()
    finally:
        server.stop()


def export_page(prepared: PreparedScene, layers: dict[str, SplatLayer], out: Path, title: str, seconds_per_method: float = 4.0) -> int:
    """Write the static page of the models `layers` of a prepared scene to `out` (atomically); returns its size in bytes."""
    data = base64.b64encode(record(prepared, layers, seconds_per_method)).decode("ascii")
    title = f"threedsr · {title} · {', '.join(layers)}"
    loader = LOADER % {"name": EMBEDDED, "data": data, "title": json.dumps(title)}
    page = client_page()
    head = page.find("<head>")
    if head < 0:
        raise RuntimeError("viser's client page has no <head>: this viser's client is not one this export knows")
    page = page[: head + len("<head>")] + loader + page[head + len("<head>") :]
    with atomic_path(out) as tmp:
        Path(tmp).write_text(page, encoding="utf-8")
    return len(page.encode())
