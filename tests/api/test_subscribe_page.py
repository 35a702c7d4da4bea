"""The residents' Web Push page (`GET /subscribe`) and its service worker (`GET /sw.js`)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import re
import tomllib
from pathlib import Path

import pytest

from quakealert.api.app import make_app
from quakealert.api.auth import required_role
from quakealert.api.public import csp_for
from quakealert.config import Settings
from quakealert.store.sqlite import Store

REPO = Path(__file__).resolve().parents[2]
PLACES = tomllib.loads((REPO / "messages" / "places.toml").read_text(encoding="utf-8"))
LHASA = {k: v for k, v in PLACES.items() if isinstance(v, dict) and v.get("parent") == "lhasa"}
CHROMIUM = Path("/usr/bin/chromium")


@pytest.fixture
def store(tmp_path: Path):
    s = Store.open(tmp_path / "q.sqlite")
    yield s
    s.close()


def _app(store: Store, tmp_path: Path, **sections: dict):
    return make_app(Settings(store_path=tmp_path / "q.sqlite", sections=sections), store=store)


@pytest.fixture
async def client(aiohttp_client, store, tmp_path):
    return await aiohttp_client(_app(store, tmp_path))


def options(page: str) -> dict[str, str]:
    """The place picker: option value -> its text."""
    select = re.search(r'<select id="place".*?</select>', page, re.DOTALL)
    assert select is not None
    return dict(re.findall(r'<option value="(\w+)"[^>]*>([^<]*)</option>', select.group(0)))


async def test_page_in_zh_by_default_lists_the_lhasa_seats(client):
    """zh is the default; every Lhasa district/county of places.toml is offered, in zh."""
    resp = await client.get("/subscribe")
    assert resp.status == 200
    assert resp.content_type == "text/html"
    page = await resp.text()
    assert '<html lang="zh-Hans">' in page
    picked = options(page)
    assert set(LHASA) <= set(picked)
    for key in ("chengguan", "doilungdeqen", "damxung", "maizhokunggar"):
        assert LHASA[key]["zh"] in picked[key]
    assert "订阅通知" in page and "取消订阅" in page
    assert "【演练】" in page and "EXERCISE" in page  # drills are marked, and the page says so
    # Seat coordinates go with each option, already at 0.01 degree.
    assert 'value="chengguan" data-lat="29.65" data-lon="91.12"' in page


async def test_page_in_en(client):
    """?lang=en: English wording, English and zh place names."""
    page = await (await client.get("/subscribe?lang=en")).text()
    assert '<html lang="en">' in page
    picked = options(page)
    for key in ("chengguan", "dagze", "lhunzhub", "quxu"):
        assert LHASA[key]["en"] in picked[key] and LHASA[key]["zh"] in picked[key]
    assert "Subscribe" in page and "Unsubscribe" in page
    assert "not every earthquake" in page or "not be notified of every earthquake" in page


@pytest.mark.parametrize("lang", ["zh", "bo"])
async def test_tibetan_place_names_only_where_sourced(client, lang):
    """A Tibetan name appears exactly when places.toml marks it sourced."""
    picked = options(await (await client.get(f"/subscribe?lang={lang}")).text())
    assert any(p["bo_status"] == "sourced" for p in LHASA.values())
    assert any(p["bo_status"] != "sourced" for p in LHASA.values())
    for key, place in LHASA.items():
        assert (place["bo"] in picked[key]) == (place["bo_status"] == "sourced"), key


async def test_bo_page_says_the_interface_is_not_translated(client):
    """No unsourced Tibetan wording: the bo page keeps the zh labels and says why."""
    page = await (await client.get("/subscribe?lang=bo")).text()
    assert "订阅通知" in page and "藏文界面尚待译者翻译" in page
    tibetan = set(re.findall(r"[\u0f00-\u0fff]+", page))
    sourced = {p["bo"] for p in LHASA.values() if p["bo_status"] == "sourced"}
    assert {w for w in tibetan if not any(w in s for s in sourced)} == set()


async def test_unknown_lang_falls_back_to_zh(client):
    page = await (await client.get("/subscribe?lang=fr")).text()
    assert '<html lang="zh-Hans">' in page


async def test_page_defaults_languages_zh_bo_and_intensity_iii(client):
    page = await (await client.get("/subscribe")).text()
    checked = re.findall(r'name="languages" value="(\w+)" checked', page)
    assert checked == ["zh", "bo"]
    assert re.search(r'<option value="3" selected>', page)


async def test_page_loads_nothing_from_elsewhere_and_sends_a_csp(client):
    """No external scripts, styles or fonts; the CSP allows 'self' and the inline code by hash."""
    for lang in ("zh", "en", "bo"):
        resp = await client.get(f"/subscribe?lang={lang}")
        page = await resp.text()
        assert not re.search(r"(?:src|href)\s*=\s*[\"']?(?:https?:)?//", page, re.IGNORECASE)
        assert not re.search(r"@import|url\(", page)
        assert "<link" not in page
        csp = resp.headers["Content-Security-Policy"]
        directives = dict(d.strip().split(" ", 1) for d in csp.split(";"))
        assert directives["default-src"] == "'none'"
        assert "unsafe-inline" not in csp and "http" not in csp and "*" not in csp
        assert directives["connect-src"] == "'self'" and directives["worker-src"] == "'self'"
        inline = re.search(r"<script>(.*?)</script>", page, re.DOTALL)
        assert inline is not None
        digest = base64.b64encode(hashlib.sha256(inline.group(1).encode()).digest()).decode()
        assert f"'sha256-{digest}'" in directives["script-src"].split()
        assert csp == csp_for(page)


async def test_page_script_subscribes_as_the_api_expects(client):
    """The inline script registers /sw.js, subscribes with the VAPID key, POSTs, can DELETE."""
    page = await (await client.get("/subscribe")).text()
    for needle in ('navigator.serviceWorker.register("/sw.js"', "userVisibleOnly: true",
                   "applicationServerKey", '"/api/v1/webpush/vapid-public-key"',
                   '"/api/v1/subscriptions"', 'method: "POST"', 'channel: "webpush"',
                   "min_intensity", '"/api/v1/subscriptions/" + encodeURIComponent(s.id)',
                   'method: "DELETE"', '"Authorization": "Bearer " + s.token', "localStorage",
                   "Math.round(x * 100) / 100"):
        assert needle in page, needle


async def test_service_worker_headers_and_handlers(client):
    resp = await client.get("/sw.js")
    assert resp.status == 200
    assert resp.headers["Content-Type"].startswith("text/javascript")
    assert resp.headers["Service-Worker-Allowed"] == "/"
    assert resp.headers["Cache-Control"] == "no-cache"
    js = await resp.text()
    assert 'addEventListener("push"' in js
    assert 'addEventListener("notificationclick"' in js
    assert "showNotification(" in js and "renotify: true" in js
    assert re.search(r"var tag = String\(p\.sequence_id", js) and "tag: tag" in js
    assert "data: {url:" in js
    assert "openWindow(" in js and ".focus()" in js
    assert "http://" not in js.replace('"http:"', "") and "importScripts" not in js


@pytest.mark.parametrize("path", ["/subscribe", "/sw.js"])
async def test_routes_are_public(client, path):
    """No token, no cookie: 200; the policy names them public."""
    assert required_role("GET", path) is None
    resp = await client.get(path)
    assert resp.status == 200
    head = await client.head(path)
    assert head.status == 200


@pytest.mark.parametrize("path", ["/subscribe", "/sw.js"])
async def test_routes_are_rate_limited_like_other_public_routes(aiohttp_client, store, tmp_path,
                                                                path):
    """They spend the anonymous client's `public` bucket, then answer 429 with Retry-After."""
    app = _app(store, tmp_path, ratelimit={"public": {"rate_per_s": 0.001, "burst": 2}})
    client = await aiohttp_client(app)
    assert (await client.get(path)).status == 200
    assert (await client.get("/healthz")).status == 200  # the same bucket
    resp = await client.get(path)
    assert resp.status == 429
    assert int(resp.headers["Retry-After"]) >= 1


def _console_problems(stderr: str) -> list[str]:
    """Console messages, uncaught errors and CSP refusals Chromium logged for the page. The
    page logs nothing itself, and --enable-logging prints console.error and console.log alike
    as INFO:CONSOLE, so any console line counts."""
    return [line for line in stderr.splitlines()
            if ":CONSOLE" in line or "Refused to" in line or "Uncaught" in line]


@pytest.mark.browser
@pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} is not installed")
@pytest.mark.parametrize("lang", ["zh", "en"])
async def test_page_runs_in_headless_chromium(aiohttp_server, store, tmp_path, lang):
    """Real Chromium: the DOM renders, the inline script runs under the CSP, no console errors."""
    server = await aiohttp_server(_app(store, tmp_path))
    url = f"http://127.0.0.1:{server.port}/subscribe?lang={lang}"
    proc = await asyncio.create_subprocess_exec(
        str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
        "--no-first-run", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--disable-default-apps", "--enable-logging=stderr", "--v=0",
        f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom", url,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        out, err = await asyncio.wait_for(proc.communicate(), 60)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    dom, log = out.decode("utf-8", "replace"), err.decode("utf-8", "replace")
    assert proc.returncode == 0, log[-2000:]
    assert LHASA["chengguan"]["zh"] in dom
    # show() ran: the status line is filled in (subscribed, not yet, or unsupported).
    status = re.search(r'<p id="status"[^>]*>([^<]*)</p>', dom)
    assert status is not None and status.group(1).strip(), dom[-1500:]
    assert _console_problems(log) == []
