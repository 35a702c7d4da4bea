"""Mc, b-value, Omori-Utsu and skewness against the reference's test vectors."""

import numpy as np
import pytest

from quakealert.core.stats import (
    b_value,
    b_value_classic,
    b_value_utsu,
    bin_magnitudes,
    mc_maxc,
    moment_skewness,
    omori_fit,
    shi_bolt_sigma,
)

# reference §4.1: SeismoStats docstring vector, Mc 2.0, dm 0.1
B_VECTOR = [2.0, 2.5, 2.1, 2.2, 2.5, 2.2, 2.6, 2.3, 2.7, 2.2, 2.4, 2.0, 2.7, 2.2, 2.3, 2.1, 2.4,
            2.6, 2.2, 2.2, 2.7, 2.4, 2.2, 2.5]
# SeismoStats seismostats/analysis/tests/test_estimate_mc.py MAGNITUDES (100 events), test data
MAGNITUDES = [
    2.3, 1.2, 1.5, 1.2, 1.7, 1.1, 1.2, 1.5, 1.8, 1.6, 1.2, 1.5,
    1.2, 1.7, 1.6, 1.1, 1.1, 1.2, 2.0, 1.1, 1.2, 1.1, 1.2, 1.6,
    1.9, 1.3, 1.7, 1.3, 1.0, 1.2, 1.7, 1.3, 1.3, 1.1, 1.5, 1.4,
    1.1, 2.1, 1.2, 2.2, 1.7, 1.6, 1.1, 2.0, 2.1, 1.2, 1.0, 1.5,
    1.2, 1.7, 1.8, 1.1, 1.3, 1.1, 1.3, 1.4, 2.1, 2.0, 1.1, 2.2,
    1.8, 1.4, 1.1, 1.0, 2.0, 2.0, 1.1, 1.0, 1.0, 1.5, 1.6, 3.7,
    2.8, 1.5, 1.1, 1.2, 1.4, 2.3, 1.5, 1.2, 1.7, 1.1, 1.6, 1.2,
    1.5, 1.1, 1.2, 1.7, 1.2, 1.6, 1.2, 1.1, 1.8, 1.2, 1.1, 1.0,
    1.3, 1.1, 1.6, 1.6,
]


def test_b_classic_matches_seismostats():
    """Tinti-Mulargia binned MLE reproduces SeismoStats' Classic value."""
    assert b_value_classic(B_VECTOR, 2.0, 0.1) == pytest.approx(1.114920128810535, rel=1e-12)


def test_b_utsu_matches_seismostats():
    """Utsu's binning correction reproduces SeismoStats' Utsu value."""
    assert b_value_utsu(B_VECTOR, 2.0, 0.1) == pytest.approx(1.1088369750721319, rel=1e-12)


def test_shi_bolt_sigma():
    """Shi-Bolt sigma with the Utsu b is 0.126 (reference §4.1)."""
    assert shi_bolt_sigma(B_VECTOR, 1.1088369750721319) == pytest.approx(0.126, abs=0.0005)


def test_b_value_bundle_uses_events_above_mc():
    """b_value selects M >= Mc - dm/2 and reports n."""
    bv = b_value(B_VECTOR + [1.5, 1.2], 2.0, 0.1)
    assert bv is not None and bv.n == 24
    assert bv.b == pytest.approx(1.114920128810535)


def test_mc_maxc_seismostats_magnitudes():
    """Maximum curvature + 0.2 on SeismoStats' MAGNITUDES is 1.3 (modal bin 1.1)."""
    assert mc_maxc(MAGNITUDES, 0.1, 0.2) == 1.3


def test_mc_maxc_ties_take_the_lowest_bin():
    """With two equally populated bins the lower one wins, as numpy argmax does."""
    assert mc_maxc([1.0, 1.0, 2.0, 2.0, 3.0], 0.1, 0.2) == 1.2


def test_omori_recovers_synthetic_p():
    """MLE on a simulated Omori-Utsu process recovers p within 0.1."""
    rng = np.random.default_rng(3)
    c, p, t_end = 0.05, 1.1, 100.0
    # inverse transform of the normalised intensity on [0, T]
    a = ((t_end + c) ** (1 - p) - c ** (1 - p))
    u = rng.uniform(size=3000)
    times = (c ** (1 - p) + u * a) ** (1 / (1 - p)) - c
    fit = omori_fit(times.tolist(), t_end)
    assert fit is not None
    assert fit.p == pytest.approx(p, abs=0.1)
    assert fit.n == 3000


def test_skewness_sign():
    """Moment up front gives positive skew; a late largest event gives negative skew."""
    t = [0.0, 1.0, 2.0, 3.0, 10.0]
    assert moment_skewness(t, [6.0, 3.0, 3.0, 3.0, 3.0]) > 0
    assert moment_skewness(t, [3.0, 3.0, 3.0, 3.0, 6.0]) < 0


@pytest.mark.parametrize("mag, width, centre", [
    (1.15, 0.1, 1.2), (2.55, 0.1, 2.6), (1.25, 0.1, 1.3), (1.149, 0.1, 1.1), (0.05, 0.1, 0.1),
    (-0.05, 0.1, 0.0), (3.75, 0.5, 4.0), (2.345, 0.01, 2.35),
])
def test_half_bins_round_up_exactly(mag: float, width: float, centre: float) -> None:
    """A magnitude on a half bin goes to the upper bin, whatever float division says."""
    assert float(bin_magnitudes([mag], width)[0]) == centre
