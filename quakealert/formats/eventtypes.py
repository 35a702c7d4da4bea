"""Agencies' event-type labels to the QuakeML 1.2 EventType vocabulary (what FDSN serves).

QuakeML 1.2 BED ``EventType`` (quakeml.org/xmlns/bed/1.2): "earthquake", "explosion",
"quarry blast", "collapse", "landslide", "sonic boom", "not existing", ... USGS ComCat already
uses this vocabulary (``type`` in GeoJSON/CSV), bar a few older spellings. CENC labels
(速报目录 事件类型; the quick-report JSON marks them in the place name):
天然地震 natural earthquake -> "earthquake"; 爆破 blasting -> "explosion"; 疑爆 suspected
explosion -> "explosion" (QuakeML keeps certainty apart: EventTypeCertainty "suspected");
塌陷 collapse -> "collapse". SCEDC catalogue codes: eq, qb, ex, sn (data/README.md).
"""

from __future__ import annotations

EARTHQUAKE = "earthquake"

_LABELS = {
    # CENC
    "天然地震": EARTHQUAKE,
    "地震": EARTHQUAKE,
    "爆破": "explosion",
    "疑爆": "explosion",
    "塌陷": "collapse",
    # SCEDC catalogue codes
    "eq": EARTHQUAKE,
    "qb": "quarry blast",
    "ex": "explosion",
    "sn": "sonic boom",
    "nt": "nuclear explosion",
    # older ComCat spellings
    "quarry": "quarry blast",
    "blast": "explosion",
    "mining_explosion": "mining explosion",
    "quarry_blast": "quarry blast",
}

SUSPECTED = frozenset({"疑爆"})  # labels that are a suspicion, not a determination


def quakeml_event_type(label: str | None) -> str | None:
    """An agency's label as a QuakeML EventType; unknown labels are kept as written (lower
    case), an empty label is None (the feed did not say)."""
    text = (label or "").strip()
    if not text:
        return None
    mapped = _LABELS.get(text) or _LABELS.get(text.lower())
    return mapped if mapped is not None else text.lower().replace("_", " ")


def is_earthquake_type(event_type: str | None) -> bool:
    """True for an earthquake or an unknown type (most feeds list only earthquakes)."""
    return event_type is None or event_type == EARTHQUAKE
