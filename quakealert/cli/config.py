"""`quakealert config check|show|docs`: validate a config, print the effective one, document it."""

from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import fields
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import msgspec

from quakealert import config as cfg

MASK = "********"
# key names whose values are secrets; *_file keys name a file and are shown
_SECRET_KEY = re.compile(r"(secret|password|passwd|token|api_?key|private_key)$", re.IGNORECASE)
_SECRET_PARAM = re.compile(r"(secret|password|passwd|token|key|auth|signature)", re.IGNORECASE)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="config_command", required=True)
    check = sub.add_parser("check", help="validate a config file without starting (exit 2 if bad)")
    check.add_argument("file", type=Path)
    show = sub.add_parser("show", help="print the effective config (defaults filled, secrets "
                                       "masked)")
    show.add_argument("file", type=Path, nargs="?",
                      help="config file (default: the embedded offline setup)")
    docs = sub.add_parser("docs", help="print docs/config.md, generated from the schema")
    docs.add_argument("--output", type=Path, help="write to this file instead of stdout")


def run(args: argparse.Namespace) -> int:
    if args.config_command == "check":
        config = cfg.load_config(args.file)  # ConfigError: main() prints it, exit 2
        print(f"{args.file}: ok ({len(config.sources)} sources)")
    elif args.config_command == "show":
        sys.stdout.write(to_toml(masked(show(args.file))))
    else:
        text = markdown()
        if args.output:
            args.output.write_text(text, encoding="utf-8")
        else:
            sys.stdout.write(text)
    return 0


# ---------------------------------------------------------------- show


def effective(value: Any) -> Any:
    """Every key with its value, defaults included, as plain data (None: unset)."""
    if isinstance(value, msgspec.Struct):
        return {f.name: effective(getattr(value, f.name)) for f in msgspec.structs.fields(value)}
    if isinstance(value, (list, tuple)):
        return [effective(v) for v in value]
    if isinstance(value, dict):
        return {k: effective(v) for k, v in value.items()}
    return value


def show(path: Path | None) -> dict[str, Any]:
    """The effective config of ``path`` (or the embedded default): every key, and each source
    merged over its catalog with its path resolved."""
    if path is None:
        config, base, origin = cfg.DEFAULT_CONFIG, Path.cwd(), "(embedded default)"
    else:
        config, base, origin = cfg.load_config(path), Path(path).resolve().parent, str(path)
    data = effective(config)
    data["sources"] = [{f.name: getattr(s, f.name) for f in fields(s)}
                       for s in cfg.expand_sources(config, base, origin)]
    return data


def mask_url(url: str) -> str:
    """A URL without its password and secret-looking query values."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, host = netloc.rsplit("@", 1)
        netloc = f"{userinfo.split(':', 1)[0]}:{MASK}@{host}"
    query = urlencode([(k, MASK if _SECRET_PARAM.search(k) else v)
                       for k, v in parse_qsl(parts.query, keep_blank_values=True)], safe="*")
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def masked(value: Any, key: str = "") -> Any:
    """``value`` with secret keys replaced by a mask and credentials cut out of URLs."""
    if isinstance(value, dict):
        return {k: masked(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [masked(v, key) for v in value]
    if value is not None and _SECRET_KEY.search(key):
        return MASK
    if isinstance(value, str) and re.match(r"^[a-z][a-z0-9+.-]*://", value):
        return mask_url(value)
    return value


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)  # a valid TOML basic string
    if isinstance(value, list):
        return "[" + ", ".join(_scalar(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_key(k)} = {_scalar(v)}" for k, v in value.items()
                               if v is not None) + "}"
    raise TypeError(f"cannot write {type(value).__name__} as TOML")


def _key(name: str) -> str:
    return name if re.fullmatch(r"[A-Za-z0-9_-]+", name) else json.dumps(name)


def _table(header: str, table: dict[str, Any], nested: set[str]) -> list[str]:
    lines = [header]
    for key, value in table.items():
        if key in nested:
            continue
        lines.append(f"# {key}: not set" if value is None else f"{_key(key)} = {_scalar(value)}")
    return lines


def to_toml(data: dict[str, Any]) -> str:
    """The effective config as TOML (tables, nested tables, the [[sources]] array)."""
    lines: list[str] = []
    for name, table in data.items():
        if name == "sources":
            for source in table:
                lines += _table("[[sources]]", source, set()) + [""]
            continue
        nested = {k for k, v in table.items()
                  if isinstance(v, dict) and isinstance(getattr(cfg.Config(), name), msgspec.Struct)
                  and isinstance(getattr(getattr(cfg.Config(), name), k), msgspec.Struct)}
        lines += _table(f"[{name}]", table, nested) + [""]
        for key in sorted(nested):
            lines += _table(f"[{name}.{key}]", table[key], set()) + [""]
    return "\n".join(lines)


# ---------------------------------------------------------------- docs


def _type_name(t: Any) -> str:
    i = msgspec.inspect
    if isinstance(t, i.Metadata):
        return _type_name(t.type)
    if isinstance(t, i.UnionType):
        names = [_type_name(x) for x in t.types if not isinstance(x, i.NoneType)]
        return " or ".join(names)
    if isinstance(t, i.LiteralType):
        return " \\| ".join(json.dumps(v) for v in t.values)
    if isinstance(t, (i.ListType, i.VarTupleType)):
        return f"array of {_type_name(t.item_type)}"
    if isinstance(t, i.TupleType):
        return "[" + ", ".join(_type_name(x) for x in t.item_types) + "]"
    if isinstance(t, i.DictType):
        return f"table of {_type_name(t.value_type)}"
    if isinstance(t, i.StructType):
        return "table"
    simple = {i.StrType: "string", i.IntType: "integer", i.FloatType: "number",
              i.BoolType: "boolean", i.AnyType: "any"}
    for kind, name in simple.items():
        if isinstance(t, kind):
            return name
    return type(t).__name__


def _bounds(t: Any) -> str:
    i = msgspec.inspect
    found: list[str] = []
    stack = [t]
    while stack:
        x = stack.pop()
        if isinstance(x, i.Metadata):
            stack.append(x.type)
        elif isinstance(x, i.UnionType):
            stack.extend(x.types)
        else:
            for attr, sign in (("ge", "≥"), ("gt", ">"), ("le", "≤"), ("lt", "<")):
                v = getattr(x, attr, None)
                if v is not None:
                    found.append(f"{sign} {v}")
            pattern = getattr(x, "pattern", None)
            if pattern:
                found.append(f"matches `{pattern}`")
    return ", ".join(found)


def _description(t: Any) -> str:
    i = msgspec.inspect
    while True:
        if isinstance(t, i.Metadata):
            return str(t.extra_json_schema.get("description", "") if t.extra_json_schema
                       else "") or _description(t.type)
        if isinstance(t, i.UnionType):
            return next((d for d in map(_description, t.types) if d), "")
        if isinstance(t, i.StructType):  # a nested table: its class docstring
            return (t.cls.__doc__ or "").strip().splitlines()[0]
        return ""


def _default(f: Any) -> str:
    if f.default is not msgspec.NODEFAULT:
        value = effective(f.default)
    elif f.default_factory is not msgspec.NODEFAULT:
        value = effective(f.default_factory())
    else:
        return "*required*"
    if value is None:
        return "unset"
    if isinstance(value, dict) and value and isinstance(f.default, msgspec.Struct):
        return "see below"
    return f"`{_scalar(value)}`"


def _rows(struct: Any) -> list[str]:
    rows = ["| key | type | default | meaning |", "|---|---|---|---|"]
    for f in msgspec.inspect.type_info(struct).fields:
        meaning = _description(f.type)
        bounds = _bounds(f.type)
        if bounds:
            meaning += f" ({bounds})"
        meaning = meaning.replace("|", "\\|")
        rows.append(f"| `{f.name}` | {_type_name(f.type)} | {_default(f)} | {meaning} |")
    return rows


HEADER = """\
# Configuration

<!-- Generated from the schema in quakealert/config.py by `quakealert config docs`
     (`make docs`); tests/test_config.py fails when this file and the schema differ. -->

`quakealert run --config FILE` reads one TOML file. Without `--config` the daemon runs the
embedded offline default (a replay of the bundled 2024 Maizhokunggar scenario). Every table is
optional and every key has the default shown. A wrong type, an unknown table or key, or a value
out of bounds stops start-up with exit status 2 and one line naming the file, the key and what
was expected, for example:

    /etc/quakealert/quakealert.toml: api.port: expected int, got str

`quakealert config check FILE` validates a file without starting; `quakealert config show [FILE]`
prints the effective config (defaults filled in, secrets and URL credentials masked).
Relative paths are relative to the config file's folder; `$VARS` in paths are expanded (for
systemd credentials: `"$CREDENTIALS_DIRECTORY/vapid_private.pem"`).

**Adding a key** is one change: add a field with its type, default and `doc(...)` to the table's
class in `quakealert/config.py`, then run `make docs` to regenerate this file. The subsystem reads
it with `settings.section("table").get("key", DEFAULT)` (only keys the operator set are in the
dict; the subsystem's own default must equal the schema's, which tests/test_config.py checks for
the dataclass-backed tables). A new table is a new `Table` class and one field of `Config`.
"""


def markdown() -> str:
    """docs/config.md: every table and key of the schema."""
    out = [HEADER]
    for f in msgspec.inspect.type_info(cfg.Config).fields:
        t = f.type
        while isinstance(t, (msgspec.inspect.Metadata, msgspec.inspect.ListType)):
            t = t.type if isinstance(t, msgspec.inspect.Metadata) else t.item_type
        header = f"## `[[{f.name}]]`" if f.name == "sources" else f"## `[{f.name}]`"
        out += ["", header, "", (t.cls.__doc__ or "").strip(), ""] + _rows(t.cls)
        for sub in msgspec.inspect.type_info(t.cls).fields:
            st = sub.type
            if isinstance(st, msgspec.inspect.StructType):
                out += ["", f"### `[{f.name}.{sub.name}]`", "", (st.cls.__doc__ or "").strip(),
                        ""] + _rows(st.cls)
    return "\n".join(out) + "\n"
