"""A store filled for the dashboard tests: two real sequences, notices, decisions, deliveries.

Maizhokunggar 2024 (CENC official values, the M4.1 epicentre assumed at the M4.5 one, as in
tests/seqdata.py) and a Ridgecrest 2019 slice (SCEDC, doi:10.7909/C3WD3xH1, from
tests/fixtures/catalogs/scedc-ridgecrest-2019.csv: M >= 2.5, 2019-07-04 to 07-07 12:00 UTC).
Sequences are saved at several instants so the type history has real re-typings.
"""

from __future__ import annotations

import csv
from datetime import UTC, datetime, timedelta
from pathlib import Path

from quakealert.core.classify import classify_events, sequence_to_json
from quakealert.core.sequences import SequenceParams
from quakealert.model import Message, Notice, Report
from quakealert.store.decisions import DecisionRow, save_decisions
from quakealert.store.notices import AreaCircle, save_notice
from quakealert.store.outbox import claim, enqueue, mark_failed, mark_gone, mark_sent
from quakealert.store.sequences import list_sequences, save_sequence
from quakealert.store.sqlite import Store

CATALOGS = Path(__file__).parent.parent / "fixtures" / "catalogs"
MZ_NOW = datetime(2024, 11, 9, tzinfo=UTC)
RC_NOW = datetime(2019, 7, 7, 12, tzinfo=UTC)


def maizhokunggar_reports() -> list[Report]:
    """The three M >= 4 events of the 2024 swarm as CENC official reports."""
    def cenc(at: datetime, lat: float, lon: float, mag: float) -> Report:
        return Report(source="cenc", source_id=f"CC{at:%Y%m%d%H%M}", origin_at=at, latitude=lat,
                      longitude=lon, depth_km=10.0, magnitude=mag, mag_type="M",
                      place="西藏拉萨市墨竹工卡县")

    return [
        cenc(datetime(2024, 10, 31, 1, 32, tzinfo=UTC), 29.85, 92.25, 4.1),
        cenc(datetime(2024, 11, 6, 20, 19, tzinfo=UTC), 29.85, 92.25, 4.5),
        cenc(datetime(2024, 11, 8, 5, 0, tzinfo=UTC), 29.81, 92.26, 4.0),
    ]


def ridgecrest_reports() -> list[Report]:
    """SCEDC Ridgecrest 2019, M >= 2.5 from 07-04 to 07-07 12:00 UTC (1303 events)."""
    out = []
    with (CATALOGS / "scedc-ridgecrest-2019.csv").open(newline="") as f:
        for row in csv.DictReader(f):
            at = datetime.fromisoformat(row["time"])
            if not (datetime(2019, 7, 4, tzinfo=UTC) <= at < RC_NOW) or float(row["mag"]) < 2.5:
                continue
            out.append(Report(source="scedc", source_id=row["id"], origin_at=at,
                              latitude=float(row["latitude"]), longitude=float(row["longitude"]),
                              depth_km=float(row["depth"]), magnitude=float(row["mag"]),
                              mag_type=row["magType"], event_type="earthquake"))
    return out


def save_at(store: Store, now: datetime) -> None:
    """Classify what the store knows at ``now`` and save every sequence."""
    events = store.events(endtime=now, limit=None)
    for seq, cls in classify_events(events, SequenceParams(), now):
        save_sequence(store.conn, sequence_to_json(seq, cls, now), now)


def fill(store: Store) -> dict[str, str]:
    """Ingest, classify at several instants, add notices/decisions/deliveries; returns ids."""
    store.ingest(maizhokunggar_reports(), now=MZ_NOW)
    store.ingest(ridgecrest_reports(), now=RC_NOW)
    for now in (datetime(2019, 7, 4, 20, tzinfo=UTC), RC_NOW,
                datetime(2024, 10, 31, 1, 50, tzinfo=UTC), datetime(2024, 11, 7, tzinfo=UTC),
                MZ_NOW):
        save_at(store, now)
    seqs = {s["largest"]["magnitude"]: s for s in list_sequences(store.conn)}
    mz, rc = seqs[4.5], seqs[7.1]
    conn = store.conn
    m45 = mz["largest"]["id"]
    created = datetime(2024, 11, 6, 20, 25, tzinfo=UTC)
    released = Notice(
        id="ntc-mz-felt", sequence_id=mz["id"], event_id=m45, kind="felt_guidance",
        msg_type="Alert", created_at=created, messages=(
            Message("zh", "墨竹工卡县4.5级地震", "拉萨市区可能有感。请保持冷静，远离危险建筑。"),
            Message("bo", "མལ་གྲོ་གུང་དཀར་རྫོང་ལ་ས་ཡོམ།", "ས་ཡོམ་བྱུང་།"),
            Message("en", "M4.5 earthquake, Maizhokunggar", "Likely felt in Lhasa. Stay calm."),
        ))
    save_notice(conn, released, "released", at=created + timedelta(minutes=2),
                area=AreaCircle(29.85, 92.25, 200.0, "Lhasa"))
    pending = Notice(
        id="ntc-mz-swarm", sequence_id=mz["id"], event_id=m45, kind="swarm_advisory",
        msg_type="Update", created_at=datetime(2024, 11, 8, 5, 10, tzinfo=UTC),
        references=("ntc-mz-felt",), messages=(
            Message("zh", "墨竹工卡县震群提示", "近期震群活动持续，请注意防范。"),
            Message("en", "Swarm advisory, Maizhokunggar", "The swarm goes on; stay prepared."),
        ))
    save_notice(conn, pending, "pending_approval")
    enqueue(conn, "ntc-mz-felt", [(i, "webpush", f"https://push.example/{i}") for i in range(1, 6)]
            + [(6, "webhook", "https://gw.example/sms")], now=created)
    rows = claim(conn, 10, created + timedelta(minutes=3))
    for r in rows:
        at = created + timedelta(minutes=4)
        if r.subscriber_id == 5:
            mark_gone(conn, r.id, at=at, status=410)
        elif r.subscriber_id == 6:
            mark_failed(conn, r.id, at=at, error="gateway said 400", status=400)
        else:
            mark_sent(conn, r.id, at=at, status=201)
    save_decisions(conn, [
        DecisionRow(at=created, sequence_id=mz["id"], event_id=m45, send=True,
                    reason_code="felt", kind="felt_guidance", msg_type="Alert",
                    notice_id="ntc-mz-felt", area="chengguan", degree=4, count=6,
                    reason_en="M4.5 at 110 km: predicted intensity IV, threshold III",
                    reason_zh="M4.5，距离110公里：预计烈度四度，阈值三度"),
        DecisionRow(at=created, sequence_id=mz["id"], event_id=m45, send=False,
                    reason_code="below_threshold", area="shigatse", degree=2, count=40,
                    reason_en="M4.5 at 290 km: predicted intensity II, below threshold III",
                    reason_zh="M4.5，距离290公里：预计烈度二度，低于阈值三度"),
    ])
    return {"mz": mz["id"], "rc": rc["id"], "pending": "ntc-mz-swarm", "released": "ntc-mz-felt"}
