"""Confidence bounds for calibration: a target chosen on a calibration sample should hold on new
traffic, not only on the sample it was chosen on.

`z_of(confidence)` turns a one-sided confidence level into standard errors (0.5 → 0, the point
estimate; 0.9 → 1.28; 0.95 → 1.64). The bounds are one-sided at that level.
"""

from __future__ import annotations

import math
from statistics import NormalDist
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np


def z_of(confidence: float) -> float:
    """Standard errors of a one-sided bound at `confidence` (0.5 ≤ confidence < 1)."""
    if not 0.5 <= confidence < 1.0:
        raise ValueError(f"confidence must be in [0.5, 1): {confidence}")
    return NormalDist().inv_cdf(confidence)


def wilson_lower(hits: int, total: int, z: float) -> float:
    """Lower end of the Wilson score interval of a proportion."""
    if total == 0:
        return 0.0
    p = hits / total
    centre = p + z * z / (2 * total)
    margin = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total))
    return (centre - margin) / (1 + z * z / total)


def wilson_upper(hits: int, total: int, z: float) -> float:
    """Upper end of the Wilson score interval of a proportion."""
    return 1.0 - wilson_lower(total - hits, total, z) if total else 1.0


def ratio_lower(numerator: np.ndarray, denominator: np.ndarray, z: float) -> float:
    """Lower bound of mean(numerator) / mean(denominator) over paired rows (delta method):
    e.g. the quality a policy keeps as a share of the strong model's, both measured on the same
    prompts, so the prompts' shared difficulty cancels out of the error."""
    import numpy as np

    n = len(numerator)
    mean_d = float(np.mean(denominator)) if n else 0.0
    if mean_d <= 0:
        return 0.0
    ratio = float(np.mean(numerator)) / mean_d
    if n < 2 or z == 0:
        return ratio
    residual = numerator - ratio * denominator
    se = float(np.std(residual, ddof=1)) / (math.sqrt(n) * mean_d)
    return ratio - z * se
