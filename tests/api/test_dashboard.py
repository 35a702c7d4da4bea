"""The duty dashboard: zh/en pages, plots as SVG, approval forms, escaping, 404s, auth."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime

import matplotlib
import pytest
from dashboard_data import fill
from lxml import etree, html

from quakealert.api import plots
from quakealert.api.app import make_app
from quakealert.config import Settings
from quakealert.core.geo import distance_km
from quakealert.store.sequences import get_sequence, save_sequence
from quakealert.store.sqlite import Store

try:  # the auth helper's module; without it the dashboard is open
    from quakealert.store.auth import create_token
except ModuleNotFoundError:  # pragma: no cover - depends on what the tree contains
    create_token = None

NOW = datetime(2024, 11, 9, tzinfo=UTC)
SVG_NS = "{http://www.w3.org/2000/svg}"


@pytest.fixture(scope="module")
def filled(tmp_path_factory):
    """One filled database per module (ingest + classification take most of a second)."""
    path = tmp_path_factory.mktemp("dashboard") / "filled.sqlite"
    s = Store.open(path)
    ids = fill(s)
    s.close()
    return path, ids


@pytest.fixture
def store(filled, tmp_path):
    path = tmp_path / "q.sqlite"
    shutil.copyfile(filled[0], path)
    s = Store.open(path)
    yield s
    s.close()


@pytest.fixture
def ids(filled, store):
    return filled[1]


@pytest.fixture
def tokens(store):
    if create_token is None:
        return {}
    return {role: create_token(store.conn, role, f"dash-{role}", now=NOW)[1]
            for role in ("read", "duty")}


@pytest.fixture
async def client(store, ids, tokens, aiohttp_client, tmp_path):
    app = make_app(Settings(store_path=tmp_path / "unused.sqlite"), store=store)
    headers = {"Authorization": f"Bearer {tokens['read']}"} if tokens else {}
    return await aiohttp_client(app, headers=headers)


async def page(client, path, **params):
    resp = await client.get(path, params=params)
    assert resp.status == 200, await resp.text()
    assert resp.content_type == "text/html"
    assert resp.headers["Cache-Control"] == "no-store"
    text = await resp.text()
    return text, html.fromstring(text)


async def test_index_zh_default(client, ids):
    """The list defaults to zh: type, provisional/final, largest, Beijing + UTC times, context,
    and the nearest seat in zh, bo and en."""
    text, doc = await page(client, "/dashboard")
    assert doc.get("lang") == "zh-Hans"
    rows = doc.xpath("//tbody/tr")
    assert len(rows) == 2
    mz = next(r for r in rows if ids["mz"] in r.xpath(".//a/@href")[0])
    cells = [c.text_content() for c in mz.xpath("td")]
    assert cells[0].startswith("震群型") and "Swarm" in cells[0]
    assert cells[1] == "初步判定"
    assert "M4.5" in cells[2] and "29.85°N 92.25°E, 10 km" in cells[2]
    assert "2024-11-07 04:19:00 北京时间" in cells[2]
    assert "2024-11-06 20:19:00 UTC" in cells[2]
    assert "墨竹工卡县" in cells[3] and "མལ་གྲོ་གུང་དཀར་རྫོང" in cells[3]
    assert "Maizhokunggar County" in cells[3]
    assert mz.xpath("td[4]//span[@lang='bo']")
    assert cells[4] == "3"
    assert "2024-10-31 09:32:00 北京时间" in cells[5] and "2024-10-31 01:32:00 UTC" in cells[5]
    assert "2024-11-08 13:00:00 北京时间" in cells[6]
    assert cells[7].startswith("震中周边200公里内")
    rc = next(r for r in rows if r is not mz)
    rc_cells = [c.text_content() for c in rc.xpath("td")]
    assert rc_cells[0].startswith("前震-主震-余震型") and rc_cells[1] == "最终判定"
    assert "M7.1" in rc_cells[2] and "35.77°N 117.60°W" in rc_cells[2] and rc_cells[4] == "1303"
    assert "无" in rc_cells[3]  # no seat of ours within 300 km of California
    assert "近期地震序列" in text and doc.xpath("//nav/a/@href") == ["?lang=en"]


async def test_index_en(client):
    """?lang=en gives English labels and the English context line; zh names stay alongside."""
    text, doc = await page(client, "/dashboard", lang="en")
    assert doc.get("lang") == "en"
    assert doc.xpath("//h2")[0].text == "Recent earthquake sequences"
    assert [th.text for th in doc.xpath("//thead/tr/th")][:3] == [
        "Sequence type", "Status", "Largest event"]
    assert "Swarm" in text and "provisional" in text and "final" in text
    assert "Within 200 km of the epicentre" in text
    assert "近期地震序列" not in text
    assert "墨竹工卡县" in text  # place names in all three scripts whatever the UI language
    for href in doc.xpath("//tbody//a/@href"):
        assert href.endswith("?lang=en")


async def test_unknown_lang_falls_back_to_zh(client):
    """An unsupported ?lang is not an error: the page is served in zh."""
    _, doc = await page(client, "/dashboard", lang="fr")
    assert doc.get("lang") == "zh-Hans"


async def test_sequence_page(client, ids):
    """The sequence page has the map and three plots, history with reasons, the restricted
    forecast, notices with delivery counts and decisions with reasons."""
    _, doc = await page(client, f"/dashboard/sequences/{ids['mz']}")
    srcs = doc.xpath("//figure/img/@src")
    assert sorted(srcs) == sorted(
        f"/dashboard/sequences/{ids['mz']}/plots/{n}.svg?lang=zh"
        for n in ("map", "magnitude-time", "cumulative", "magnitude-frequency"))
    caption = doc.xpath("//figure[@id='plot-map']/figcaption")[0].text_content()
    assert "审图号" in caption and "不含任何行政边界或海岸线" in caption
    history = doc.xpath("//h2[text()='类型判定历史']/following-sibling::table[1]/tbody/tr")
    assert [r.xpath("td[2]")[0].text_content().split()[0] for r in history] == [
        "类型未定", "震群型"]
    reasons = history[1].xpath(".//li/text()")
    assert any(r.startswith("ΔM = M1 − M2 = 4.50 − 4.10 = 0.40") for r in reasons)
    forecast = doc.xpath("//section[@id='forecast']")[0].text_content()
    assert "仅供值班人员参考，不得对外发布" in forecast
    assert "For duty staff, not for public release" in forecast
    assert "若当前活动水平持续" in forecast
    assert "M ≥ 5.0" in forecast and "18% / 0 (0–1)" in forecast  # 7-day row of the table
    # notices: released one with delivery counts; pending one with approval forms
    released = doc.xpath("//article[@id='notice-ntc-mz-felt']")[0]
    assert "已发布" in released.text_content() and not released.xpath(".//form")
    assert released.xpath(".//div[@lang='bo']/strong")[0].text == "མལ་གྲོ་གུང་དཀར་རྫོང་ལ་ས་ཡོམ།"
    table = {r.xpath("td")[0].text: [int(c.text) for c in r.xpath("td")[1:]]
             for r in released.xpath(".//tbody/tr")}
    assert table == {"webhook": [0, 0, 0, 1, 0], "webpush": [4, 0, 0, 0, 1]}
    assert [th.text for th in released.xpath(".//thead/tr/th")] == [
        "渠道", "已送达", "待发送", "发送中", "失败", "订阅已失效"]
    pending = doc.xpath("//article[@id='notice-ntc-mz-swarm']")[0]
    assert "待批准" in pending.text_content()
    forms = pending.xpath(".//form")
    assert [(f.get("method"), f.get("action")) for f in forms] == [
        ("post", "/api/v1/notices/ntc-mz-swarm/approve"),
        ("post", "/api/v1/notices/ntc-mz-swarm/reject")]
    assert forms[0].xpath(".//input[@name='next']/@value") == [f"/dashboard/sequences/{ids['mz']}"]
    assert forms[1].xpath(".//input[@name='reason']")
    assert len(doc.xpath("//form")) == 2  # only the pending notice can be approved
    decisions = doc.xpath("//table[@id='decisions']/tbody/tr")
    assert [r.xpath("td[3]")[0].text for r in decisions] == ["发送", "不发送"]
    assert "预计烈度二度，低于阈值三度" in decisions[1].text_content()
    assert decisions[0].xpath("td[8]//a/@href") == ["#notice-ntc-mz-felt"]


async def test_sequence_page_en_dense(client, ids, store):
    """The Ridgecrest page in English: final FMA type, b-value caption, the 30 largest members."""
    text, doc = await page(client, f"/dashboard/sequences/{ids['rc']}", lang="en")
    assert doc.xpath("//h2")[0].text_content().split() == [
        "Foreshock–mainshock–aftershock", "前震-主震-余震型", "final"]
    mfd = doc.xpath("//figure[@id='plot-magnitude-frequency']/figcaption")[0].text_content()
    b = get_sequence(store.conn, ids["rc"])["stats"]["b_value"]
    assert f"b = {b['b']:.2f} ± {b['sigma_shi_bolt']:.2f}, Mc = {b['mc']:.1f}" in mfd
    assert "For duty staff, not for public release" in text and "仅供值班人员参考" in text
    assert "approved standard map" in text
    members = doc.xpath("//h2[starts-with(text(), 'Members')]/following-sibling::table[1]//tbody/tr")
    assert len(members) == 30
    assert members[0].xpath("td[2]")[0].text.startswith("M7.1")
    assert members[0].xpath("td[5]")[0].text == "largest"
    assert "No notices for this sequence yet." in text and not doc.xpath("//form")


@pytest.mark.parametrize("name", ["map", "magnitude-time", "cumulative", "magnitude-frequency"])
@pytest.mark.parametrize("lang", ["zh", "en"])
async def test_plots_are_svg(client, ids, name, lang):
    """Every plot is a well-formed SVG document served as image/svg+xml with a CSP."""
    resp = await client.get(f"/dashboard/sequences/{ids['mz']}/plots/{name}.svg",
                            params={"lang": lang})
    assert resp.status == 200
    assert resp.content_type == "image/svg+xml"
    assert "default-src 'none'" in resp.headers["Content-Security-Policy"]
    root = etree.fromstring(await resp.read())
    assert root.tag == f"{SVG_NS}svg"
    texts = "".join(root.itertext())
    if name == "map":
        assert ("墨竹工卡县" if lang == "zh" else "Maizhokunggar County") in texts
        assert ("拉萨市" if lang == "zh" else "Lhasa") in texts  # 110 km away, inside the frame
        assert ("200公里范围" if lang == "zh" else "200 km radius") in texts
    elif name == "magnitude-time":
        assert ("震级" if lang == "zh" else "Magnitude") in texts
        assert ("北京时间" if lang == "zh" else "UTC") in texts


async def test_mfd_plot_shows_stored_b_fit(client, ids, store):
    """The magnitude-frequency plot carries the stored b-value and Mc in its legend."""
    b = get_sequence(store.conn, ids["rc"])["stats"]["b_value"]
    resp = await client.get(f"/dashboard/sequences/{ids['rc']}/plots/magnitude-frequency.svg",
                            params={"lang": "en"})
    texts = "".join(etree.fromstring(await resp.read()).itertext())
    assert f"b-value fit: b = {b['b']:.2f}, Mc = {b['mc']:.1f}" in texts


@pytest.mark.parametrize("path", [
    "/dashboard/sequences/seq-nope",
    "/dashboard/sequences/seq-nope/plots/map.svg",
    "/dashboard/sequences/{mz}/plots/secret.svg",
    "/dashboard/sequences/{mz}/plots/map.png",
    "/dashboard/sequences/{mz}/plots/..%2Fmap.svg",
])
async def test_not_found(client, ids, path):
    """Unknown sequences and plot names outside the allowed set are 404."""
    resp = await client.get(path.format(mz=ids["mz"]))
    assert resp.status == 404


async def test_feed_text_is_escaped(client, ids, store):
    """Reasons, notice text and ids from feeds are escaped, never markup."""
    evil = '<script>alert("x")</script><img src=x onerror=alert(1)>'
    seq = get_sequence(store.conn, ids["mz"])
    data = {**seq, "reasons": [{"code": "x", "en": evil, "zh": evil, "values": {}}],
            "type": "isolated", "type_zh": "孤立型",
            "context": {**seq["context"], "zh": evil, "en": evil}}
    save_sequence(store.conn, data, NOW)
    from quakealert.model import Message, Notice
    from quakealert.store.notices import save_notice

    save_notice(store.conn, Notice(
        id='n"><b>x', sequence_id=ids["mz"], event_id=seq["largest"]["id"], kind="update",
        msg_type="Update", created_at=NOW, messages=(Message("zh", evil, evil),)),
        "pending_approval")
    for path in ("/dashboard", f"/dashboard/sequences/{ids['mz']}"):
        text, doc = await page(client, path)
        assert "<script" not in text and "<img src=x" not in text
        assert "&lt;script&gt;" in text
        assert not doc.xpath("//b")
    _, doc = await page(client, f"/dashboard/sequences/{ids['mz']}")
    assert "/api/v1/notices/n%22%3E%3Cb%3Ex/approve" in doc.xpath("//form/@action")


@pytest.mark.skipif(create_token is None, reason="no auth module in this tree")
async def test_dashboard_needs_read_role(store, ids, aiohttp_client, tmp_path):
    """Without credentials: 401 for API clients, a redirect to /login for browsers."""
    app = make_app(Settings(store_path=tmp_path / "unused.sqlite"), store=store)
    c = await aiohttp_client(app)
    resp = await c.get("/dashboard")
    assert resp.status == 401
    resp = await c.get(f"/dashboard/sequences/{ids['mz']}/plots/map.svg")
    assert resp.status == 401
    resp = await c.get("/dashboard", headers={"Accept": "text/html"}, allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"].startswith("/login?next=")


def test_plot_functions_are_pure():
    """Same data, same bytes; rcParams are unchanged afterwards (no global state leaks)."""
    quakes = [plots.Quake(datetime(2024, 10, 31, 1, 32, tzinfo=UTC), 29.85, 92.25, 4.1),
              plots.Quake(datetime(2024, 11, 6, 20, 19, tzinfo=UTC), 29.85, 92.25, 4.5)]
    before = json.dumps({k: repr(v) for k, v in matplotlib.rcParams.items()})
    first = plots.map_svg(quakes, centre=(29.85, 92.25))
    assert plots.map_svg(quakes, centre=(29.85, 92.25)) == first
    assert plots.magnitude_time_svg(quakes) == plots.magnitude_time_svg(quakes)
    assert json.dumps({k: repr(v) for k, v in matplotlib.rcParams.items()}) == before


def test_empty_plots_say_no_data():
    """A sequence without magnitudes still gets a plot, labelled as having no data."""
    for svg in (plots.magnitude_time_svg([]), plots.cumulative_count_svg([]),
                plots.magnitude_frequency_svg([])):
        assert "暂无数据" in "".join(etree.fromstring(svg).itertext())


@pytest.mark.parametrize("lat", [0.0, 29.85, 65.0])
def test_map_circle_is_200_km(lat):
    """The circle is made of geodesic destination points exactly 200 km from the centre."""
    pts = plots.circle_points(lat, 92.25, 200.0)
    assert pts[0] == pts[-1]
    for p_lat, p_lon in pts:
        assert distance_km(lat, 92.25, p_lat, p_lon) == pytest.approx(200.0, abs=1e-6)


def test_map_aspect_follows_latitude():
    """The map's data aspect is 1/cos(lat): at 60°N a degree of longitude is half as wide."""
    svg = plots.map_svg([], centre=(60.0, 10.0), radius_km=200.0, lang="en")
    root = etree.fromstring(svg)
    # the axes background patch is the first path in the axes group
    patch = root.find(f".//{SVG_NS}g[@id='axes_1']/{SVG_NS}g[@id='patch_2']/{SVG_NS}path")
    xs, ys = [], []
    for tok in patch.get("d").replace("M", " ").replace("L", " ").replace("z", " ").split():
        (xs if len(xs) == len(ys) else ys).append(float(tok))
    width_px, height_px = max(xs) - min(xs), max(ys) - min(ys)
    pts = plots.circle_points(60.0, 10.0, 200.0)
    dlon = max(p[1] for p in pts) - min(p[1] for p in pts) + 0.3
    dlat = max(p[0] for p in pts) - min(p[0] for p in pts) + 0.3
    assert (width_px / dlon) / (height_px / dlat) == pytest.approx(0.5, rel=0.01)


def test_every_label_in_both_languages():
    """Each UI and plot label exists in zh and in en."""
    from quakealert.api.dashboard import UI

    assert set(UI["zh"]) == set(UI["en"])
    assert set(plots._LABELS["zh"]) == set(plots._LABELS["en"])


@pytest.mark.skipif(create_token is None, reason="no auth module in this tree")
async def test_approval_forms_work_end_to_end(client, ids, tokens):
    """Submitting the page's reject form (duty role) rejects the notice; its buttons go away."""
    _, doc = await page(client, f"/dashboard/sequences/{ids['mz']}")
    form = doc.xpath("//form[contains(@action, '/reject')]")[0]
    fields = {i.get("name"): i.get("value") or "" for i in form.xpath(".//input")}
    fields["reason"] = "wording not checked by the Tibetan reader yet"
    duty = {"Authorization": f"Bearer {tokens['duty']}"}
    resp = await client.post(form.get("action"), data=fields, headers=duty,
                             allow_redirects=False)
    assert resp.status == 303, await resp.text()
    assert resp.headers["Location"].startswith(f"/dashboard/sequences/{ids['mz']}")
    _, doc = await page(client, f"/dashboard/sequences/{ids['mz']}")
    article = doc.xpath("//article[@id='notice-ntc-mz-swarm']")[0]
    assert "已驳回" in article.text_content()
    assert "wording not checked by the Tibetan reader yet" in article.text_content()
    assert not doc.xpath("//form")
