"""
The statistics behind every report headline, over SciPy and statsmodels. Callers ask three
questions and never see a formula:

- `compare`: how likely is a change this large between two proportions by chance alone (the
  p-value), and which test said so? Fisher's exact test where any expected count of the 2x2
  table is below 5 (the normal approximation would be poor), else Pearson's chi-square test of
  the table, which is the two-sided two-proportion z-test with a pooled variance.
- `adjust`: the Benjamini-Hochberg q-values of one family of tests, so that among the changes
  called meaningful the expected share of chance findings stays at the chosen rate.
- `intervals`: 95% Wilson score intervals of proportions.

Everything takes and returns plain numbers in batches: a rebuild tests tens of thousands of
facts, and one vectorised call costs what a few single ones would.
"""

import functools
from collections.abc import Sequence

import numpy as np
from scipy import stats

FISHER = "fisher"
Z_TEST = "z"
TEST_NAMES = {
    FISHER: "Fisher's exact test",
    Z_TEST: "two-proportion z-test",
}
# Below this expected count in any cell the chi-square (z) approximation is not trusted.
MIN_EXPECTED = 5

# (x1, n1, x2, n2): x1 of n1 before, x2 of n2 now.
Pair = tuple[int, int, int, int]


@functools.lru_cache(maxsize=65_536)
def _fisher(x1: int, n1: int, x2: int, n2: int) -> float:
    # Small tables repeat across slices and refreshes: the cache makes each one cost once.
    return float(stats.fisher_exact([[x1, n1 - x1], [x2, n2 - x2]]).pvalue)


def compare(pairs: Sequence[Pair]) -> list[tuple[float, str]]:
    """
    The two-sided p-value and the test used for each pair. Both samples must be non-empty and
    0 <= x <= n (ValueError otherwise). Identical all-yes or all-no samples give p = 1.
    """
    if not pairs:
        return []
    table = np.asarray(pairs, dtype=np.float64).reshape(-1, 4)
    x1, n1, x2, n2 = table.T
    if (n1 <= 0).any() or (n2 <= 0).any():
        raise ValueError("Both samples need at least one deal.")
    if (x1 < 0).any() or (x2 < 0).any() or (x1 > n1).any() or (x2 > n2).any():
        raise ValueError("Counts must lie between 0 and their sample size.")
    observed = np.column_stack([x1, n1 - x1, x2, n2 - x2])
    total = n1 + n2
    yes = (x1 + x2) / total
    expected = np.column_stack([n1 * yes, n1 * (1 - yes), n2 * yes, n2 * (1 - yes)])
    degenerate = (yes == 0) | (yes == 1)
    exact = (expected.min(axis=1) < MIN_EXPECTED) & ~degenerate
    p = np.ones(len(table))
    approx = ~exact & ~degenerate
    if approx.any():
        # Four cells, three constraints used to estimate the expected counts: one degree of
        # freedom, as for a 2x2 contingency table.
        p[approx] = stats.chisquare(observed[approx], expected[approx], ddof=2, axis=1).pvalue
    for i in np.flatnonzero(exact):
        p[i] = _fisher(*(int(v) for v in table[i]))
    return [
        (float(value), FISHER if is_exact else Z_TEST)
        for value, is_exact in zip(p, exact, strict=True)
    ]


def adjust(p_values: Sequence[float]) -> list[float]:
    """Benjamini-Hochberg adjusted p-values (q-values) of one family, in the same order."""
    if not p_values:
        return []
    return [float(q) for q in stats.false_discovery_control(np.asarray(p_values), method="bh")]


def rejected(p_values: Sequence[float], q: float) -> list[bool]:
    """Which tests of one family the Benjamini-Hochberg procedure at level q calls meaningful."""
    return [value <= q for value in adjust(p_values)]


def intervals(successes: Sequence[int], trials: Sequence[int]) -> list[tuple[float, float]]:
    """95% Wilson score intervals; (nan, nan) where there are no trials."""
    if not successes:
        return []
    # statsmodels pulls in pandas: imported on first use, in a worker or a live report only.
    from statsmodels.stats.proportion import proportion_confint

    x = np.asarray(successes, dtype=np.float64)
    n = np.asarray(trials, dtype=np.float64)
    low = np.full(len(x), np.nan)
    high = np.full(len(x), np.nan)
    some = n > 0
    if some.any():
        low[some], high[some] = proportion_confint(x[some], n[some], alpha=0.05, method="wilson")
    return [(float(a), float(b)) for a, b in zip(low, high, strict=True)]
