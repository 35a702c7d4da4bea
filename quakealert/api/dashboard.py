"""The duty-staff dashboard: server-rendered zh/en pages of sequences, notices and plots.

Pages are Jinja2 with autoescape on (place names, reasons and agency text come from feeds) and
no JavaScript. Plots are SVG from the pure builders in ``quakealert.api.plots``, rendered off the
event loop. Authentication is the auth middleware's job (policy: /dashboard* needs "read").
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import quote

import jinja2
from aiohttp import web

from quakealert.api import plots
from quakealert.api.keys import STORE
from quakealert.core.classify import TYPE_ZH
from quakealert.core.geo import distance_km
from quakealert.core.render import Place, default_catalog
from quakealert.store.decisions import decision_summary, list_decisions
from quakealert.store.notices import list_notices
from quakealert.store.outbox import counts
from quakealert.store.sequences import get_sequence, list_sequences

log = logging.getLogger(__name__)

routes = web.RouteTableDef()

TEMPLATES = Path(__file__).parent / "templates"
LANGS = ("zh", "en")
BEIJING = timezone(timedelta(hours=8))
PLACE_MAX_KM = 300.0  # beyond this the nearest seat says nothing useful about where it was
MAP_KINDS = ("county", "district", "prefecture")
MEMBERS_SHOWN = 30
PLOT_NAMES = ("magnitude-time", "cumulative", "magnitude-frequency", "map")

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
    },
    "en": {
        "title": "Earthquake sequence duty desk", "sequences": "Recent earthquake sequences",
        "type": "Sequence type", "status": "Status", "final": "final", "provisional": "provisional",
        "largest": "Largest event", "place": "Nearest seat", "n_events": "Events",
        "first": "First event", "last": "Latest event", "context": "Regional context",
        "none": "none", "no_sequences": "No sequences yet.", "back": "Back to the sequence list",
        "bj": "Beijing time",
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
    },
}

STATE_NAMES = {
    "pending_approval": ("待批准", "pending approval"),
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


def _render(template: str, lang: str, **ctx: Any) -> web.Response:
    text = _env().get_template(template).render(lang=lang, t=UI[lang], **ctx)
    return web.Response(text=text, content_type="text/html", headers={
        # forecasts and approval state are private and change: never from a cache
        "Cache-Control": "no-store",
        "Content-Security-Policy": ("default-src 'none'; img-src 'self'; style-src 'unsafe-inline';"
                                    " form-action 'self'; base-uri 'none'; frame-ancestors 'none'"),
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
    })


@routes.get("/dashboard")
async def dashboard_index(request: web.Request) -> web.Response:
    """The list of recent sequences, newest activity first."""
    lang = _lang(request)
    rows = []
    for s in list_sequences(request.app[STORE].conn, limit=100):
        lg = s["largest"] or {}
        rows.append({**s, "type_names": _type_names(s["type"]),
                     "place": nearest_seat(lg.get("latitude"), lg.get("longitude"))})
    return _render("index.html.j2", lang, sequences=rows)


def _member_quakes(seq: dict[str, Any], *, classified_only: bool = False) -> list[plots.Quake]:
    out = []
    for m in seq["members"]:
        at = _parse(m["time"])
        if at is None or m["magnitude"] is None or (classified_only and not m["in_classification"]):
            continue
        out.append(plots.Quake(at, m["latitude"], m["longitude"], float(m["magnitude"])))
    return out


def _notice_view(conn: Any, stored: Any, lang: str) -> dict[str, Any]:
    n = stored.notice
    by_channel = counts(conn, n.id)
    return {
        "id": n.id, "kind": _named(KIND_NAMES, n.kind, lang), "kind_code": n.kind,
        "msg_type": n.msg_type, "urgency": n.urgency, "event_id": n.event_id,
        "exercise": n.exercise, "created_at": n.created_at.isoformat(),
        "state": stored.state, "state_name": _named(STATE_NAMES, stored.state, lang),
        "state_reason": stored.state_reason, "state_at": stored.state_at.isoformat(),
        "messages": {m.lang: m for m in n.messages},
        "deliveries": [
            {"channel": ch, "cells": [(_named(DELIVERY_NAMES, st, lang), by.get(st, 0))
                                      for st in DELIVERY_STATES],
             "total": sum(by.values())}
            for ch, by in sorted(by_channel.items())],
        "pending": stored.state == "pending_approval",
    }


@routes.get("/dashboard/sequences/{id}")
async def dashboard_sequence(request: web.Request) -> web.Response:
    """One sequence: map, plots, type history with reasons, forecast, notices and decisions."""
    lang = _lang(request)
    conn = request.app[STORE].conn
    seq = get_sequence(conn, request.match_info["id"])  # NotFound -> 404 problem
    lg = seq["largest"] or {}
    members = sorted((m for m in seq["members"] if m["magnitude"] is not None),
                     key=lambda m: (-m["magnitude"], m["time"]))[:MEMBERS_SHOWN]
    for m in members:
        m["role_name"] = _named(ROLE_NAMES, m["role"], lang)
    history = [{**h, "type_names": _type_names(h["type"])} for h in seq["type_history"]]
    decisions = list_decisions(conn, sequence_id=seq["id"])
    for d in decisions:
        d["kind_name"] = _named(KIND_NAMES, d["kind"], lang)
    return _render(
        "sequence.html.j2", lang, seq=seq, type_names=_type_names(seq["type"]),
        place=nearest_seat(lg.get("latitude"), lg.get("longitude")), members=members,
        history=history, plot_names=PLOT_NAMES,
        notices=[_notice_view(conn, s, lang)
                 for s in list_notices(conn, sequence_id=seq["id"], limit=None)],
        decisions=decisions, summary=decision_summary(conn, seq["id"]),
        forecast_table=forecast_table(seq.get("forecast")),
        page_path=request.path_qs,
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
    seq = get_sequence(request.app[STORE].conn, request.match_info["id"])
    body = await asyncio.to_thread(_plot_builder(name, seq, _lang(request)))
    return web.Response(body=body, content_type="image/svg+xml", charset="utf-8", headers={
        "Cache-Control": "private, max-age=60",
        # an SVG opened on its own is a document: no scripts, no external loads
        "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'",
        "X-Content-Type-Options": "nosniff",
    })


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
        "responses": {"200": {"description": "SVG image", "content": {"image/svg+xml": {
            "schema": {"type": "string"}}}}, **_NOT_FOUND}}},
}
