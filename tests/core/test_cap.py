"""CAP 1.2 alerts and the Atom feed: every alert validates against the OASIS XSD."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from pathlib import Path

import pytest
from lxml import etree

from quakealert.core.cap import CapReference, build_atom_feed, build_cap, severity_for
from quakealert.core.render import NoticeContext, has_cjk, render_notice
from quakealert.model import Notice

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "cap"
NS = {"cap": "urn:oasis:names:tc:emergency:cap:1.2"}
SENT = datetime(2024, 11, 6, 20, 30, tzinfo=UTC)
SENDER = "quakealert@lhasa.example"


@pytest.fixture(scope="module")
def schema() -> etree.XMLSchema:
    return etree.XMLSchema(etree.parse(str(FIXTURES / "cap-1.2.xsd")))


def valid(schema: etree.XMLSchema, xml: bytes) -> etree._Element:
    doc = etree.fromstring(xml)
    assert schema.validate(doc), schema.error_log
    return doc


@pytest.mark.parametrize(
    "name",
    [
        "cap-1.2-oasis-amber-alert-example.xml",
        "cap-1.2-oasis-earthquake-update-example.xml",
        "cap-1.2-geonet-earthquake-2015p822263.xml",
    ],
)
def test_published_examples_validate(schema: etree.XMLSchema, name: str) -> None:
    """The three published CAP 1.2 examples validate (the validator works)."""
    assert schema.validate(etree.parse(str(FIXTURES / name))), schema.error_log


def test_validator_rejects_a_broken_alert(schema: etree.XMLSchema) -> None:
    """An alert without <status> is invalid (the validator can fail)."""
    doc = etree.parse(str(FIXTURES / "cap-1.2-oasis-earthquake-update-example.xml")).getroot()
    doc.remove(doc.find("cap:status", NS))
    assert not schema.validate(doc)


def notice_for(ctx: NoticeContext, kinds: tuple[str, ...], msg_type: str, **kw) -> Notice:  # type: ignore[no-untyped-def]
    msgs = render_notice(kinds, ctx, ("zh", "bo", "en"), now=SENT)
    return Notice(
        id=kw.pop("id", "qa-1"),
        sequence_id="seq",
        event_id=ctx.event_id,
        kind=kinds[0],
        msg_type=msg_type,
        messages=msgs,
        created_at=SENT,
        **kw,
    )  # type: ignore[arg-type]


def test_first_felt_alert(schema: etree.XMLSchema, m45: NoticeContext) -> None:
    """K2+K3 becomes one Alert with zh-CN, bo-CN and en-US <info> blocks and a circle area."""
    n = notice_for(
        m45, ("official_report", "felt_guidance"), "Alert", url="https://quakealert.example/n/1"
    )
    doc = valid(
        schema, build_cap(n, m45, sender=SENDER, area_circle=(29.85, 92.25, 120.0), sent_at=SENT)
    )
    assert doc.findtext("cap:sent", namespaces=NS) == "2024-11-06T20:30:00+00:00"
    assert doc.findtext("cap:msgType", namespaces=NS) == "Alert"
    assert doc.find("cap:references", NS) is None
    infos = doc.findall("cap:info", NS)
    assert [i.findtext("cap:language", namespaces=NS) for i in infos] == ["zh-CN", "bo-CN", "en-US"]
    assert [i.findtext("cap:event", namespaces=NS) for i in infos] == [
        "地震",
        "ས་ཡོམ།",
        "Earthquake",
    ]
    for info in infos:
        assert info.findtext("cap:category", namespaces=NS) == "Geo"
        assert info.findtext("cap:urgency", namespaces=NS) == "Past"
        assert info.findtext("cap:certainty", namespaces=NS) == "Observed"
        assert info.findtext("cap:severity", namespaces=NS) == "Minor"  # epicentral V
        assert info.findtext("cap:area/cap:circle", namespaces=NS) == "29.8500,92.2500 120.0"
    # area-specific: the headline names the area whose shaking it states
    assert infos[0].findtext("cap:headline", namespaces=NS) == "【有感地震】墨竹工卡县4.5级地震，城关区震感轻微"
    assert infos[0].findtext("cap:area/cap:areaDesc", namespaces=NS) == "西藏拉萨市墨竹工卡县"
    params = {p.findtext("cap:valueName", namespaces=NS): p.findtext("cap:value", namespaces=NS)
              for p in infos[0].findall("cap:parameter", NS)}
    assert params["MaxIntensityCSIS"] == "5" and params["AreaEstimatedIntensityCSIS"] == "3"
    assert "EstimatedIntensityCSIS" not in params
    xml = etree.tostring(doc, encoding="unicode")
    assert "您所在地" not in xml and "your area" not in xml
    bo = infos[1]
    assert not has_cjk("".join(bo.itertext()))  # Tibetan is Tibetan in the bo-CN <info>


def test_public_alert_without_an_area_names_no_one(schema: etree.XMLSchema, m45: NoticeContext) -> None:
    """Without a resident's area the headline is the event title and nothing addresses 'you'."""
    ctx = dataclasses.replace(m45, recipient_place_key=None, recipient_degree=None)
    n = notice_for(ctx, ("official_report", "felt_guidance"), "Alert")
    doc = valid(schema, build_cap(n, ctx, sender=SENDER, area_circle=(29.85, 92.25, 120.0),
                                  sent_at=SENT))
    infos = doc.findall("cap:info", NS)
    assert infos[0].findtext("cap:headline", namespaces=NS) == "【有感地震】墨竹工卡县4.5级地震"
    xml = etree.tostring(doc, encoding="unicode")
    assert "您所在地" not in xml and "your area" not in xml and "AreaEstimated" not in xml


def test_provisional_swarm_type_is_likely(schema: etree.XMLSchema, m45: NoticeContext) -> None:
    """A swarm advisory on our automatic, provisional type is Likely; an official type Observed."""
    ours = notice_for(m45, ("swarm_advisory",), "Update", references=("qa-1",))
    ref = (CapReference(SENDER, "qa-1", SENT),)
    doc = valid(schema, build_cap(ours, m45, sender=SENDER, area_circle=(29.85, 92.25, 120.0),
                                  sent_at=SENT, references=ref))
    assert {i.findtext("cap:certainty", namespaces=NS) for i in doc.findall("cap:info", NS)} == {
        "Likely"}
    official = dataclasses.replace(m45, type_official=True, type_source="tibet_ea")
    n2 = notice_for(official, ("swarm_advisory",), "Update", references=("qa-1",))
    doc2 = valid(schema, build_cap(n2, official, sender=SENDER,
                                   area_circle=(29.85, 92.25, 120.0), sent_at=SENT,
                                   references=ref))
    assert {i.findtext("cap:certainty", namespaces=NS) for i in doc2.findall("cap:info", NS)} == {
        "Observed"}


def test_update_carries_references(schema: etree.XMLSchema, m45: NoticeContext, previous) -> None:  # type: ignore[no-untyped-def]
    """K6 is an Update whose <references> holds sender,identifier,sent of the superseded alert."""
    ctx = dataclasses.replace(m45, previous=previous)
    n = notice_for(ctx, ("update",), "Update", id="qa-2", references=("n-auto-1",))
    ref = CapReference(SENDER, "n-auto-1", previous.sent_at)
    doc = valid(
        schema,
        build_cap(
            n, ctx, sender=SENDER, area_circle=(29.85, 92.25, 120), sent_at=SENT, references=(ref,)
        ),
    )
    assert (
        doc.findtext("cap:references", namespaces=NS)
        == f"{SENDER},n-auto-1,2024-11-06T20:21:00+00:00"
    )
    with pytest.raises(ValueError, match="references"):
        build_cap(n, ctx, sender=SENDER, area_circle=(29.85, 92.25, 120), sent_at=SENT)


def test_cancel_is_unlikely(schema: etree.XMLSchema, m45: NoticeContext, previous) -> None:  # type: ignore[no-untyped-def]
    """K7 is a Cancel with certainty Unlikely."""
    ctx = dataclasses.replace(m45, previous=previous)
    n = notice_for(ctx, ("cancel",), "Cancel", id="qa-3")
    doc = valid(
        schema,
        build_cap(
            n,
            ctx,
            sender=SENDER,
            area_circle=(29.85, 92.25, 120),
            sent_at=SENT,
            references=(CapReference(SENDER, "n-auto-1", previous.sent_at),),
        ),
    )
    assert doc.findtext("cap:msgType", namespaces=NS) == "Cancel"
    assert {i.findtext("cap:certainty", namespaces=NS) for i in doc.findall("cap:info", NS)} == {
        "Unlikely"
    }


@pytest.mark.parametrize(
    ("kind", "urgency"), [("strong_guidance", "Immediate"), ("swarm_advisory", "Expected")]
)
def test_guidance_urgency(
    schema: etree.XMLSchema, m45: NoticeContext, kind: str, urgency: str
) -> None:
    """Strong-quake guidance is Immediate, swarm advisories Expected; automatic parameters are Likely."""
    ctx = dataclasses.replace(
        m45, status="automatic", recipient_degree=6 if kind == "strong_guidance" else 3
    )
    n = notice_for(ctx, (kind,), "Alert")
    doc = valid(
        schema, build_cap(n, ctx, sender=SENDER, area_circle=(29.85, 92.25, 120), sent_at=SENT)
    )
    info = doc.find("cap:info", NS)
    assert info.findtext("cap:urgency", namespaces=NS) == urgency
    assert info.findtext("cap:certainty", namespaces=NS) == "Likely"
    if kind == "strong_guidance":
        assert info.findtext("cap:severity", namespaces=NS) == "Moderate"


def test_exercise_and_test_status(schema: etree.XMLSchema, m45: NoticeContext) -> None:
    """Drill notices go out as Exercise even if Actual was asked; K9 is always Test."""
    drill = notice_for(
        dataclasses.replace(m45, exercise=True), ("official_report",), "Alert", exercise=True
    )
    doc = valid(
        schema, build_cap(drill, m45, sender=SENDER, area_circle=(29.85, 92.25, 50), sent_at=SENT)
    )
    assert doc.findtext("cap:status", namespaces=NS) == "Exercise"
    test = notice_for(m45, ("test",), "Alert")
    doc = valid(
        schema, build_cap(test, m45, sender=SENDER, area_circle=(29.85, 92.25, 50), sent_at=SENT)
    )
    assert doc.findtext("cap:status", namespaces=NS) == "Test"


@pytest.mark.parametrize(
    ("degree", "severity"),
    [(3, "Minor"), (5, "Minor"), (6, "Moderate"), (7, "Severe"), (9, "Extreme")],
)
def test_severity_mapping(degree: int, severity: str) -> None:
    """≤V Minor, VI Moderate, VII Severe, ≥VIII Extreme (messages.md §6.5)."""
    assert severity_for(degree) == severity


def test_atom_feed() -> None:
    """The Atom feed lists each CAP alert with id, title, updated and a CAP link."""
    xml = build_atom_feed(
        [("qa-1", "【正式测定】拉萨市墨竹工卡县4.5级地震", SENT, "https://q.example/cap/qa-1.xml")],
        feed_id="https://q.example/cap/alerts.atom",
        title="quakealert CAP",
        updated_at=SENT,
    )
    atom = {"a": "http://www.w3.org/2005/Atom"}
    doc = etree.fromstring(xml)
    assert doc.tag == "{http://www.w3.org/2005/Atom}feed"
    assert doc.findtext("a:updated", namespaces=atom) == "2024-11-06T20:30:00Z"
    (entry,) = doc.findall("a:entry", atom)
    assert entry.findtext("a:id", namespaces=atom) == "https://q.example/cap/alerts.atom/qa-1"
    assert entry.findtext("a:title", namespaces=atom) == "【正式测定】拉萨市墨竹工卡县4.5级地震"
    link = entry.find("a:link", atom)
    assert (link.get("type"), link.get("href")) == (
        "application/cap+xml",
        "https://q.example/cap/qa-1.xml",
    )
