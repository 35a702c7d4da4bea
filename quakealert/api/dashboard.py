"""The duty-staff dashboard: server-rendered zh/en pages of sequences, notices and plots.

Pages are Jinja2 with autoescape on (place names, reasons and agency text come from feeds) and
no JavaScript. Plots are SVG from the pure builders in ``quakealert.api.plots``, rendered off the
event loop. Authentication is the auth middleware's job (policy: /dashboard* needs "read").
"""

from __future__ import annotations

import asyncio
import functools
import logging
import re
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import jinja2
from aiohttp import web

from quakealert.api import plots
from quakealert.api.auth import PRINCIPAL
from quakealert.api.keys import RUNTIME, SETTINGS, STORE
from quakealert.api.notices import approval_timeouts
from quakealert.core import intensity
from quakealert.core.classify import TYPE_ZH
from quakealert.core.durations import say_duration
from quakealert.core.geo import distance_km
from quakealert.core.render import Place, default_catalog, review_entries
from quakealert.errors import InvalidRequest, NotFound
from quakealert.model import event_type_zh
from quakealert.store import approvals as ap
from quakealert.store.auth import role_rank
from quakealert.store.base import Store

log = logging.getLogger(__name__)

routes = web.RouteTableDef()

TEMPLATES = Path(__file__).parent / "templates"
CONSOLE_JS = Path(__file__).parent / "static" / "console.js"
LANGS = ("zh", "en")
BEIJING = timezone(timedelta(hours=8))
PLACE_MAX_KM = 300.0  # beyond this the nearest seat says nothing useful about where it was
MAP_KINDS = ("county", "district", "prefecture")
MEMBERS_SHOWN = 30
PLOT_NAMES = ("magnitude-time", "cumulative", "magnitude-frequency", "map")
SEQUENCES_SHOWN = 12  # the front page's list; older ones through the API
NOT_EARTHQUAKES_SHOWN = 10  # explosions, quarry blasts... not sent (issue 11); more through the API
FORECAST_MAX_AGE_S = 12 * 3600.0  # an older forecast is hidden: the sequence has moved on
MAX_PENDING = 500
RECENT_NOTICES = 200  # notices read to find the newest decided messages
RECENT_MESSAGES = 8
REFRESH_S = 30  # the front page re-reads itself this often (static/console.js)
# The official Chinese agency first (DESIGN.md: CENC is the preferred origin in China)
SOURCE_ORDER = {"cenc": 0, "usgs": 1, "emsc": 2}
SOURCE_NAMES = {"cenc": ("中国地震台网（CENC）", "China Earthquake Networks Center (CENC)"),
                "usgs": ("美国地质调查局（USGS）", "USGS"),
                "emsc": ("欧洲—地中海地震中心（EMSC）", "EMSC"),
                "replay": ("回放目录", "replayed catalogue")}
# An agency's page for one event, for ids of the form the agency itself issues.
SOURCE_URLS = {
    "cenc": (r"CC\d{14}", "https://news.ceic.ac.cn/{id}.html"),
    "usgs": (r"[a-z]{2}[a-z0-9]{6,14}", "https://earthquake.usgs.gov/earthquakes/eventpage/{id}"),
    "emsc": (r"\d{8}_\d{7}", "https://www.seismicportal.eu/eventdetails.html?unid={id}"),
}
REPORT_STATUS = {"automatic": ("自动测定", "automatic"), "reviewed": ("正式测定", "reviewed"),
                 "deleted": ("已删除", "deleted")}
# GB/T 17742 popular labels (reference: messages.md §3); en: GeoNet's MMI wording
INTENSITY_LABELS = (("无感", "not felt"), ("微有感", "barely felt"), ("少有感", "weak"),
                    ("多有感", "light"), ("惊醒", "moderate"), ("惊慌", "strong"),
                    ("房屋损坏", "severe"), ("建筑物破坏", "extreme"), ("房屋倒塌", "extreme"),
                    ("毁灭", "extreme"), ("毁灭", "extreme"), ("毁灭", "extreme"))
FLASH = {
    "approved": ("已批准发布：{n} 个区域版本。", "Approved and released: {n} area variants."),
    "rejected": ("已驳回：{n} 个区域版本，不会发送。", "Rejected: {n} area variants; they will not be sent."),
    "not_pending": ("未执行：该通知已不在待批准状态（当前：{state}）。",
                    "Nothing done: the notice is no longer pending (now: {state})."),
    "reason_missing": ("未执行：驳回须填写理由。", "Nothing done: rejecting needs a reason."),
}
PLOT_FAILED = {"zh": "此图暂时无法绘制（详见服务日志）", "en": "This plot could not be drawn (see the service log)"}

TYPE_EN = {
    "undetermined": "Undetermined",
    "swarm": "Swarm",
    "mainshock-aftershock": "Mainshock–aftershock",
    "foreshock-mainshock-aftershock": "Foreshock–mainshock–aftershock",
    "isolated": "Isolated",
    "doublet": "Doublet",
}

UI: dict[str, dict[str, str]] = {
    "zh": {
        "title": "地震序列值班台", "sequences": "近期地震序列", "type": "序列类型",
        "status": "状态", "final": "最终判定", "provisional": "初步判定",
        "largest": "最大地震", "place": "参考地点", "n_events": "地震次数",
        "first": "首次地震", "last": "最近地震", "context": "周边背景", "none": "无",
        "no_sequences": "暂无地震序列。", "back": "返回序列列表", "bj": "北京时间",
        "not_eq_title": "未发送：非天然地震事件", "event_type": "事件类型",
        "not_eq_note": "爆破、塌陷等事件不通知居民；此前已通知的，已向收到通知的居民发送撤销信息。",
        "cancelled_for": "已撤销（{n}人）",
        "map": "震中分布图", "map_caption": (
            "经纬度示意图：震中按震级大小绘制，虚线为200公里范围，绿色方块为县/区政府驻地。"
            "图中不含任何行政边界或海岸线：在中国公开使用的地图须采用经审核批准的标准地图（审图号），"
            "本系统不附带边界数据。"),
        "magnitude_time": "震级—时间图", "cumulative": "累计次数—时间图",
        "magnitude_frequency": "震级—频度关系（含b值拟合）", "history": "类型判定历史",
        "reasons": "判定依据", "changed_at": "判定时间", "stats": "统计参数",
        "b_value": "b值", "mc": "最小完整性震级 Mc", "omori": "大森—宇津公式",
        "not_enough": "数据不足", "forecast": "余震趋势估计",
        "forecast_label": "仅供值班人员参考，不得对外发布",
        "magnitude": "震级", "duration": "时长（天）", "probability": "概率",
        "expected": "预计次数（范围）", "notices": "通知", "no_notices": "本序列尚未生成通知。",
        "notice": "通知", "kind": "类别", "state": "状态", "created": "生成时间",
        "state_reason": "状态说明", "deliveries": "投递统计", "channel": "渠道",
        "no_deliveries": "尚无投递记录。", "approve": "批准发布", "reject": "驳回",
        "reject_reason": "驳回理由", "approve_note": "备注（可选）", "decisions": "发送决定及理由", "sent": "发送",
        "not_sent": "不发送", "decision": "决定", "reason": "理由", "area": "区县",
        "residents": "居民数", "event": "地震", "at": "时间", "summary": "决定汇总",
        "no_decisions": "尚无发送决定记录。", "members": "序列成员",
        "members_note": "按震级列出最大的{n}次", "depth": "深度（千米）",
        "role": "角色", "epicentre": "震中", "lang_switch": "English", "id": "编号",
        "bo_unverified": "藏文名待母语者核对", "message": "通知内容",
        "approval_note": "批准或驳回需要值班（duty）权限。",
        "login_title": "值班人员登录", "login_token": "值班令牌",
        "login_help": "请粘贴管理员发放的令牌。登录状态保持一个班次（12小时），下班请退出。",
        "login_submit": "登录",
        "colon": "：", "front_title": "值班台首页", "logout": "退出登录",
        "km_from_seat": "距县城{km}千米", "depth_short": "深度{km}千米",
        "lang_zh": "中文", "lang_bo": "藏文", "lang_en": "英文", "exercise_tag": "演练",
        "deadline": "批准时限", "left_tpl": "剩余{t}", "due_text": "已到期，即将自动发布",
        "made_at": "生成于", "recipients_n": "共{n}名居民（{v}个区域版本）",
        "message_text": "通知内容", "variant_for": "发往：",
        "approve_all": "批准发布（全部{v}个区域版本）",
        "refresh_failed": "页面自动刷新失败，显示的可能不是最新情况。",
        "pending_title": "待批准通知", "no_pending": "目前没有等待批准的通知。",
        "felt_title": "最新有感地震", "from_lhasa": "距拉萨约{km}千米",
        "open_sequence": "查看该地震序列", "agency": "测定机构", "preferred": "采用",
        "origin_time": "发震时刻（北京时间）", "report_status": "测定类型",
        "by_district": "各区县情况", "est_intensity": "预估烈度", "notified": "应通知",
        "delivered": "已送达", "failed": "失败", "not_notified": "未通知", "waiting": "待发送",
        "no_felt": "暂无预估有感的地震。", "recent_title": "最近发出的通知",
        "no_notices_yet": "尚无通知。", "sources_title": "数据源状态", "source": "数据源",
        "last_ok": "最近一次成功", "failures": "连续失败次数", "source_ok": "正常",
        "source_failing": "故障", "source_unknown": "尚未取数", "never": "从未",
        "no_sources": "未配置数据源。", "comma": "，",
        "quakes_title": "地震与通知", "quakes_note": "{n}次地震，{k}条通知",
        "largest_tag": "序列最大地震", "edit_text": "修改文本", "edit_title": "标题",
        "edit_body": "正文", "edit_save": "保存修改（仍待批准）", "sent_n": "已通知{n}人",
        "not_sent_n": "未通知{n}人", "plots_title": "图件", "earlier_types": "此前{n}次判定", "reasons_n": "判定依据{n}条",
        "days_unit": "天", "forecast_as_of": "计算时刻", "forecast_table": "概率与预计次数表", "ago_tpl": "{t}前",
        "within_days": "{d}天内：概率 · 预计次数（范围）",
        "forecast_cells": "概率为发生至少一次的概率；预计次数为中位数及范围。",
        "forecast_stale": "趋势估计已过时（计算于{at}），不再显示，待下次计算。",
        "review_title": "藏文待审条目", "review_link": "藏文待审（{n}条）",
        "review_intro": "共{total}条藏文条目，其中{n}条为本系统根据已有出处的词语和句式组合而成"
                        "（组合），须经藏语母语译者审核；{sourced}条直接引自官方藏文（有出处）。",
        "review_setting_send": "当前设置：组合藏文照常发送给居民（[messages] bo_composed = \"send\"）。",
        "review_setting_hold": "当前设置：组合藏文暂不发送给居民，藏文通知只含有出处的句子和一行指向全文的链接"
                               "（[messages] bo_composed = \"hold\"）。",
        "review_how": "审核方法：导出 quakealert messages export --lang bo -o bo.po，译者在 Poedit 或"
                      " Weblate 中修改并确认后，用 quakealert messages import bo.po --reviewer 姓名"
                      " 导入；确认的条目即改为“有出处”。",
        "review_key": "条目", "review_zh": "中文", "review_bo": "藏文", "review_en": "英文",
        "review_status": "出处", "review_terms": "所用词语及出处",
        "review_composed": "组合（待审）", "review_none": "所有藏文条目均有出处，无待审条目。",
    },
    "en": {
        "title": "Earthquake sequence duty desk", "sequences": "Recent earthquake sequences",
        "type": "Sequence type", "status": "Status", "final": "final", "provisional": "provisional",
        "largest": "Largest event", "place": "Nearest seat", "n_events": "Events",
        "first": "First event", "last": "Latest event", "context": "Regional context",
        "none": "none", "no_sequences": "No sequences yet.", "back": "Back to the sequence list",
        "bj": "Beijing time",
        "not_eq_title": "Not sent: not earthquakes", "event_type": "Event type",
        "not_eq_note": ("Explosions, quarry blasts and collapses are not notified; residents "
                        "already told about one got a Cancel."),
        "cancelled_for": "cancelled ({n} residents)",
        "map": "Epicentre map", "map_caption": (
            "Plain latitude/longitude frame: epicentres sized by magnitude, the dashed line is the "
            "200 km radius, green squares are county/district seats. No boundaries or coastlines "
            "are drawn: maps published in China must use an approved standard map (审图号), so "
            "none is bundled."),
        "magnitude_time": "Magnitude–time", "cumulative": "Cumulative number of events",
        "magnitude_frequency": "Magnitude–frequency with the b-value fit",
        "history": "Type history", "reasons": "Reasons", "changed_at": "Classified at",
        "stats": "Statistics", "b_value": "b-value", "mc": "Completeness magnitude Mc",
        "omori": "Omori–Utsu", "not_enough": "not enough data",
        "forecast": "Aftershock forecast", "forecast_label": "For duty staff, not for public release",
        "magnitude": "Magnitude", "duration": "Duration (days)", "probability": "Probability",
        "expected": "Expected number (range)", "notices": "Notices",
        "no_notices": "No notices for this sequence yet.", "notice": "Notice", "kind": "Kind",
        "state": "State", "created": "Created", "state_reason": "State note",
        "deliveries": "Deliveries", "channel": "Channel", "no_deliveries": "No deliveries yet.",
        "approve": "Approve and release", "reject": "Reject", "reject_reason": "Reason for rejecting",
        "approve_note": "Note (optional)",
        "decisions": "Send decisions and reasons", "sent": "sent", "not_sent": "not sent",
        "decision": "Decision", "reason": "Reason", "area": "County/district",
        "residents": "Residents", "event": "Event", "at": "Time", "summary": "Summary",
        "no_decisions": "No decisions recorded yet.", "members": "Members",
        "members_note": "the {n} largest by magnitude", "depth": "Depth (km)", "role": "Role",
        "epicentre": "Epicentre",
        "lang_switch": "中文", "id": "ID", "bo_unverified": "Tibetan name awaiting a native reader",
        "message": "Message", "approval_note": "Approving or rejecting needs the duty role.",
        "login_title": "Duty staff login", "login_token": "Duty token",
        "login_help": "Paste the token your administrator gave you. The login lasts one shift"
                      " (12 h); log out when you hand over.",
        "login_submit": "Log in",
        "colon": ": ", "front_title": "Duty desk", "logout": "Log out",
        "km_from_seat": "{km} km from the seat", "depth_short": "{km} km deep",
        "lang_zh": "Chinese", "lang_bo": "Tibetan", "lang_en": "English",
        "exercise_tag": "EXERCISE", "deadline": "Decide by",
        "left_tpl": "{t} left", "due_text": "due: about to be auto-released",
        "made_at": "made", "recipients_n": "{n} residents ({v} area variants)",
        "message_text": "Message", "variant_for": "For:",
        "approve_all": "Approve and release (all {v} area variants)",
        "refresh_failed": "Automatic refresh failed; this may not be the latest picture.",
        "pending_title": "Waiting for approval", "no_pending": "Nothing waits for approval.",
        "felt_title": "Newest felt earthquake", "from_lhasa": "about {km} km from Lhasa",
        "open_sequence": "open its sequence", "agency": "Agency", "preferred": "used",
        "origin_time": "Origin time (UTC)", "report_status": "Solution",
        "by_district": "By county/district", "est_intensity": "Est. intensity",
        "notified": "To notify", "delivered": "Delivered", "failed": "Failed",
        "not_notified": "Not notified", "waiting": "waiting",
        "no_felt": "No earthquake predicted to be felt yet.",
        "recent_title": "Latest notices", "no_notices_yet": "No notices yet.",
        "sources_title": "Catalogue sources", "source": "Source", "last_ok": "Last success",
        "failures": "Failures in a row", "source_ok": "working", "source_failing": "failing",
        "source_unknown": "not polled yet", "never": "never",
        "no_sources": "No sources configured.", "comma": ", ",
        "quakes_title": "Quakes and notices", "quakes_note": "{n} quakes, {k} messages",
        "largest_tag": "largest of the sequence", "edit_text": "Edit the text",
        "edit_title": "title", "edit_body": "body",
        "edit_save": "Save (still waits for approval)", "sent_n": "{n} notified",
        "not_sent_n": "{n} not notified", "plots_title": "Plots",
        "earlier_types": "{n} earlier classifications", "days_unit": "d",
        "reasons_n": "{n} reasons",
        "forecast_as_of": "Computed for", "ago_tpl": "{t} ago",
        "forecast_table": "Probabilities and expected numbers",
        "within_days": "within {d} d: probability · expected number (range)",
        "forecast_cells": "Probability of at least one; expected number as median and range.",
        "forecast_stale": "The forecast is out of date (computed for {at}) and hidden until the"
                          " next one.",
        "review_title": "Tibetan awaiting review", "review_link": "Tibetan review ({n})",
        "review_intro": "{total} Tibetan entries: {n} composed by us from attested terms and"
                        " sentence frames, awaiting a native translator; {sourced} quoted from"
                        " official Tibetan text (sourced).",
        "review_setting_send": "Current setting: composed Tibetan is sent to residents"
                               " ([messages] bo_composed = \"send\").",
        "review_setting_hold": "Current setting: composed Tibetan is held back; Tibetan notices"
                               " carry only sourced sentences and a line pointing to the full text"
                               " ([messages] bo_composed = \"hold\").",
        "review_how": "How to review: quakealert messages export --lang bo -o bo.po; the translator"
                      " corrects and confirms in Poedit or Weblate; quakealert messages import"
                      " bo.po --reviewer NAME makes confirmed entries sourced.",
        "review_key": "Key", "review_zh": "Chinese", "review_bo": "Tibetan", "review_en": "English",
        "review_status": "Provenance", "review_terms": "Attested terms used",
        "review_composed": "composed (awaiting review)",
        "review_none": "Every Tibetan entry is sourced; nothing awaits review.",
    },
}

LOGIN_MESSAGES = {
    "invalid_token": ("令牌无效（未知或已撤销），请重新输入。",
                      "That token is not valid (unknown or revoked)."),
}

STATE_NAMES = {
    "pending_approval": ("待批准", "pending approval"),
    "withdrawn": ("已撤回", "withdrawn"),
    "released": ("已发布", "released"),
    "rejected": ("已驳回", "rejected"),
    "expired": ("已过期", "expired"),
}
DELIVERY_STATES = ("sent", "pending", "in_flight", "failed", "gone")
DELIVERY_NAMES = {
    "sent": ("已送达", "sent"), "pending": ("待发送", "pending"),
    "in_flight": ("发送中", "in flight"), "failed": ("失败", "failed"),
    "gone": ("订阅已失效", "subscription gone"),
}
KIND_NAMES = {
    "quick_report": ("自动速报", "quick report"),
    "official_report": ("正式速报", "official report"),
    "felt_guidance": ("有感提示", "felt guidance"),
    "swarm_advisory": ("震群提示", "swarm advisory"),
    "strong_guidance": ("强震避险指引", "strong-quake guidance"),
    "update": ("更新", "update"),
    "cancel": ("撤销", "cancel"),
    "test": ("测试", "test"),
}
ROLE_NAMES = {
    "mainshock": ("最大地震", "largest"), "foreshock": ("前震", "foreshock"),
    "before": ("之前", "before"), "after": ("之后", "after"),
}


def _lang(request: web.Request) -> str:
    lang = request.query.get("lang", "zh")
    return lang if lang in LANGS else "zh"


def lang_of_path(path: str) -> str | None:
    """The ``lang`` a local dashboard path asks for (zh or en), else None."""
    for part in path.partition("?")[2].split("&"):
        if part in ("lang=zh", "lang=en"):
            return part[5:]
    return None


def _parse(iso: str | None) -> datetime | None:
    if not iso:
        return None
    return datetime.fromisoformat(iso).astimezone(UTC)


def fmt_bj(iso: str | None) -> str:
    """An ISO instant as Beijing time, ``2024-11-07 04:19:00``."""
    at = _parse(iso)
    return "" if at is None else at.astimezone(BEIJING).strftime("%Y-%m-%d %H:%M:%S")


def fmt_utc(iso: str | None) -> str:
    """An ISO instant as UTC, ``2024-11-06 20:19:00 UTC``."""
    at = _parse(iso)
    return "" if at is None else at.strftime("%Y-%m-%d %H:%M:%S UTC")


def fmt_latlon(lat: float, lon: float, digits: int = 2) -> str:
    """``29.85°N 92.25°E`` / ``35.77°N 117.60°W``."""
    return (f"{abs(lat):.{digits}f}°{'N' if lat >= 0 else 'S'} "
            f"{abs(lon):.{digits}f}°{'E' if lon >= 0 else 'W'}")


def _named(table: dict[str, tuple[str, str]], code: str | None, lang: str) -> str:
    if code is None:
        return ""
    names = table.get(code)
    return code if names is None else names[0 if lang == "zh" else 1]


@functools.cache
def _env() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["bj"] = fmt_bj
    env.filters["utc"] = fmt_utc
    env.globals["latlon"] = fmt_latlon
    env.filters["q"] = lambda s: quote(str(s), safe="")
    return env


@functools.cache
def _places() -> tuple[Place, ...]:
    """Seats to map, prefectures first (they keep their label where seats crowd together)."""
    found = [p for p in default_catalog().places.values() if p.kind in MAP_KINDS]
    return tuple(sorted(found, key=lambda p: MAP_KINDS[::-1].index(p.kind)))


def nearest_seat(lat: float | None, lon: float | None) -> dict[str, Any] | None:
    """The nearest county/district seat within PLACE_MAX_KM with its zh/bo/en names, or None."""
    if lat is None or lon is None:
        return None
    seats = [p for p in _places() if p.kind in ("county", "district")]
    if not seats:
        return None
    best = min(seats, key=lambda p: distance_km(lat, lon, p.lat, p.lon))
    km = distance_km(lat, lon, best.lat, best.lon)
    if km > PLACE_MAX_KM:
        return None
    return {"zh": best.zh, "bo": best.bo, "en": best.en, "km": round(km),
            "bo_verified": best.bo_status == "sourced"}


def _type_names(code: str) -> dict[str, str]:
    return {"code": code, "zh": TYPE_ZH.get(code, code), "en": TYPE_EN.get(code, code)}


def forecast_table(forecast: dict[str, Any] | None) -> dict[str, Any]:
    """Forecast rows pivoted to one row per magnitude and one column per duration."""
    rows = (forecast or {}).get("rows") or []
    durations = sorted({r["duration_d"] for r in rows})
    out = []
    for mag in sorted({r["magnitude"] for r in rows}):
        cells = {r["duration_d"]: r for r in rows if r["magnitude"] == mag}
        out.append({"magnitude": mag, "cells": [cells.get(d) for d in durations]})
    return {"durations": durations, "rows": out}


def render_page(template: str, lang: str, **ctx: Any) -> str:
    """A console template rendered to HTML in ``lang`` (pages, and the drill report)."""
    return _env().get_template(template).render(lang=lang, t=UI[lang], **ctx)


def _render(template: str, lang: str, **ctx: Any) -> web.Response:
    text = render_page(template, lang, **ctx)
    return web.Response(text=text, content_type="text/html", headers={
        # forecasts and approval state are private and change: never from a cache
        "Cache-Control": "no-store",
        "Content-Security-Policy": ("default-src 'none'; img-src 'self'; style-src 'unsafe-inline';"
                                    " script-src 'self'; connect-src 'self'; form-action 'self';"
                                    " base-uri 'none'; frame-ancestors 'none'"),
        "X-Content-Type-Options": "nosniff",
        # same-origin, not no-referrer: with no-referrer Chromium posts our own forms with
        # "Origin: null", which the same-origin check must refuse (docs/dashboard.md)
        "Referrer-Policy": "same-origin",
    })


def render_login(next_path: str, *, message: str = "", status: int = 200,
                 lang: str | None = None) -> web.Response:
    """The login page in ``lang`` (else the language of ``next_path``, else zh)."""
    if lang not in LANGS:
        lang = lang_of_path(next_path) or "zh"
    text = LOGIN_MESSAGES[message][LANGS.index(lang)] if message else ""
    resp = _render("login.html.j2", lang, next_path=next_path, message=text)
    resp.set_status(status)
    return resp


def _now(request: web.Request) -> tuple[datetime, datetime]:
    """(wall clock, the pipeline's present): a replay's scenario time when replaying."""
    wall = datetime.now(UTC)
    runtime = request.app.get(RUNTIME)
    pipeline_now = getattr(runtime, "pipeline_now", None)
    return wall, (pipeline_now(wall) if callable(pipeline_now) else wall)


def mode_banner(request: web.Request, lang: str) -> str | None:
    """The EXERCISE / REPLAY line when the daemon replays a catalogue or drills, else None."""
    runtime = request.app.get(RUNTIME)
    label = getattr(runtime, "replay_label", None)
    exercise = request.app[STORE].views.any_exercise()
    if not label and not exercise:
        return None
    if lang == "zh":
        return ("演练 · 回放模式：以下为历史地震目录的回放，并非实时地震；所发通知均标明“演练”。"
                if label else "演练：本库中的通知为演练通知，并非真实地震。")
    return ("EXERCISE · REPLAY: recorded catalogue events played back, not live data; every"
            " notice is marked EXERCISE." if label
            else "EXERCISE: the notices in this store are drill notices, not real earthquakes.")


def fmt_duration(seconds: float, lang: str) -> str:
    """A duration as people say it (core.durations): 12分钟, 24小时 / 12 min, 24 h."""
    return say_duration(seconds, lang)


def fmt_ago(at: datetime, now: datetime, lang: str) -> str:
    """``12 分钟前`` / ``12 min ago`` (``刚刚`` / ``just now`` within a minute)."""
    seconds = (now - at).total_seconds()
    if seconds < 60:
        return "刚刚" if lang == "zh" else "just now"
    return f"{fmt_duration(seconds, lang)}前" if lang == "zh" else f"{fmt_duration(seconds, lang)} ago"


def intensity_name(degree: int | None, lang: str) -> str:
    """``Ⅳ度（多有感）`` / ``IV (light)``: a China Seismic Intensity Scale degree for people."""
    if degree is None:
        return ""
    d = min(max(int(degree), 1), 12)
    label = INTENSITY_LABELS[min(d, len(INTENSITY_LABELS)) - 1][0 if lang == "zh" else 1]
    return (f"{intensity.roman(d, 'zh')}度（{label}）" if lang == "zh"
            else f"{intensity.roman(d)} ({label})")


def kind_name(kind: str | None, lang: str) -> str:
    """A notice kind for people; combined kinds (``official_report+felt_guidance``) joined."""
    if not kind:
        return ""
    return ("、" if lang == "zh" else " + ").join(_named(KIND_NAMES, k, lang)
                                                  for k in kind.split("+"))


def area_label(key: str | None, lang: str) -> str:
    """A county/district key (``chengguan``) as its name; never the raw key on a page."""
    if key is None:
        return "无所属区县" if lang == "zh" else "no county/district"
    place = default_catalog().places.get(key)
    if place is None:
        return "其他地区" if lang == "zh" else "elsewhere"
    return place.zh if lang == "zh" else place.en


_STATE_REASONS: tuple[tuple[re.Pattern[str], str, str], ...] = (
    (re.compile(r"^waits for a duty officer, at most (?P<s>[\d.]+) s$"),
     "等待值班人员批准；{s}内无人处理将按预审模板自动发布",
     "waits for a duty officer; released as the pre-approved template after {s}"),
    (re.compile(r"^approved by (?P<who>.+?) at (?P<at>\S+?)(?:: (?P<note>.*))?$", re.DOTALL),
     "{who}于{at}批准{note}", "approved by {who} at {at}{note}"),
    (re.compile(r"^rejected by (?P<who>.+?) at (?P<at>\S+?): (?P<why>.*)$", re.DOTALL),
     "{who}于{at}驳回，理由：{why}", "rejected by {who} at {at}: {why}"),
    (re.compile(r"^auto-released after (?P<s>[\d.]+) s without a duty decision"),
     "{s}内无人处理，已按预审模板自动发布",
     "released as the pre-approved template: no duty decision within {s}"),
    (re.compile(r"^withdrawn at (?P<at>\S+?): superseded by (?P<by>\S+)$"),
     "已由较新的通知（{by}）取代，于{at}自动撤回",
     "withdrawn at {at}: superseded by the newer notice {by}"),
    (re.compile(r"^edited by (?P<who>.+?) at (?P<at>\S+?) \((?P<langs>[^)]*)\);"),
     "{who}于{at}修改了文本（{langs}），仍待批准",
     "text edited by {who} at {at} ({langs}); still waiting for approval"),
)
LANG_NAMES = {"zh": ("中文", "Chinese"), "bo": ("藏文", "Tibetan"), "en": ("英文", "English")}


def state_note(reason: str | None, lang: str) -> str:
    """The stored state reason in the page's language; '' for one we cannot say in zh."""
    if not reason:
        return ""
    for pattern, zh, en in _STATE_REASONS:
        m = pattern.match(reason)
        if m is None:
            continue
        parts = {k: v or "" for k, v in m.groupdict().items()}
        if "s" in parts:
            parts["s"] = fmt_duration(float(parts["s"]), lang)
        if "at" in parts:
            parts["at"] = (fmt_bj(parts["at"])[5:16] if lang == "zh"
                           else fmt_utc(parts["at"])[5:16] + " UTC")
        if parts.get("note"):
            parts["note"] = ("，备注：" if lang == "zh" else "; note: ") + parts["note"]
        if "langs" in parts:
            parts["langs"] = ("、" if lang == "zh" else ", ").join(
                _named(LANG_NAMES, x.strip(), lang) for x in parts["langs"].split(","))
        return (zh if lang == "zh" else en).format(**parts)
    # en: the policy's own sentence, without its code ("first_felt: First felt event ...")
    return "" if lang == "zh" else re.sub(r"^[a-z_]+: ", "", reason)


# -- front page -----------------------------------------------------------------------------


def shown_state(stored: Any) -> str:
    """The notice's state, with a superseded draft (stored as expired) shown as withdrawn."""
    if stored.state == "expired" and (stored.state_reason or "").startswith(
            ap.WITHDRAWN_PREFIX + " "):
        return "withdrawn"
    return str(stored.state)


def _group_key(n: Any) -> tuple[str, str, str, str, datetime]:
    return (n.sequence_id, n.event_id, n.kind, n.msg_type, n.created_at)


def _event_line(store: Any, event_id: str, lang: str) -> dict[str, Any]:
    """Magnitude, county and Beijing/UTC time of an event, for a one-line mention."""
    try:
        e = store.event(event_id)
    except NotFound:
        return {"id": event_id, "magnitude": None, "place": None, "time": None}
    return {"id": e.id, "magnitude": e.magnitude, "time": e.origin_at.isoformat(),
            "place": nearest_seat(e.latitude, e.longitude)}


def message_groups(store: Store, stored: list[Any], lang: str,
                   timeouts: dict[str, float], wall: datetime) -> list[dict[str, Any]]:
    """Notices grouped into messages (one per policy round, kind and event: their area variants
    together), with recipients per area, delivery counts and the approval deadline."""
    groups: dict[tuple[str, str, str, str, datetime], dict[str, Any]] = {}
    for s in stored:
        n = s.notice
        g = groups.get(_group_key(n))
        if g is None:
            g = groups[_group_key(n)] = {
                "id": n.id, "ids": [], "kind": kind_name(n.kind, lang), "kind_code": n.kind,
                "msg_type": n.msg_type, "sequence_id": n.sequence_id,
                "created_at": n.created_at.isoformat(), "state": shown_state(s),
                "state_name": _named(STATE_NAMES, shown_state(s), lang),
                "state_note": state_note(s.state_reason, lang), "exercise": n.exercise,
                "event": _event_line(store, n.event_id, lang), "areas": Counter(),
                "deliveries": Counter(), "deadline": None, "variants": [],
                "messages": {m.lang: m for m in n.messages}}
        g["ids"].append(n.id)
        by_area = store.approvals.recipients_by_area(n.id)
        g["variants"].append({"id": n.id, "messages": {m.lang: m for m in n.messages},
                              "state": s.state,
                              "areas": [area_label(k, lang) for k in sorted(by_area, key=str)]})
        for area, count in by_area.items():
            g["areas"][area] += count
        for by in store.outbox.counts(n.id).values():
            g["deliveries"].update(by)
        if s.state == "pending_approval":
            due = s.state_at + timedelta(seconds=timeouts.get(n.kind.split("+")[0], 0.0))
            g["deadline"] = min(g["deadline"] or due, due)
    out = []
    for g in groups.values():
        g["areas"] = [{"name": area_label(k, lang), "residents": v}
                      for k, v in sorted(g["areas"].items(), key=lambda kv: (-kv[1], str(kv[0])))]
        g["residents"] = sum(a["residents"] for a in g["areas"])
        d = g["deliveries"]
        g["delivered"], g["failed"] = d.get("sent", 0), d.get("failed", 0) + d.get("gone", 0)
        g["waiting"] = d.get("pending", 0) + d.get("in_flight", 0)
        if g["deadline"] is not None:
            left = (g["deadline"] - wall).total_seconds()
            g["left"] = (f"剩余{fmt_duration(left, lang)}" if lang == "zh" else
                         f"{fmt_duration(left, lang)} left") if left > 0 else (
                "已到期，即将自动发布" if lang == "zh" else "due: about to be auto-released")
            g["deadline"] = g["deadline"].isoformat()
        out.append(g)
    return out


def pending_messages(request: web.Request, lang: str, *, sequence_id: str | None = None
                     ) -> list[dict[str, Any]]:
    """Messages waiting for approval, the nearest deadline first."""
    store = request.app[STORE]
    stored = store.approvals.page_notices(state="pending_approval", sequence_id=sequence_id,
                                          limit=MAX_PENDING)
    groups = message_groups(store, stored, lang, _timeouts(request), _now(request)[0])
    return sorted(groups, key=lambda g: (g["deadline"] or "", g["created_at"]))


def _timeouts(request: web.Request) -> dict[str, float]:
    return approval_timeouts(request.app[SETTINGS].section("approvals"))


def newest_felt(store: Store, lang: str, now: datetime) -> dict[str, Any] | None:
    """The newest quake predicted to be felt (degree ≥ III) by any resident, or that anyone was
    notified about: its headline, the agencies' origins side by side, and a table per district."""
    event_id = store.views.newest_felt_event(intensity.FELT_DEGREE)
    if event_id is None:
        return None
    e = store.event(event_id)
    seat = nearest_seat(e.latitude, e.longitude)
    lhasa = default_catalog().places.get("lhasa")
    origins = [{
        "source": c.source, "name": SOURCE_NAMES.get(c.source, (c.source.upper(),) * 2)[
            0 if lang == "zh" else 1],
        "time": c.origin_at.isoformat(), "latitude": c.latitude, "longitude": c.longitude,
        "depth_km": c.depth_km, "magnitude": c.magnitude, "mag_type": c.mag_type,
        "status": _named(REPORT_STATUS, c.status, lang), "url": source_event_url(c.source,
                                                                                c.source_id),
        "preferred": c.source == e.preferred_source}
        for c in sorted(e.contributors, key=lambda c: SOURCE_ORDER.get(c.source, 9))]
    districts: dict[str | None, dict[str, Any]] = {}

    def district(key: str | None) -> dict[str, Any]:
        if key not in districts:
            districts[key] = {"name": area_label(key, lang), "degree": None, "notified": 0,
                              "delivered": 0, "failed": 0, "waiting": 0, "not_sent": 0,
                              "why": []}
        return districts[key]

    for r in store.views.event_decisions_by_area(e.id):
        d = district(r["area"])
        if r["degree"] is not None:
            d["degree"] = max(d["degree"] or 0, int(r["degree"]))
        if r["send"]:
            d["notified"] += int(r["n"])
        else:
            d["not_sent"] += int(r["n"])
            why = r["zh"] if lang == "zh" else r["en"]
            if why and why not in d["why"]:
                d["why"].append(why)
    for r in store.views.event_deliveries_by_area(e.id):
        d = district(r["area"])
        key = {"sent": "delivered", "failed": "failed", "gone": "failed"}.get(r["state"],
                                                                            "waiting")
        d[key] += int(r["n"])
    table = sorted(districts.values(), key=lambda d: (-(d["degree"] or 0), -d["notified"],
                                                      d["name"]))
    for d in table:
        d["intensity"] = intensity_name(d["degree"], lang)
    return {
        "id": e.id, "magnitude": e.magnitude, "mag_type": e.mag_type,
        "time": e.origin_at.isoformat(), "depth_km": e.depth_km,
        "latitude": e.latitude, "longitude": e.longitude, "seat": seat,
        "lhasa_km": None if lhasa is None else round(
            distance_km(e.latitude, e.longitude, lhasa.lat, lhasa.lon), -1),
        "ago": fmt_ago(e.origin_at, now, lang), "origins": origins, "districts": table,
        "sequence_id": store.views.sequence_of_event(e.id)}


def source_event_url(source: str, source_id: str) -> str | None:
    """The agency's own page for one of its events, where it has one for ids of this form."""
    known = SOURCE_URLS.get(source)
    if known is None or not re.fullmatch(known[0], source_id):
        return None
    return known[1].format(id=quote(source_id, safe=""))


def sources_view(request: web.Request, lang: str, wall: datetime) -> list[dict[str, Any]]:
    """Each configured catalogue source: working or failing, last success, failures."""
    from quakealert.api.app import source_health  # app.py imports this module's routes

    out = []
    for h in source_health(request.app):
        last_ok = _parse(h["last_ok"])
        out.append({
            "name": SOURCE_NAMES.get(h["name"], (h["name"],) * 2)[0 if lang == "zh" else 1],
            "kind": h["kind"], "ok": h["ok"], "failures": h["consecutive_failures"],
            "last_ok": fmt_ago(last_ok, wall, lang) if last_ok else None,
            "error": h["last_error"] if lang == "en" else None,
            "polls": h["polls"]})
    return out


def recent_messages(request: web.Request, lang: str, wall: datetime) -> list[dict[str, Any]]:
    """The newest decided messages (released, rejected, withdrawn): what we told whom."""
    store = request.app[STORE]
    stored = [s for s in store.approvals.page_notices(limit=RECENT_NOTICES)
              if s.state != "pending_approval"]
    groups = message_groups(store, stored, lang, _timeouts(request), wall)
    return groups[:RECENT_MESSAGES]


def _page_path(request: web.Request) -> str:
    """This page's path and query without the outcome of the last action."""
    query = [(k, v) for k, v in request.query.items() if k not in ("done", "n", "state")]
    return request.path + ("?" + urlencode(query) if query else "")


def flash(request: web.Request, lang: str) -> str | None:
    """What the last approve/reject did, from the 303's query (done, n, state)."""
    done = request.query.get("done")
    if done not in FLASH:
        return None
    n = request.query.get("n", "0")
    state = _named(STATE_NAMES, request.query.get("state"), lang)
    zh, en = FLASH[done]
    return (zh if lang == "zh" else en).format(n=n if n.isdigit() else "0", state=state)


def not_earthquake_rows(store: Store, lang: str) -> list[dict[str, Any]]:
    """The latest events residents were not told about because the agency typed them as an
    explosion, quarry blast, collapse...: they belong to no sequence, so they are listed here
    (issue 11)."""
    rows = []
    for d in store.decisions.not_earthquakes(limit=NOT_EARTHQUAKES_SHOWN):
        # the sequence a retyped quake left is linked while it exists (alone, it is gone)
        linked = bool(d["sequence_id"]) and store.sequences.sequence_exists(d["sequence_id"])
        rows.append({**d, "reason": d["reason_zh"] if lang == "zh" else d["reason_en"],
                     "sequence_id": d["sequence_id"] if linked else "",
                     "type_name": event_type_zh(d["event_type"]) if lang == "zh"
                     else d["event_type"],
                     "seat": nearest_seat(d["latitude"], d["longitude"])})
    return rows


@routes.get("/dashboard")
async def dashboard_index(request: web.Request) -> web.Response:
    """The front page: what happened, what we told whom, what waits for a duty officer."""
    lang = _lang(request)
    wall, now = _now(request)
    store = request.app[STORE]
    rows = []
    for s in store.sequences.list_sequences(limit=SEQUENCES_SHOWN):
        lg = s["largest"] or {}
        rows.append({**s, "type_names": _type_names(s["type"]),
                     "place": nearest_seat(lg.get("latitude"), lg.get("longitude"))})
    principal = request.get(PRINCIPAL)
    return _render(
        "index.html.j2", lang, sequences=rows, banner=mode_banner(request, lang),
        headline=newest_felt(store, lang, now), pending=pending_messages(request, lang),
        not_earthquakes=not_earthquake_rows(store, lang),
        recent=recent_messages(request, lang, wall), sources=sources_view(request, lang, wall),
        n_review=len(review_rows()[0]),
        page_path=_page_path(request), flash=flash(request, lang),
        can_decide=principal is not None and role_rank(principal.role) >= role_rank("duty"),
        principal=principal, refresh_s=REFRESH_S, now=now.isoformat())


def review_rows() -> tuple[list[dict[str, Any]], int]:
    """Composed bo glossary entries (core.render.review_entries) with the zh and en wording of the
    same key, and how many bo entries there are in all."""
    cat = default_catalog()
    zh, en = cat.glossary["zh"], cat.glossary["en"]
    rows = [{"key": key, "bo": e.text, "zh": zh[key].text if key in zh else "",
             "en": en[key].text if key in en else "", "status": e.status, "terms": e.terms}
            for key, e in review_entries(cat).items()]
    return rows, len(cat.glossary["bo"])


@routes.get("/dashboard/tibetan-review")
async def dashboard_tibetan_review(request: web.Request) -> web.Response:
    """Tibetan wording still awaiting a translator: every composed bo entry with its Chinese,
    its provenance and the attested terms it is built from (issue 8 §3)."""
    lang = _lang(request)
    rows, total = review_rows()
    hold = request.app[SETTINGS].section("messages").get("bo_composed", "send") == "hold"
    return _render("tibetan_review.html.j2", lang, rows=rows, total=total,
                   sourced=total - len(rows), hold=hold, banner=mode_banner(request, lang),
                   principal=request.get(PRINCIPAL))


def setup(app: web.Application) -> None:
    """At start-up, give matplotlib the CJK and Tibetan fonts fontconfig knows (plots.py)."""

    async def register_fonts(app: web.Application) -> None:
        await asyncio.to_thread(plots.register_system_fonts)

    app.on_startup.append(register_fonts)


@routes.get("/dashboard/console.js")
async def console_js(request: web.Request) -> web.Response:
    """The console's script: approval countdowns and the front page's self-refresh."""
    return web.Response(body=CONSOLE_JS.read_bytes(), content_type="text/javascript",
                        charset="utf-8", headers={"Cache-Control": "private, max-age=300",
                                                  "X-Content-Type-Options": "nosniff"})


def _member_quakes(seq: dict[str, Any], *, classified_only: bool = False) -> list[plots.Quake]:
    out = []
    for m in seq["members"]:
        at = _parse(m["time"])
        if at is None or m["magnitude"] is None or (classified_only and not m["in_classification"]):
            continue
        out.append(plots.Quake(at, m["latitude"], m["longitude"], float(m["magnitude"])))
    return out


def forecast_view(forecast: dict[str, Any] | None, now: datetime, lang: str
                  ) -> dict[str, Any] | None:
    """The forecast with the time it was computed for; ``stale`` once older than
    FORECAST_MAX_AGE (the page then hides its numbers)."""
    if not forecast:
        return None
    as_of = _parse(forecast.get("start_at"))
    age_s = None if as_of is None else (now - as_of).total_seconds()
    return {**forecast, "text": forecast.get(lang), "as_of": None if as_of is None
            else as_of.isoformat(), "stale": age_s is None or age_s > FORECAST_MAX_AGE_S,
            "age": None if age_s is None else fmt_duration(max(age_s, 0.0), lang),
            "table": forecast_table(forecast)}


def quake_cards(store: Store, seq: dict[str, Any], messages: list[dict[str, Any]], lang: str
                ) -> list[dict[str, Any]]:
    """One card per quake that someone was (or was considered to be) told about, and the
    largest: its messages and, per district, who was notified and who was not and why."""
    by_event: dict[str, list[dict[str, Any]]] = {}
    for g in messages:
        by_event.setdefault(g["event"]["id"], []).append(g)
    decided: dict[str, dict[tuple[str | None, bool], dict[str, Any]]] = {}
    for r in store.views.sequence_decisions(seq["id"]):
        rows = decided.setdefault(r["event_id"], {})
        row = rows.setdefault((r["area"], bool(r["send"])), {
            "area": area_label(r["area"], lang), "send": bool(r["send"]), "residents": 0,
            "degree": None, "why": []})
        row["residents"] += int(r["n"])
        if r["degree"] is not None:
            row["degree"] = max(row["degree"] or 0, int(r["degree"]))
        why = r["zh"] if lang == "zh" else r["en"]
        if not r["send"] and why and why not in row["why"]:
            row["why"].append(why)
    largest_id = (seq.get("largest") or {}).get("id")
    cards = []
    for mem in sorted(seq["members"], key=lambda m: m["time"], reverse=True):
        if mem["id"] not in by_event and mem["id"] not in decided and mem["id"] != largest_id:
            continue
        rows = sorted(decided.get(mem["id"], {}).values(),
                      key=lambda r: (not r["send"], -(r["degree"] or 0), r["area"]))
        for r in rows:
            r["intensity"] = intensity_name(r["degree"], lang)
        cards.append({**mem, "role_name": _named(ROLE_NAMES, mem["role"], lang),
                      "place": nearest_seat(mem["latitude"], mem["longitude"]),
                      "messages": sorted(by_event.get(mem["id"], []),
                                         key=lambda g: g["created_at"]),
                      "decisions": rows, "largest": mem["id"] == largest_id})
    return cards


@routes.get("/dashboard/sequences/{id}")
async def dashboard_sequence(request: web.Request) -> web.Response:
    """One sequence: what waits for approval, a card per notified quake with its messages and
    districts, plots, type history with reasons, the forecast, and the members."""
    lang = _lang(request)
    wall, now = _now(request)
    store = request.app[STORE]
    seq = store.sequences.get_sequence(request.match_info["id"])  # NotFound -> 404 problem
    lg = seq["largest"] or {}
    members = sorted((m for m in seq["members"] if m["magnitude"] is not None),
                     key=lambda m: (-m["magnitude"], m["time"]))[:MEMBERS_SHOWN]
    for m in members:
        m["role_name"] = _named(ROLE_NAMES, m["role"], lang)
    history = [{**h, "type_names": _type_names(h["type"])} for h in seq["type_history"]]
    stored = store.notices.list_notices(sequence_id=seq["id"], limit=None)
    messages = message_groups(store, stored, lang, _timeouts(request), wall)
    principal = request.get(PRINCIPAL)
    return _render(
        "sequence.html.j2", lang, seq=seq, type_names=_type_names(seq["type"]),
        place=nearest_seat(lg.get("latitude"), lg.get("longitude")), members=members,
        history=history, plot_names=PLOT_NAMES, banner=mode_banner(request, lang),
        pending=sorted((g for g in messages if g["state"] == "pending_approval"),
                       key=lambda g: g["deadline"] or ""),
        cards=quake_cards(store, seq, messages, lang), n_messages=len(messages),
        forecast=forecast_view(seq.get("forecast"), now, lang),
        page_path=_page_path(request), flash=flash(request, lang),
        can_decide=principal is not None and role_rank(principal.role) >= role_rank("duty"),
        principal=principal,
    )


def _plot_builder(name: str, seq: dict[str, Any], lang: str) -> Callable[[], bytes]:
    """A zero-argument callable that draws ``name`` for ``seq``; everything read up front."""
    if name == "magnitude-time":
        quakes = _member_quakes(seq)
        return lambda: plots.magnitude_time_svg(quakes, lang=lang)
    if name == "cumulative":
        times = [q.at for q in _member_quakes(seq)]
        return lambda: plots.cumulative_count_svg(times, lang=lang)
    if name == "magnitude-frequency":
        # one magnitude type only: the members the classification (and the b-value) used
        mags = [q.magnitude for q in _member_quakes(seq, classified_only=True)]
        bv = (seq.get("stats") or {}).get("b_value") or {}
        return lambda: plots.magnitude_frequency_svg(
            mags, b=bv.get("b"), mc=bv.get("mc"), n_fit=bv.get("n"), lang=lang)
    quakes = _member_quakes(seq)
    centre = seq.get("centre") or {}
    lat = centre.get("latitude", (seq["largest"] or {}).get("latitude"))
    lon = centre.get("longitude", (seq["largest"] or {}).get("longitude"))
    if lat is None or lon is None:
        raise web.HTTPNotFound(text="this sequence has no epicentre to map")
    seats = [plots.MapPlace(p.zh if lang == "zh" else p.en, p.lat, p.lon) for p in _places()]
    return lambda: plots.map_svg(quakes, centre=(lat, lon), places=seats, lang=lang)


@routes.get("/dashboard/sequences/{id}/plots/{name}.svg")
async def dashboard_plot(request: web.Request) -> web.Response:
    """One plot of a sequence as SVG; names: magnitude-time, cumulative, magnitude-frequency, map."""
    name = request.match_info["name"]
    if name not in PLOT_NAMES:
        raise web.HTTPNotFound(text=f"no plot named {name!r}; plots: {', '.join(PLOT_NAMES)}")
    lang = _lang(request)
    seq = request.app[STORE].sequences.get_sequence(request.match_info["id"])
    cache = "private, max-age=60"
    try:
        body = await asyncio.to_thread(_plot_builder(name, seq, lang))
    except web.HTTPException:
        raise
    except Exception:  # a plot is an aid: the page must stand without it, never a 500
        log.exception("plot could not be drawn", extra={"plot": name, "sequence_id": seq["id"]})
        body = plots.placeholder_svg(PLOT_FAILED[lang])
        cache = "no-store"
    return web.Response(body=body, content_type="image/svg+xml", charset="utf-8", headers={
        "Cache-Control": cache,
        # an SVG opened on its own is a document: no scripts, no external loads
        "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'",
        "X-Content-Type-Options": "nosniff",
    })


def _local_next(value: Any) -> str:
    """Where to go back to after a console action: a dashboard path, else the front page."""
    ok = (isinstance(value, str) and value.startswith(("/dashboard?", "/dashboard/"))
          and "\\" not in value and "//" not in value)
    return value if ok else "/dashboard"


@routes.post("/dashboard/notices/{id}/{action:approve|reject}")
async def dashboard_decide(request: web.Request) -> web.Response:
    """Approve or reject every pending area variant of one message (duty); 303 back."""
    try:
        form = await request.post()
    except ValueError as err:
        raise InvalidRequest(f"unreadable form: {err}") from None
    for field in ("note", "reason"):  # either form may carry either field: both are checked
        value = form.get(field)
        if isinstance(value, str) and len(value.strip()) > ap.MAX_REASON_CHARS:
            raise InvalidRequest(f"{field} is longer than {ap.MAX_REASON_CHARS} characters")
    back = _local_next(form.get("next"))
    store = request.app[STORE]
    actor = request[PRINCIPAL]
    notice_id = request.match_info["id"]
    now = datetime.now(UTC)
    try:
        if request.match_info["action"] == "approve":
            note = form.get("note")
            note = (ap.clean_text(note, "note", max_chars=ap.MAX_REASON_CHARS)
                    if isinstance(note, str) and note.strip() else None)
            done = store.approvals.approve_message(notice_id, actor=actor, now=now, note=note)
            outcome = "approved"
        else:
            reason = form.get("reason")
            if not isinstance(reason, str) or not reason.strip():
                raise web.HTTPSeeOther(_with_outcome(back, "reason_missing", 0))
            done = store.approvals.reject_message(notice_id, actor=actor, reason=reason,
                                                  now=now)
            outcome = "rejected"
    except ap.NotPending as err:
        raise web.HTTPSeeOther(_with_outcome(back, "not_pending", 0, err.state)) from None
    log.info("notice %s", outcome, extra={
        "notice_id": notice_id, "actor": actor.name, "variants": len(done)})
    raise web.HTTPSeeOther(_with_outcome(back, outcome, len(done)))


def _with_outcome(path: str, outcome: str, n: int, state: str | None = None) -> str:
    base = path.partition("#")[0]
    extra = f"done={outcome}&n={n}" + (f"&state={quote(state)}" if state else "")
    return base + ("&" if "?" in base else "?") + extra + "#approvals"


def _html_op(summary: str, *params: dict[str, Any]) -> dict[str, Any]:
    lang = {"name": "lang", "in": "query", "required": False,
            "description": "UI language, zh or en; any other value falls back to zh",
            "schema": {"type": "string", "default": "zh"}}
    path = [{"name": p, "in": "path", "required": True,
             "schema": {"type": "string", "enum": list(PLOT_NAMES)} if p == "name" else
             {"type": "string", "minLength": 1, "pattern": "^[^/{}]+$"}}
            for p in params]
    return {"summary": summary, "tags": ["dashboard"], "parameters": [*path, lang]}


_PAGE = {"200": {"description": "HTML page", "content": {"text/html": {"schema": {
    "type": "string"}}}}}
_NOT_FOUND = {"404": {"description": "Unknown sequence (or plot name)",
                      "content": {"application/problem+json": {"schema": {"type": "object"}}}}}

OPENAPI_PATHS: dict[str, dict[str, Any]] = {
    "/dashboard": {"get": {**_html_op("Duty dashboard: recent sequences"),
                           "responses": dict(_PAGE)}},
    "/dashboard/sequences/{id}": {"get": {
        **_html_op("Duty dashboard: one sequence with map, plots, forecast, notices", "id"),
        "responses": {**_PAGE, **_NOT_FOUND}}},
    "/dashboard/sequences/{id}/plots/{name}.svg": {"get": {
        **_html_op("A sequence plot as SVG", "id", "name"),
        "responses": {"200": {"description": "SVG image (a placeholder when the plot cannot be"
                                             " drawn)", "content": {"image/svg+xml": {
            "schema": {"type": "string"}}}}, **_NOT_FOUND}}},
    "/dashboard/tibetan-review": {"get": {
        **_html_op("Duty dashboard: Tibetan glossary entries still composed, awaiting a"
                   " translator (key, Chinese, Tibetan, provenance, attested terms)"),
        "responses": dict(_PAGE)}},
    "/dashboard/console.js": {"get": {
        "summary": "The console's script (approval countdowns, self-refresh)",
        "tags": ["dashboard"],
        "responses": {"200": {"description": "JavaScript", "content": {"text/javascript": {
            "schema": {"type": "string"}}}}}}},
    "/dashboard/notices/{id}/{action}": {"post": {
        "summary": "Approve or reject every pending area variant of one message (duty role);"
                   " an HTML form from the console, answered with 303 to `next`",
        "tags": ["dashboard"],
        "parameters": [
            {"name": "id", "in": "path", "required": True,
             "schema": {"type": "string", "minLength": 1, "pattern": "^[^/{}]+$"}},
            {"name": "action", "in": "path", "required": True,
             "schema": {"type": "string", "enum": ["approve", "reject"]}}],
        "requestBody": {"required": True, "content": {"application/x-www-form-urlencoded": {
            "schema": {"type": "object", "properties": {
                "next": {"type": "string"}, "note": {"type": "string", "maxLength": 500},
                "reason": {"type": "string", "maxLength": 500}}}}}},
        "responses": {"303": {"description": "Back to `next` (a dashboard page) with the outcome"
                                             " in its query"},
                      "400": {"description": "Unreadable form, or a note or reason too long",
                              "content": {"application/problem+json": {"schema": {
                                  "type": "object"}}}},
                      **_NOT_FOUND}}},
}
