"""Predicted shaking: Allen, Wald & Worden (2012) IPE and China Seismic Intensity Scale degrees.

Coefficients: reference/seismology.md §5.2 [V] (gem/oq-engine ``allen_2012_ipe.py``, Rhypo form).
MMI is used as a proxy for CSIS below VI (seismology.md §5.1: CSIS drew on EMS-92).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from quakealert.core.geo import distance_km, distances_km

# Allen et al. 2012, Rhypo form (seismology.md §5.2 [V]).
_C0, _C1, _C2, _C4 = 2.085, 1.428, -1.402, 0.078
_M1, _M2 = -0.209, 2.042
_HINGE_KM = 50.0
_S1, _S2, _S3 = 0.82, 0.37, 22.9

# A12 under-predicts below M4 and beyond 100 km and gives values < 1 at M3 (seismology.md §5.4):
# clip to the scale's floor rather than claim "less than not felt".
MIN_INTENSITY = 1.0
MAX_INTENSITY = 12.0

ROMAN = ("I", "II", "III", "IV", "V", "VI", "VII", "VIII", "IX", "X", "XI", "XII")
# zh typography uses the Unicode roman numerals (Ⅲ度), as CENC and GB/T 17742 do.
ROMAN_ZH = ("Ⅰ", "Ⅱ", "Ⅲ", "Ⅳ", "Ⅴ", "Ⅵ", "Ⅶ", "Ⅷ", "Ⅸ", "Ⅹ", "Ⅺ", "Ⅻ")

# seismology.md §5.1 thresholds (proposal): felt ≥ III, widely felt ≥ IV, possible damage ≥ VI,
# damaging ≥ VII. Configurable in PolicyParams; these are the defaults.
FELT_DEGREE = 3
WIDELY_FELT_DEGREE = 4
STRONG_DEGREE = 6
DAMAGING_DEGREE = 7


@dataclass(frozen=True, slots=True)
class Intensity:
    """Predicted intensity at one place: mean, one standard deviation, and mean + k·σ."""

    mean: float
    sigma: float
    upper: float

    @property
    def degree(self) -> int:
        """CSIS degree of the upper value (what decisions use)."""
        return csis_degree(self.upper)

    @property
    def mean_degree(self) -> int:
        """CSIS degree of the mean value."""
        return csis_degree(self.mean)


def a12_mean(magnitude: float, rhypo_km: float) -> float:
    """Allen et al. 2012 Rhypo-form mean MMI, unclipped (for checks against the oq-engine table)."""
    rm = _M1 + _M2 * math.exp(magnitude - 5.0)
    mmi = _C0 + _C1 * magnitude + _C2 * math.log(math.sqrt(rhypo_km**2 + rm**2))
    if rhypo_km > _HINGE_KM:
        mmi += _C4 * math.log(rhypo_km / _HINGE_KM)
    return mmi


def a12_sigma(rhypo_km: float) -> float:
    """Allen et al. 2012 Rhypo-form standard deviation (MMI units)."""
    return _S1 + _S2 / (1.0 + (rhypo_km / _S3) ** 2)


def predict_intensity(
    magnitude: float, depth_km: float | None, distance_km: float, *, sigma_factor: float = 1.0
) -> Intensity:
    """Intensity at an epicentral distance, from A12 with hypocentral distance; upper = mean + k·σ."""
    rhypo = math.hypot(distance_km, depth_km or 0.0)
    raw = a12_mean(magnitude, rhypo)
    sigma = a12_sigma(rhypo)
    return Intensity(mean=_clip(raw), sigma=sigma, upper=_clip(raw + sigma_factor * sigma))


def csis_degree(value: float) -> int:
    """The CSIS degree (1..12) a continuous intensity falls in.

    Degree n covers [n − 0.5, n + 0.5), as GB/T 17742-2020 Appendix A assigns degrees to
    instrumental intensity ([K]: seismology.md §5.1 lists the Appendix A formulas but not its
    degree table; verify). So an upper value of 2.8 is degree III.
    """
    return int(min(max(math.floor(value + 0.5), 1), 12))


def roman(degree: int, lang: str = "en") -> str:
    """Roman numeral of a CSIS degree (Unicode numerals for zh)."""
    table = ROMAN_ZH if lang == "zh" else ROMAN
    return table[min(max(degree, 1), 12) - 1]


def _clip(value: float) -> float:
    return min(max(value, MIN_INTENSITY), MAX_INTENSITY)


def epicentral_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in km (geo.distance_km)."""
    return distance_km(lat1, lon1, lat2, lon2)


def upper_intensity_many(
    magnitude: float,
    depth_km: float | None,
    lat: float,
    lon: float,
    lats: np.ndarray,
    lons: np.ndarray,
    *,
    sigma_factor: float = 1.0,
) -> np.ndarray:
    """Mean + k·σ intensity at many places at once (float64 array, same shape as ``lats``)."""
    epi = distances_km(lat, lon, lats, lons)
    r2 = epi * epi + (depth_km or 0.0) ** 2
    rhypo = np.sqrt(r2)
    rm = _M1 + _M2 * math.exp(magnitude - 5.0)
    mmi = (_C0 + _C1 * magnitude) + (0.5 * _C2) * np.log(r2 + rm * rm)
    mmi += np.where(rhypo > _HINGE_KM, _C4 * np.log(np.maximum(rhypo, _HINGE_KM) / _HINGE_KM), 0.0)
    sigma = _S1 + _S2 / (1.0 + (rhypo / _S3) ** 2)
    out: np.ndarray = np.clip(mmi + sigma_factor * sigma, MIN_INTENSITY, MAX_INTENSITY)
    return out
