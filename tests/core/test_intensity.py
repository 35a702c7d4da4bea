"""Allen et al. 2012 IPE (Rhypo) and CSIS degrees: checks against seismology.md §5.2 and §5.4."""

from __future__ import annotations

import numpy as np
import pytest

from quakealert.core.intensity import (
    a12_mean,
    a12_sigma,
    csis_degree,
    epicentral_km,
    predict_intensity,
    roman,
    upper_intensity_many,
)

EPI = (29.85, 92.25)  # Maizhokunggar M4.5, CENC
LHASA = (29.65, 91.13)
CHENGDU = (30.66, 104.07)


@pytest.mark.parametrize(
    ("magnitude", "rhypo_km", "expected"),
    [(5.0, 10.0, 5.9736099), (6.0, 100.0, 4.2486195), (7.0, 300.0, 4.2223319)],
)
def test_a12_matches_oq_engine_table(magnitude: float, rhypo_km: float, expected: float) -> None:
    """A12 Rhypo mean reproduces the oq-engine test values within 0.1 % (seismology.md §5.2)."""
    assert a12_mean(magnitude, rhypo_km) == pytest.approx(expected, rel=1e-3)


def test_sigma_form() -> None:
    """σ = 0.82 + 0.37/(1 + (R/22.9)²): 1.19 at the source, → 0.82 far away."""
    assert a12_sigma(0.0) == pytest.approx(1.19)
    assert a12_sigma(1000.0) == pytest.approx(0.82, abs=1e-3)


@pytest.mark.parametrize(
    ("magnitude", "at_0", "at_20", "at_110"),
    [
        (4.0, 4.6, 3.4, 1.3),
        (4.5, 5.3, 4.2, 2.0),
        (5.0, 6.0, 4.9, 2.7),
        (6.0, 7.3, 6.3, 4.1),
        (7.0, 8.0, 7.5, 5.5),
    ],
)
def test_worked_numbers_for_lhasa(
    magnitude: float, at_0: float, at_20: float, at_110: float
) -> None:
    """Mean MMI at 0, 20 and 110 km for a 10 km deep source matches seismology.md §5.4."""
    for dist, expected in ((0.0, at_0), (20.0, at_20), (110.0, at_110)):
        assert predict_intensity(magnitude, 10.0, dist).mean == pytest.approx(expected, abs=0.06)


def test_maizhokunggar_m45_is_felt_in_lhasa_with_one_sigma() -> None:
    """The M4.5 at ~110 km predicts degree III in Lhasa with +1σ (people felt it), II without."""
    d = epicentral_km(*EPI, *LHASA)
    assert d == pytest.approx(110, abs=2)
    i = predict_intensity(4.5, 10.0, d, sigma_factor=1.0)
    assert i.degree == 3
    assert i.mean_degree == 2
    assert predict_intensity(4.5, 10.0, d, sigma_factor=0.0).degree == 2


def test_nothing_predicted_in_chengdu() -> None:
    """At ~1140 km the M4.5 gives degree I even with +1σ."""
    d = epicentral_km(*EPI, *CHENGDU)
    assert d > 1000
    assert predict_intensity(4.5, 10.0, d).degree == 1


@pytest.mark.parametrize(
    ("value", "degree"), [(0.2, 1), (1.49, 1), (2.5, 3), (2.81, 3), (3.49, 3), (6.5, 7), (13.0, 12)]
)
def test_csis_degree_bins(value: float, degree: int) -> None:
    """Degree n covers [n-0.5, n+0.5), clipped to I..XII."""
    assert csis_degree(value) == degree


def test_roman_numerals() -> None:
    """Roman numerals: ASCII in en, Unicode numerals in zh (Ⅲ度)."""
    assert roman(3) == "III"
    assert roman(6, "zh") == "Ⅵ"


def test_vectorised_matches_scalar() -> None:
    """upper_intensity_many agrees with predict_intensity place by place."""
    rng = np.random.default_rng(1)
    lats = rng.uniform(27, 33, 500)
    lons = rng.uniform(85, 100, 500)
    many = upper_intensity_many(4.5, 10.0, *EPI, lats, lons)
    one = [
        predict_intensity(4.5, 10.0, epicentral_km(*EPI, la, lo)).upper
        for la, lo in zip(lats, lons, strict=True)
    ]
    np.testing.assert_allclose(many, one, rtol=1e-9)


def test_vectorised_covers_a_million_places() -> None:
    """One million subscribers in one call: every value a finite intensity within the scale
    (speed is measured in bench/bench_intensity.py, not here)."""
    rng = np.random.default_rng(2)
    lats = rng.uniform(27, 33, 1_000_000)
    lons = rng.uniform(85, 100, 1_000_000)
    out = upper_intensity_many(4.5, 10.0, *EPI, lats, lons)
    assert out.shape == (1_000_000,)
    assert np.isfinite(out).all() and out.min() >= 1.0 and out.max() <= 12.0
