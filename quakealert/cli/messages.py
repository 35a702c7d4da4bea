"""`quakealert messages export|import|review`: the Tibetan glossary in translators' own tools.

``export --lang bo`` writes a gettext PO file (Poedit, Weblate): msgctxt = glossary key, msgid = the
Chinese text, msgstr = the Tibetan; the English gloss and the provenance are extracted comments,
and composed entries are ``fuzzy``. ``import FILE.po --reviewer NAME`` takes every reviewed
(non-fuzzy) entry back into ``messages/glossary/bo.toml`` as ``sourced``, with reviewer and date.
``review`` writes ``docs/tibetan-review.md``: every composed entry with the attested terms it uses.
"""

from __future__ import annotations

import argparse
import logging
import re
import string
import sys
import tomllib
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

import polib

from quakealert.core.render import MESSAGES_DIR, CatalogError, has_cjk, parse_glossary

log = logging.getLogger(__name__)

LANGS = ("bo",)  # the glossary translators review; zh and en are written by the project
_HEADER = re.compile(r'^\["?(?P<key>[^"\]]+)"?\]\s*$')


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--messages-dir", type=Path, default=Path(str(MESSAGES_DIR)),
                        help="the messages/ directory (default: the bundled one)")
    sub = parser.add_subparsers(dest="messages_command", required=True)
    exp = sub.add_parser("export", help="write the glossary as a gettext PO file for translators")
    exp.add_argument("--lang", choices=LANGS, default="bo")
    exp.add_argument("-o", "--output", type=Path, default=None, help="PO file (default: stdout)")
    imp = sub.add_parser("import", help="take reviewed PO entries back as sourced")
    imp.add_argument("po", type=Path, metavar="FILE.po")
    imp.add_argument("--reviewer", required=True, help="who reviewed the entries (recorded)")
    imp.add_argument("--date", type=date.fromisoformat, default=None,
                     help="review date YYYY-MM-DD (default: today, UTC)")
    rev = sub.add_parser("review", help="write docs/tibetan-review.md (composed entries)")
    rev.add_argument("-o", "--output", type=Path, default=None, help="default: stdout")


def _load(directory: Path, lang: str) -> dict[str, dict[str, object]]:
    with (directory / "glossary" / f"{lang}.toml").open("rb") as f:
        return tomllib.load(f)


def _placeholders(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


def export_po(directory: Path, lang: str = "bo", *, now: datetime | None = None) -> polib.POFile:
    """The glossary of ``lang`` as a PO catalogue: one entry per key, composed ones fuzzy."""
    bo, zh, en = _load(directory, lang), _load(directory, "zh"), _load(directory, "en")
    po = polib.POFile(wrapwidth=0)
    po.metadata = {
        "Project-Id-Version": "quakealert messages",
        "Report-Msgid-Bugs-To": "https://github.com/quakealert/quakealert/issues",
        "POT-Creation-Date": (now or datetime.now(UTC)).strftime("%Y-%m-%d %H:%M+0000"),
        "PO-Revision-Date": (now or datetime.now(UTC)).strftime("%Y-%m-%d %H:%M+0000"),
        "Last-Translator": "quakealert (composed from attested terms) <noreply@localhost>",
        "Language-Team": "Tibetan <noreply@localhost>",
        "Language": lang,
        "MIME-Version": "1.0",
        "Content-Type": "text/plain; charset=UTF-8",
        "Content-Transfer-Encoding": "8bit",
        "Plural-Forms": "nplurals=1; plural=0;",
    }
    for key, raw in bo.items():
        source_text = str(zh.get(key, {}).get("text") or en.get(key, {}).get("text") or key)
        notes = [f"en: {en[key]['text']}" if key in en else "en: (no English entry)",
                 f"provenance: {raw.get('status', 'sourced')}"]
        if raw.get("source"):
            notes.append(f"source: {raw['source']}")
        notes += [f"term: {t}" for t in raw.get("terms", ())]  # type: ignore[attr-defined]
        flags = ["fuzzy"] if raw.get("status") == "composed" else []
        # msgfmt --check compares msgid and msgstr placeholders: flag only where bo uses the
        # same ones (bo grammar needs case-marked variants such as {place_short_gen})
        if _placeholders(str(raw["text"])) and (
                _placeholders(str(raw["text"])) == _placeholders(source_text)):
            flags.append("python-brace-format")
        po.append(polib.POEntry(msgctxt=key, msgid=source_text, msgstr=str(raw["text"]),
                                comment="\n".join(notes), flags=flags))
    return po


@dataclass(frozen=True, slots=True)
class ImportResult:
    """What an import took, left as composed, and refused (with reasons)."""

    sourced: tuple[str, ...]
    still_fuzzy: tuple[str, ...]
    refused: tuple[str, ...]


def _toml_str(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _replace_block(toml_text: str, key: str, block: str) -> str:
    """The TOML text with the table of ``key`` replaced, comments around it kept."""
    lines = toml_text.splitlines(keepends=True)
    start = next(i for i, ln in enumerate(lines)
                 if (m := _HEADER.match(ln)) and m.group("key") == key)
    end = start + 1
    while end < len(lines) and not lines[end].startswith(("[", "#")) and lines[end].strip():
        end += 1
    return "".join(lines[:start]) + block + "".join(lines[end:])


def import_po(directory: Path, po_path: Path, *, reviewer: str, on: date,
              lang: str = "bo") -> ImportResult:
    """Write reviewed entries of a PO file back into the glossary as ``sourced``.

    An entry is taken when it is not fuzzy, names a known key, is Tibetan (no Chinese) and keeps
    the placeholders of the current text. Anything else is refused and reported, never guessed.
    """
    if not reviewer.strip():
        raise ValueError("a reviewer name is required")
    po = polib.pofile(str(po_path))
    path = Path(str(directory / "glossary" / f"{lang}.toml"))  # a file we write back
    text = path.read_text(encoding="utf-8")
    current = tomllib.loads(text)
    sourced: list[str] = []
    fuzzy: list[str] = []
    refused: list[str] = []
    for entry in po:
        key = entry.msgctxt or ""
        if entry.obsolete:
            continue
        if key not in current:
            refused.append(f"{key or entry.msgid!r}: no such glossary key")
            continue
        if entry.fuzzy or not entry.msgstr.strip():
            fuzzy.append(key)
            continue
        old = current[key]
        new_text = entry.msgstr
        if has_cjk(new_text):
            refused.append(f"{key}: the Tibetan text holds Chinese characters")
            continue
        if _placeholders(new_text) != _placeholders(str(old["text"])):
            refused.append(f"{key}: placeholders {sorted(_placeholders(new_text))} differ from "
                           f"{sorted(_placeholders(str(old['text'])))}")
            continue
        if old.get("status") == "sourced" and new_text == old["text"]:
            continue  # already sourced and unchanged: keep its original citation
        note = f"reviewed by {reviewer.strip()} on {on.isoformat()} (PO import)"
        block = [f'["{key}"]', f"text = {_toml_str(new_text)}", 'status = "sourced"',
                 f"source = {_toml_str(note)}", f"reviewed_by = {_toml_str(reviewer.strip())}",
                 f"reviewed_on = {_toml_str(on.isoformat())}"]
        terms = old.get("terms")
        if isinstance(terms, list) and terms:
            block.append("terms = [" + ", ".join(_toml_str(str(t)) for t in terms) + "]")
        text = _replace_block(text, key, "\n".join(block) + "\n")
        sourced.append(key)
    parse_glossary(lang, tomllib.loads(text))  # the result must still load (raises CatalogError)
    path.write_text(text, encoding="utf-8")
    return ImportResult(tuple(sourced), tuple(fuzzy), tuple(refused))


REVIEW_INTRO = """# Tibetan (bo) wording awaiting a native-speaker review

Generated by `quakealert messages review -o docs/tibetan-review.md` from `messages/glossary/bo.toml`;
`tests/test_messages_cmd.py` fails when this file is out of date.

Every bo entry has Tibetan text. An entry is **sourced** when the sentence or term is quoted from an
official Tibetan text, or **composed** when we built it from attested terms and sentence frames
(`/work/shared/reference/tibetan-guidance.md`, `tibetan-terms.md`, `messages.md` §4). Nothing is
machine-translated, and Chinese never stands under a bo label.

Whether composed Tibetan reaches residents before review is the office's choice:
`[messages] bo_composed = "send"` (demo, drills) or `"hold"` (the deploy example): the bo text then
carries only the sourced sentences and one Tibetan line pointing to the full notice on `/n/{id}`.

How to review: `quakealert messages export --lang bo -o bo.po`, open it in Poedit or Weblate
(msgctxt = key, msgid = the Chinese, the English gloss and the sources of each term are comments;
composed entries are marked fuzzy). Correct the Tibetan, clear the fuzzy flag of each entry you
confirm, then `quakealert messages import bo.po --reviewer "NAME"`: those entries become sourced,
with reviewer and date. Re-run `quakealert messages review -o docs/tibetan-review.md` and update the
snapshots (`pytest tests/core --snapshot-update`) after reading the new renderings.

## Open questions beyond single terms

1. Terms with no attestation at all, composed descriptively: aftershock, swarm, intensity, the
   automatic determination (`attrib.auto`, `auto_provisional`), "stay calm", open ground, Drop-Cover-
   Hold On, the Tibet Earthquake Agency's name (tibetan-guidance.md §5).
2. Intensity is described, not numbered, in bo (no Tibetan term for 烈度 is attested): the push
   says the shaking in words (`shake.*`, `push.band.*`), the notice in `intensity.N.felt`.
3. Rumours: the only attested word, དཀྲོག་གཏམ, is exile register; the PRC term is unknown.
4. The clock: we use the attested PRC pattern པེ་ཅིང་དུས་ཚོད་ཀྱི་ཕྱི་ཟླ་…ཉིན་གྱི་ཆུ་ཚོད་{HH}དང་སྐར་མ་{mm}
   (24-hour, no day-part word); CENC's own report wrote མཚན་དཀྱིལ་ཆུ་ཚོད་༤.
5. Case particles after names (`render.bo_locative`, `render.bo_genitive`) are rule-based.
6. 堰塞湖 (landslide-dammed lake) and gas leaks are left out of `s.strong_secondary`: no attested term.
"""


def review_markdown(directory: Path) -> str:
    """docs/tibetan-review.md: every composed bo entry with its Chinese, English and terms."""
    bo, zh, en = _load(directory, "bo"), _load(directory, "zh"), _load(directory, "en")
    entries = parse_glossary("bo", bo)
    composed = {k: e for k, e in entries.items() if e.status == "composed"}
    sourced = len(entries) - len(composed)
    heading = f"\n## Composed entries ({len(composed)} of {len(entries)}; {sourced} sourced)\n"
    out = [REVIEW_INTRO, heading]
    for key, e in composed.items():
        out.append(f"\n### `{key}`\n")
        out.append(f"- bo: {e.text}")
        if key in zh:
            out.append(f"- zh: {zh[key]['text']}")
        if key in en:
            out.append(f"- en: {en[key]['text']}")
        out.append("- attested terms:")
        out += [f"  - {t}" for t in e.terms]
    return "\n".join(out) + "\n"


def run(args: argparse.Namespace) -> int:
    directory: Path = args.messages_dir
    if args.messages_command == "export":
        po = export_po(directory, args.lang)
        if args.output is None:
            sys.stdout.write(str(po))
        else:
            po.save(str(args.output))
            print(f"wrote {len(po)} entries ({len(po.fuzzy_entries())} fuzzy) to {args.output}",
                  file=sys.stderr)
        return 0
    if args.messages_command == "import":
        try:
            result = import_po(directory, args.po, reviewer=args.reviewer,
                               on=args.date or datetime.now(UTC).date())
        except (OSError, ValueError, CatalogError) as err:  # polib raises OSError/ValueError
            log.error("import refused: %s", err, extra={"file": str(args.po)})
            return 2
        for reason in result.refused:
            log.warning("refused %s", reason, extra={"file": str(args.po)})
        print(f"{len(result.sourced)} entries now sourced, {len(result.still_fuzzy)} left "
              f"composed, {len(result.refused)} refused", file=sys.stderr)
        return 1 if result.refused else 0
    text = review_markdown(directory)
    if args.output is None:
        sys.stdout.write(text)
    else:
        args.output.write_text(text, encoding="utf-8")
    return 0
