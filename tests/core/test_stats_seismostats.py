"""Mc and b on the real catalogues agree with SeismoStats (a test-only dependency, issue 11)."""

from __future__ import annotations

import csv
import warnings

import numpy as np
import pytest

from quakealert.core import stats as st
from tests.seqdata import CATALOGS

with warnings.catch_warnings():  # SeismoStats' own imports warn (pandas, geopandas)
    warnings.simplefilter("ignore")
    from seismostats.analysis.bvalue import ClassicBValueEstimator
    from seismostats.analysis.estimate_mc import estimate_mc_maxc
    from seismostats.utils import bin_to_precision

SCEDC = ["scedc-ridgecrest-2019.csv", "scedc-cahuilla-swarm-2016-2019.csv",
         "scedc-bombay-beach-swarm-2016.csv"]


def _mags(name: str) -> np.ndarray:
    with (CATALOGS / name).open(newline="") as f:
        return np.array([float(r["mag"]) for r in csv.DictReader(f)])


@pytest.mark.parametrize("name", SCEDC)
def test_bins_mc_and_b_agree_with_seismostats(name: str) -> None:
    """Every magnitude in SeismoStats' 0.1 bin; Mc (maxc + 0.2) equal; b within Shi-Bolt sigma."""
    m = _mags(name)
    ours = st.bin_magnitudes(m, 0.1)
    theirs = bin_to_precision(m, 0.1)
    assert int(np.sum(np.abs(ours - theirs) > 1e-9)) == 0
    mc = st.mc_maxc(m, 0.1, 0.2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mc_theirs, _ = estimate_mc_maxc(theirs, fmd_bin=0.1, correction_factor=0.2)
        est = ClassicBValueEstimator()
        b_theirs = est.calculate(theirs, mc=mc, delta_m=0.1)
    assert mc == pytest.approx(float(mc_theirs), abs=1e-9)
    ours_b = st.b_value(m, mc, 0.1)
    assert ours_b is not None
    assert abs(ours_b.b - b_theirs) < ours_b.sigma
    assert ours_b.n == int(np.sum(theirs >= mc - 0.05))


def test_ridgecrest_b_is_seismostats_value() -> None:
    """Ridgecrest 2019 (25,565 SCSN M >= 1): Mc 1.3 and b 0.714 ± 0.005, as SeismoStats gives;
    float binning had moved 918 magnitudes a bin down and b to 0.721 (outside sigma)."""
    m = _mags("scedc-ridgecrest-2019.csv")
    got = st.b_value(m, st.mc_maxc(m), 0.1)
    assert got is not None and got.mc == 1.3 and got.n == 18324
    assert got.b == pytest.approx(0.7143, abs=5e-5) and got.sigma == pytest.approx(0.0049, abs=1e-4)
    naive = np.round(np.sign(m / 0.1) * np.floor(np.abs(m / 0.1) + 0.5)) * 0.1
    assert int(np.sum(np.abs(naive - st.bin_magnitudes(m, 0.1)) > 1e-9)) == 918
