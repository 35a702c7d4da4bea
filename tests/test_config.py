"""Config files: one typed schema; the deploy example loads; mistakes stop start-up clearly."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import msgspec
import pytest

from quakealert import config
from quakealert.cli import main
from quakealert.cli.config import markdown, masked
from quakealert.config import load_settings
from quakealert.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]
DEPLOY = REPO / "deploy" / "quakealert.toml"


def test_deploy_example_loads_with_every_catalog() -> None:
    """deploy/quakealert.toml names CENC, USGS, EMSC and GEOFON through catalogs/, CENC first."""
    s = load_settings(DEPLOY)
    by_name = {c.name: c for c in s.sources}
    assert set(by_name) == {"cenc", "usgs", "emsc", "geofon"}
    assert by_name["cenc"].priority < by_name["usgs"].priority < by_name["emsc"].priority
    assert by_name["cenc"].interval_s == 60 and by_name["cenc"].url
    assert s.store_path == Path("/var/lib/quakealert/quakealert.sqlite")


def test_deploy_example_is_accepted_by_every_subsystem(tmp_path: Path) -> None:
    """Each table of the example parses in the subsystem that reads it (the daemon would start)."""
    from quakealert.core.policy import PolicyParams
    from quakealert.core.sequences import params_from_section
    from quakealert.service.dispatch import OutboxSettings
    from quakealert.service.pipeline import Pipeline, approval_rules
    from quakealert.store.sqlite import Store

    s = load_settings(DEPLOY)
    assert PolicyParams.from_config(s.section("policy")).quiet_start == "23:00"
    assert params_from_section(s.section("sequences")).region_radius_km == 200.0
    assert approval_rules(s.section("approvals"))["swarm_advisory"].timeout_s == 600
    OutboxSettings.from_section(s.section("outbox"))
    store = Store.open(tmp_path / "q.sqlite")
    assert Pipeline(store, s).base_url == "https://quakealert.example.org"
    store.close()


@pytest.mark.parametrize("text, message", [
    ('[api]\nport = "eighty"\n', r"q\.toml: api\.port: expected int, got str"),
    ("[api]\nport = 70000\n", r"api\.port: expected int <= 65535"),
    ("[polcy]\nquiet_start = '23:00'\n", r"polcy: unknown table; expected one of store, api"),
    ("[store]\nuri = 'postgres://x'\n", r"store\.uri: unknown key; expected one of url, path, var_dir"),
    ("[api]\nhost = '0.0.0.0'\nbind = 1\n", r"api\.bind: unknown key"),
    ("[[sources]]\ncatalog = 'cenc'\ninterval_s = '60'\n",
     r"sources\[0\]\.interval_s: expected float, got str"),
    ("[[sources]]\nname = 'x'\nkind = 'nope'\nurl = 'http://127.0.0.1/'\n",
     r"sources\[0\]\.kind: invalid enum value 'nope'; expected one of 'cenc'"),
    ("[[sources]]\nname = 'x'\nkind = 'fdsn'\n", r"sources\[0\]\.url: required for a fdsn source"),
    ("[[sources]]\ncatalog = 'nowhere'\n", r"sources\[0\]\.catalog: unknown catalog 'nowhere'"),
    ("[[sources]]\ncatalog = 'usgs'\n[[sources]]\ncatalog = 'usgs'\n", "duplicate names usgs"),
    ("[[sources]]\nname = 'x'\nkind = 'fdsn'\nurl = 'http://127.0.0.1/'\ninterval = 5\n",
     r"sources\[0\]\.interval: unknown key"),
    ("[approvals]\nfelt_guidance = 60\n", r"approvals\.felt_guidance: unknown key"),
    ("[approvals]\nswarm_advisory = 0\n", r"approvals\.swarm_advisory: expected float > 0"),
    ("[policy]\nquiet_start = '11pm'\n", r"policy\.quiet_start: expected str matching"),
    ("[ratelimit.login]\nburst = 0\n", r"ratelimit\.login\.burst: expected float >= 1"),
    ("[log]\nformat = 'xml'\n", r"log\.format: invalid enum value 'xml'; expected one of"),
    ("[auth]\ncookie_secure = 'yes'\n", r"auth\.cookie_secure"),
    ("not toml = = 1", "q.toml: cannot read config"),
])
def test_config_mistakes_name_the_file_and_key(tmp_path: Path, text: str, message: str) -> None:
    """Wrong types, unknown tables and keys, bad values: one line with file, key, expectation."""
    path = tmp_path / "q.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message) as info:
        load_settings(path)
    assert "\n" not in str(info.value)


def test_bad_config_stops_every_command_with_exit_2(tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    """`run` and `config check` exit 2 with one stderr line naming the file and `api.port`."""
    path = tmp_path / "q.toml"
    path.write_text('[api]\nport = "eighty"\n')
    for argv in (["run", "--config", str(path)], ["config", "check", str(path)]):
        assert main(argv) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert any(str(path) in line and "api.port" in line and "expected int" in line
                   for line in err), err


def test_config_check_accepts_the_deploy_example(capsys: pytest.CaptureFixture[str]) -> None:
    """`quakealert config check` exits 0 on a valid file and says how many sources it has."""
    assert main(["config", "check", str(DEPLOY)]) == 0
    assert "ok (4 sources)" in capsys.readouterr().out


def test_section_holds_only_what_the_operator_set(tmp_path: Path) -> None:
    """Subsystems keep their defaults: section() has the keys written, converted and checked."""
    path = tmp_path / "q.toml"
    path.write_text("[outbox]\nconcurrency = 8\n[messages]\nwinter_months = [12, 1]\n")
    s = load_settings(path)
    assert s.section("outbox") == {"concurrency": 8}
    assert s.section("messages") == {"winter_months": (12, 1)}
    assert s.section("policy") == {}


def test_paths_are_relative_to_the_config_file_not_the_working_folder(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """store.path and var_dir resolve against the config's folder; $VARS expand."""
    monkeypatch.delenv("STATE_DIRECTORY", raising=False)
    monkeypatch.setenv("QA_TEST_DIR", str(tmp_path / "state"))
    (tmp_path / "etc").mkdir()
    path = tmp_path / "etc" / "q.toml"
    path.write_text('[store]\npath = "db/q.sqlite"\nvar_dir = "$QA_TEST_DIR"\n')
    monkeypatch.chdir(tmp_path)
    s = load_settings(path)
    assert s.store_path == tmp_path / "etc" / "db" / "q.sqlite"
    assert s.var_dir == tmp_path / "state"


def test_var_dir_follows_systemd_state_directory(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """Without var_dir, systemd's $STATE_DIRECTORY holds the store; never the working folder."""
    monkeypatch.setenv("STATE_DIRECTORY", str(tmp_path / "lib"))
    path = tmp_path / "q.toml"
    path.write_text("[api]\nport = 8081\n")
    s = load_settings(path)
    assert s.var_dir == tmp_path / "lib"
    assert s.store_path == tmp_path / "lib" / "quakealert.sqlite"
    monkeypatch.delenv("STATE_DIRECTORY")
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    assert load_settings(None).var_dir == tmp_path / "xdg" / "quakealert"
    assert load_settings(None).store_path.name == "demo.sqlite"


def test_docs_config_md_matches_the_schema() -> None:
    """docs/config.md is what `quakealert config docs` generates (run `make docs` after edits)."""
    assert (REPO / "docs" / "config.md").read_text(encoding="utf-8") == markdown()


def test_docs_name_every_key() -> None:
    """Every key of every table appears in the generated reference."""
    text = markdown()
    for table in msgspec.structs.fields(config.Config):
        assert f"[{table.name}]" in text
    for key in msgspec.structs.fields(config.SequencesTable):
        assert f"| `{key.name}` |" in text
    assert "| `allow_insecure_endpoints` |" in text


def _schema_defaults(table: type[msgspec.Struct]) -> dict[str, object]:
    out = {}
    for f in msgspec.structs.fields(table):
        value = f.default if f.default is not msgspec.NODEFAULT else f.default_factory()
        out[f.name] = value
    return out


def _normal(value: object) -> object:
    if isinstance(value, (list, tuple)):
        return tuple(_normal(v) for v in value)
    if isinstance(value, dict):
        return tuple((k, _normal(v)) for k, v in value.items())
    return value


@pytest.mark.parametrize("table, params", [
    ("SequencesTable", "quakealert.core.sequences:SequenceParams"),
    ("PolicyTable", "quakealert.core.policy:PolicyParams"),
    ("MessagesTable", "quakealert.core.render:RenderOptions"),
    ("AuthTable", "quakealert.api.auth:AuthConfig"),
    ("BackfillTable", "quakealert.sources.backfill:BackfillParams"),
])
def test_schema_defaults_are_the_subsystem_defaults(table: str, params: str) -> None:
    """The documented default of each key is what the subsystem uses when the key is unset."""
    import importlib

    module, name = params.split(":")
    cls = getattr(importlib.import_module(module), name)
    schema = _schema_defaults(getattr(config, table))
    made = cls()
    subsystem = {f.name: getattr(made, f.name) for f in fields(cls)}
    if name == "AuthConfig":
        subsystem["cookie_secure"] = "auto" if made.cookie_secure is None else made.cookie_secure
    assert set(schema) == set(subsystem), "add the new key to quakealert/config.py"
    for key, value in schema.items():
        assert _normal(value) == _normal(subsystem[key]), key


def test_outbox_and_api_defaults_match() -> None:
    """Outbox retry, rate limits, CAP, FDSN, subscriptions and VAPID defaults agree."""
    from quakealert.api import cap, fdsnws, ratelimit, subscriptions
    from quakealert.channels import vapid
    from quakealert.service.dispatch import OutboxSettings, RetryPolicy

    outbox = _schema_defaults(config.OutboxTable)
    made = OutboxSettings()
    for f in fields(OutboxSettings):
        if f.name != "retry":
            assert outbox.pop(f.name) == getattr(made, f.name), f.name
    for f in fields(RetryPolicy):
        assert outbox.pop(f"retry_{f.name}") == getattr(RetryPolicy(), f.name), f.name
    assert outbox == {}
    rl = config.RatelimitTable()
    for group, (rate, burst) in ratelimit.DEFAULT_GROUPS.items():
        assert (getattr(rl, group).rate_per_s, getattr(rl, group).burst) == (rate, burst)
    assert rl.max_clients == ratelimit.MAX_CLIENTS
    assert config.ApiTable().max_json_bytes == ratelimit.DEFAULT_JSON_MAX_BYTES
    assert config.CapTable().sender == cap.DEFAULT_SENDER
    assert config.CapTable().feed_limit == cap.DEFAULT_FEED_LIMIT
    assert config.CapTable().radius_km == cap.DEFAULT_RADIUS_KM
    assert config.FdsnwsTable().max_events == fdsnws.DEFAULT_MAX_EVENTS
    assert config.SubscriptionsTable().rate_per_min == subscriptions.DEFAULT_RATE_PER_MIN
    assert config.WebpushTable().vapid_subject == vapid.DEFAULT_SUBJECT


def test_show_masks_secrets_and_url_credentials(tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    """`config show` prints every key (defaults filled) but never a password or token."""
    path = tmp_path / "q.toml"
    path.write_text("[[sources]]\nname = 'node'\nkind = 'fdsn'\n"
                    "url = 'https://duty:hunter2@example.org/query?apikey=s3cret&format=text'\n")
    assert main(["config", "show", str(path)]) == 0
    out = capsys.readouterr().out
    assert "hunter2" not in out and "s3cret" not in out
    assert "duty:********@example.org" in out and "format=text" in out
    assert "max_events = 20000" in out  # defaults are filled in
    assert masked({"webhook_secret": "x", "key_file": "/etc/k"}) == {
        "webhook_secret": "********", "key_file": "/etc/k"}


def test_show_merges_each_source_over_its_catalog(capsys: pytest.CaptureFixture[str]) -> None:
    """The effective [[sources]] of the deploy example carry the catalog's url and priority."""
    assert main(["config", "show", str(DEPLOY)]) == 0
    out = capsys.readouterr().out
    cenc = out.split("[[sources]]")[1]
    assert 'name = "cenc"' in cenc and "priority = 10" in cenc and "interval_s = 60.0" in cenc
    assert 'url = "http://www.ceic.ac.cn/' in cenc


def test_show_output_is_a_valid_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The effective default, written back to a file, loads to the same sources and port."""
    assert main(["config", "show"]) == 0
    shown = tmp_path / "shown.toml"
    shown.write_text(capsys.readouterr().out)
    s = load_settings(shown)
    assert [c.name for c in s.sources] == ["replay-cenc-lhasa"]
    assert Path(s.sources[0].path or "").is_file()
    assert s.api_port == 8080
