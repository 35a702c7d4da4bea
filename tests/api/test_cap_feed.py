"""The public CAP routes: Atom feed of released notices and each notice's CAP (XSD-valid)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from lxml import etree

from quakealert.api.app import make_app
from quakealert.config import Settings
from quakealert.model import Message, Notice, Report
from quakealert.store.notices import AreaCircle, save_cap, save_notice, set_notice_state

XSD = Path(__file__).resolve().parents[1] / "fixtures" / "cap" / "cap-1.2.xsd"
CAP = {"cap": "urn:oasis:names:tc:emergency:cap:1.2"}
ATOM = {"a": "http://www.w3.org/2005/Atom"}
ORIGIN = datetime(2024, 11, 6, 20, 19, 52, tzinfo=UTC)


def notice(nid: str, minutes: int, **kw) -> Notice:
    fields = {"id": nid, "sequence_id": "seq-1", "event_id": kw.pop("event_id"), "kind": "felt_guidance",
                  "msg_type": "Alert", "created_at": ORIGIN + timedelta(minutes=minutes),
                  "messages": (Message("zh", f"地震 {nid}", "请保持冷静"),
                            Message("bo", "ས་ཡོམ།", "སེམས་ཁྲལ་མ་བྱེད།"),
                            Message("en", f"Quake {nid}", "Stay calm"))}
    fields.update(kw)
    return Notice(**fields)


@pytest.fixture
async def client(tmp_path, store, aiohttp_client):
    result = store.ingest([Report(
        source="cenc", source_id="CC20241107041952", origin_at=ORIGIN, latitude=29.85,
        longitude=92.25, depth_km=10.0, magnitude=4.5, mag_type="M", status="reviewed",
        place="西藏拉萨市墨竹工卡县")], now=ORIGIN + timedelta(minutes=5))
    event_id = result.created[0]
    conn = store.conn
    at = ORIGIN + timedelta(minutes=10)
    save_notice(conn, notice("n1", 6, event_id=event_id), "released", at=at,
                area=AreaCircle(29.85, 92.25, 120.0))
    save_notice(conn, notice("n2", 20, event_id=event_id, msg_type="Update", kind="update",
                             references=("n1",)), "pending_approval")
    set_notice_state(conn, "n2", "released", at=at + timedelta(minutes=15))
    save_notice(conn, notice("n3", 30, event_id=event_id), "pending_approval")  # not public
    save_notice(conn, notice("n4", 40, event_id=event_id, exercise=True), "released",
                at=at + timedelta(minutes=40))
    save_notice(conn, notice("rej", 50, event_id=event_id), "rejected")
    settings = Settings(store_path=tmp_path / "t.sqlite", var_dir=tmp_path / "var", sections={
        "ratelimit": {"enabled": False},
        "cap": {"sender": "quakealert@lhasa.example", "base_url": "https://qa.example"}})
    return await aiohttp_client(make_app(settings, store=store))


@pytest.fixture(scope="module")
def schema():
    return etree.XMLSchema(etree.parse(str(XSD)))


async def test_feed_lists_released_newest_first(client):
    """Only released notices, newest release first, each linking to its CAP message."""
    resp = await client.get("/cap/alerts.atom")
    assert resp.status == 200 and resp.content_type == "application/atom+xml"
    feed = etree.fromstring(await resp.read())
    hrefs = feed.xpath("a:entry/a:link/@href", namespaces=ATOM)
    assert hrefs == ["https://qa.example/cap/n4.xml", "https://qa.example/cap/n2.xml",
                     "https://qa.example/cap/n1.xml"]
    titles = feed.xpath("a:entry/a:title/text()", namespaces=ATOM)
    assert titles[0].startswith("EXERCISE") and titles[2] == "Quake n1"
    assert feed.xpath("a:updated/text()", namespaces=ATOM) == ["2024-11-06T21:09:52Z"]


async def test_cap_of_a_notice_is_valid(client, schema):
    """The CAP of a released notice validates against the XSD and carries the stored circle,
    one <info> per language, and the sender from the config."""
    resp = await client.get("/cap/n1.xml")
    assert resp.status == 200 and resp.content_type == "application/cap+xml"
    doc = etree.fromstring(await resp.read())
    assert schema.validate(doc), schema.error_log
    assert doc.findtext("cap:identifier", namespaces=CAP) == "n1"
    assert doc.findtext("cap:sender", namespaces=CAP) == "quakealert@lhasa.example"
    assert doc.findtext("cap:sent", namespaces=CAP) == "2024-11-06T20:29:52+00:00"
    assert doc.xpath("cap:info/cap:language/text()", namespaces=CAP) == ["zh-CN", "bo-CN", "en-US"]
    assert set(doc.xpath("//cap:circle/text()", namespaces=CAP)) == {"29.8500,92.2500 120.0"}


async def test_update_references_and_exercise(client, schema):
    """An Update references the notice it replaces; a drill is status Exercise."""
    doc = etree.fromstring(await (await client.get("/cap/n2.xml")).read())
    assert schema.validate(doc), schema.error_log
    assert doc.findtext("cap:msgType", namespaces=CAP) == "Update"
    assert doc.findtext("cap:references", namespaces=CAP) == (
        "quakealert@lhasa.example,n1,2024-11-06T20:29:52+00:00")
    doc = etree.fromstring(await (await client.get("/cap/n4.xml")).read())
    assert schema.validate(doc), schema.error_log
    assert doc.findtext("cap:status", namespaces=CAP) == "Exercise"


async def test_unreleased_and_unknown_are_404(client):
    """Pending, rejected and unknown notices are not public."""
    for nid in ("n3", "rej", "nope"):
        resp = await client.get(f"/cap/{nid}.xml")
        assert resp.status == 404, nid


async def test_stored_cap_is_served_unchanged(client, store):
    """A CAP kept at release is served byte for byte."""
    save_cap(store.conn, "n1", b"<?xml version='1.0'?><alert>kept</alert>")
    resp = await client.get("/cap/n1.xml")
    assert await resp.read() == b"<?xml version='1.0'?><alert>kept</alert>"
