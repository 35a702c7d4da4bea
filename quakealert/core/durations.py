"""Durations as people say them, for the duty console and the drill report (not for residents:
their messages come from messages/ templates)."""

from __future__ import annotations

DAYS_FROM_S = 72 * 3600  # from three days on, whole days; below, hours (a day is "24 h")


def say_duration(seconds: float, lang: str = "en") -> str:
    """``45 s``, ``12 min``, ``1 h 30 min``, ``24 h``, ``4 d`` (zh: ``45秒``, ``12分钟``,
    ``1小时30分钟``, ``24小时``, ``4天``); 86401.0 s is ``24 h``."""
    s = max(0, round(seconds))
    hours, rest = divmod(s, 3600)
    minutes, secs = divmod(rest, 60)
    zh = lang == "zh"
    if s < 60:
        return f"{secs}秒" if zh else f"{secs} s"
    if s < 3600:
        return f"{minutes}分钟" if zh else f"{minutes} min"
    if s >= DAYS_FROM_S:
        days = s // 86400
        return f"{days}天" if zh else f"{days} d"
    extra = minutes if hours < 10 else 0  # "1 h 30 min", but "26 h"
    if zh:
        return f"{hours}小时" + (f"{extra}分钟" if extra else "")
    return f"{hours} h" + (f" {extra} min" if extra else "")
