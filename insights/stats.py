"""
The one statistical test reports use: is a proportion this period different from last period's
by more than chance would explain? Flagging only p < 0.05 keeps people from chasing noise.
"""

import math
from dataclasses import dataclass

SIGNIFICANCE_LEVEL = 0.05


@dataclass(frozen=True)
class TestResult:
    z: float
    p_value: float

    @property
    def significant(self) -> bool:
        return self.p_value < SIGNIFICANCE_LEVEL


def two_proportion_z_test(x1: int, n1: int, x2: int, n2: int) -> TestResult | None:
    """
    Two-sided two-proportion z-test with a pooled variance: x1 of n1 before, x2 of n2 now.
    None when either sample is empty (there is nothing to compare). The p-value is
    P(|Z| >= |z|) = erfc(|z| / sqrt(2)).
    """
    if n1 <= 0 or n2 <= 0:
        return None
    if not (0 <= x1 <= n1 and 0 <= x2 <= n2):
        raise ValueError("Counts must lie between 0 and their sample size.")
    pooled = (x1 + x2) / (n1 + n2)
    variance = pooled * (1 - pooled) * (1 / n1 + 1 / n2)
    if variance == 0:
        # Both samples all-yes or all-no: identical proportions, no evidence of a change.
        return TestResult(z=0.0, p_value=1.0)
    z = (x2 / n2 - x1 / n1) / math.sqrt(variance)
    return TestResult(z=z, p_value=math.erfc(abs(z) / math.sqrt(2)))
