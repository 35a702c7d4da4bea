"""The resident-facing Web Push pages: `GET /subscribe` and the service worker `GET /sw.js`.

`/subscribe` is a small zh/en page (Tibetan place names where places.toml marks them sourced)
whose inline script registers `/sw.js`, asks the browser for a PushSubscription with the VAPID
key from `GET /api/v1/webpush/vapid-public-key`, and POSTs it to `/api/v1/subscriptions`. The
place sent is a county/district seat from places.toml, or the browser's own position rounded
to 0.01° before it leaves the device. Nothing here loads from another origin: the
Content-Security-Policy allows 'self' plus the page's inline script and style by hash.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import re
from pathlib import Path
from typing import Any

import jinja2
from aiohttp import web

from quakealert.api.keys import STORE
from quakealert.core.render import Place, default_catalog
from quakealert.errors import NotFound

routes = web.RouteTableDef()

TEMPLATES = Path(__file__).parent / "templates"
STATIC = Path(__file__).parent / "static"
LANGS = ("zh", "en", "bo")
PREFECTURE = "lhasa"  # the districts and counties offered are this prefecture's
INTENSITIES = (3, 4, 5, 6)
DEFAULT_INTENSITY = 3
ROMAN = {3: "Ⅲ", 4: "Ⅳ", 5: "Ⅴ", 6: "Ⅵ"}

# GB/T 17742-2020 popular labels and human-perception wording (messages.md §3 [S]); English
# after GeoNet's simplified intensity wording (messages.md §3 [P]).
FELT = {
    "zh": {3: "少有感：室内少数静止中的人有感觉", 4: "多有感：室内多数人、室外少数人有感觉",
           5: "惊醒：多数人睡梦中惊醒，少数人惊逃户外", 6: "惊慌：多数人站立不稳，多数人惊逃户外"},
    "en": {3: "weak: felt indoors as a light vibration", 4: "light: generally noticed indoors",
           5: "moderate: felt by almost everyone indoors, many woken",
           6: "strong: felt by all, many run outside"},
}

# Interface wording. There is no sourced Tibetan for these labels (messages.md §4,
# messages/glossary/bo.toml), so the bo page uses the zh wording and says so; only the
# place names that places.toml marks sourced appear in Tibetan.
UI: dict[str, dict[str, str]] = {
    "zh": {
        "title": "地震有感通知订阅",
        "intro": "订阅后，当估计您所在的区县有感（达到您选择的烈度）时，本浏览器会收到一条通知。"
                 "不是每次地震都会通知：远处或很小、您感觉不到的地震不会打扰您。",
        "exercise": "演练消息会标明“【演练】/ EXERCISE”，不是真实地震。",
        "official": "通知内容依据中国地震台网的测定；请以应急管理部门的指引为准。",
        "place": "您所在的区县", "place_help": "只使用区县政府驻地的位置，不需要定位权限。",
        "locate": "使用我的位置（约1公里精度）",
        "locate_help": "位置在浏览器中先四舍五入到0.01°（约1公里）再发送。",
        "my_location": "我的位置（约1公里）",
        "languages": "通知语言", "lang_zh": "中文", "lang_bo": "藏文", "lang_en": "英文",
        "threshold": "从多大的震感开始通知", "threshold_help": "烈度越低，收到的通知越多。",
        "degree": "度",
        "subscribe": "订阅通知", "unsubscribe": "取消订阅",
        "privacy": "隐私：我们只保存约1公里精度的位置、所选语言和烈度，以及浏览器推送地址；"
                   "位置不写入日志。取消订阅即删除这些信息。",
        "noscript": "订阅需要浏览器启用 JavaScript。",
        "bo_note": "",
        "subscribed": "已订阅。",
        "not_subscribed": "尚未订阅。",
        "unsupported": "此浏览器不支持网页推送通知。iPhone/iPad 需先把本页“添加到主屏幕”，再从主屏幕打开。",
        "denied": "通知权限被拒绝。请在浏览器的网站设置中允许通知后重试。",
        "working": "正在处理……",
        "failed": "订阅未成功，请稍后再试。",
        "too_many": "请求过于频繁，请稍后再试。",
        "unsubscribed": "已取消订阅。",
        "locate_failed": "无法获取位置，请从列表中选择区县。",
        "pick_language": "请至少选择一种语言。",
        "switch": "语言",
    },
    "en": {
        "title": "Felt-earthquake notifications",
        "intro": "Once subscribed, this browser gets a notification when an earthquake is "
                 "estimated to be felt in your district or county (at the level you choose). "
                 "You will not be notified of every earthquake: distant or small ones that you "
                 "would not feel do not disturb you.",
        "exercise": "Drills are marked “【演练】/ EXERCISE” and are not real earthquakes.",
        "official": "Notices are based on the China Earthquake Networks Center's determinations; "
                    "follow the instructions of the emergency management authorities.",
        "place": "Your district or county",
        "place_help": "Only the location of the district/county seat is used; no location "
                      "permission is needed.",
        "locate": "Use my location (to about 1 km)",
        "locate_help": "Your position is rounded to 0.01° (about 1 km) in the browser before "
                       "it is sent.",
        "my_location": "My location (about 1 km)",
        "languages": "Notification languages", "lang_zh": "Chinese", "lang_bo": "Tibetan",
        "lang_en": "English",
        "threshold": "Notify me from this shaking level",
        "threshold_help": "The lower the level, the more notifications you get.",
        "degree": "",
        "subscribe": "Subscribe", "unsubscribe": "Unsubscribe",
        "privacy": "Privacy: we keep only your place rounded to about 1 km, your languages and "
                   "level, and the browser's push address; the place is never logged. "
                   "Unsubscribing deletes them.",
        "noscript": "Subscribing needs JavaScript enabled in the browser.",
        "bo_note": "",
        "subscribed": "Subscribed.",
        "not_subscribed": "Not subscribed yet.",
        "unsupported": "This browser does not support web push notifications. On iPhone/iPad, "
                       "first “Add to Home Screen”, then open the page from the home screen.",
        "denied": "Notification permission was refused. Allow notifications for this site in "
                  "the browser settings and try again.",
        "working": "Working…",
        "failed": "Subscribing did not succeed; please try again later.",
        "too_many": "Too many requests; please try again later.",
        "unsubscribed": "Unsubscribed.",
        "locate_failed": "Your location is not available; pick your district or county.",
        "pick_language": "Choose at least one language.",
        "switch": "Language",
    },
}
UI["bo"] = {**UI["zh"], "bo_note": (
    "藏文界面尚待译者翻译，暂用中文；地名只在有出处时显示藏文。"
    " The Tibetan interface awaits a translator; place names are in Tibetan where sourced.")}
SWITCH_NAMES = {"zh": "中文", "en": "English", "bo": "藏文 Tibetan"}


def _lang(request: web.Request) -> str:
    lang = request.query.get("lang", "zh")
    return lang if lang in LANGS else "zh"


@functools.cache
def seats(prefecture: str = PREFECTURE) -> tuple[Place, ...]:
    """The districts then counties of ``prefecture`` in places.toml order."""
    found = [p for p in default_catalog().places.values()
             if p.parent == prefecture and p.kind in ("district", "county")]
    return tuple(sorted(found, key=lambda p: ("district", "county").index(p.kind)))


def place_label(place: Place, lang: str) -> str:
    """How a seat is named in the picker: Tibetan only where places.toml says it is sourced."""
    bo = place.bo if place.bo_status == "sourced" else ""
    if lang == "en":
        return f"{place.en} · {place.zh}"
    if lang == "bo" and bo:
        return f"{bo} · {place.zh}"
    return f"{place.zh} · {bo}" if bo else place.zh


@functools.cache
def _env() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


_INLINE = re.compile(r"<(script|style)>(.*?)</\1>", re.DOTALL)


def _sha256(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode() + "'"


def csp_for(page: str) -> str:
    """The page's Content-Security-Policy: 'self' plus its inline script and style by hash."""
    scripts = [_sha256(body) for tag, body in _INLINE.findall(page) if tag == "script"]
    styles = [_sha256(body) for tag, body in _INLINE.findall(page) if tag == "style"]
    return ("default-src 'none'; "
            f"script-src 'self' {' '.join(scripts)}; style-src 'self' {' '.join(styles)}; "
            "connect-src 'self'; worker-src 'self'; img-src 'self'; manifest-src 'self'; "
            "form-action 'self'; base-uri 'none'; frame-ancestors 'none'")


@functools.cache
def render_page(lang: str) -> tuple[str, str]:
    """(html, Content-Security-Policy) of the subscribe page in ``lang`` (static: cached)."""
    t = UI[lang]
    ui_lang = "en" if lang == "en" else "zh"
    places = [{"key": p.key, "label": place_label(p, lang), "lat": round(p.lat, 2),
               "lon": round(p.lon, 2)} for p in seats()]
    levels = [{"value": i, "label": (f"{ROMAN[i]}{t['degree']} {FELT[ui_lang][i]}" if ui_lang == "zh"
                                     else f"{ROMAN[i]} – {FELT[ui_lang][i]}")}
              for i in INTENSITIES]
    messages = {k: t[k] for k in ("subscribed", "not_subscribed", "unsupported", "denied",
                                  "working", "failed", "too_many", "unsubscribed",
                                  "locate_failed", "pick_language", "my_location")}
    html = _env().get_template("subscribe.html.j2").render(
        lang=lang, html_lang="en" if lang == "en" else "zh-Hans", t=t, places=places,
        levels=levels, default_level=DEFAULT_INTENSITY, messages=messages,
        default_langs=("zh", "bo", "en") if lang == "en" else ("zh", "bo"),
        switch=[(code, SWITCH_NAMES[code]) for code in LANGS if code != lang])
    return html, csp_for(html)


@routes.get("/subscribe")
async def subscribe_page(request: web.Request) -> web.Response:
    """The resident's Web Push subscription page (zh by default; ?lang=en|bo)."""
    html, csp = render_page(_lang(request))
    return web.Response(text=html, content_type="text/html", headers={
        "Content-Security-Policy": csp,
        "Cache-Control": "no-cache",
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "Content-Language": "en" if _lang(request) == "en" else "zh-Hans",
    })


@functools.cache
def service_worker() -> str:
    """The service worker source (static/sw.js)."""
    return (STATIC / "sw.js").read_text(encoding="utf-8")


@routes.get("/sw.js")
async def sw_js(request: web.Request) -> web.Response:
    """The Web Push service worker: shows each push as a notification, one per sequence."""
    return web.Response(text=service_worker(), content_type="text/javascript", headers={
        "Service-Worker-Allowed": "/",
        "Cache-Control": "no-cache",
        "X-Content-Type-Options": "nosniff",
    })


NOTICE_LANGS = {"zh": "zh-Hans", "bo": "bo", "en": "en"}


@routes.get("/n/{id}")
async def notice_page(request: web.Request) -> web.Response:
    """A released notice as a readable page (where a tapped notification leads); ?lang= first."""
    stored = request.app[STORE].notices.load_stored_notice(request.match_info["id"])
    if stored.state not in ("released", "expired"):
        raise NotFound(f"no notice {request.match_info['id']!r}")
    notice = stored.notice
    first = request.query.get("lang")
    order = ("zh", "bo", "en")
    ordered = sorted(notice.messages, key=lambda m: (m.lang != first, order.index(m.lang)
                                                      if m.lang in order else 9))
    messages = [{"title": m.title, "lines": [ln for ln in m.body.splitlines() if ln.strip()],
                 "html_lang": NOTICE_LANGS.get(m.lang, m.lang)} for m in ordered]
    # the drill banner in each language of the notice, each marked with its own language
    drill = [{"html_lang": NOTICE_LANGS.get(m.lang, m.lang),
              "text": default_catalog().glossary[m.lang]["s.exercise"].text}
             for m in ordered if m.lang in default_catalog().glossary] if notice.exercise else []
    released = stored.released_at or notice.created_at
    html = _env().get_template("notice.html.j2").render(
        html_lang=messages[0]["html_lang"] if messages else "zh-Hans",
        title=messages[0]["title"] if messages else notice.id, messages=messages,
        exercise=notice.exercise, drill=drill, notice_id=notice.id,
        issued=f"{released:%Y-%m-%d %H:%M} UTC")
    return web.Response(text=html, content_type="text/html", headers={
        "Content-Security-Policy": csp_for(html),
        "Cache-Control": "public, max-age=60",
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
    })


_LANG_PARAM = {"name": "lang", "in": "query", "required": False,
               "description": "Page language: zh (default), en or bo (zh wording with sourced"
                             " Tibetan place names); any other value falls back to zh",
               "schema": {"type": "string", "default": "zh"}}

OPENAPI_PATHS: dict[str, dict[str, Any]] = {
    "/n/{id}": {"get": {
        "summary": "A released notice as a readable page, every language (the push link)",
        "tags": ["public"],
        "parameters": [
            {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}},
            {"name": "lang", "in": "query", "required": False, "schema": {"type": "string"},
             "description": "Language to show first (zh, bo or en)"}],
        "responses": {
            "200": {"description": "HTML page", "content": {"text/html": {
                "schema": {"type": "string"}}}},
            "404": {"description": "No such released notice", "content": {
                "application/problem+json": {"schema": {"type": "object"}}}}}}},
    "/subscribe": {"get": {
        "summary": "Resident page: subscribe this browser to felt-quake Web Push notices",
        "tags": ["public"], "parameters": [_LANG_PARAM],
        "responses": {"200": {"description": "HTML page", "content": {"text/html": {
            "schema": {"type": "string"}}}}}}},
    "/sw.js": {"get": {
        "summary": "The Web Push service worker the subscribe page registers",
        "tags": ["public"], "parameters": [],
        "responses": {"200": {"description": "JavaScript", "content": {"text/javascript": {
            "schema": {"type": "string"}}}}}}},
}
