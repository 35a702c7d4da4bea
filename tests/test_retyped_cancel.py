"""A quake residents were told about that the agency later retypes as an explosion (CENC 爆破 /
疑爆 official, USGS "quarry blast"): the notice is withdrawn with a CAP Cancel that says it was not
an earthquake, in zh, bo and en, to exactly the residents who got it (issue 11); duty staff see
the event's type, the first notice's status and why."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from lxml import etree

from quakealert.api.app import make_app
from quakealert.channels import make_channels
from quakealert.config import Settings
from quakealert.core.render import has_cjk
from quakealert.model import Report
from quakealert.service.dispatch import Outbox
from quakealert.service.pipeline import Pipeline
from quakealert.store import decisions as dec
from quakealert.store import notices as nt
from quakealert.store.auth import create_token
from quakealert.store.sqlite import Store
from quakealert.store.subscribers import NewSubscriber, add_subscriber
from tests.conftest import FIXTURES
from tests.scenario import M45_AT, swarm

LHASA = (29.65, 91.13)  # ~110 km from the M4.5: predicted III, felt (DESIGN.md)
CHENGDU = (30.66, 104.07)  # ~1150 km: nothing
XSD = etree.XMLSchema(etree.parse(str(FIXTURES / "cap" / "cap-1.2.xsd")))
CAP = "{urn:oasis:names:tc:emergency:cap:1.2}"


def m45() -> Report:
    """The real CENC row of the 2024-11-07 04:19:53 BJT M4.5 (bundled scenario)."""
    (row,) = [r for r in swarm() if r.origin_at == M45_AT]
    assert (row.magnitude, row.event_type) == (4.5, "earthquake")
    return row


class Gateway:
    """The office's webhook gateway on 127.0.0.1: keeps what each resident's hook got."""

    def __init__(self) -> None:
        self.got: list[tuple[str, dict[str, object]]] = []

    async def hook(self, request: web.Request) -> web.Response:
        self.got.append((request.match_info["who"], await request.json()))
        return web.Response(status=200)


@pytest.fixture
async def gateway(aiohttp_server):  # type: ignore[no-untyped-def]
    g = Gateway()
    app = web.Application()
    app.router.add_post("/hook/{who}", g.hook)
    server = await aiohttp_server(app)
    g.base = str(server.make_url("/"))  # type: ignore[attr-defined]
    return g


async def drain(store: Store, settings: Settings) -> None:
    async with aiohttp.ClientSession() as session:
        outbox = Outbox(store, make_channels(settings), session)
        while await outbox.drain_once(datetime.now(UTC)):
            pass


async def test_explosion_retyping_cancels_what_was_sent(
        gateway: Gateway, tmp_path: Path, aiohttp_client) -> None:  # type: ignore[no-untyped-def]
    """M4.5 notified and delivered to two Lhasa residents; CENC then types it 爆破 (explosion):
    each of them gets a Cancel referencing their notice, saying it was an explosion; Chengdu
    gets nothing; the API shows the event as an explosion, the first notice as cancelled by the
    Cancel, and the not-sent decision under the sequence the event left."""
    store = Store.open(tmp_path / "q.sqlite")
    t0 = datetime(2024, 10, 1, tzinfo=UTC)
    for who, (lat, lon), langs in (("lhasa-zh-bo", LHASA, ("zh", "bo")),
                                   ("lhasa-en", LHASA, ("en",)),
                                   ("chengdu", CHENGDU, ("zh",))):
        add_subscriber(store.conn, NewSubscriber(lat, lon, langs, "webhook",
                                                 f"{gateway.base}hook/{who}", secret="s"), now=t0)
    settings = Settings(store_path=tmp_path / "q.sqlite", var_dir=tmp_path / "var",
                        sections={"webpush": {"allow_insecure_endpoints": True}})
    pipeline = Pipeline(store, settings, exercise=True)
    quake = m45()
    at = M45_AT + timedelta(minutes=2)
    (first,) = pipeline.process(store.ingest([quake], now=at), now=at)
    await drain(store, settings)
    assert sorted(who for who, _ in gateway.got) == ["lhasa-en", "lhasa-zh-bo"]
    (event,) = store.events(limit=None)
    seq_id = pipeline.engine.sequence_of(event.id)
    assert seq_id is not None

    later = M45_AT + timedelta(minutes=40)
    retyped = replace(quake, event_type="explosion", updated_at=later)
    result = store.ingest([retyped], now=later)
    assert result.revised == [event.id]
    (cancel_id,) = pipeline.process(result, now=later)
    assert pipeline.engine.sequence_of(event.id) is None  # no longer a member of any sequence

    cancel = nt.load_stored_notice(store.conn, cancel_id)
    assert (cancel.notice.kind, cancel.notice.msg_type) == ("cancel", "Cancel")
    assert cancel.notice.references == (first,) and cancel.state == "released"
    queued = store.conn.execute(
        "SELECT s.target FROM outbox o JOIN subscribers s ON s.id = o.subscriber_id"
        " WHERE o.notice_id = ? ORDER BY s.target", (cancel_id,)).fetchall()
    assert [r[0].rsplit("/", 1)[1] for r in queued] == ["lhasa-en", "lhasa-zh-bo"]
    text = {m.lang: m for m in cancel.notice.messages}
    assert "爆破" in text["zh"].push_body and "不是天然地震" in text["zh"].push_body
    assert "explosion, not an earthquake" in text["en"].push_body
    assert "འབར་གས" in text["bo"].push_body and not has_cjk(text["bo"].body)
    assert "ས་ཡོམ་དངོས་མ་ཡིན" in text["bo"].body
    assert text["zh"].title.count("【演练】") == 1  # the drill marker once, not once per notice

    sent = [(d["reason_code"], d["msg_type"]) for d in dec.list_decisions(store.conn, send=True)]
    assert sent == [("first_felt", "Alert")] * 2 + [("event_not_earthquake", "Cancel")] * 2
    why = [d for d in dec.list_decisions(store.conn, send=False)
           if d["reason_code"] == "not_earthquake"]
    assert [d["sequence_id"] for d in why] == [seq_id]
    assert "Not sent: explosion" in why[0]["reason_en"]
    assert why[0]["reason_zh"].startswith("未发送：爆破")

    gateway.got.clear()
    await drain(store, settings)
    got = {who: body for who, body in gateway.got}
    assert sorted(got) == ["lhasa-en", "lhasa-zh-bo"]
    assert {body["notice_id"] for body in got.values()} == {cancel_id}

    client = await aiohttp_client(make_app(settings, store=store))
    r = await client.get(f"/cap/{cancel_id}.xml")
    assert r.status == 200
    cap = etree.fromstring(await r.read())
    XSD.assertValid(cap)
    assert cap.findtext(f"{CAP}msgType") == "Cancel"
    assert first in cap.findtext(f"{CAP}references")

    r = await client.get(f"/api/v1/events/{event.id}")
    assert (await r.json())["event"]["event_type"] == "explosion"
    # what residents were told about the event is for duty staff only
    assert (await client.get(f"/api/v1/events/{event.id}/notices")).status == 401
    read = {"Authorization": "Bearer " + create_token(store.conn, "read", "duty desk",
                                                      now=datetime.now(UTC))[1]}
    r = await client.get(f"/api/v1/events/{event.id}/notices", headers=read)
    assert r.status == 200
    page = await r.json()
    assert page["event_type"] == "explosion"
    assert [(n["id"], n["msg_type"], n["state"], n["cancelled_by"]) for n in page["notices"]] == [
        (first, "Alert", "released", [cancel_id]), (cancel_id, "Cancel", "released", [])]
    assert page["notices"][0]["deliveries"]["by_state"]["sent"] == 2
    codes = [(d["reason_code"], d["send"], d["count"]) for d in page["decisions"]]
    assert codes == [("below_threshold", False, 1),  # Chengdu
                     ("first_felt", True, 2), ("not_earthquake", False, 1),
                     ("event_not_earthquake", True, 2)]
    r = await client.get(f"/api/v1/notices/{first}", headers=read)
    assert (await r.json())["notice"]["cancelled_by"] == [cancel_id]
    r = await client.get("/dashboard", params={"lang": "zh"}, headers=read)
    html = await r.text()
    assert "未发送：非天然地震事件" in html and "未发送：爆破" in html and "已撤销（2人）" in html
