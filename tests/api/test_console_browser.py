"""The duty console in Debian's Chromium, driven by Playwright the way an officer uses it: log in
with a duty token, approve, edit, reject with a reason — each checked through the API after —
and screenshots of the front page and a sequence page at desktop and phone widths.

The store is the bundled CENC list replayed with swarm advisories held for approval
(console_replay.py). Screenshots go to test-output/console/ (ignored by git) for people to look at.
"""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest
from console_replay import DAY_ONE, DAY_TWO, Replay

from quakealert.api.app import make_app
from quakealert.store.auth import create_token

CHROMIUM = Path("/usr/bin/chromium")
# No network beyond 127.0.0.1: nothing that phones home, a fresh profile per test.
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run",
         "--disable-dev-shm-usage", "--disable-default-apps"]
OUTPUT = Path(__file__).resolve().parents[2] / "test-output" / "console"
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
TIMEOUT_MS = 20_000

async_playwright = pytest.importorskip("playwright.async_api").async_playwright
pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} is not installed"
                       " (apt-get install chromium); CI installs it"),
]


@pytest.fixture
async def console(tmp_path, aiohttp_server):
    """The replay after day one, served on 127.0.0.1, with duty and read tokens."""
    replay = Replay(tmp_path / "replay.sqlite")
    await replay.run_to(DAY_ONE)
    conn = replay.store.conn
    now = datetime.now(UTC)
    tokens = {role: create_token(conn, role, name, now=now)[1]
              for role, name in (("duty", "Dawa (duty)"), ("read", "Pema (read)"))}
    app = make_app(replay.settings, store=replay.store, runtime=replay.runtime())
    server = await aiohttp_server(app, host="127.0.0.1")
    yield replay, server, tokens
    await server.close()
    replay.close()


@pytest.fixture
async def browser(tmp_path):
    async with async_playwright() as p:
        context = await p.chromium.launch_persistent_context(
            str(tmp_path / "profile"), executable_path=str(CHROMIUM), headless=True,
            args=FLAGS, viewport=DESKTOP, locale="zh-CN", timezone_id="Asia/Shanghai")
        context.set_default_timeout(TIMEOUT_MS)
        statuses: list[tuple[int, str]] = []
        context.on("response", lambda r: statuses.append((r.status, r.url)))
        yield context, statuses
        await context.close()


async def api(server, token: str, path: str) -> dict:
    """GET a JSON resource as an API client would (bearer token, no browser)."""
    from aiohttp import ClientSession

    async with ClientSession() as s, s.get(server.make_url(path),
                                           headers={"Authorization": f"Bearer {token}"}) as r:
        assert r.status == 200, await r.text()
        return await r.json()


async def notice_states(server, token: str, ids: list[str]) -> dict[str, dict]:
    return {nid: (await api(server, token, f"/api/v1/notices/{nid}"))["notice"] for nid in ids}


async def log_in(page, server, token: str, path: str = "/dashboard") -> None:
    """Open a console page, get sent to the login form, paste the token, land back."""
    await page.goto(str(server.make_url(path)))
    assert "/login" in page.url
    await page.fill("input[name=token]", token)
    await page.click("button[type=submit]")
    await page.wait_for_url(f"**{path}*")


def shot(name: str, png: bytes, tmp_path: Path) -> Path:
    """Keep a screenshot in the test's tmp dir and in test-output/console/ for people."""
    (tmp_path / name).write_bytes(png)
    OUTPUT.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(tmp_path / name, OUTPUT / name)
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    return OUTPUT / name


async def test_duty_officer_approves_edits_and_rejects_by_clicking(console, browser):
    """Log in with a duty token; the front page shows the exercise banner and the held swarm
    summary; one click approves all its area variants (the API shows them released). Next day's
    summary is edited on the sequence page and rejected with a reason from the front page (the
    API shows the new text and then the rejection). No request is refused with 403."""
    replay, server, tokens = console
    context, statuses = browser
    page = context.pages[0] if context.pages else await context.new_page()
    await log_in(page, server, tokens["duty"])

    banner = await page.inner_text("#mode-banner")
    assert "演练" in banner and "回放" in banner
    day_one = replay.pending()
    # Held notices time out on the wall clock, as in the daemon, so more than one day's message
    # may wait: the console shows one card per message, however many area variants it has.
    messages: dict[tuple[str, str], list[str]] = {}
    for nid, n in (await notice_states(server, tokens["read"], day_one)).items():
        messages.setdefault((n["kind"], n["created_at"]), []).append(nid)
    assert max(len(v) for v in messages.values()) >= 2, "the swarm summary has area variants"
    cards = page.locator("#approvals article.approval")
    assert await cards.count() == len(messages)
    for _ in messages:  # one click per message approves all its area variants
        card = page.locator("#approvals article.approval").first
        assert "震群提示" in await card.inner_text()
        assert "剩余" in await card.locator("[data-deadline]").inner_text()
        async with page.expect_navigation():
            await card.locator("button.approve").click()
        assert "个区域版本" in await page.inner_text("[role=status]")
    assert "done=" not in page.url  # a reload would not say it again
    for nid, n in (await notice_states(server, tokens["read"], day_one)).items():
        assert n["state"] == "released", (nid, n["state"])
        assert n["state_reason"].startswith("approved by Dawa (duty)")
    assert await page.locator("#approvals article.approval").count() == 0

    # day two: the next daily summary waits; edit its Chinese text on the sequence page
    await replay.run_to(DAY_TWO)
    day_two = replay.pending()
    assert day_two and not set(day_two) & set(day_one)
    seq_id = (await api(server, tokens["read"], f"/api/v1/notices/{day_two[0]}"))["notice"][
        "sequence_id"]
    await page.goto(str(server.make_url(f"/dashboard/sequences/{seq_id}")))
    variant = day_two[0]
    edit = page.locator(f"form[action='/api/v1/notices/{variant}/edit']")
    message = page.locator("details.message", has=edit)
    await message.locator("summary").first.click()
    await edit.locator("xpath=..").locator("summary").click()
    new_body = "震群活动仍在持续。请远离危险建筑，注意防范次生灾害。（值班员已核对）"
    await edit.locator("textarea[name=body_zh]").fill(new_body)
    async with page.expect_navigation():
        await edit.locator("button[type=submit]").click()
    assert f"/dashboard/sequences/{seq_id}" in page.url
    edited = (await notice_states(server, tokens["read"], [variant]))[variant]
    assert edited["state"] == "pending_approval"
    assert edited["messages"]["zh"]["body"] == new_body
    assert edited["edits"][-1]["actor"] == "Dawa (duty)"

    # reject it from the front page, with a reason
    await page.goto(str(server.make_url("/dashboard")))
    card = page.locator("#approvals article.approval").first
    await card.locator("input[name=reason]").fill("与当地政府通报口径不一致，暂不发布")
    async with page.expect_navigation():
        await card.locator("button.reject").click()
    assert "已驳回" in await page.inner_text("[role=status]")
    for nid, n in (await notice_states(server, tokens["read"], day_two)).items():
        assert n["state"] == "rejected", (nid, n["state"])
        assert n["state_reason"].endswith("与当地政府通报口径不一致，暂不发布")
    assert not [s for s in statuses if s[0] == 403], statuses
    assert not [s for s in statuses if s[0] >= 500], statuses


async def test_cross_site_form_post_is_refused(console, browser, aiohttp_server):
    """A page on another site that posts an approve form to the console, in the logged-in
    officer's browser, releases nothing."""
    from aiohttp import web

    replay, server, tokens = console
    context, _ = browser
    page = context.pages[0] if context.pages else await context.new_page()
    await log_in(page, server, tokens["duty"])
    target = replay.pending()[0]
    action = server.make_url(f"/dashboard/notices/{target}/approve")
    evil = web.Application()

    async def lure(request: web.Request) -> web.Response:
        return web.Response(content_type="text/html", text=(
            f'<form id=f method=post action="{action}"><input name=note value=x></form>'
            "<script>document.getElementById('f').submit()</script>"))

    evil.router.add_get("/", lure)
    other = await aiohttp_server(evil, host="127.0.0.1")
    # "localhost" and "127.0.0.1" are different sites to the browser
    async with page.expect_response(lambda r: r.request.method == "POST") as posted:
        await page.goto(f"http://localhost:{other.port}/")
    assert (await posted.value).status in (401, 403)
    states = await notice_states(server, tokens["read"], replay.pending())
    assert target in states and states[target]["state"] == "pending_approval"


@pytest.mark.parametrize("lang", ["zh", "en"])
async def test_screenshots_fit_desktop_and_phone(console, browser, tmp_path, lang):
    """Front page and sequence page at 1280 px and 390 px: nothing scrolls sideways, the
    sequence page's essentials fit in about three desktop screens, the zh page shows no raw
    codes or English status words. The PNGs are kept in test-output/console/."""
    replay, server, tokens = console
    context, statuses = browser
    page = context.pages[0] if context.pages else await context.new_page()
    for label, size in (("1280", DESKTOP), ("390", PHONE)):  # the login page, as the officer
        await page.set_viewport_size(size)                     # first sees the console
        await page.goto(str(server.make_url(f"/login?lang={lang}")))
        shot(f"login-{lang}-{label}.png", await page.screenshot(full_page=True), tmp_path)
        assert ("值班人员登录" if lang == "zh" else "Duty staff login") in await page.inner_text(
            "main")
    await page.set_viewport_size(DESKTOP)
    await log_in(page, server, tokens["duty"], f"/dashboard?lang={lang}")
    seq_id = (await api(server, tokens["read"], f"/api/v1/notices/{replay.pending()[0]}"))[
        "notice"]["sequence_id"]
    pages = {"front": f"/dashboard?lang={lang}",
             "sequence": f"/dashboard/sequences/{seq_id}?lang={lang}"}
    heights = {}
    for name, path in pages.items():
        for label, size in (("1280", DESKTOP), ("390", PHONE)):
            await page.set_viewport_size(size)
            await page.goto(str(server.make_url(path)))
            await page.evaluate("document.fonts.ready")
            await page.wait_for_load_state("networkidle")
            png = await page.screenshot(full_page=True)
            shot(f"{name}-{lang}-{label}.png", png, tmp_path)
            scroll_w, client_w = await page.evaluate(
                "[document.documentElement.scrollWidth, document.documentElement.clientWidth]")
            assert scroll_w <= client_w, f"{name} {lang} at {label} px scrolls sideways:" \
                                         f" {scroll_w} > {client_w}"
            heights[(name, label)] = await page.evaluate("document.documentElement.scrollHeight")
            text = await page.inner_text("body")
            if lang == "zh":
                for raw in ("swarm_advisory", "felt_guidance", "official_report", "first_felt",
                            "pending_approval", "chengguan", "waits for a duty officer",
                            "released", "Swarm"):
                    assert raw not in text, f"{raw!r} on the zh {name} page"
            else:
                assert "震群提示" not in text and "待批准" not in text
    # about three screens: 2.6-2.8k px before the short push texts joined each notice, 2.9k after
    assert heights[("sequence", "1280")] <= 3 * DESKTOP["height"] + 600, heights
    assert not [s for s in statuses if s[0] >= 500], statuses


async def test_front_page_refreshes_without_losing_the_officers_place(console, browser):
    """A decision made elsewhere reaches the open front page on its next refresh; a card the
    officer is typing a reason into stays as it is, text and scroll position included."""
    from aiohttp import ClientSession

    replay, server, tokens = console
    context, _ = browser
    page = context.pages[0] if context.pages else await context.new_page()
    await page.set_viewport_size({"width": 1280, "height": 500})
    await log_in(page, server, tokens["duty"])
    assert await page.locator("#approvals article.approval").count() >= 1
    card = page.locator("#approvals article.approval").first  # held messages time out on the wall clock
    await card.locator("input[name=reason]").fill("正在核对")
    await page.evaluate("window.scrollTo(0, 200)")
    released_advisories = page.locator("#recent tbody tr").filter(has_text="震群提示").filter(
        has_text="已发布")
    assert await released_advisories.count() == 0
    # another officer approves every variant through the API
    async with ClientSession() as s:
        for nid in replay.pending():
            resp = await s.post(server.make_url(f"/api/v1/notices/{nid}/approve"), json={},
                                headers={"Authorization": f"Bearer {tokens['duty']}"})
            assert resp.status == 200
    assert replay.pending() == []
    await page.evaluate("window.quakealertRefresh()")
    # the officer's half-typed reason and place are kept; the rest of the page moved on
    assert await card.locator("input[name=reason]").input_value() == "正在核对"
    assert await page.evaluate("window.scrollY") == 200
    assert await page.locator("#recent tbody tr").filter(has_text="震群提示").filter(
        has_text="已发布").count() >= 1
    # once the field is empty again, the next refresh shows the approval queue as it is
    await card.locator("input[name=reason]").fill("")
    await page.locator("h1").click()  # focus leaves the card
    await page.evaluate("window.quakealertRefresh()")
    assert await page.locator("#approvals article.approval").count() == 0
    assert "目前没有等待批准的通知" in await page.inner_text("#approvals")
