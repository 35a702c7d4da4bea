"""Reasenberg-Jones numbers against the reference's worked values (§3.4, §7.6)."""

import pytest

from quakealert.core.forecast import (
    REGIMES,
    a_grid,
    bayes_weights,
    expected_number,
    omori_integral,
    prior_weights,
    regime_for,
    rj_table,
    swarm_rate_forecast,
)
from quakealert.core.sequences import SequenceParams

DEEPCON = REGIMES["ANSR-DEEPCON"]


def table(rj, mags, durs, m_main=4.5):
    g = a_grid()
    return {(r.magnitude, r.duration_d): r for r in rj_table(rj, m_main, prior_weights(rj, g), g,
                                                              0.0, mags, durs)}


def test_closed_form_mean_a():
    """ANSR-DEEPCON, Mmain 4.5, M >= 3, [0, 7] d at mean a: N = 1.3707 (§7.6)."""
    assert expected_number(-2.13, DEEPCON, 4.5, 3.0, 0.0, 7.0) == pytest.approx(1.3707, abs=1e-4)


def test_lhasa_a_integrated_probabilities():
    """a-integrated: P(M>=4.5, 7 d) ~ 7.7 %, P(M>=3, 7 d) ~ 68 %, P(M>=4, 7 d) ~ 20 % (§3.4)."""
    t = table(DEEPCON, (3.0, 4.0, 4.5), (1.0, 7.0, 30.0))
    assert t[(4.5, 7.0)].probability == pytest.approx(0.077, abs=0.0015)
    assert t[(3.0, 7.0)].probability == pytest.approx(0.684, abs=0.005)
    assert t[(4.0, 7.0)].probability == pytest.approx(0.20, abs=0.006)
    assert t[(3.0, 1.0)].probability == pytest.approx(0.59, abs=0.005)
    assert t[(3.0, 30.0)].probability == pytest.approx(0.73, abs=0.006)


def test_rj89_fixed_a_california():
    """RJ89 generic, 7 days: 92 % for M>=3, 27 % M>=4, 10.5 % M>=4.5 (§3.4)."""
    t = table(REGIMES["RJ89"], (3.0, 4.0, 4.5), (7.0,))
    assert t[(3.0, 7.0)].probability == pytest.approx(0.92, abs=0.005)
    assert t[(4.0, 7.0)].probability == pytest.approx(0.27, abs=0.005)
    assert t[(4.5, 7.0)].probability == pytest.approx(0.105, abs=0.002)


def test_95_percent_range_brackets_the_mean():
    """The 95 % range of the number contains the mean-a expectation for M>=3 in 7 d."""
    r = table(DEEPCON, (3.0,), (7.0,))[(3.0, 7.0)]
    assert r.n_low == 0 and r.n_high >= 2 and r.n_low <= r.n_median <= r.n_high


def test_stable_integral_near_p_one():
    """The sinh form agrees with ln((t2+c)/(t1+c)) as p -> 1."""
    assert omori_integral(1.0 + 1e-9, 0.018, 0.0, 7.0) == pytest.approx(
        omori_integral(1.0, 0.018, 0.0, 7.0), rel=1e-6)


def test_bayes_update_moves_a_towards_the_data():
    """Many observed aftershocks raise the posterior mean of a; none lower it."""
    g = a_grid()
    prior = prior_weights(DEEPCON, g)
    rich = bayes_weights(DEEPCON, g, prior, 4.5, 3.0, 40, 0.01, 1.0)
    none = bayes_weights(DEEPCON, g, prior, 4.5, 3.0, 0, 0.01, 1.0)
    mean = lambda w: float((w * g).sum())
    assert mean(rich) > mean(prior) > mean(none)


def test_default_regimes():
    """Lhasa -> ANSR-DEEPCON, Ridgecrest -> CAL-SCSN, elsewhere ANSR-SHALCON."""
    p = SequenceParams()
    assert regime_for(29.85, 92.25, p.regime_boxes, p.default_regime) == "ANSR-DEEPCON"
    assert regime_for(35.77, -117.6, p.regime_boxes, p.default_regime) == "CAL-SCSN"
    assert regime_for(36.4, 25.6, p.regime_boxes, p.default_regime) == "ANSR-SHALCON"


def test_swarm_rate_statement():
    """Rate 2/day of M>=2, b=1: P(M>=3 in 1 d) = 1 - exp(-0.2)."""
    r = swarm_rate_forecast(2.0, 2.0, 1.0, (3.0,), (1.0,))[0]
    assert r.probability == pytest.approx(0.18126924692, rel=1e-9)
