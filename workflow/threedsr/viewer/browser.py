"""Headless Chromium driven over the DevTools protocol: open a page, run JavaScript, take screenshots.

The viewer's browser test (and the README's screenshot) use it: the client draws the splats with WebGL, which headless
Chromium runs on the CPU (SwiftShader). Debian's package is `chromium`.
"""

from __future__ import annotations

import base64
import io
import itertools
import json
import shutil
import subprocess
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

import numpy as np

from ..errors import DataError

BINARIES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def find_chromium() -> str | None:
    return next((p for name in BINARIES if (p := shutil.which(name))), None)


class Chromium:
    """One headless browser; `tab(url)` opens a page in it. A context manager: the browser and its profile are removed
    on exit."""

    def __init__(self, width: int = 1280, height: int = 800, timeout: float = 60):
        binary = find_chromium()
        if binary is None:
            raise DataError(f"no Chromium found ({', '.join(BINARIES)}); on Debian: apt-get install chromium")
        self.profile = Path(tempfile.mkdtemp(prefix="threedsr-chromium-"))
        self.timeout = timeout
        args = [
            binary,
            "--headless=new",
            "--no-sandbox",  # CI runs as root, where Chromium's sandbox does not start
            "--no-first-run",
            "--disable-gpu-sandbox",
            "--use-angle=swiftshader",
            "--enable-unsafe-swiftshader",  # WebGL on the CPU
            "--ignore-gpu-blocklist",
            f"--window-size={width},{height}",
            "--remote-debugging-port=0",
            f"--user-data-dir={self.profile}",
            "about:blank",
        ]
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            self.port = self._port()
        except BaseException:
            self.close()
            raise

    def _port(self) -> int:
        port_file = self.profile / "DevToolsActivePort"
        end = time.monotonic() + self.timeout
        while not port_file.is_file() or len(port_file.read_text().splitlines()) < 2:
            if self.process.poll() is not None:
                err = self.process.stderr.read().decode(errors="replace")[-2000:] if self.process.stderr else ""
                raise DataError(f"Chromium exited with status {self.process.returncode} before it started: {err}")
            if time.monotonic() > end:
                raise DataError(f"Chromium did not start within {self.timeout:.0f} s")
            time.sleep(0.1)
        return int(port_file.read_text().splitlines()[0])

    def _http(self, path: str, method: str = "GET"):
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", method=method)
        with urllib.request.urlopen(request, timeout=self.timeout) as r:
            body = r.read()
        return json.loads(body) if body.strip().startswith((b"{", b"[")) else body

    def tab(self, url: str) -> Tab:
        """A new tab showing `url` (closing it closes the page's connections, as a user closing it)."""
        target = self._http(f"/json/new?{urllib.parse.quote(url, safe=':/?&=')}", "PUT")
        return Tab(self, target["id"], target["webSocketDebuggerUrl"])

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.profile, ignore_errors=True)

    def __enter__(self) -> Chromium:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class Tab:
    """A page of the browser, driven over its own DevTools connection."""

    def __init__(self, browser: Chromium, target_id: str, ws_url: str):
        from websockets.sync.client import connect

        self.browser, self.id, self.timeout = browser, target_id, browser.timeout
        self._ids = itertools.count(1)
        # no keepalive pings: a browser busy drawing with software WebGL may answer them late (a local connection)
        self._ws = connect(ws_url, max_size=None, open_timeout=self.timeout, ping_interval=None)
        self.send("Page.enable")
        self.send("Runtime.enable")

    def send(self, method: str, **params):
        """Call a DevTools method and return its result (events in between are skipped)."""
        i = next(self._ids)
        self._ws.send(json.dumps({"id": i, "method": method, "params": params}))
        end = time.monotonic() + self.timeout
        while True:
            message = json.loads(self._ws.recv(timeout=max(end - time.monotonic(), 0.1)))
            if message.get("id") == i:
                if "error" in message:
                    raise DataError(f"Chromium: {method}: {message['error'].get('message')}")
                return message.get("result", {})

    def evaluate(self, expression: str):
        result = self.send("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise DataError(f"Chromium: {expression[:60]}…: {result['exceptionDetails'].get('text')}")
        return result.get("result", {}).get("value")

    def canvas_box(self) -> tuple[float, float, float, float] | None:
        """(x, y, width, height) of the page's 3D view: its largest canvas, once at least half the window wide (None
        before; the client makes small canvases of its own first)."""
        box = self.evaluate(
            "(() => { const c = [...document.querySelectorAll('canvas')].sort((a, b) => b.width * b.height - a.width * a.height)[0];"
            " if (!c) return null; const r = c.getBoundingClientRect(); return [r.x, r.y, r.width, r.height, window.innerWidth]; })()"
        )
        return tuple(box[:4]) if box and box[2] >= box[4] / 2 and box[3] > 0 else None

    def screenshot(self, box: tuple[float, float, float, float] | None = None) -> np.ndarray:
        """HxWx3 uint8 of the page, or of `box` (x, y, width, height in CSS pixels)."""
        from PIL import Image

        params = {"format": "png"}
        if box is not None:
            params["clip"] = {"x": box[0], "y": box[1], "width": box[2], "height": box[3], "scale": 1}
        data = base64.b64decode(self.send("Page.captureScreenshot", **params)["data"])
        with Image.open(io.BytesIO(data)) as im:
            return np.asarray(im.convert("RGB"))

    def close(self) -> None:
        try:
            self._ws.close()
        finally:
            self.browser._http(f"/json/close/{self.id}")

    def __enter__(self) -> Tab:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
