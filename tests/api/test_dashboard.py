"""The duty dashboard: zh/en pages, plots as SVG, approval forms, escaping, 404s, auth."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime, timedelta

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
    """The front page defaults to zh: the held notice first with its deadline, the newest felt
    quake with the agencies' origins and a row per district, the latest notices, and the
    sequence list with Beijing times and the nearest seat in zh, bo and en."""
    _, doc = await page(client, "/dashboard")
    assert doc.get("lang") == "zh-Hans"
    sections = doc.xpath("//main//section/@id")
    assert sections[:2] == ["approvals", "headline"]  # what waits for me comes first
    card = doc.xpath("//section[@id='approvals']/article")[0]
    assert card.get("data-notice") == "ntc-mz-swarm"
    assert "震群提示" in card.text_content() and "M4.5" in card.text_content()
    assert card.xpath(".//time/@data-deadline")
    # a read-only officer sees the message but no buttons
    assert not card.xpath(".//form") and "值班（duty）权限" in card.text_content()
    head = doc.xpath("//section[@id='headline']")[0].text_content()
    assert "M4.5" in head and "墨竹工卡县" in head and "距拉萨约110千米" in head
    assert "04:19 北京时间" in head and "前" in head
    assert "中国地震台网（CENC）" in head and "正式测定" in head
    districts = {r.xpath("td")[0].text_content(): [c.text_content() for c in r.xpath("td")]
                 for r in doc.xpath("//table[contains(@class, 'districts')]/tbody/tr")}
    assert districts["城关区"][1] == "Ⅳ度（多有感）" and districts["城关区"][2] == "6"
    assert districts["日喀则市"][5] == "40" and "低于阈值三度" in districts["日喀则市"][6]
    recent = doc.xpath("//section[@id='recent']//tbody/tr")
    assert len(recent) == 1 and "有感提示" in recent[0].text_content()
    assert "已发布" in recent[0].text_content()
    rows = doc.xpath("//section[@id='sequences']//tbody/tr")
    assert len(rows) == 2
    mz = next(r for r in rows if ids["mz"] in r.xpath(".//a/@href")[0])
    cells = [c.text_content() for c in mz.xpath("td")]
    assert cells[0].strip() == "震群型" and cells[1] == "初步判定"
    assert "M4.5" in cells[2] and "M4.5，29.85°N 92.25°E，深度10千米" in cells[2]
    assert "2024-11-07 04:19:00 北京时间" in cells[2]
    assert "墨竹工卡县" in cells[3] and "མལ་གྲོ་གུང་དཀར་རྫོང" in cells[3]
    assert mz.xpath("td[4]//span[@lang='bo']")
    assert cells[4] == "3" and cells[7].startswith("震中周边200千米内")
    rc = next(r for r in rows if r is not mz)
    rc_cells = [c.text_content() for c in rc.xpath("td")]
    assert rc_cells[0].strip() == "前震-主震-余震型" and rc_cells[1] == "最终判定"
    assert "M7.1" in rc_cells[2] and rc_cells[4] == "1303" and "无" in rc_cells[3]
    assert doc.xpath("//header//nav/a/@href")[-1] == "?lang=en"
    for text_div in doc.xpath("//div[contains(@class, 'text')][@lang != 'zh']"):
        text_div.drop_tree()  # the en/bo texts behind the language toggle are the message's own
    for raw in ("swarm_advisory", "felt_guidance", "chengguan", "pending_approval",
                "below_threshold", "Swarm", "released"):
        assert raw not in doc.xpath("//body")[0].text_content(), raw


async def test_index_en(client):
    """?lang=en gives English labels, English reasons and English kind names."""
    text, doc = await page(client, "/dashboard", lang="en")
    assert doc.get("lang") == "en"
    assert [h.text_content().split()[0] for h in doc.xpath("//h2")][:2] == ["Waiting", "Newest"]
    for text_div in doc.xpath("//div[contains(@class, 'text')][@lang != 'en']"):
        text_div.drop_tree()  # the zh/bo texts behind the language toggle are the message's own
    body = doc.xpath("//body")[0].text_content()
    assert "swarm advisory" in body and "Est. intensity" in body and "IV (light)" in body
    assert "below threshold III" in body and "Within 200 km of the epicentre" in body
    assert "about 110 km from Lhasa" in body and "20:19 UTC" in body
    for zh in ("近期地震序列", "震群提示", "待批准", "已发布", "北京时间发震"):
        assert zh not in body
    assert "墨竹工卡县" in text  # place names in all three scripts whatever the UI language
    for href in doc.xpath("//section[@id='sequences']//tbody//a/@href"):
        assert href.endswith("?lang=en")


async def test_unknown_lang_falls_back_to_zh(client):
    """An unsupported ?lang is not an error: the page is served in zh."""
    _, doc = await page(client, "/dashboard", lang="fr")
    assert doc.get("lang") == "zh-Hans"


async def test_duty_officer_sees_one_approve_for_all_variants(store, ids, tokens, aiohttp_client,
                                                              tmp_path):
    """Two area variants of one held message are one card with one approve and one reject;
    approving releases both, answers 303 back to the page with the outcome, and the page says
    so once."""
    from quakealert.store.notices import load_stored_notice, save_notice

    swarm = load_stored_notice(store.conn, "ntc-mz-swarm").notice
    twin = swarm.__class__(**{**{f: getattr(swarm, f) for f in swarm.__dataclass_fields__},
                              "id": "ntc-mz-swarm-2"})
    save_notice(store.conn, twin, "pending_approval")
    app = make_app(Settings(store_path=tmp_path / "unused.sqlite",
                            sections={"approvals": {"swarm_advisory": 3600}}), store=store)
    duty = await aiohttp_client(app, headers={"Authorization": f"Bearer {tokens['duty']}"})
    _, doc = await page(duty, "/dashboard")
    cards = doc.xpath("//section[@id='approvals']/article")
    assert len(cards) == 1 and "2个区域版本" in cards[0].text_content()
    approve, reject = cards[0].xpath(".//form")
    assert approve.get("action").endswith("/approve") and reject.get("action").endswith("/reject")
    assert reject.xpath(".//input[@name='reason']/@required")
    resp = await duty.post(approve.get("action"), data={"next": "/dashboard?lang=zh"},
                           allow_redirects=False)
    assert resp.status == 303
    assert resp.headers["Location"] == "/dashboard?lang=zh&done=approved&n=2#approvals"
    for nid in ("ntc-mz-swarm", "ntc-mz-swarm-2"):
        assert load_stored_notice(store.conn, nid).state == "released"
    _, doc = await page(duty, "/dashboard", lang="zh", done="approved", n="2")
    assert "已批准发布：2 个区域版本。" in doc.xpath("//*[@role='status']")[0].text_content()
    assert not doc.xpath("//section[@id='approvals']/article")
    # a second click finds nothing pending: nothing happens, and the page says why
    again = await duty.post(approve.get("action"), data={"next": "/dashboard"},
                            allow_redirects=False)
    assert again.headers["Location"] == "/dashboard?done=not_pending&n=0&state=released#approvals"


async def test_reject_needs_a_reason_and_the_duty_role(client, ids, tokens, store):
    """A read token cannot reject (403); a duty reject without a reason does nothing; with one,
    the message is rejected and the reason kept; `next` never leaves the dashboard."""
    from quakealert.store.notices import load_stored_notice

    url = "/dashboard/notices/ntc-mz-swarm/reject"
    resp = await client.post(url, data={"reason": "x"}, allow_redirects=False)
    assert resp.status == 403
    duty = {"Authorization": f"Bearer {tokens['duty']}"}
    resp = await client.post(url, data={"reason": "  ", "next": "https://evil.example/"},
                             headers=duty, allow_redirects=False)
    assert resp.headers["Location"] == "/dashboard?done=reason_missing&n=0#approvals"
    assert load_stored_notice(store.conn, "ntc-mz-swarm").state == "pending_approval"
    resp = await client.post(url, data={"reason": "藏文译文尚未核对", "next": "//evil.example"},
                             headers=duty, allow_redirects=False)
    assert resp.headers["Location"] == "/dashboard?done=rejected&n=1#approvals"
    stored = load_stored_notice(store.conn, "ntc-mz-swarm")
    assert stored.state == "rejected" and stored.state_reason.endswith(": 藏文译文尚未核对")
    _, doc = await page(client, f"/dashboard/sequences/{ids['mz']}")
    msg = doc.xpath("//details[@id='msg-ntc-mz-swarm']")[0].text_content()
    assert "已驳回" in msg and "驳回，理由：藏文译文尚未核对" in msg


async def test_sequence_page(client, ids):
    """The sequence page: a card per quake people were told about with its messages collapsed
    (three languages behind a toggle, delivery counts), the held message with its approval
    card, the plots and statistics, type history behind a toggle, the members collapsed."""
    _, doc = await page(client, f"/dashboard/sequences/{ids['mz']}")
    srcs = doc.xpath("//figure/img/@src")
    assert sorted(srcs) == sorted(
        f"/dashboard/sequences/{ids['mz']}/plots/{n}.svg?lang=zh"
        for n in ("map", "magnitude-time", "cumulative", "magnitude-frequency"))
    caption = doc.xpath("//figure[@id='plot-map']/figcaption")[0].text_content()
    assert "审图号" in caption and "不含任何行政边界或海岸线" in caption
    reasons = doc.xpath("//details[@class='reasons']//li/text()")
    assert any(r.startswith("ΔM = M1 − M2 = 4.50 − 4.10 = 0.40") for r in reasons)
    earlier = doc.xpath("//details[@class='reasons']/following-sibling::details[1]//tbody/tr")
    assert [r.xpath("td[2]")[0].text_content().split()[0] for r in earlier] == ["类型未定"]
    cards = doc.xpath("//section[@id='quakes']/article")
    assert [c.xpath("h3/span")[0].text for c in cards] == ["M4.5"]  # only the M4.5 was notified
    felt = doc.xpath("//details[@id='msg-ntc-mz-felt']")[0]
    summary = felt.xpath("summary")[0].text_content()
    assert "有感提示" in summary and "已发布" in summary and "墨竹工卡县4.5级地震" in summary
    tabs = felt.xpath(".//div[@class='langs']/label/text()")
    assert tabs == ["中文", "藏文", "英文"]
    assert felt.xpath(".//div[@lang='bo']/strong")[0].text == "མལ་གྲོ་གུང་དཀར་རྫོང་ལ་ས་ཡོམ།"
    assert "已送达 4" in felt.text_content() and "失败 2" in felt.text_content()
    assert doc.xpath("//section[@id='approvals']/article/@data-notice") == ["ntc-mz-swarm"]
    districts = cards[0].xpath(".//details[@class='districts']//tbody/tr")
    assert [r.xpath("td")[1].text for r in districts] == ["发送", "不发送"]
    assert "预计烈度二度，低于阈值三度" in districts[1].text_content()
    forecast = doc.xpath("//section[@id='forecast']")[0].text_content()
    assert "仅供值班人员参考，不得对外发布" in forecast
    # computed for 2024-11-09: long stale on today's clock, so its numbers are hidden
    assert "趋势估计已过时" in forecast and "%" not in forecast
    assert doc.xpath("//details[@id='members']")


async def test_sequence_page_shows_a_fresh_forecast_with_its_time(store, ids, aiohttp_client,
                                                                  tokens, tmp_path):
    """While the forecast is fresh (a replay's clock just after it was computed) the page
    gives the time it was computed for, the text and the table."""
    from types import SimpleNamespace

    from quakealert.store.sequences import get_sequence

    forecast_at = datetime.fromisoformat(get_sequence(store.conn, ids["mz"])["forecast"][
        "start_at"])
    clock = SimpleNamespace(replay_label="replay", metrics=None,
                            pipeline_now=lambda wall: forecast_at + timedelta(hours=2))
    app = make_app(Settings(store_path=tmp_path / "unused.sqlite"), store=store, runtime=clock)
    c = await aiohttp_client(app, headers={"Authorization": f"Bearer {tokens['read']}"})
    _, doc = await page(c, f"/dashboard/sequences/{ids['mz']}")
    forecast = doc.xpath("//section[@id='forecast']")[0].text_content()
    assert "计算时刻：2024-11-09 08:00:00 北京时间" in forecast and "2小时前" in forecast
    assert "若当前活动水平持续" in forecast
    assert "M ≥ 5.0" in forecast and "18% · 0 (0–1)" in forecast
    assert "演练 · 回放模式" in doc.xpath("//p[@id='mode-banner']")[0].text_content()


async def test_sequence_page_en_dense(client, ids, store):
    """The Ridgecrest page in English: final FMA type, b-value caption, the 30 largest members,
    one card (the largest) since nobody was notified."""
    text, doc = await page(client, f"/dashboard/sequences/{ids['rc']}", lang="en")
    assert doc.xpath("//h2")[0].text_content().split() == [
        "Foreshock–mainshock–aftershock", "前震-主震-余震型", "final"]
    mfd = doc.xpath("//figure[@id='plot-magnitude-frequency']/figcaption")[0].text_content()
    b = get_sequence(store.conn, ids["rc"])["stats"]["b_value"]
    assert f"b = {b['b']:.2f} ± {b['sigma_shi_bolt']:.2f}, Mc = {b['mc']:.1f}" in mfd
    assert "For duty staff, not for public release" in text and "仅供值班人员参考" not in text
    assert "approved standard map" in text
    members = doc.xpath("//details[@id='members']//tbody/tr")
    assert len(members) == 30
    assert members[0].xpath("td[2]")[0].text.startswith("M7.1")
    assert members[0].xpath("td[5]")[0].text == "largest"
    cards = doc.xpath("//section[@id='quakes']/article")
    assert len(cards) == 1 and "largest of the sequence" in cards[0].text_content()
    assert not doc.xpath("//form")


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


async def test_feed_text_is_escaped(client, ids, store, tokens):
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
        assert "<script>alert" not in text and "<img src=x" not in text
        assert doc.xpath("//script/@src") == ["/dashboard/console.js"]
        assert "&lt;script&gt;" in text
        assert not doc.xpath("//b")
    duty = await client.get(f"/dashboard/sequences/{ids['mz']}",
                            headers={"Authorization": f"Bearer {tokens['duty']}"})
    doc = html.fromstring(await duty.text())
    assert "/dashboard/notices/n%22%3E%3Cb%3Ex/approve" in doc.xpath("//form/@action")


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


@pytest.mark.parametrize("headers,ok", [
    # Chromium's form post from our own page: same-origin, whatever the Origin says
    ({"Sec-Fetch-Site": "same-origin", "Origin": "null"}, True),
    ({"Sec-Fetch-Site": "same-origin"}, True),
    ({"Sec-Fetch-Site": "cross-site", "Origin": "https://evil.example"}, False),
    ({"Sec-Fetch-Site": "same-site", "Origin": "http://other.localhost"}, False),
    # a browser that says it came from elsewhere is believed over a matching Origin
    ({"Sec-Fetch-Site": "cross-site"}, False),
    # older browsers: the Origin header decides; an opaque origin is refused
    ({"Origin": "null"}, False),
    ({"Origin": "https://evil.example"}, False),
])
async def test_same_origin_check_on_session_posts(store, ids, tokens, aiohttp_client, tmp_path,
                                                  headers, ok):
    """A logged-in browser's approve is accepted when the browser says it is same-origin and
    refused (403, nothing released) when it says cross-site or the origin is foreign/opaque."""
    from quakealert.store.notices import load_stored_notice

    app = make_app(Settings(store_path=tmp_path / "unused.sqlite"), store=store)
    c = await aiohttp_client(app)
    login = await c.post("/login", data={"token": tokens["duty"], "next": "/dashboard"},
                         allow_redirects=False)
    assert login.status == 303
    resp = await c.post("/dashboard/notices/ntc-mz-swarm/approve", data={"next": "/dashboard"},
                        headers=headers, allow_redirects=False)
    state = load_stored_notice(store.conn, "ntc-mz-swarm").state
    if ok:
        assert resp.status == 303 and state == "released"
    else:
        assert resp.status == 403 and state == "pending_approval"
        assert "cross-site request refused" in await resp.text()


async def test_console_pages_send_a_same_origin_referrer_policy(client, ids):
    """Console pages ask for Referrer-Policy same-origin (no-referrer made Chromium post
    Origin: null) and allow only their own script."""
    for path in ("/dashboard", f"/dashboard/sequences/{ids['mz']}", "/login"):
        resp = await client.get(path)
        assert resp.headers["Referrer-Policy"] == "same-origin", path
        assert "script-src 'self'" in resp.headers["Content-Security-Policy"], path
    js = await client.get("/dashboard/console.js")
    assert js.status == 200 and js.content_type == "text/javascript"
    assert "data-deadline" in await js.text()


@pytest.mark.parametrize("lang,words", [
    ("zh", ("值班人员登录", "值班令牌", "登录")), ("en", ("Duty staff login", "Duty token", "Log in"))])
async def test_login_page_in_both_languages(client, lang, words):
    """The login page speaks zh (default) or en, styled like the console, and keeps `next`."""
    resp = await client.get("/login", params={"lang": lang, "next": "/dashboard/sequences/x"})
    doc = html.fromstring(await resp.text())
    assert doc.get("lang") == ("zh-Hans" if lang == "zh" else "en")
    body = doc.text_content()
    assert all(w in body for w in words)
    assert doc.xpath("//header[@class='top']")  # the console's header bar
    assert doc.xpath("//input[@name='next']/@value") == ["/dashboard/sequences/x"]
    if lang == "zh":
        assert "Token" not in body and "Log in" not in body


@pytest.mark.parametrize("seconds,zh,en", [
    (45, "45秒", "45 s"), (600, "10分钟", "10 min"), (3600, "1小时", "1 h"),
    (5400, "1小时30分钟", "1 h 30 min"), (86401.0, "24小时", "24 h"), (2 * 86400 + 3600, "49小时", "49 h"),
    (4 * 86400, "4天", "4 d")])
def test_durations_read_as_people_say_them(seconds, zh, en):
    """86401.0 s is 24 h, an hour and a half is 1 h 30 min; never raw seconds."""
    from quakealert.api.dashboard import fmt_duration

    assert fmt_duration(seconds, "zh") == zh and fmt_duration(seconds, "en") == en


@pytest.mark.parametrize("reason,zh", [
    ("waits for a duty officer, at most 3600 s", "等待值班人员批准；1小时内无人处理将按预审模板自动发布"),
    ("approved by Dawa (duty) at 2024-11-07T20:30:00Z: ok", "Dawa (duty)于11-08 04:30批准，备注：ok"),
    ("rejected by Dawa at 2024-11-07T20:30:00Z: 口径不一致", "Dawa于11-08 04:30驳回，理由：口径不一致"),
    ("auto-released after 600 s without a duty decision (pre-approved template)",
     "10分钟内无人处理，已按预审模板自动发布"),
    ("withdrawn at 2024-11-08T20:19:01Z: superseded by qa-n-2", "已由较新的通知（qa-n-2）取代，于11-09 04:19自动撤回"),
    ("edited by Dawa at 2024-11-07T20:30:00Z (zh, bo); still waiting for approval",
     "Dawa于11-08 04:30修改了文本（中文、藏文），仍待批准"),
    ("first_felt: First felt event of the sequence", ""),  # not sayable in zh: not shown
])
def test_state_notes_in_chinese(reason, zh):
    """The stored (English) state reasons read in Chinese on the zh page; none leak raw."""
    from quakealert.api.dashboard import state_note

    assert state_note(reason, "zh") == zh
    assert state_note(reason, "en")


async def test_replay_withdraws_yesterdays_held_summary(tmp_path):
    """Replaying the bundled list with swarm advisories held: nobody approves day one's
    advisories, so where a later one goes to the same areas (the summary naming the M4.1 felt
    in Dagze and Maizhokunggar) it withdraws them, with the reason, and only the newest waits
    for approval there; areas with nothing new keep theirs."""
    from console_replay import DAY_ONE, DAY_TWO, Replay

    from quakealert.store.notices import load_stored_notice

    replay = Replay(tmp_path / "replay.sqlite")
    try:
        await replay.run_to(DAY_ONE)
        day_one = replay.pending()
        assert day_one
        await replay.run_to(DAY_TWO)
        day_two = replay.pending()
        gone = [nid for nid in day_one if nid not in day_two]
        assert gone and set(day_two) - set(day_one)
        for nid in gone:
            old = load_stored_notice(replay.store.conn, nid)
            assert old.state == "expired"
            assert old.state_reason.startswith("withdrawn at ")
            newer = load_stored_notice(replay.store.conn,
                                       old.state_reason.split("superseded by ")[1])
            assert newer.notice.kind == old.notice.kind == "swarm_advisory"
            assert newer.notice.created_at > old.notice.created_at
    finally:
        replay.close()


async def test_overlong_note_or_reason_is_refused(client, tokens, store):
    """A note or reason over 500 characters is a 400 on either action; nothing changes."""
    from quakealert.store.notices import load_stored_notice

    duty = {"Authorization": f"Bearer {tokens['duty']}"}
    for action, field in (("approve", "note"), ("reject", "reason"), ("reject", "note")):
        resp = await client.post(f"/dashboard/notices/ntc-mz-swarm/{action}",
                                 data={field: "x" * 501, "reason": "ok"} if field == "note"
                                 else {field: "x" * 501}, headers=duty, allow_redirects=False)
        assert resp.status == 400, (action, field)
    assert load_stored_notice(store.conn, "ntc-mz-swarm").state == "pending_approval"


async def test_tibetan_review_page_lists_every_composed_entry(client, tmp_path):
    """/dashboard/tibetan-review (zh by default): one row per composed bo entry, with its key,
    the Chinese it renders, the Tibetan (marked lang=bo, no Chinese in it), its provenance and
    the attested terms with their sources; the front page links to it with the count."""
    from quakealert.core.render import has_cjk, load_catalog, review_entries

    text, doc = await page(client, "/dashboard/tibetan-review")
    composed = review_entries()
    bo = load_catalog().glossary["bo"]
    assert 0 < len(composed) < len(bo)
    assert doc.get("lang") == "zh-Hans" and "藏文待审条目" in doc.findtext(".//title")
    intro = doc.get_element_by_id("review-intro").text_content()
    assert f"共{len(bo)}条藏文条目，其中{len(composed)}条" in intro
    assert "组合藏文照常发送" in doc.get_element_by_id("review-setting").text_content()
    rows = doc.xpath("//table[contains(@class,'review')]/tbody/tr")
    assert [r.get("id") for r in rows] == [f"entry-{k}" for k in composed]
    zh = load_catalog().glossary["zh"]
    for row in rows:
        key = row.get("id").removeprefix("entry-")
        cells = row.xpath("./td")
        assert cells[0].text_content() == key
        assert cells[1].text_content() == zh[key].text
        assert cells[2].get("lang") == "bo" and cells[2].text_content() == bo[key].text
        assert not has_cjk(cells[2].text_content())
        assert cells[3].text_content() == "组合（待审）"
        assert [li.text_content() for li in cells[4].xpath(".//li")] == list(bo[key].terms)
    # the new bo push title part that carries the resident's shaking, with the frame it follows
    shake = doc.get_element_by_id("entry-push.shake_suffix").text_content()
    assert "TT:2015-11-24-142072" in shake
    assert bo["source.cenc"].status == "sourced" and "entry-source.cenc" not in text
    _, fdoc = await page(client, "/dashboard")
    link = fdoc.get_element_by_id("review-link")
    assert link.get("href") == "/dashboard/tibetan-review?lang=zh"
    assert link.text_content() == f"藏文待审（{len(composed)}条）"


async def test_tibetan_review_page_in_english_and_held_setting(store, tokens, aiohttp_client,
                                                               tmp_path):
    """?lang=en shows the English wording beside the Chinese; with bo_composed = "hold" the page
    says composed Tibetan is held back from residents."""
    from quakealert.core.render import review_entries

    app = make_app(Settings(store_path=tmp_path / "unused.sqlite",
                            sections={"messages": {"bo_composed": "hold"}}), store=store)
    headers = {"Authorization": f"Bearer {tokens['read']}"} if tokens else {}
    c = await aiohttp_client(app, headers=headers)
    _, doc = await page(c, "/dashboard/tibetan-review", lang="en")
    assert doc.get("lang") == "en"
    assert "is held back" in doc.get_element_by_id("review-setting").text_content()
    row = doc.get_element_by_id("entry-shake.weak")
    assert row.xpath("./td")[1].text_content().startswith("weak shaking")
    assert len(doc.xpath("//table[contains(@class,'review')]/tbody/tr")) == len(review_entries())


@pytest.mark.skipif(create_token is None, reason="no auth module in this tree")
async def test_tibetan_review_page_needs_read_role(store, aiohttp_client, tmp_path):
    """Like every console page: 401 without credentials, a redirect to /login for browsers."""
    c = await aiohttp_client(make_app(Settings(store_path=tmp_path / "unused.sqlite"),
                                      store=store))
    assert (await c.get("/dashboard/tibetan-review")).status == 401
    resp = await c.get("/dashboard/tibetan-review", headers={"Accept": "text/html"},
                       allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"].startswith("/login?next=")
