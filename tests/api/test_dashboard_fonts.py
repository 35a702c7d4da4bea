"""Plots on a host whose matplotlib font cache predates its CJK and Tibetan fonts.

matplotlib writes its font list once (fontlist-v*.json under MPLCONFIGDIR) and never looks at
the disk again, so fonts installed after its first run stay invisible to it. These tests build
such a cache — matplotlib's own, with the CJK and Tibetan entries taken out, as if written
before `apt-get install fonts-noto-cjk` — and run the dashboard against it in a fresh process.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from lxml import etree

from quakealert.api import plots

ROOT = Path(__file__).resolve().parents[2]
HIDDEN = ("CJK", "Tibetan")  # family names the stale cache must not know


def fontconfig_has(lang: str) -> bool:
    return bool(plots.fontconfig_files(lang))


needs_fonts = pytest.mark.skipif(
    not (fontconfig_has("zh-cn") and fontconfig_has("bo")),
    reason="fontconfig has no CJK or Tibetan font (apt-get install fonts-noto-cjk"
           " fonts-noto-core fonts-tibetan-machine); CI installs them")


def run_python(code: str, mplconfig: Path, timeout_s: float = 300) -> str:
    env = {**os.environ, "MPLCONFIGDIR": str(mplconfig), "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout_s, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


@pytest.fixture(scope="module")
def stale_cache(tmp_path_factory) -> Path:
    """An MPLCONFIGDIR whose font list was written without the CJK and Tibetan fonts."""
    mplconfig = tmp_path_factory.mktemp("mplconfig")
    run_python("import matplotlib.font_manager", mplconfig)
    (cache,) = mplconfig.glob("fontlist-v*.json")
    data = json.loads(cache.read_text())
    data["ttflist"] = [f for f in data["ttflist"]
                       if not any(h in f["name"] for h in HIDDEN)]
    cache.write_text(json.dumps(data))
    return mplconfig


@needs_fonts
def test_stale_cache_hides_the_fonts_from_plain_matplotlib(stale_cache):
    """The cache really is stale: matplotlib alone, reading it, knows no CJK font."""
    out = run_python("from matplotlib import font_manager as fm;"
                     "print(sorted({f.name for f in fm.fontManager.ttflist if 'CJK' in f.name}))",
                     stale_cache)
    assert out.strip() == "[]"


@needs_fonts
def test_plots_find_fontconfig_fonts_despite_a_stale_cache(stale_cache):
    """With that cache, the dashboard registers fontconfig's CJK and Tibetan fonts and the zh
    plots keep their Chinese labels."""
    out = run_python(
        "import json\n"
        "from quakealert.api import plots\n"
        "added = plots.register_system_fonts()\n"
        "svg = plots.magnitude_time_svg([])\n"
        "print(json.dumps({'added': added, 'cjk': plots._cjk_family(),"
        " 'svg': svg.decode()}))\n", stale_cache)
    got = json.loads(out)
    assert any("CJK" in Path(f).name for f in got["added"]), got["added"]
    assert any("Tibetan" in Path(f).name for f in got["added"]), got["added"]
    assert got["cjk"] in plots.CJK_FAMILIES
    texts = "".join(etree.fromstring(got["svg"].encode()).itertext())
    assert "震级" in texts and "暂无数据" in texts and "Magnitude" not in texts


@needs_fonts
def test_the_app_registers_the_fonts_at_start_up(stale_cache, tmp_path):
    """Starting the API (before any plot is drawn) is enough for matplotlib to know them."""
    out = run_python(
        "import asyncio\n"
        "from pathlib import Path\n"
        "from aiohttp.test_utils import TestServer\n"
        "from matplotlib import font_manager as fm\n"
        "from quakealert.api.app import make_app\n"
        "from quakealert.config import Settings\n"
        "def cjk():\n"
        "    return any('CJK' in f.name for f in fm.fontManager.ttflist)\n"
        "async def main():\n"
        "    before = cjk()\n"
        f"    server = TestServer(make_app(Settings(store_path=Path({str(tmp_path / 'q.sqlite')!r}))),"
        " host='127.0.0.1')\n"
        "    await server.start_server()\n"
        "    print(before, cjk())\n"
        "    await server.close()\n"
        "asyncio.run(main())\n", stale_cache)
    assert out.split() == ["False", "True"]


@needs_fonts
def test_dashboard_tests_pass_on_a_stale_cache(stale_cache):
    """The dashboard's page and plot tests, run in a process that reads the stale cache:
    Chinese labels on the zh plots and no 5xx."""
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
         "tests/api/test_dashboard.py", "-k", "plot or sequence_page or index"],
        env={**os.environ, "MPLCONFIGDIR": str(stale_cache)}, cwd=ROOT, capture_output=True,
        text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stdout[-4000:]
    assert " passed" in done.stdout and "failed" not in done.stdout


async def test_a_plot_that_cannot_be_drawn_is_a_placeholder(monkeypatch, caplog, tmp_path,
                                                            aiohttp_client):
    """A plot that raises answers 200 with a small placeholder SVG saying so, and the log
    says why; never a 500."""
    from datetime import UTC, datetime

    from dashboard_data import fill

    from quakealert.api.app import make_app
    from quakealert.config import Settings
    from quakealert.store.auth import create_token
    from quakealert.store.sqlite import Store

    store = Store.open(tmp_path / "q.sqlite")
    ids = fill(store)
    secret = create_token(store.conn, "read", "fonts", now=datetime.now(UTC))[1]
    client = await aiohttp_client(make_app(Settings(store_path=tmp_path / "q.sqlite"),
                                           store=store),
                                  headers={"Authorization": f"Bearer {secret}"})

    def broken(*args, **kwargs):
        raise RuntimeError("FT2Font: cannot load the font")

    monkeypatch.setattr(plots, "map_svg", broken)
    with caplog.at_level(logging.ERROR, logger="quakealert.api.dashboard"):
        for lang, words in (("zh", "此图暂时无法绘制"), ("en", "could not be drawn")):
            resp = await client.get(f"/dashboard/sequences/{ids['mz']}/plots/map.svg",
                                    params={"lang": lang})
            assert resp.status == 200 and resp.content_type == "image/svg+xml"
            assert resp.headers["Cache-Control"] == "no-store"
            root = etree.fromstring(await resp.read())
            assert words in "".join(root.itertext())
    assert "FT2Font: cannot load the font" in caplog.text
    assert any(getattr(r, "plot", None) == "map" for r in caplog.records)
    store.close()


def test_fontconfig_files_without_fc_list(monkeypatch):
    """No fontconfig on the host: no files, and plots still render (English labels)."""
    monkeypatch.setattr(plots.shutil, "which", lambda name: None)
    assert plots.fontconfig_files("zh-cn") == []
