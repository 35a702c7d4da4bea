"""Sequence statistics: Mc, b-value, Omori-Utsu fit, moment-release skewness, ZBZ diagnostic.

Formulas from reference/seismology.md §4 (SeismoStats [V]), §4.4 (Ogata 1983), §2.3 (Roland &
McGuire 2009) and §2.5 (Zaliapin & Ben-Zion 2013a). numpy stays inside; results are floats.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize

Floats = Sequence[float] | np.ndarray  # plain lists in tests, numpy arrays in the core

LOG10_E = math.log10(math.e)


# Magnitudes are stated to a few decimals (SCSN 2, CENC 1); at 10^-6 units every stated value
# is an exact integer, so bins are decided by integer arithmetic, never by float error
# (1.15 / 0.1 = 11.499999999999998 in floats put 918 of 25,565 Ridgecrest magnitudes in the
# bin below the one SeismoStats uses, and moved b by more than its own sigma; issue 11).
_MAG_UNITS = 1_000_000


def bin_indices(mags: Floats, bin_width: float) -> np.ndarray:
    """The bin index k of each magnitude (centre k * bin_width), rounding halves up exactly.

    Half-up as SeismoStats ``bin_to_precision`` (floor(x / dm + 0.5)), decided on the stated
    decimals: k = floor((2 m + dm) / (2 dm)) in integer units of 10^-6.
    """
    m = np.rint(np.asarray(mags, dtype=float) * _MAG_UNITS).astype(np.int64)
    d = round(bin_width * _MAG_UNITS)
    if d <= 0:
        raise ValueError(f"bin width {bin_width} is below 1e-6")
    out: np.ndarray = (2 * m + d) // (2 * d)
    return out


def _decimals(bin_width: float) -> int:
    text = repr(float(bin_width))
    return 0 if "e" in text else len(text.split(".")[1].rstrip("0"))


def bin_magnitudes(mags: Floats, bin_width: float) -> np.ndarray:
    """Magnitudes as their bin centres (see :func:`bin_indices`), e.g. 1.15 -> 1.2 at 0.1."""
    out: np.ndarray = np.round(bin_indices(mags, bin_width) * bin_width, _decimals(bin_width))
    return out


def mc_maxc(mags: Floats, bin_width: float = 0.1, correction: float = 0.2) -> float:
    """Maximum curvature (Wiemer & Wyss 2000) + correction (Woessner & Wiemer 2005), §4.2.

    The centre of the most populated ``bin_width`` bin (lowest on ties) plus ``correction``.
    """
    if len(mags) == 0:
        raise ValueError("no magnitudes")
    k = bin_indices(mags, bin_width)
    values, counts = np.unique(k, return_counts=True)
    mode = int(values[int(np.argmax(counts))])
    return round(mode * bin_width + correction, 10)


def _complete(mags: Floats, mc: float, delta_m: float) -> np.ndarray:
    """The binned magnitudes at or above the bin of ``mc`` (exact: compared as bin indices)."""
    k = bin_indices(mags, delta_m)
    k_mc = int(bin_indices([mc], delta_m)[0])
    out: np.ndarray = np.round(k[k >= k_mc] * delta_m, _decimals(delta_m))
    return out


def b_value_classic(mags: Floats, mc: float, delta_m: float) -> float:
    """Tinti & Mulargia (1987) binned MLE (SeismoStats "Classic"), §4.1; ``mc`` is a bin centre.

    Magnitudes are binned to ``delta_m`` first (exactly, :func:`bin_indices`).
    """
    m = _complete(mags, mc, delta_m)
    beta = math.log(1.0 + delta_m / (float(np.mean(m)) - mc)) / delta_m
    return beta / math.log(10.0)


def b_value_utsu(mags: Floats, mc: float, delta_m: float) -> float:
    """Aki (1965) MLE with Utsu's (1965) binning correction: log10(e)/(mean - (Mc - dm/2))."""
    m = _complete(mags, mc, delta_m)
    return LOG10_E / (float(np.mean(m)) - (mc - delta_m / 2))


def shi_bolt_sigma(mags: Floats, b: float) -> float:
    """Shi & Bolt (1982) b-value uncertainty: 2.30 b^2 sqrt(sum (M - mean)^2 / (N (N - 1)))."""
    m = np.asarray(mags, dtype=float)
    n = len(m)
    if n < 2:
        return math.inf
    return 2.30 * b * b * math.sqrt(float(np.sum((m - m.mean()) ** 2)) / (n * (n - 1)))


@dataclass(frozen=True, slots=True)
class BValue:
    """A binned b-value estimate over the members at or above Mc."""

    b: float
    b_utsu: float
    sigma: float
    mc: float
    n: int


def b_value(mags: Floats, mc: float, delta_m: float = 0.1) -> BValue | None:
    """Classic b (Tinti-Mulargia) with Shi-Bolt sigma on the binned magnitudes at or above Mc,
    or None with fewer than 2 usable events."""
    m = _complete(mags, mc, delta_m)
    if len(m) < 2 or float(np.mean(m)) <= mc:
        return None
    b = b_value_classic(m, mc, delta_m)
    return BValue(b=b, b_utsu=b_value_utsu(m, mc, delta_m), sigma=shi_bolt_sigma(m, b), mc=mc,
                  n=len(m))


@dataclass(frozen=True, slots=True)
class OmoriFit:
    """Omori-Utsu rate K (t + c)^-p fitted by maximum likelihood on [start_d, end_d]."""

    k: float
    c_d: float
    p: float
    n: int
    start_d: float
    end_d: float
    log_likelihood: float


def _omori_integral(c: float, p: float, s: float, t: float) -> float:
    if abs(1.0 - p) < 1e-9:
        return math.log((t + c) / (s + c))
    return float(((t + c) ** (1.0 - p) - (s + c) ** (1.0 - p)) / (1.0 - p))


def omori_fit(times_d: Floats, end_d: float, start_d: float = 0.0) -> OmoriFit | None:
    """Ogata (1983) MLE of K, c, p (§4.4): K profiled out, log10 c in [-5, 0] d, p in [0.5, 2]."""
    t = np.asarray([x for x in times_d if start_d < x <= end_d], dtype=float)
    n = len(t)
    if n < 2 or end_d <= start_d:
        return None

    def negll(x: np.ndarray) -> float:
        c, p = 10.0 ** float(x[0]), float(x[1])
        a = _omori_integral(c, p, start_d, end_d)
        k = n / a
        return -(n * math.log(k) - p * float(np.sum(np.log(t + c))) - n)

    # A vectorised grid over the whole box finds the basin (cheap: one pass over the events
    # per c value), then one bounded local refinement; three blind L-BFGS starts cost ~10x more.
    log_cs = np.linspace(-5.0, 0.0, 26)
    ps = np.linspace(0.5, 2.0, 31)
    cs = 10.0 ** log_cs
    sum_log = np.log(t[None, :] + cs[:, None]).sum(axis=1)  # (26,)
    one_p = 1.0 - ps[None, :]
    near_one = np.abs(one_p) < 1e-9
    safe = np.where(near_one, 1.0, one_p)
    upper, lower = (end_d + cs)[:, None], (start_d + cs)[:, None]
    integral = np.where(near_one, np.log(upper / lower),
                        (upper ** safe - lower ** safe) / safe)  # (26, 31)
    grid = -(n * np.log(n / integral) - ps[None, :] * sum_log[:, None] - n)
    i, j = np.unravel_index(int(np.argmin(grid)), grid.shape)
    best = minimize(negll, np.array([log_cs[i], ps[j]]), method="L-BFGS-B",
                    bounds=[(-5.0, 0.0), (0.5, 2.0)])
    if best.fun > grid[i, j]:  # the refinement never makes it worse than the grid point
        best.x, best.fun = np.array([log_cs[i], ps[j]]), float(grid[i, j])
    assert best is not None
    c, p = 10.0 ** float(best.x[0]), float(best.x[1])
    k = n / _omori_integral(c, p, start_d, end_d)
    return OmoriFit(k=k, c_d=c, p=p, n=n, start_d=start_d, end_d=end_d,
                    log_likelihood=-float(best.fun))


def moment_skewness(times_d: Floats, mags: Floats) -> float | None:
    """Roland & McGuire (2009) moment-weighted time skewness (§2.3); > 0 means moment up front.

    Magnitudes are used as Mw in M0 = 10^(1.5 M + 9.1) N m.
    """
    t = np.asarray(times_d, dtype=float)
    m = np.asarray(mags, dtype=float)
    if len(t) < 3:
        return None
    w = 10.0 ** (1.5 * (m - m.max()))  # the constant 9.1 and the scale cancel in the weights
    w = w / w.sum()
    mean = float(np.sum(w * t))
    var = float(np.sum(w * (t - mean) ** 2))
    if var <= 0:
        return None
    return float(np.sum(w * (t - mean) ** 3)) / math.pow(var, 1.5)


@dataclass(frozen=True, slots=True)
class ZbzResult:
    """Nearest-neighbour families (strong links eta < eta0) among a sequence's largest events."""

    n: int
    families: int  # connected components of strong links with >= 2 events
    singles: int
    largest_family_share: float  # share of the n events in the family of the largest event
    log10_eta0: float


def zbz_families(
    times_d: Floats,
    lats: Floats,
    lons: Floats,
    mags: Floats,
    *,
    df: float = 1.6,
    b: float = 1.0,
    log10_eta0: float = -5.0,
) -> ZbzResult | None:
    """Zaliapin & Ben-Zion (2013a) eta = t r^df 10^(-b m_parent), years and km (§2.5).

    Behaviour as in hmtk: t floored at 1e-7 yr, r at 0.1 km. Input must be sorted by time;
    the largest event is the one with the largest magnitude (earliest on ties).
    """
    from quakealert.core.geo import distances_km

    t = np.asarray(times_d, dtype=float) / 365.25
    m = np.asarray(mags, dtype=float)
    n = len(t)
    if n < 2:
        return None
    parent = np.full(n, -1, dtype=np.int64)
    log_eta = np.full(n, np.inf)
    la, lo = np.asarray(lats, dtype=float), np.asarray(lons, dtype=float)
    for j in range(1, n):
        dt = np.maximum(t[j] - t[:j], 1e-7)
        r = np.maximum(distances_km(float(la[j]), float(lo[j]), la[:j], lo[:j]), 0.1)
        le = np.log10(dt) + df * np.log10(r) - b * m[:j]
        k = int(np.argmin(le))
        parent[j], log_eta[j] = k, float(le[k])
    root = list(range(n))

    def find(a: int) -> int:
        while root[a] != a:
            root[a] = root[root[a]]
            a = root[a]
        return a

    for j in range(1, n):
        if log_eta[j] < log10_eta0:
            root[find(j)] = find(int(parent[j]))
    labels = [find(i) for i in range(n)]
    sizes: dict[int, int] = {}
    for lb in labels:
        sizes[lb] = sizes.get(lb, 0) + 1
    top = int(np.argmax(m))
    return ZbzResult(
        n=n,
        families=sum(1 for s in sizes.values() if s >= 2),
        singles=sum(1 for s in sizes.values() if s == 1),
        largest_family_share=sizes[labels[top]] / n,
        log10_eta0=log10_eta0,
    )
