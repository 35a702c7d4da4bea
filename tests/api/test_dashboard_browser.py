"""The dashboard in real headless Chromium: the page and its SVG plots render (zh, bo, en)."""

from __future__ import annotations

import asyncio
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from aiohttp import web
from dashboard_data import fill
from matplotlib import image as mpimg
from multidict import CIMultiDict

from quakealert.api.app import make_app
from quakealert.config import Settings
from quakealert.store.sqlite import Store

try:
    from quakealert.store.auth import create_token
except ModuleNotFoundError:  # pragma: no cover - depends on what the tree contains
    create_token = None

CHROMIUM = "/usr/bin/chromium"
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
         "--hide-scrollbars", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--disable-default-apps")
WIDTH, HEIGHT = 1280, 2000
TIMEOUT_S = 60.0

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not Path(CHROMIUM).exists(),
                       reason=f"{CHROMIUM} is not installed (apt-get install chromium)"),
]


def header_injector(secret: str):
    """Adds the read token to every request, as an authenticating reverse proxy would: a
    --screenshot run cannot log in or set a cookie."""

    @web.middleware
    async def middleware(request: web.Request, handler):
        headers = CIMultiDict(request.headers)
        headers["Authorization"] = f"Bearer {secret}"
        return await handler(request.clone(headers=headers))

    return middleware


async def screenshot(url: str, tmp_path: Path) -> bytes:
    """Chromium's own --screenshot of ``url``; killed after TIMEOUT_S."""
    out = tmp_path / "page.png"
    proc = await asyncio.create_subprocess_exec(
        CHROMIUM, *FLAGS, f"--user-data-dir={tmp_path / 'profile'}",
        f"--window-size={WIDTH},{HEIGHT}", f"--screenshot={out}", url,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        _, stderr = await asyncio.wait_for(proc.communicate(), TIMEOUT_S)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        pytest.fail(f"chromium did not finish within {TIMEOUT_S:.0f} s")
    assert proc.returncode == 0, stderr.decode(errors="replace")[-2000:]
    assert out.exists(), stderr.decode(errors="replace")[-2000:]
    return out.read_bytes()


def near(rgb: np.ndarray, hex_colour: str, tol: int = 40) -> np.ndarray:
    """Mask of pixels within ``tol`` (per channel) of ``#rrggbb``."""
    want = np.array([int(hex_colour[i:i + 2], 16) for i in (1, 3, 5)], dtype=int)
    return np.all(np.abs(rgb.astype(int) - want) <= tol, axis=-1)


def fonts_for(lang: str) -> str:
    return subprocess.run(["fc-list", f":lang={lang}", "family"], capture_output=True, text=True,
                          timeout=30, check=False).stdout


@pytest.fixture
async def served(tmp_path, aiohttp_server):
    store = Store.open(tmp_path / "q.sqlite")
    ids = fill(store)
    app = make_app(Settings(store_path=tmp_path / "q.sqlite"), store=store)
    if create_token is not None:
        secret = create_token(store.conn, "read", "browser-test", now=datetime.now(UTC))[1]
        app.middlewares.insert(0, header_injector(secret))
    server = await aiohttp_server(app, host="127.0.0.1")
    yield server, ids
    await server.close()
    store.close()


@pytest.mark.parametrize("which,lang", [("mz", "zh"), ("rc", "en")])
async def test_sequence_page_renders(served, tmp_path, which, lang):
    """The sequence page renders with its plots: a real PNG, our header bar, blue epicentres
    and red largest-event stars from the SVGs, and many colours (text, tables, plots)."""
    assert "CJK" in fonts_for("zh-cn"), "no CJK font: apt-get install fonts-noto-cjk"
    assert fonts_for("bo").strip(), "no Tibetan font: apt-get install fonts-noto-core"
    server, ids = served
    url = str(server.make_url(f"/dashboard/sequences/{ids[which]}?lang={lang}"))
    png = await screenshot(url, tmp_path)
    (tmp_path / f"{which}-{lang}.png").write_bytes(png)
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 20_000
    img = mpimg.imread(str(tmp_path / "page.png"))
    assert img.shape[:2] == (HEIGHT, WIDTH)
    rgb = (img[..., :3] * 255).round().astype(np.uint8)
    colours = np.unique(rgb.reshape(-1, 3), axis=0)
    assert len(colours) > 500, f"only {len(colours)} colours: blank or error page?"
    # the page's own header bar (#12355b), so not a Chrome error or login page
    assert near(rgb[5:30, :, :], "#12355b", tol=10).mean() > 0.9
    body = rgb[80:]
    assert near(body, "#1f5fa8").sum() > 300, "no epicentres: the plot SVGs did not render"
    assert near(body, "#d62728", tol=30).sum() > 100, "no largest-event star"
    # the map figure is in the left column: its area is not blank
    ys, xs = np.nonzero(near(body, "#1f5fa8"))
    assert xs.min() < WIDTH / 2 and np.ptp(ys) > 200
