"""Settings from TOML, checked against one typed schema (msgspec) before anything starts.

The schema below is the single list of every table and key, with its type, default, bounds and
meaning; docs/config.md is generated from it (`quakealert config docs`). Adding a key is one
field in the table's class here, then `make docs`. Subsystems read their table as a dict with
``settings.section(name)``: only the keys the operator set, already converted and checked.
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass, field, replace
from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec

from quakealert.errors import ConfigError

SOURCE_KINDS = ("fdsn", "usgs", "emsc", "cenc", "replay")
# messages/ and catalogs/ live at the top of the repository and ship inside the package
# (quakealert/messages and quakealert/catalogs link to them); read them as package resources.
CATALOGS_DIR: Traversable = files("quakealert") / "catalogs"
# The real CENC speed-report list within 300 km of Maizhokunggar, 2015-2025 (catalogs/scenarios/
# README.md); the 2024 swarm begins on 2024-10-21 BJT, so the years before it are background.
DEFAULT_SCENARIO = Path(str(CATALOGS_DIR / "scenarios" / "cenc-lhasa-300km-2015-2025.csv"))
DEFAULT_SCENARIO_START = "2024-10-20T00:00:00Z"
DB_NAME = "quakealert.sqlite"
DEMO_DB_NAME = "demo.sqlite"  # the embedded default resets its store: never a real one


def doc(description: str, **bounds: Any) -> msgspec.Meta:
    """A key's meaning (docs/config.md) and its bounds (checked at start-up)."""
    return msgspec.Meta(description=description, **bounds)


class Table(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True,
            omit_defaults=True):
    """One config table: unknown keys are errors; unset keys keep the documented default."""


PositiveS = Annotated[float, doc("seconds", gt=0)]


class StoreTable(Table):
    """Where quakealert keeps its state."""

    url: Annotated[str | None, doc(
        "PostgreSQL URL (shared store for several instances, docs/deploy.md); instead of "
        "`path`. Put the password in PGPASSFILE, not here")] = None
    path: Annotated[str | None, doc(
        "SQLite database file (relative paths: to the config file's folder)")] = None
    var_dir: Annotated[str | None, doc(
        "state folder: the database (unless `path`), the generated VAPID key. Default: "
        "$STATE_DIRECTORY (systemd StateDirectory=), else the folder of `path`, else "
        "$XDG_STATE_HOME/quakealert (~/.local/state/quakealert). $VARS are expanded")] = None


class ApiTable(Table):
    """The duty-staff HTTP API."""

    host: Annotated[str, doc("address to listen on; keep 127.0.0.1 behind a TLS proxy")] = (
        "127.0.0.1")
    port: Annotated[int, doc("TCP port", ge=1, le=65535)] = 8080
    cors_origins: Annotated[list[str], doc(
        "browser origins allowed to call the API cross-site")] = []
    max_json_bytes: Annotated[int, doc("largest JSON request body", ge=1)] = 16 * 1024


class SourceTable(Table):
    """One catalogue to poll or replay (`[[sources]]`, merged over catalogs/<catalog>.toml)."""

    catalog: Annotated[str | None, doc(
        "take the defaults of a bundled catalogue service: cenc, emsc, geofon, ingv, usgs, "
        "usgs-fdsn")] = None
    name: Annotated[str | None, doc("unique name (default: the catalog's name)")] = None
    kind: Annotated[Literal["fdsn", "usgs", "emsc", "cenc", "replay"] | None, doc(
        "protocol")] = None
    url: Annotated[str | None, doc("endpoint (not for replay); never logged")] = None
    path: Annotated[str | None, doc(
        "replay file (relative: to the config file's folder, else the bundled catalogs/)")] = None
    interval_s: Annotated[float, doc("seconds between polls", gt=0)] = 60.0
    speed: Annotated[float, doc("replay time multiplier; 0 plays everything at once", ge=0)] = 0.0
    priority: Annotated[int, doc(
        "lower is preferred when several agencies report one quake")] = 50
    timeout_s: Annotated[float, doc("seconds before a request is abandoned", gt=0)] = 20.0
    max_bytes: Annotated[int, doc("largest response accepted", gt=0)] = 20_000_000
    overlap_s: Annotated[float, doc(
        "fdsn: re-ask `updatedafter` this far back to catch revisions", ge=0)] = 3600.0
    jitter_s: Annotated[float, doc("random delay added to each poll", ge=0)] = 5.0
    params: Annotated[dict[str, Any], doc(
        "extra query parameters / per-kind options (see docs/architecture.md)")] = {}


class SequencesTable(Table):
    """Membership, typing, statistics, context line and forecast (core.sequences)."""

    region_radius_km: Annotated[float, doc("region around an event", gt=0)] = 200.0
    min_link_km: Annotated[float, doc("smallest linking distance", ge=0)] = 10.0
    link_gap_d: Annotated[float, doc("smallest linking time gap, days", ge=0)] = 30.0
    window: Annotated[Literal["gardner-knopoff", "gruenthal", "uhrhammer"], doc(
        "space-time window")] = "gardner-knopoff"
    grid_km: Annotated[float, doc("index cell (performance only)", gt=0)] = 70.0
    link_depth: Annotated[bool, doc("link on hypocentral distance (Reasenberg 1985)")] = True
    link_depth_error_km: Annotated[float, doc("depth error allowed in linking, km", ge=0)] = 2.0
    episode_min_span_d: Annotated[float, doc(
        "split into episodes only beyond max(this, t_GK(M1)), days", gt=0)] = 365.0
    episode_pause_d: Annotated[float, doc("episodes end at pauses longer than this, days",
                                          gt=0)] = 10.0
    zbz_df: Annotated[float, doc("Zaliapin–Ben-Zion fractal dimension")] = 1.6
    zbz_b: Annotated[float, doc("Zaliapin–Ben-Zion b")] = 1.0
    zbz_log10_eta0: Annotated[float, doc("Zaliapin–Ben-Zion strong-link threshold")] = -5.0
    zbz_max_events: Annotated[int, doc("largest events kept for the diagnostic", ge=1)] = 500
    zbz_min_share: Annotated[float, doc("share of members M1's family must hold")] = 0.5
    swarm_max_dm: Annotated[float, doc("swarm: M1 − M2 below this")] = 0.6
    isolated_min_dm: Annotated[float, doc("isolated: M1 − M2 at least this")] = 2.4
    swarm_max_rq: Annotated[float, doc("swarm: energy share of M1 at most this")] = 0.80
    isolated_min_rq: Annotated[float, doc("isolated: energy share of M1 above this")] = 0.999
    no_type_min: Annotated[float, doc("no type within this many minutes of M1")] = 30.0
    undetermined_h: Annotated[float, doc("hours 'undetermined' unless the swarm rule holds")] = 24.0
    swarm_min_events: Annotated[int, doc("swarm: members with M ≥ M1 − swarm_within_m")] = 3
    swarm_within_m: Annotated[float, doc("swarm: magnitude band below M1")] = 1.0
    swarm_min_span_h: Annotated[float, doc("swarm: shortest span, hours")] = 12.0
    doublet_max_dm: Annotated[float, doc("doublet: largest M1 − M2")] = 0.5
    doublet_min_share: Annotated[float, doc("doublet: energy share of the two largest")] = 0.9
    doublet_pair_max_dm: Annotated[float, doc(
        "doublet of two events alone: largest M1 − M2")] = 0.2
    isolated_min_age_d: Annotated[float, doc("isolated: sequence age at least, days")] = 7.0
    isolated_complete_m: Annotated[float, doc("isolated only if Mc ≤ M1 − this")] = 2.5
    final_age_d: Annotated[float, doc("type is final at this age, days")] = 90.0
    foreshock_window_d: Annotated[float, doc("foreshocks within this many days")] = 30.0
    foreshock_within_m: Annotated[float, doc("foreshock if M ≥ max(Mc, M1 − this)")] = 3.0
    foreshock_min_km: Annotated[float, doc(
        "foreshocks within max(this, Wells–Coppersmith length of M1), km", ge=0)] = 10.0
    sparse_mc_floor: Annotated[bool, doc(
        "without Mc, floor the foreshock threshold at the smallest listed magnitude")] = True
    agency_priority: Annotated[tuple[str, ...], doc("preferred origin, first wins")] = (
        "cenc", "usgs", "emsc")
    network_mc: Annotated[dict[str, float] | tuple[tuple[str, float], ...], doc(
        "per-agency floor of Mc, e.g. { cenc = 2.5 }")] = {}
    mc_bin: Annotated[float, doc("magnitude bin for Mc", gt=0)] = 0.1
    mc_correction: Annotated[float, doc("added to the maximum-curvature Mc")] = 0.2
    mc_min_events: Annotated[int, doc("events needed for Mc")] = 30
    b_min_events: Annotated[int, doc("events needed for a b-value")] = 50
    omori_min_events: Annotated[int, doc("events needed for an Omori–Utsu fit")] = 50
    context_radius_km: Annotated[float, doc("context line radius", gt=0)] = 200.0
    context_years: Annotated[float, doc("context line look-back, years", gt=0)] = 5.0
    context_min_magnitude: Annotated[float, doc("context line magnitude floor")] = 3.0
    forecast_min_magnitude: Annotated[float, doc("forecast for mainshocks from this M")] = 4.0
    forecast_magnitudes: Annotated[tuple[float, ...], doc("forecast thresholds")] = (
        3.0, 4.0, 5.0, 6.0)
    forecast_durations_d: Annotated[tuple[float, ...], doc("forecast windows, days")] = (
        1.0, 7.0, 30.0)
    forecast_no_number_min: Annotated[float, doc("no numeric forecast within, minutes")] = 30.0
    bayes_min_h: Annotated[float, doc("Bayesian update of a after, hours")] = 3.0
    a_min: Annotated[float, doc("a-value grid low end")] = -4.5
    a_max: Annotated[float, doc("a-value grid high end")] = -0.5
    a_step: Annotated[float, doc("a-value grid step", gt=0)] = 0.01
    page_f: Annotated[float, doc("Page et al. 2016 Mc(t) F")] = 0.5
    page_g: Annotated[float, doc("Page et al. 2016 Mc(t) G")] = 0.25
    page_h: Annotated[float, doc("Page et al. 2016 Mc(t) H")] = 1.0
    swarm_rate_window_d: Annotated[float, doc("swarm rate over the last days", gt=0)] = 7.0
    regime_boxes: Annotated[tuple[tuple[str, float, float, float, float], ...], doc(
        "tectonic regime boxes [regime, min_lat, max_lat, min_lon, max_lon], first match")] = (
        ("CAL-SCSN", 32.0, 42.0, -125.0, -114.0),
        ("ANSR-DEEPCON", 18.0, 54.0, 73.0, 135.0),
    )
    default_regime: Annotated[str, doc("regime outside every box")] = "ANSR-SHALCON"
    public_forecast: Annotated[bool, doc(
        "compute public numeric forecasts (in China only the authorities publish them)")] = False


class PolicyTable(Table):
    """Who is told what, and when (core.policy)."""

    felt_degree: Annotated[int, doc("intensity (CSIS) residents feel", ge=1, le=12)] = 3
    strong_degree: Annotated[int, doc("intensity of possible damage", ge=1, le=12)] = 6
    strong_magnitude: Annotated[float, doc("strong guidance from this M within the distance")] = 5.0
    strong_distance_km: Annotated[float, doc("strong guidance distance", ge=0)] = 100.0
    sigma_factor: Annotated[float, doc("IPE plus this many standard deviations")] = 1.0
    larger_min_delta: Annotated[float, doc("a 'larger event' is at least this much larger")] = 0.1
    revision_magnitude: Annotated[float, doc("|ΔM| that makes an Update")] = 0.3
    revision_distance_km: Annotated[float, doc("epicentre shift that makes an Update")] = 10.0
    revision_time_s: Annotated[float, doc("origin-time shift that makes an Update")] = 60.0
    revision_depth_km: Annotated[float, doc("depth shift that makes an Update")] = 20.0
    summary_interval_h: Annotated[float, doc("at most one swarm summary per this many hours, and only when a felt quake the hourly budget held is still untold")] = 24.0
    swarm_active_h: Annotated[float, doc("a swarm quiet this long gets no summary")] = 72.0
    advise_types: Annotated[tuple[str, ...], doc("sequence types that earn one advisory")] = (
        "swarm",)
    quiet_start: Annotated[str, doc("quiet hours start, HH:MM local", pattern=r"^\d\d:\d\d$")] = (
        "22:00")
    quiet_end: Annotated[str, doc("quiet hours end, HH:MM local", pattern=r"^\d\d:\d\d$")] = (
        "07:00")
    quiet_utc_offset_h: Annotated[float, doc("local time of the quiet hours, hours from UTC")] = 8.0
    quiet_defer_until: Annotated[str, doc(
        "non-urgent notices in quiet hours wait until this local time, HH:MM",
        pattern=r"^\d\d:\d\d$")] = "07:30"
    felt_in_swarm_interval_h: Annotated[float, doc(
        "at most one short 'you felt an M… of the same swarm' notice per sequence per this many "
        "hours; later ones are named in the resident's next notice", gt=0)] = 1.0
    update_interval_min: Annotated[float, doc(
        "at most one Update per resident thread per this many minutes (a drifting origin)",
        ge=0)] = 30.0


class ApprovalsTable(Table):
    """Kinds a duty officer reviews first, with the seconds after which they go out anyway."""

    swarm_advisory: Annotated[float, doc(
        "swarm advisory review window (felt guidance never waits)", gt=0, le=86400)] | None = None
    test: Annotated[float, doc("test notice review window", gt=0, le=86400)] | None = None


class MessagesTable(Table):
    """Wording choices (core.render)."""

    tibetan_digits: Annotated[bool, doc("༠-༩ in Tibetan text")] = True
    bo_composed: Annotated[Literal["send", "hold"], doc(
        "composed (not yet reviewed) Tibetan: send it, or hold it and send the sourced sentences "
        "plus a Tibetan line pointing to the full notice (docs/tibetan-review.md)")] = "send"
    hotline: Annotated[str, doc("hotline named in guidance")] = "12322"
    reference_place: Annotated[str, doc("the 'distance to' place (messages/places.toml)")] = (
        "lhasa")
    max_reference_km: Annotated[float, doc("no distance line beyond this", gt=0)] = 500.0
    public_forecast: Annotated[bool, doc("numeric forecasts in public notices")] = False
    quote_outlook: Annotated[bool, doc("quote the official outlook with its source")] = True
    winter_months: Annotated[tuple[int, ...], doc(
        "Beijing-time months of the cold-weather block")] = (11, 12, 1, 2, 3)
    high_altitude: Annotated[bool, doc("the altitude line in strong guidance")] = True


class WebpushTable(Table):
    """Web Push delivery (RFC 8030/8291, VAPID RFC 8292)."""

    vapid_subject: Annotated[str, doc("contact for push services (mailto: or https:)")] = (
        "mailto:quakealert@localhost")
    vapid_private_key_file: Annotated[str | None, doc(
        "VAPID key (PEM or base64url); with systemd use LoadCredential and "
        "\"$CREDENTIALS_DIRECTORY/vapid_private.pem\". Default: generated once in var_dir")] = None
    ttl_s: Annotated[int, doc("push TTL, seconds", ge=0)] = 6 * 3600
    timeout_s: Annotated[float, doc("request timeout, seconds", gt=0)] = 10.0
    crypto_workers: Annotated[int, doc("encryption threads (0: inline)", ge=0)] = 0
    allow_insecure_endpoints: Annotated[bool, doc(
        "accept http:// and private/loopback targets for Web Push and webhooks alike, at "
        "subscription and at send time (tests and local demos only; docs/security.md)")] = False


class WebhookTable(Table):
    """Signed webhook delivery."""

    timeout_s: Annotated[float, doc("request timeout, seconds", gt=0)] = 10.0


class OutboxTable(Table):
    """Outbox workers (service.dispatch)."""

    concurrency: Annotated[int, doc("rows in flight: also the duplicate bound on a crash",
                                    ge=1)] = 64
    lease_s: Annotated[float, doc("a claimed row returns to the queue after", gt=0)] = 120.0
    poll_s: Annotated[float, doc("idle poll interval", gt=0)] = 1.0
    ttl_s: Annotated[float, doc("give up on a row this long after its notice", gt=0)] = 86400.0
    pending_recheck_s: Annotated[float, doc("re-check a notice awaiting approval", gt=0)] = 60.0
    retry_base_s: Annotated[float, doc("first retry back-off", gt=0)] = 5.0
    retry_cap_s: Annotated[float, doc("longest back-off", gt=0)] = 1800.0
    retry_jitter: Annotated[float, doc("back-off jitter fraction", ge=0, le=1)] = 0.25
    retry_max_attempts: Annotated[int, doc("attempts before a row fails", ge=1)] = 12
    retry_max_retry_after_s: Annotated[float, doc("largest Retry-After honoured", ge=0)] = 21600.0


class SubscriptionsTable(Table):
    """The public subscribe endpoint."""

    rate_per_min: Annotated[float, doc("subscriptions per client per minute; 0 = off", ge=0)] = 20


class PublicBucket(Table):
    """Token bucket of the public group: healthz, CAP, FDSN, events."""

    rate_per_s: Annotated[float, doc("refill rate, requests per second", ge=0)] = 5.0
    burst: Annotated[float, doc("bucket size", ge=1)] = 60.0


class SubscriptionsBucket(Table):
    """Token bucket of writes to the subscriber table."""

    rate_per_s: Annotated[float, doc("refill rate, requests per second", ge=0)] = 0.2
    burst: Annotated[float, doc("bucket size", ge=1)] = 10.0


class LoginBucket(Table):
    """Token bucket of failed logins."""

    rate_per_s: Annotated[float, doc("refill rate, requests per second", ge=0)] = 0.2
    burst: Annotated[float, doc("bucket size", ge=1)] = 5.0


class RatelimitTable(Table):
    """Per-client rate limits on the API (token buckets per route group)."""

    enabled: Annotated[bool, doc("rate limits on")] = True
    max_clients: Annotated[int, doc("buckets kept per group", ge=1)] = 20_000
    trust_forwarded_for: Annotated[bool, doc(
        "key clients by the last X-Forwarded-For hop (only behind your own proxy)")] = False
    public: PublicBucket = PublicBucket()
    subscriptions: SubscriptionsBucket = SubscriptionsBucket()
    login: LoginBucket = LoginBucket()


class AuthTable(Table):
    """Duty-staff sessions."""

    session_ttl_s: Annotated[float, doc("session length (one duty shift)", gt=0)] = 43200.0
    cookie_secure: Annotated[Literal["auto"] | bool, doc(
        "Secure cookie flag; auto: when the request came over https")] = "auto"


class CapTable(Table):
    """CAP 1.2 messages and the Atom feed."""

    base_url: Annotated[str | None, doc(
        "public address (the TLS proxy) used in links, the Atom feed and the WADL; required "
        "when [api] host is not loopback; default: the bind address, never the Host header")] = None
    sender: Annotated[str, doc("CAP <sender>")] = "quakealert@localhost"
    feed_limit: Annotated[int, doc("entries in the Atom feed", ge=1)] = 50
    radius_km: Annotated[float, doc("CAP <circle> radius", gt=0)] = 100.0


class FdsnwsTable(Table):
    """The FDSN event service of the merged catalogue."""

    max_events: Annotated[int, doc("larger results answer 413", ge=1)] = 20_000


class DemoTable(Table):
    """The embedded offline demo."""

    subscriber: Annotated[bool, doc("add a Lhasa resident on the console channel")] = False


class BackfillTable(Table):
    """History fetched at start-up for the context line, and after long outages
    (sources.backfill)."""

    years: Annotated[float, doc("history the context line needs, years", gt=0)] = 5.0
    min_magnitude: Annotated[float, doc("smallest magnitude back-filled")] = 3.0
    outage_h: Annotated[float, doc(
        "a source silent longer than this is back-filled over the gap on start-up", gt=0)] = 24.0
    chunk_days: Annotated[float, doc("one query per this many days (bounded responses)",
                                     gt=0)] = 90.0
    enabled: Annotated[bool, doc("back-fill at all")] = True
    latitude: Annotated[Annotated[float, msgspec.Meta(ge=-90, le=90)] | None, doc(
        "centre of the region to back-fill, degrees (set with longitude); unset: live sources "
        "cannot back-fill and context counts are left out")] = None
    longitude: Annotated[Annotated[float, msgspec.Meta(ge=-180, le=180)] | None, doc(
        "centre of the region to back-fill, degrees (set with latitude)")] = None
    radius_km: Annotated[float, doc(
        "radius of that region: the residents' area plus the 200 km context radius",
        gt=0)] = 400.0


class RegionTable(Table):
    """A circle the office watches whether or not residents live there yet."""

    latitude: Annotated[float, doc("centre, degrees north", ge=-90, le=90)]
    longitude: Annotated[float, doc("centre, degrees east", ge=-180, le=180)]
    radius_km: Annotated[float, doc("radius", gt=0, le=5000)]


class PipelineTable(Table):
    """Which queued events the pipeline takes first (service.pipeline, docs/architecture.md)."""

    regions: Annotated[list[RegionTable], doc(
        "events inside these circles are taken first, with the ones near residents")] = []
    large_magnitude: Annotated[float, doc(
        "events this large are taken before far ones wherever they are")] = 6.0
    chunk_s: Annotated[float, doc(
        "far events typed per transaction: about this many seconds of work", gt=0, le=5)] = 0.25


class LogTable(Table):
    """Log lines on stderr."""

    format: Annotated[Literal["logfmt", "json"], doc(
        "logfmt (key=\"value\") or JSON lines; under journald no timestamp, <N> priority")] = (
        "logfmt")
    level: Annotated[Literal["debug", "info", "warning", "error"], doc("lowest level shown")] = (
        "info")


class Config(Table):
    """The whole file. Each table is optional."""

    store: StoreTable = StoreTable()
    api: ApiTable = ApiTable()
    sources: Annotated[list[SourceTable], doc("catalogues (none: nothing is polled)")] = []
    sequences: SequencesTable = SequencesTable()
    policy: PolicyTable = PolicyTable()
    approvals: ApprovalsTable = ApprovalsTable()
    messages: MessagesTable = MessagesTable()
    webpush: WebpushTable = WebpushTable()
    webhook: WebhookTable = WebhookTable()
    outbox: OutboxTable = OutboxTable()
    subscriptions: SubscriptionsTable = SubscriptionsTable()
    ratelimit: RatelimitTable = RatelimitTable()
    auth: AuthTable = AuthTable()
    cap: CapTable = CapTable()
    fdsnws: FdsnwsTable = FdsnwsTable()
    demo: DemoTable = DemoTable()
    backfill: BackfillTable = BackfillTable()
    pipeline: PipelineTable = PipelineTable()
    log: LogTable = LogTable()


TABLES = tuple(f.name for f in msgspec.structs.fields(Config))


@dataclass(frozen=True, slots=True)
class SourceConfig:
    """One catalogue to poll (or replay), its catalog defaults merged in."""

    name: str
    kind: str
    url: str | None = None
    path: str | None = None
    interval_s: float = 60.0
    speed: float = 0.0  # replay only: time multiplier, 0 = everything at once
    priority: int = 50  # lower = preferred when several agencies report one quake
    timeout_s: float = 20.0
    max_bytes: int = 20_000_000
    overlap_s: float = 3600.0  # fdsn: re-ask `updatedafter` this far back to catch revisions
    jitter_s: float = 5.0
    params: dict[str, Any] = field(default_factory=dict)  # extra query parameters / options

    def __repr__(self) -> str:  # URLs may carry credentials
        return f"SourceConfig(name={self.name!r}, kind={self.kind!r})"


@dataclass(frozen=True, slots=True)
class Settings:
    """What the daemon runs with. ``sections`` holds each table's keys as the operator set them
    (checked against the schema by load_settings); tests may build one by hand."""

    store_path: Path
    api_host: str = "127.0.0.1"
    store_url: str | None = None  # PostgreSQL instead of store_path (never logged: may hold a password)
    api_port: int = 8080
    sources: tuple[SourceConfig, ...] = ()
    sections: dict[str, dict[str, Any]] = field(default_factory=dict)
    var_dir: Path = Path("var")

    def section(self, name: str) -> dict[str, Any]:
        """The keys of table ``name`` the config set (a copy); the subsystem owns the defaults."""
        return dict(self.sections.get(name, {}))


# ---------------------------------------------------------------- reading and checking

_AT = re.compile(r" - at `\$\.?(?P<at>[^`]*)`$")
_UNKNOWN = re.compile(r"^Object contains unknown field `(?P<key>[^`]*)`")


def _join(at: str, key: str) -> str:
    return f"{at}.{key}" if at else key


def _unwrap(typ: Any) -> Any:
    while isinstance(typ, (msgspec.inspect.Metadata, msgspec.inspect.ListType,
                           msgspec.inspect.VarTupleType)):
        typ = typ.type if isinstance(typ, msgspec.inspect.Metadata) else typ.item_type
    return typ


def _type_at(at: str) -> Any:
    """The msgspec.inspect type of the table or key at ``at`` ('api.port', 'sources[0].kind')."""
    typ: Any = msgspec.inspect.type_info(Config)
    for part in filter(None, re.sub(r"\[\d+\]", "", at).split(".")):
        typ = _unwrap({f.name: f.type for f in _unwrap(typ).fields}[part])
    return typ


def explain(err: msgspec.ValidationError, origin: str) -> str:
    """One line: the file, the key, what was expected."""
    text = str(err)
    m = _AT.search(text)
    at = m.group("at") if m else ""
    what = text[: m.start()] if m else text
    unknown = _UNKNOWN.match(what)
    if unknown:
        kind = "table" if not at else "key"
        known = ", ".join(f.name for f in _type_at(at).fields)
        return f"{origin}: {_join(at, unknown.group('key'))}: unknown {kind}; expected one of {known}"
    what = re.sub(r"`([^`]*)`", r"\1", what)
    if what.startswith("Invalid enum value"):
        typ = _type_at(at)
        options = [t for t in getattr(typ, "types", (typ,)) if isinstance(t, msgspec.inspect.LiteralType)]
        if options:
            what += "; expected one of " + ", ".join(repr(v) for v in options[0].values)
    return f"{origin}: {at or '(top)'}: {what[0].lower()}{what[1:]}"


def check(data: dict[str, Any], origin: str) -> Config:
    """The typed config of one parsed TOML document; ConfigError names file, key, expectation."""
    try:
        return msgspec.convert(data, Config)
    except msgspec.ValidationError as err:
        raise ConfigError(explain(err, origin)) from None


def read_toml(path: Path) -> dict[str, Any]:
    """A TOML file, or ConfigError saying why it cannot be read."""
    try:
        with Path(path).open("rb") as f:
            return tomllib.load(f)
    except (OSError, tomllib.TOMLDecodeError) as err:
        raise ConfigError(f"{path}: cannot read config: {err}") from err


def refuse_unwired(config: Config, origin: str) -> None:
    """Keys the daemon cannot honour together stop start-up, never one ignored."""
    if config.store.url is not None and config.store.path is not None:
        raise ConfigError(f"{origin}: [store] url (PostgreSQL) and path (SQLite) name two "
                          "stores; set one of them. See docs/deploy.md")


def load_config(path: Path) -> Config:
    """Read and check a config file (`quakealert config check`)."""
    config = check(read_toml(path), str(path))
    refuse_unwired(config, str(path))
    expand_sources(config, Path(path).resolve().parent, str(path))
    return config


def catalog_names() -> list[str]:
    """The bundled catalogue services (catalogs/*.toml)."""
    return sorted(p.name.removesuffix(".toml") for p in CATALOGS_DIR.iterdir()
                  if p.name.endswith(".toml"))


def load_catalog(name: str) -> dict[str, Any]:
    """The TOML of one bundled catalogue service in catalogs/ (usgs, emsc, cenc, ingv, ...)."""
    resource = CATALOGS_DIR / f"{name}.toml"
    if not resource.is_file():
        raise ConfigError(f"unknown catalog {name!r}; known: {', '.join(catalog_names())}")
    return tomllib.loads(resource.read_text(encoding="utf-8"))


def bundled(path: str) -> Path | None:
    """A file shipped in the package's catalogs/ ("catalogs/scenarios/x.csv" or "scenarios/x.csv")."""
    rel = path.removeprefix("catalogs/")
    resource = CATALOGS_DIR.joinpath(*rel.split("/"))
    return Path(str(resource)) if resource.is_file() else None


def _expand(path: str, base_dir: Path) -> Path:
    p = Path(os.path.expandvars(path)).expanduser()
    return p if p.is_absolute() else base_dir / p


def parse_source(table: dict[str, Any] | SourceTable, base_dir: Path,
                 origin: str = "[[sources]]") -> SourceConfig:
    """One [[sources]] table, merged over its catalogs/<catalog>.toml if it names one."""
    if isinstance(table, dict):
        try:
            table = msgspec.convert(table, SourceTable)
        except msgspec.ValidationError as err:
            raise ConfigError(explain(err, origin)) from None
    given = msgspec.to_builtins(table)  # omit_defaults: only the keys the operator wrote
    merged: dict[str, Any] = {}
    if table.catalog is not None:
        try:
            merged.update(load_catalog(table.catalog))
        except ConfigError as err:
            raise ConfigError(f"{origin}.catalog: {err}") from None
        merged.setdefault("name", table.catalog)
    merged.update({k: v for k, v in given.items() if k != "catalog"})
    try:
        full = msgspec.convert(merged, SourceTable)
    except msgspec.ValidationError as err:
        raise ConfigError(explain(err, f"{origin} (catalog {table.catalog})")) from None
    if full.name is None or full.kind is None:
        raise ConfigError(f"{origin}: name, kind: required (or catalog = ...)")
    path = full.path
    if full.kind == "replay":
        if not path:
            raise ConfigError(f"{origin}.path: required for a replay source ({full.name})")
        p = _expand(path, base_dir)
        if not p.exists() and not Path(path).is_absolute():
            p = bundled(path) or p
        path = str(p)
    elif not full.url:
        raise ConfigError(f"{origin}.url: required for a {full.kind} source ({full.name})")
    return SourceConfig(
        name=full.name, kind=full.kind, url=full.url, path=path, interval_s=full.interval_s,
        speed=full.speed, priority=full.priority, timeout_s=full.timeout_s,
        max_bytes=full.max_bytes, overlap_s=full.overlap_s, jitter_s=full.jitter_s,
        params=dict(full.params))


def expand_sources(config: Config, base_dir: Path, origin: str) -> tuple[SourceConfig, ...]:
    """Every [[sources]] table merged and checked; names must be unique."""
    sources = tuple(parse_source(t, base_dir, f"{origin}: sources[{i}]")
                    for i, t in enumerate(config.sources))
    names = [s.name for s in sources]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ConfigError(f"{origin}: sources: duplicate names {', '.join(dupes)}")
    return sources


def default_var_dir() -> Path:
    """$STATE_DIRECTORY (systemd), else $XDG_STATE_HOME/quakealert: never the working folder."""
    state = os.environ.get("STATE_DIRECTORY")
    if state:
        return Path(state.split(":")[0])
    xdg = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(xdg) / "quakealert"


def settings_from(config: Config, *, base_dir: Path, origin: str) -> Settings:
    """The Settings a checked Config describes (paths resolved against ``base_dir``)."""
    store = config.store
    path = _expand(store.path, base_dir) if store.path else None
    if store.var_dir:
        var = _expand(store.var_dir, base_dir)
    elif os.environ.get("STATE_DIRECTORY") or path is None:
        var = default_var_dir()
    else:
        var = path.parent
    sections = {name: msgspec.to_builtins(getattr(config, name))
                for name in TABLES if name not in ("sources", "store")}
    return Settings(
        store_path=path or var / DB_NAME,
        store_url=store.url,
        api_host=config.api.host,
        api_port=config.api.port,
        sources=expand_sources(config, base_dir, origin),
        sections={k: v for k, v in sections.items() if v},
        var_dir=var,
    )


# The embedded offline default (`quakealert run` without --config): the real 2015-2025 CENC list
# around Maizhokunggar, the years before the 2024 swarm as background, the swarm played at speed,
# to a demo resident.
DEFAULT_CONFIG = Config(
    sources=[SourceTable(
        name="replay-cenc-lhasa", kind="replay",
        path="catalogs/scenarios/cenc-lhasa-300km-2015-2025.csv", interval_s=1.0,
        # 30,000x from 2024-10-20: the M4.5 of 11-06 20:19 UTC comes after about 51 s,
        # the 30 min rule takes 0.06 s and the whole swarm (to 2025-01-15) about 4.2 min
        speed=30_000.0, priority=10, jitter_s=0.0,
        params={"source_as": "cenc", "start": DEFAULT_SCENARIO_START,
                "label": "REPLAY of the CENC list around Maizhokunggar, 2015-2025 "
                         "(background to 2024-10-20, then the 2024 swarm)"},
    )],
    demo=DemoTable(subscriber=True),
)


def default_settings(var_dir: Path | None = None) -> Settings:
    """The embedded offline default; its store (reset at each start) is var_dir/demo.sqlite."""
    var = var_dir or default_var_dir()
    settings = settings_from(DEFAULT_CONFIG, base_dir=var, origin="(embedded default)")
    return replace(settings, store_path=var / DEMO_DB_NAME, var_dir=var)


def load_settings(path: Path | None) -> Settings:
    """Read and check a TOML config, or return the embedded default when ``path`` is None."""
    if path is None:
        return default_settings()
    config = check(read_toml(path), str(path))
    refuse_unwired(config, str(path))
    return settings_from(config, base_dir=Path(path).resolve().parent, origin=str(path))
