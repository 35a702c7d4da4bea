"""`quakealert messages`: PO export for translators, reviewed entries back as sourced, review doc."""

from __future__ import annotations

import shutil
import tomllib
from pathlib import Path

import polib
import pytest

from quakealert.cli import main
from quakealert.cli.messages import export_po, review_markdown
from quakealert.core.render import MESSAGES_DIR, load_catalog

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def messages(tmp_path: Path) -> Path:
    shutil.copytree(MESSAGES_DIR, tmp_path / "messages")
    return tmp_path / "messages"


def test_export_is_a_po_file_translators_can_open(messages: Path, tmp_path: Path) -> None:
    """msgctxt = key, msgid = zh, msgstr = bo; en gloss and provenance as comments; composed fuzzy."""
    out = tmp_path / "bo.po"
    assert main(["messages", "--messages-dir", str(messages), "export", "--lang", "bo",
                 "-o", str(out)]) == 0
    po = polib.pofile(str(out))
    cat = load_catalog(messages)
    bo, zh = cat.glossary["bo"], cat.glossary["zh"]
    assert po.metadata["Language"] == "bo"
    assert po.metadata["Content-Type"] == "text/plain; charset=UTF-8"
    assert [e.msgctxt for e in po] == list(bo)
    by_key = {e.msgctxt: e for e in po}
    felt = by_key["s.felt_low"]
    assert felt.msgid == zh["s.felt_low"].text and felt.msgstr == bo["s.felt_low"].text
    assert "en: In {recipient_place} this earthquake will cause no damage. Stay calm." in felt.comment
    assert "provenance: composed" in felt.comment and "term: " in felt.comment
    assert felt.fuzzy
    # placeholders checked by msgfmt where both texts use the same ones
    assert "python-brace-format" in by_key["s.hotline"].flags
    report = by_key["s.report_official"]
    assert not report.fuzzy and "provenance: sourced" in report.comment
    assert {e.msgctxt for e in po.fuzzy_entries()} == {
        k for k, e in bo.items() if e.status == "composed"}


def test_reviewed_entries_come_back_sourced(messages: Path, tmp_path: Path) -> None:
    """Round trip: a confirmed entry becomes sourced with reviewer and date; a fuzzy one stays
    composed; Chinese or a lost placeholder is refused and the glossary keeps its text."""
    po = export_po(messages)
    by_key = {e.msgctxt: e for e in po}
    corrected = "ས་ཡོམ་འདིས་{recipient_place_loc}གནོད་སྐྱོན་མི་ཐེབས། སེམས་ཁྲལ་མ་བྱེད།"
    by_key["s.felt_low"].msgstr = corrected
    by_key["s.felt_low"].flags.remove("fuzzy")
    by_key["s.swarm_calm"].flags.remove("fuzzy")  # confirmed unchanged
    by_key["s.rumours"].msgstr = "请以官方发布为准"  # Chinese under bo
    by_key["s.rumours"].flags.remove("fuzzy")
    by_key["s.distance"].msgstr = "ས་ཡོམ་གྱི་ལྟེ་བ།"  # placeholders lost
    by_key["s.distance"].flags.remove("fuzzy")
    path = tmp_path / "reviewed.po"
    po.save(str(path))

    rc = main(["messages", "--messages-dir", str(messages), "import", str(path),
               "--reviewer", "Tenzin Dolma", "--date", "2026-12-01"])
    assert rc == 1  # two entries refused, reported

    raw = tomllib.loads((messages / "glossary" / "bo.toml").read_text(encoding="utf-8"))
    assert raw["s.felt_low"]["text"] == corrected
    assert raw["s.felt_low"]["status"] == "sourced"
    assert raw["s.felt_low"]["reviewed_by"] == "Tenzin Dolma"
    assert raw["s.felt_low"]["reviewed_on"] == "2026-12-01"
    assert raw["s.swarm_calm"]["status"] == "sourced"
    assert raw["s.check_home"]["status"] == "composed"  # still fuzzy
    original = load_catalog(MESSAGES_DIR).glossary["bo"]
    for key in ("s.rumours", "s.distance"):
        assert raw[key]["text"] == original[key].text and raw[key]["status"] == "composed"
    cat = load_catalog(messages)  # still a valid catalogue
    assert cat.glossary["bo"]["s.felt_low"].status == "sourced"
    again = {e.msgctxt: e for e in export_po(messages)}
    assert not again["s.felt_low"].fuzzy and "Tenzin Dolma" in again["s.felt_low"].comment


def test_import_needs_a_reviewer(messages: Path, tmp_path: Path) -> None:
    """An import without a named reviewer is refused before anything is written."""
    path = tmp_path / "bo.po"
    export_po(messages).save(str(path))
    before = (messages / "glossary" / "bo.toml").read_bytes()
    assert main(["messages", "--messages-dir", str(messages), "import", str(path),
                 "--reviewer", " "]) == 2
    assert (messages / "glossary" / "bo.toml").read_bytes() == before


def test_review_document_is_current() -> None:
    """docs/tibetan-review.md is what `quakealert messages review` writes from the glossary."""
    assert (REPO / "docs" / "tibetan-review.md").read_text(encoding="utf-8") == review_markdown(
        MESSAGES_DIR)
