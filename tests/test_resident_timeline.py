"""What three residents' phones receive during the real 2024-25 Maizhokunggar swarm (issue 8).

The bundled CENC speed-report list is replayed through the whole pipeline: the years before the
swarm are loaded as background, the swarm is played quake by quake at scenario time, and every
notice goes out through Web Push to a local receiver (127.0.0.1) and is decrypted (RFC 8291).
Residents: Lhasa in zh+bo, Lhasa in bo only, Dagze (20 km east of Lhasa) in zh+en, Chengdu in zh
(1,200 km away: the control).
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import http_ece
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import ec
from lxml import etree

from quakealert.api.app import make_app
from quakealert.channels import make_channels
from quakealert.channels.vapid import Vapid
from quakealert.config import DEFAULT_SCENARIO, Settings
from quakealert.core.render import BEIJING, PUSH_LIMITS, has_cjk
from quakealert.formats.catalog import read_catalog_file
from quakealert.service.dispatch import Outbox
from quakealert.service.pipeline import Pipeline
from quakealert.store.notices import load_stored_notice
from quakealert.store.sqlite import Store
from quakealert.store.subscribers import NewSubscriber, add_subscriber, b64url

SCENARIO = DEFAULT_SCENARIO  # the real CENC list, 2015-2025 (catalogs/scenarios/README.md)
SWARM_FROM = datetime(2024, 10, 21, tzinfo=UTC)  # first quake of the swarm (DESIGN.md)
PLAY_UNTIL = datetime(2025, 1, 20, tzinfo=UTC)  # the swarm runs to 2025-01-15
LHASA = (29.65, 91.13)
DAGZE = (29.67315, 91.34278)  # Dagze District seat (messages/places.toml)
CHENGDU = (30.66, 104.07)
RESIDENTS = {  # name: (place, languages in the resident's order)
    "lhasa-zh-bo": (LHASA, ("zh", "bo")),
    "lhasa-bo": (LHASA, ("bo",)),
    "dagze-zh-en": (DAGZE, ("zh", "en")),
    "chengdu-zh": (CHENGDU, ("zh",)),
}
CAP = "{urn:oasis:names:tc:emergency:cap:1.2}"


class Phone:
    """A browser's push subscription: keys to decrypt what the push service hands over."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.key = ec.generate_private_key(ec.SECP256R1())
        pub = self.key.public_key().public_numbers()
        self.p256dh = b64url(b"\x04" + pub.x.to_bytes(32, "big") + pub.y.to_bytes(32, "big"))
        self.auth = name.encode().ljust(16, b".")[:16]
        self.received: list[dict] = []  # type: ignore[type-arg]

    def decrypt(self, body: bytes) -> dict:  # type: ignore[type-arg]
        return json.loads(http_ece.decrypt(body, private_key=self.key, auth_secret=self.auth,
                                           version="aes128gcm"))


def strings(value: object) -> Iterator[str]:
    """Every string inside a decoded JSON value."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from strings(v)


def bjt(at: datetime) -> str:
    return at.astimezone(BEIJING).strftime("%Y-%m-%d %H:%M")


async def test_the_swarm_on_four_phones(tmp_path: Path, aiohttp_server, aiohttp_client,
                                        snapshot) -> None:  # type: ignore[no-untyped-def]
    """Per-language pushes within limits, no Chinese under bo, each push body opening with the
    resident's own shaking, the M4.5 page says 共11次, the M4.4 of 2024-11-18 is explained to
    Lhasa, the M4.1 felt in Dagze 4.5 min later is named in Dagze's next notice, no summary of
    quakes nobody felt, Chengdu gets nothing, every CAP bo <info> is Tibetan; the whole
    timeline of each resident is the snapshot."""
    phones = {name: Phone(name) for name in RESIDENTS}

    async def push(request: web.Request) -> web.Response:
        phone = phones[request.match_info["name"]]
        phone.received.append(phone.decrypt(await request.read()))
        return web.Response(status=201)

    app = web.Application()
    app.router.add_post("/push/{name}", push)
    server = await aiohttp_server(app)
    store = Store.open(tmp_path / "q.sqlite")
    for name, (place, langs) in RESIDENTS.items():
        p = phones[name]
        add_subscriber(store.conn, NewSubscriber(*place, langs, "webpush",
                                                 str(server.make_url(f"/push/{name}")),
                                                 p256dh=p.p256dh, auth=b64url(p.auth)),
                       now=SWARM_FROM - timedelta(days=1))
    ids = dict(zip(RESIDENTS, (r[0] for r in store.conn.execute(
        "SELECT id FROM subscribers ORDER BY id"))))
    settings = Settings(store_path=tmp_path / "q.sqlite", var_dir=tmp_path / "var",
                        sections={"webpush": {"allow_insecure_endpoints": True}})  # 127.0.0.1

    reports = read_catalog_file(SCENARIO).reports
    background = [r for r in reports if r.origin_at < SWARM_FROM]
    swarm = sorted((r for r in reports if SWARM_FROM <= r.origin_at <= PLAY_UNTIL),
                   key=lambda r: r.origin_at)
    assert len(background) > 100 and len(swarm) >= 21
    pipeline = Pipeline(store, settings, exercise=True)
    # the years before the swarm: the context line's background, never notified
    pipeline.absorb(store.ingest(background, now=SWARM_FROM), at=SWARM_FROM)
    for report in swarm:
        pipeline.advance(report.origin_at)
        pipeline.process(store.ingest([report], now=report.origin_at), now=report.origin_at)
    pipeline.advance(PLAY_UNTIL)

    vapid = Vapid(ec.generate_private_key(ec.SECP256R1()), "mailto:duty@example.org")
    async with aiohttp.ClientSession() as session:
        outbox = Outbox(store, make_channels(settings, vapid=vapid), session)
        # deliver everything, including notices policy kept until 07:30 (quiet hours)
        while await outbox.drain_once(datetime.now(UTC) + timedelta(hours=12)):
            pass

    # Chengdu, 1,200 km away, gets nothing about the swarm
    assert phones["chengdu-zh"].received == []

    timeline: dict[str, list[str]] = {}
    for name, phone in phones.items():
        langs = RESIDENTS[name][1]
        lines: list[str] = []
        for payload in phone.received:
            # one notification: every chosen language, in the resident's order, phone-sized
            assert [m["lang"] for m in payload["messages"]] == list(langs)
            for m in payload["messages"]:
                max_title, max_body = PUSH_LIMITS[m["lang"]]
                assert 0 < len(m["title"]) <= max_title, m
                assert 0 < len(m["body"]) <= max_body, m
                if m["lang"] == "bo":
                    assert not has_cjk(m["title"] + m["body"]), m
            if langs == ("bo",):  # a bo-only resident receives no Chinese at all
                assert not any(has_cjk(s) for s in strings(payload)), payload
            assert payload["url"].endswith(f"?lang={langs[0]}")
            stored = load_stored_notice(store.conn, payload["notice_id"])
            decision = store.conn.execute(
                "SELECT at, reason_code, reason_en FROM decisions WHERE notice_id = ? AND "
                "subscriber_id = ?", (payload["notice_id"], ids[name])).fetchone()
            event = store.event(stored.notice.event_id)
            waits = " (waits until 07:30)" if "waits until" in decision[2] else ""
            lines.append(f"{bjt(datetime.fromtimestamp(decision[0], UTC))} BJT{waits}  "
                         f"{stored.notice.kind} {stored.notice.msg_type}  ({decision[1]}; "
                         f"M{event.magnitude:.1f} of {bjt(event.origin_at)})")
            lines += [f"  [{m['lang']}] {m['title']}\n       {m['body']}"
                      for m in payload["messages"]]
        timeline[name] = lines

    lhasa = phones["lhasa-zh-bo"].received
    events = {p["notice_id"]: store.event(load_stored_notice(store.conn, p["notice_id"])
                                          .notice.event_id) for p in lhasa}

    # the M4.5 of 2024-11-07: its page states the context line, counting the quake itself
    (m45,) = [nid for nid, e in events.items()
              if e.magnitude == 4.5 and bjt(e.origin_at).startswith("2024-11-07")
              and load_stored_notice(store.conn, nid).notice.kind.startswith("official_report")]
    client = await aiohttp_client(make_app(settings, store=store))
    page = await (await client.get(f"/n/{m45}")).text()
    assert "震中周边200千米内近5年来发生3级以上地震共11次，本次地震是其中最大的一次。" in page
    assert "此前最大为2024年10月31日4.1级地震。" in page

    # the M4.4 of 2024-11-18 15:01 was felt in Lhasa: it is explained as part of the swarm
    m44 = [nid for nid, e in events.items()
           if e.magnitude == 4.4 and bjt(e.origin_at).startswith("2024-11-18")]
    assert len(m44) == 1
    (payload,) = [p for p in lhasa if p["notice_id"] == m44[0]]
    assert "属同一震群活动" in payload["messages"][0]["body"]
    assert "ས་ཡོམ་ཐེངས་མང་པོའི་ནང་གི་གཅིག" in payload["messages"][1]["body"]

    # a report's push opens with the resident's own shaking (what a collapsed notification shows)
    for name, district in (("lhasa-zh-bo", "城关区"), ("dagze-zh-en", "达孜区")):
        for p in phones[name].received:
            zh = p["messages"][0]
            if load_stored_notice(store.conn, p["notice_id"]).notice.kind.startswith(
                    "official_report"):
                assert zh["title"].endswith(f"{district}震感轻微"), zh
                assert zh["body"].startswith(f"{district}估计烈度Ⅲ度，不会造成破坏。请保持冷静。")

    # quakes nobody in Lhasa felt (II or less) are never pushed there: no daily summary
    kinds = [load_stored_notice(store.conn, p["notice_id"]).notice.kind
             for p in phones["lhasa-zh-bo"].received]
    assert kinds == ["official_report+felt_guidance", "swarm_advisory",
                     "official_report+felt_guidance"]

    # Dagze felt the M4.4 (15:01:56) and the M4.1 (15:06:24): the hourly budget folds the M4.1,
    # and Dagze's next notice (three hours on, not within the hour) names it
    dagze = phones["dagze-zh-en"].received
    after = [i for i, p in enumerate(dagze)
             if store.event(load_stored_notice(store.conn, p["notice_id"]).notice.event_id
                            ).magnitude == 4.4]
    assert len(after) == 1 and len(dagze) > after[0] + 1
    nxt = dagze[after[0] + 1]
    assert nxt["messages"][0]["body"].startswith(
        "此前还有1次有感地震（11月18日15时06分，4.1级），属同一震群活动。")
    assert nxt["messages"][1]["body"].startswith(
        "Earlier, one more felt earthquake (15:06 Beijing time, 18 Nov, M4.1)")
    folded = store.conn.execute(
        "SELECT count(*) FROM decisions WHERE reason_code = 'felt_folded' AND subscriber_id = ?",
        (ids["dagze-zh-en"],)).fetchone()[0]
    assert folded == 1

    # CAP: every bo-CN <info> of every notice holds Tibetan only
    notice_ids = [r[0] for r in store.conn.execute("SELECT id FROM notices")]
    assert notice_ids
    for nid in notice_ids:
        resp = await client.get(f"/cap/{nid}.xml")
        assert resp.status == 200
        doc = etree.parse(io.BytesIO(await resp.read()))
        for info in doc.getroot().iter(f"{CAP}info"):
            if info.findtext(f"{CAP}language") == "bo-CN":
                assert not has_cjk("".join(info.itertext())), nid

    store.close()
    assert "\n".join(f"== {name}\n" + "\n".join(lines) for name, lines in timeline.items()
                     ) == snapshot
