"""Aftershock forecasts: Reasenberg-Jones with Page et al. (2016) generic parameters (§3).

The a-value is uncertain: a grid a in [-4.5, -0.5] step 0.01 is weighted by its normal prior
(optionally updated by the observed sequence after 3 h, §3.1, §3.5), each a gives a Poisson
count, and the mixture gives P(>= 1) and the 95 % range of the number (USGS practice, §3.1).
For swarms the RJ model does not apply (§3.5); ``swarm_rate_forecast`` gives the "if current
activity continues" statement of §8.3 instead.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.special import pdtr


@dataclass(frozen=True, slots=True)
class RJParams:
    """Generic Reasenberg-Jones parameters of one tectonic regime (c in days)."""

    regime: str
    a_mean: float
    a_sigma: float
    b: float
    p: float
    c_d: float
    source: str


_PAGE = "Page et al. 2016, opensha-oaf GenericRJ_ParametersFetch.json (reference §3.2) [V]"
# reference/seismology.md §3.2; sigma is the regime's sigma_a (the M-independent option)
REGIMES: dict[str, RJParams] = {
    p.regime: p
    for p in (
        RJParams("ANSR-DEEPCON", -2.13, 0.52, 1.0, 0.98, 0.018, _PAGE),
        RJParams("ANSR-SHALCON", -2.42, 0.63, 1.0, 0.98, 0.018, _PAGE),
        RJParams("ANSR-HOTSPOT", -3.00, 0.68, 1.0, 1.12, 0.018, _PAGE),
        RJParams("ANSR-OCEANBD", -3.19, 0.60, 1.0, 1.08, 0.018, _PAGE),
        RJParams("ANSR-ABSLDEC", -2.29, 0.63, 1.0, 1.01, 0.018, _PAGE),
        RJParams("ANSR-ABSLOCB", -2.82, 0.80, 1.0, 0.64, 0.018, _PAGE),
        RJParams("ANSR-ABSLSHC", -2.85, 0.75, 1.0, 1.06, 0.018, _PAGE),
        RJParams("SCR-GENERIC", -2.85, 0.78, 1.0, 0.73, 0.018, _PAGE),
        RJParams("SOR-GENERIC", -3.04, 0.67, 1.0, 0.97, 0.018, _PAGE),
        RJParams("SZ-GENERIC", -2.47, 0.63, 1.0, 0.88, 0.018, _PAGE),
        RJParams("SZ-INLBACK", -2.43, 0.66, 1.0, 0.86, 0.018, _PAGE),
        RJParams("SZ-ONSHORE", -2.34, 0.60, 1.0, 0.81, 0.018, _PAGE),
        RJParams("SZ-OUTERTR", -2.42, 0.64, 1.0, 0.92, 0.018, _PAGE),
        RJParams("CAL-SCSN", -2.30, 0.50, 1.0, 0.83, 0.0033, "Hardebeck et al. 2018 (§3.2) [V]"),
        RJParams("CAL-NCSS", -2.64, 0.48, 1.0, 0.96, 0.012, "Hardebeck et al. 2018 (§3.2) [V]"),
        # fixed a (no published sigma): the classic closed form
        RJParams("RJ89", -1.67, 0.0, 0.91, 1.08, 0.05, "Reasenberg & Jones 1989 (§3.2) [K]"),
    )
}


def regime_for(
    lat: float,
    lon: float,
    boxes: Sequence[tuple[str, float, float, float, float]],
    default: str,
) -> str:
    """The regime of a point: the first matching box, else ``default``.

    A simplification of the opensha TectonicRegimeTable (0.05-degree STREC grid, §3.2): the
    default boxes put mainland China and Tibet in ANSR-DEEPCON (Lhasa, Wenchuan, Maduo ... decode
    to "ACR deep"; Jiuzhaigou is an exception) and California in CAL-SCSN.
    """
    for name, min_lat, max_lat, min_lon, max_lon in boxes:
        if min_lat <= lat <= max_lat and min_lon <= lon <= max_lon:
            return name
    return default


def omori_integral(p: float, c: float, t1: float, t2: float) -> float:
    """Integral of (t + c)^-p over [t1, t2] days, stable near p = 1 (opensha sinh form, §3.1)."""
    x, y = t2 + c, t1 + c
    z = 1.0 - p
    if abs(z) < 1e-12:
        return math.log(x / y)
    # (x^z - y^z)/z = (2/z) (sqrt(xy))^z sinh(z ln sqrt(x/y))
    return float((2.0 / z) * math.sqrt(x * y) ** z * math.sinh(z * 0.5 * math.log(x / y)))


def expected_number(
    a: float, rj: RJParams, m_main: float, m_min: float, t1_d: float, t2_d: float
) -> float:
    """RJ expected number of M >= m_min in [t1, t2] days after a mainshock of m_main."""
    k = 10.0 ** (a + rj.b * (m_main - m_min))
    return float(k * omori_integral(rj.p, rj.c_d, t1_d, t2_d))


def a_grid(a_min: float = -4.5, a_max: float = -0.5, step: float = 0.01) -> np.ndarray:
    """The a-values USGS integrates over (§3.1)."""
    n = round((a_max - a_min) / step) + 1
    return a_min + step * np.arange(n)


def prior_weights(rj: RJParams, grid: np.ndarray) -> np.ndarray:
    """Normal prior of a on the grid, normalised; a point mass when sigma is 0."""
    if rj.a_sigma <= 0:
        w = np.zeros(len(grid))
        w[int(np.argmin(np.abs(grid - rj.a_mean)))] = 1.0
        return w
    w = np.exp(-0.5 * ((grid - rj.a_mean) / rj.a_sigma) ** 2)
    out: np.ndarray = w / w.sum()
    return out


def page_mc(m_main: float, t_d: float, f: float, g: float, h: float, floor: float) -> float:
    """Page et al. (2016) time-dependent completeness max(F M - G - H log10 t, floor) (§3.2)."""
    return max(f * m_main - g - h * math.log10(max(t_d, 1e-9)), floor)


def bayes_weights(
    rj: RJParams,
    grid: np.ndarray,
    prior: np.ndarray,
    m_main: float,
    m_fit: float,
    n_obs: int,
    t1_d: float,
    t2_d: float,
) -> np.ndarray:
    """Posterior of a given ``n_obs`` events M >= m_fit in [t1, t2] d (Poisson, b/p/c fixed)."""
    integ = omori_integral(rj.p, rj.c_d, t1_d, t2_d)
    k = 10.0 ** (grid + rj.b * (m_main - m_fit))
    lam = k * integ
    logl = n_obs * np.log(np.maximum(lam, 1e-300)) - lam
    logpost = np.log(np.maximum(prior, 1e-300)) + logl
    w = np.exp(logpost - logpost.max())
    w[prior <= 0] = 0.0
    out: np.ndarray = w / w.sum()
    return out


@dataclass(frozen=True, slots=True)
class ForecastRow:
    """One cell of the forecast table: M >= magnitude within duration_d from the start."""

    magnitude: float
    duration_d: float
    probability: float  # P(at least one)
    n_low: int  # 95 % range of the number (2.5 % and 97.5 % points)
    n_high: int
    n_median: int


def _mixture_quantiles(lams: np.ndarray, w: np.ndarray, qs: Sequence[float]) -> list[list[int]]:
    """Smallest k with sum_i w_i P(N_i <= k) >= q, for each row of ``lams`` (rows x grid)."""
    out: list[list[int]] = []
    for q in qs:
        lo = np.zeros(len(lams), dtype=np.float64)
        hi = np.maximum(np.ceil(lams.max(axis=1) * 2 + 10 * np.sqrt(lams.max(axis=1)) + 10), 1)
        # bisection on integers, vectorised over rows: cdf(lo) < q <= cdf(hi) after the loop
        for _ in range(64):
            if np.all(hi - lo <= 1):
                break
            mid = np.floor((lo + hi) / 2)
            cdf = (pdtr(mid[:, None], lams) * w[None, :]).sum(axis=1)
            ok = cdf >= q
            hi = np.where(ok, mid, hi)
            lo = np.where(ok, lo, mid)
        cdf0 = (pdtr(np.zeros((len(lams), 1)), lams) * w[None, :]).sum(axis=1)
        res = np.where(cdf0 >= q, 0, hi)
        out.append([int(x) for x in res])
    return out


def rj_table(
    rj: RJParams,
    m_main: float,
    weights: np.ndarray,
    grid: np.ndarray,
    start_d: float,
    magnitudes: Sequence[float],
    durations_d: Sequence[float],
) -> list[ForecastRow]:
    """P(>= 1) and the 95 % range for every (magnitude, duration), integrated over a."""
    keep = weights > 1e-12
    g, w = grid[keep], weights[keep] / weights[keep].sum()
    combos = [(m, d) for m in magnitudes for d in durations_d]
    integ = np.array([omori_integral(rj.p, rj.c_d, start_d, start_d + d) for _, d in combos])
    mags = np.array([m for m, _ in combos])
    lams = 10.0 ** (g[None, :] + rj.b * (m_main - mags[:, None])) * integ[:, None]
    p_any = 1.0 - (np.exp(-lams) * w[None, :]).sum(axis=1)
    lo, med, hi = _mixture_quantiles(lams, w, (0.025, 0.5, 0.975))
    return [
        ForecastRow(m, d, float(p_any[i]), lo[i], hi[i], med[i]) for i, (m, d) in enumerate(combos)
    ]


def swarm_rate_forecast(
    rate_per_d: float,
    mc: float,
    b: float,
    magnitudes: Sequence[float],
    durations_d: Sequence[float],
) -> list[ForecastRow]:
    """If current activity continues (§8.3): P = 1 - exp(-R dt 10^(-b (Mx - Mc))), Poisson."""
    rows = []
    for m in magnitudes:
        for d in durations_d:
            lam = rate_per_d * d * 10.0 ** (-b * (m - mc))
            p = 1.0 - math.exp(-lam)
            lo, med, hi = (int(_poisson_ppf(q, lam)) for q in (0.025, 0.5, 0.975))
            rows.append(ForecastRow(m, d, p, lo, hi, med))
    return rows


def _poisson_ppf(q: float, lam: float) -> int:
    k = 0
    while pdtr(k, lam) < q:
        k += 1 if k < 50 else max(1, int(math.sqrt(lam)) // 4)
    return k
