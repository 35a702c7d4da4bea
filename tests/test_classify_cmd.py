"""`quakealert classify` end to end, through the replay reader."""

import json
from pathlib import Path

from quakealert.cli import main

CATALOGS = Path(__file__).parent / "fixtures" / "catalogs"


def run_json(capsys, *args):
    assert main(["classify", *args, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_ridgecrest_file_is_fma(capsys):
    """The whole Ridgecrest file: one FMA sequence with the M7.1 as largest event."""
    out = run_json(capsys, str(CATALOGS / "scedc-ridgecrest-2019.csv"))
    assert out["classified_at"] == "2019-10-11T06:45:11.390000Z"
    big = max(out["sequences"], key=lambda s: s["n_events"])
    assert big["type"] == "foreshock-mainshock-aftershock" and big["final"] is True
    assert big["largest"]["id"] == "ci38457511" and big["largest"]["magnitude"] == 7.1
    assert big["delta_m"] == 0.7 and 0.85 < big["energy_ratio"] < 0.95
    assert "ci38443183" in big["foreshock_ids"]
    for key in ("id", "type", "final", "n_events", "largest", "delta_m", "energy_ratio",
                "reasons", "context", "stats", "forecast"):
        assert key in big


def test_at_between_m64_and_m71(capsys):
    """--at 12 h after the M6.4: the M6.4 is the largest event and the type is undetermined."""
    out = run_json(capsys, str(CATALOGS / "scedc-ridgecrest-2019.csv"),
                   "--at", "2019-07-05T05:33:49Z")
    big = max(out["sequences"], key=lambda s: s["n_events"])
    assert big["largest"]["id"] == "ci38443183" and big["type"] == "undetermined"


def test_region_filter_and_text_mode(capsys):
    """--region keeps events within the circle; text mode prints type, reasons, context."""
    assert main(["classify", str(CATALOGS / "usgs-lhasa-300km-m5-1905-2018.csv"),
                 "--region", "29.8,90.35,60", "--at", "2009-06-01T00:00:00Z"]) == 0
    text = capsys.readouterr().out
    assert "usp000gjgt" in text and "mainshock-aftershock 主震-余震型" in text
    assert "ΔM 0.80" in text and "context:" in text


def test_bad_region_is_an_error(capsys):
    """A malformed --region exits 2 with a message."""
    assert main(["classify", str(CATALOGS / "cenc-tibet-events-from-news.csv"),
                 "--region", "30"]) == 2
    assert "--region" in capsys.readouterr().err
