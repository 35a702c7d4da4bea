"""The drill report as text and as one HTML page, in zh or en."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from quakealert.core.durations import say_duration

LANGS = ("zh", "en")
# Labels of the text and HTML reports; the kinds' names are the console's (api/dashboard.py).
LABELS: dict[str, dict[str, str]] = {
    "zh": {
        "title": "地震应急演练报告", "drill_of": "演练目录：{file}",
        "played": "回放{played}条速报（{events}次地震），{speed}，场景时钟运行至{until}，用时{wall}",
        "fast": "以最快速度回放", "speed_x": "{x}倍实时速度",
        "after_until": "{n}条速报晚于 --until，未回放", "skipped": "文件中{n}行被跳过：{rows}",
        "background": "{before}以前的{n}条速报作为背景历史载入（入库并参与序列划分，不发通知）",
        "residents": "模拟居民：{n}人（{desc}）", "rejected_row": "被拒绝的居民记录：{row}",
        "events": "地震", "sent": "将会发出的通知（{d}次发送，{n}条通知）",
        "about": "关于 {mag}（发震时刻 {when}）", "to": "发往{n}名居民：",
        "channels": "渠道（仅记录，未实际发送）：", "none": "无",
        "held": "曾等待值班人员批准；演练按其{t}时限自动发布",
        "latency": "时延：发震后{delay}（场景时间）；处理用时{ms}毫秒（{how}）",
        "rule": "规则到期→入队", "ingest": "接收→入队", "texts": "通知文本：",
        "phone": "手机通知：",
        "for_areas": "发往：{areas}",
        "bo_same": "⚠ 藏文文本与中文文本相同：藏文标签下是中文，须由藏文译者处理（{ids}）",
        "bo_han": "⚠ 藏文文本中有{n}行是中文，须由藏文译者处理",
        "msg_types": "Alert=首发,Update=更新,Cancel=撤销",
        "not_sent": "未发送（{n}项决定）", "moments": "（{n}个时刻）",
        "decisions": "{n}项决定", "history": "序列类型判定历史",
        "other_sequences": "另有{n}个序列与任何居民无关（背景历史或远离所有居民），未列出",
        "now": "目前：{type}（{n}次地震{final}）", "final": "，最终判定",
        "totals": "合计", "total_line": "发送{d}次（{n}条通知）；记录投递：{dl}；覆盖居民{r}人",
        "latency_line": "处理时延中位数{med}毫秒，最大{max}毫秒", "bj": "北京时间",
        "lang_zh": "中文", "lang_bo": "藏文", "lang_en": "英文", "colon": "：", "sep": "、",
        "kind": "类别", "area": "区县", "residents_col": "居民数", "reason": "理由",
        "when": "时间", "magnitude": "震级", "place": "地点", "type": "类型",
        "reasons": "判定依据", "status": "CAP状态", "lang_switch": "English",
    },
    "en": {
        "title": "Earthquake drill report", "drill_of": "drill of {file}",
        "played": "{played} reports played ({events} events), {speed}, clock run to {until},"
                  " {wall} wall",
        "fast": "as fast as possible", "speed_x": "{x}x real time",
        "after_until": "{n} reports after --until were not played",
        "background": "{n} reports before {before} loaded as background history (stored,"
                      " sequenced, never notified)",
        "skipped": "{n} rows of the file skipped: {rows}",
        "residents": "residents: {n} ({desc})", "rejected_row": "rejected subscriber row: {row}",
        "events": "EVENTS", "sent": "WOULD HAVE BEEN SENT ({d} dispatches, {n} notices)",
        "about": "about {mag} of {when}", "to": "to {n} residents:",
        "channels": "channels (recorded, not sent): ", "none": "none",
        "held": "held for a duty officer; the drill released it as its {t} timeout would",
        "latency": "latency: {delay} after the origin (scenario time); processing {ms} ms ({how})",
        "rule": "rule fell due -> enqueued", "ingest": "ingest -> enqueued", "texts": "texts:",
        "phone": "on the phone: ",
        "for_areas": "for {areas}",
        "bo_same": "WARNING: the bo text equals the zh text: Chinese under a Tibetan label;"
                   " needs the Tibetan translator ({ids})",
        "bo_han": "WARNING: {n} lines of the bo text are Chinese; needs the Tibetan translator",
        "msg_types": "Alert=Alert,Update=Update,Cancel=Cancel",
        "not_sent": "NOT SENT ({n} decisions)", "moments": " ({n} moments)",
        "decisions": "{n} decisions", "history": "SEQUENCE TYPE HISTORY",
        "other_sequences": "{n} other sequences concern no resident (background history, or far"
                           " from everyone): not listed",
        "now": "now {type} ({n} events{final})", "final": ", final",
        "totals": "TOTALS", "total_line": "dispatches {d} ({n} notices); deliveries recorded"
                                         " {dl}; residents reached {r}",
        "latency_line": "processing latency median {med} ms, max {max} ms", "bj": "Beijing time",
        "lang_zh": "Chinese", "lang_bo": "Tibetan", "lang_en": "English", "colon": ": ",
        "sep": ", ", "kind": "Kind", "area": "County/district", "residents_col": "Residents",
        "reason": "Reason", "when": "Time", "magnitude": "Magnitude", "place": "Place",
        "type": "Type", "reasons": "Reasons", "status": "CAP status", "lang_switch": "中文",
    },
}
TYPE_EN = {"undetermined": "undetermined", "swarm": "swarm",
           "mainshock-aftershock": "mainshock–aftershock",
           "foreshock-mainshock-aftershock": "foreshock–mainshock–aftershock",
           "isolated": "isolated", "doublet": "doublet"}


def _when(t: dict[str, str], lang: str = "en") -> str:
    utc = datetime.fromisoformat(t["utc"])
    bjt = datetime.fromisoformat(t["beijing"])
    if lang == "zh":
        return f"{bjt:%Y-%m-%d %H:%M:%S} 北京时间（{utc:%H:%M:%S} UTC）"
    return f"{utc:%Y-%m-%d %H:%M:%S} UTC = {bjt:%Y-%m-%d %H:%M:%S} Beijing time"


def _mag(e: dict[str, Any]) -> str:
    m = e.get("magnitude")
    return "M?" if m is None else f"M{m:.1f}"


def _area_name(a: dict[str, Any], lang: str) -> str:
    return str(a["zh"] if lang == "zh" else a["en"])


def _areas(areas: list[dict[str, Any]], lang: str = "en") -> str:
    return LABELS[lang]["sep"].join(f"{_area_name(a, lang)} {a['residents']}" for a in areas)


def _reason(reason: Any, lang: str = "en") -> str:
    if isinstance(reason, dict):
        return str(reason.get(lang) or reason.get("en", ""))
    return str(reason)


def _delay(seconds: float | None, lang: str = "en") -> str:
    """How long after the origin, as people say it: "24 h", never "86401.0 s"."""
    if seconds is None:
        return "?"
    return say_duration(seconds, lang)


def _kind(kind: str, lang: str) -> str:
    from quakealert.api.dashboard import kind_name  # the console's names for message kinds

    return kind_name(kind, lang)


def _msg_type(code: str, lang: str) -> str:
    names = dict(pair.split("=") for pair in LABELS[lang]["msg_types"].split(","))
    return names.get(code, code)


def _type(code: str, type_zh: str | None, lang: str) -> str:
    if lang == "zh":
        from quakealert.core.classify import TYPE_ZH

        return type_zh or TYPE_ZH.get(code, code)
    return TYPE_EN.get(code, code)


def format_text(report: dict[str, Any], lang: str = "en") -> str:
    """The report as plain text for the terminal, in zh or en."""
    t = LABELS[lang]
    lines = [report["banner"], t["title"] + t["colon"] + t["drill_of"].format(file=report["file"])]
    rp = report["reports"]
    speed = report["speed"]
    lines.append("  " + t["played"].format(
        played=rp["played"], events=len(report["events"]),
        speed=t["fast"] if not speed else t["speed_x"].format(x=f"{speed:g}"),
        until=_when(report["until"], lang), wall=say_duration(report["wall_s"], lang)))
    if rp["after_until"]:
        lines.append("  " + t["after_until"].format(n=rp["after_until"]))
    bg = report.get("background") or {}
    if bg.get("reports"):
        lines.append("  " + t["background"].format(n=bg["reports"],
                                                   before=_when(bg["before"], lang)))
    if rp["skipped"]:
        lines.append("  " + t["skipped"].format(n=rp["skipped"],
                                                rows="; ".join(rp["skipped_rows"][:3])))
    pop = report["population"]
    desc = pop.get("description_zh") if lang == "zh" else pop["description"]
    lines.append("  " + t["residents"].format(n=pop["residents"], desc=desc or pop["description"]))
    lines.append(f"    {_areas(pop['areas'], lang)}")
    for bad in pop["rejected_rows"]:
        lines.append("    " + t["rejected_row"].format(row=bad))

    lines += ["", t["events"]]
    for e in report["events"]:
        lines.append(f"  {_when(e['origin'], lang)}  {_mag(e)}  {e.get('place') or ''}"
                     f"  [{e['id']}]")

    tot = report["totals"]
    lines += ["", t["sent"].format(d=tot["dispatches"], n=tot["notices"])]
    for i, n in enumerate(report["sent"], 1):
        lat = n["latency"]
        lines.append(f"  {i}. {_when(n['at'], lang)}  {_kind(n['kind'], lang)}"
                     f" ({_msg_type(n['msg_type'], lang)}, CAP {n['cap_status']})")
        lines.append("     " + t["about"].format(mag=_mag(n["event"]),
                                                 when=_when(n["event"]["origin"], lang)))
        lines.append("     " + t["to"].format(n=n["residents"]))
        for a in n["areas"]:
            why = a.get("reason_zh" if lang == "zh" else "reason_en") or ", ".join(a["reasons"])
            lines.append(f"       {_area_name(a, lang)}{t['colon']}{a['residents']} ({why})")
        lines.append("     " + t["channels"] + (t["sep"].join(
            f"{k} {v}" for k, v in n["channels"].items()) or t["none"]))
        if n["held_for_approval_s"]:
            lines.append("     " + t["held"].format(t=say_duration(n["held_for_approval_s"],
                                                                  lang)))
        lines.append("     " + t["latency"].format(
            delay=_delay(lat["scenario_delay_s"], lang), ms=lat["processing_ms"],
            how=t["rule"] if lat["trigger"] == "tick" else t["ingest"]))
        if n.get("bo_same_as_zh"):
            lines.append("     " + t["bo_same"].format(ids=", ".join(n["bo_same_as_zh"])))
        elif n.get("bo_chinese_lines"):
            lines.append("     " + t["bo_han"].format(n=n["bo_chinese_lines"]))
        lines.append("     " + t["texts"])
        by_area = len(n["texts"]) > len({y["lang"] for y in n["texts"]})  # wording per area
        for x in n["texts"]:
            lines.append(f"       [{x['lang']}] {x['title']}")
            for body_line in x["body"].splitlines():
                lines.append(f"            {body_line}")
            if x.get("push_title") and x.get("push_body"):
                lines.append(f"            {t['phone']}{x['push_title']} / {x['push_body']}")
            if by_area:
                lines.append("            " + t["for_areas"].format(
                    areas=t["sep"].join(_area_name(a, lang) for a in x["areas"])))

    lines += ["", t["not_sent"].format(n=tot["not_sent_decisions"])]
    for g in report["not_sent"]:
        span = ("" if g["moments"] == 1
                else f" .. {_when(g['last'], lang)}{t['moments'].format(n=g['moments'])}")
        lines.append(f"  {_when(g['first'], lang)}{span}")
        lines.append(f"     {_mag(g['event'])} {t['decisions'].format(n=g['decisions'])}"
                     f" — {_areas(g['areas'], lang)}")
        lines.append(f"     {g['reason_zh'] if lang == 'zh' else g['reason_en']}")
        if lang == "en":
            lines.append(f"     ({g['reason_code']})")

    lines += ["", t["history"]]
    for sq in report["sequences"]:
        lines.append(f"  {sq['id']}: " + t["now"].format(
            type=_type(sq["type"], sq["type_zh"], lang), n=sq["events"],
            final=t["final"] if sq["final"] else ""))
        for h in sq["history"]:
            lines.append(f"    {_when(h['at'], lang)}  {_type(h['type'], None, lang)}"
                         f"{t['final'] if h['final'] else ''}")
            for reason in h["reasons"]:
                lines.append(f"      - {_reason(reason, lang)}")
    if report.get("other_sequences"):
        lines.append("  " + t["other_sequences"].format(n=report["other_sequences"]))

    lines += ["", t["totals"],
              "  " + t["total_line"].format(
                  d=tot["dispatches"], n=tot["notices"],
                  dl=t["sep"].join(f"{k} {v}" for k, v in tot["deliveries"].items())
                  or t["none"], r=tot["residents_reached"]),
              "  " + t["latency_line"].format(med=tot["processing_ms_median"],
                                              max=tot["processing_ms_max"]),
              report["banner"]]
    return "\n".join(lines) + "\n"


def format_html(report: dict[str, Any], lang: str = "en") -> str:
    """The report as one self-contained HTML page in the console's style, in zh or en,
    EXERCISE-bannered top and bottom."""
    from quakealert.api.dashboard import render_page  # the console's templates and styles

    return render_page("drill.html.j2", lang, r=report, d=LABELS[lang],
                       when=lambda x: _when(x, lang), kind=lambda k: _kind(k, lang),
                       duration=lambda sec: _delay(sec, lang),
                       type_name=lambda code, zh=None: _type(code, zh, lang),
                       reason=lambda x: _reason(x, lang), area=lambda a: _area_name(a, lang),
                       msg_type=lambda c: _msg_type(c, lang))
