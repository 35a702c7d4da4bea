"""Predicted intensity at many residents at once (core.intensity.upper_intensity_many).

Prints the time for 10k, 100k and 1M places (best of 5) and the ratio to the scalar function
per place, measured in the same run.
"""

from __future__ import annotations

import time

import numpy as np

from quakealert.core.intensity import epicentral_km, predict_intensity, upper_intensity_many

EPI = (29.85, 92.25)  # Maizhokunggar M4.5, CENC


def best_of(fn, repeat: int = 5) -> float:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    rng = np.random.default_rng(2)
    for n in (10_000, 100_000, 1_000_000):
        lats = rng.uniform(27, 33, n)
        lons = rng.uniform(85, 100, n)
        t = best_of(lambda la=lats, lo=lons: upper_intensity_many(4.5, 10.0, *EPI, la, lo))
        print(f"upper_intensity_many n={n:>9,}: {t * 1000:8.1f} ms  ({t / n * 1e9:6.0f} ns/place)")
    sample = 2_000
    lats = rng.uniform(27, 33, sample)
    lons = rng.uniform(85, 100, sample)
    scalar = best_of(lambda: [predict_intensity(4.5, 10.0, epicentral_km(*EPI, la, lo)).upper
                              for la, lo in zip(lats, lons, strict=True)], repeat=3) / sample
    vector = best_of(lambda: upper_intensity_many(4.5, 10.0, *EPI, lats, lons)) / sample
    print(f"scalar predict_intensity: {scalar * 1e9:.0f} ns/place; vectorised is "
          f"{scalar / vector:.0f}x faster on the same {sample:,} places")


if __name__ == "__main__":
    main()
