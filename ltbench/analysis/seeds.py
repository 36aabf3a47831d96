"""Seed statistics: one table cell measured by n training runs that differ only in their seed.

Aggregation (:func:`aggregate`): mean, sample standard deviation (ddof = 1), n, median, min, max of the
defined values (``-1`` means "undefined" in the metrics contract, e.g. APr without a rare class in the
val split, and is dropped, not averaged).

Verdict of a cell (:func:`cell_verdict`): is the paper's printed number inside the interval of our runs?

Which interval, and why. The paper's number is itself *one* training run (SimCal: the median of 3), so
the question is "could the paper's run be one more draw from the distribution of our runs?". That is a
**prediction interval** for one new observation, ``mean ± t_{0.975, n-1} · std · sqrt(1 + 1/n)``
(``method="prediction"``, the default). The confidence interval of the mean, ``mean ± t · std / sqrt(n)``
(``method="ci"``), answers a different question (where is the true mean of *our* runs) and is too narrow
for a single foreign run: with n = 3 it is 2.3x narrower than the prediction interval and would flag
ordinary seed noise as a failure. ``min..max`` (``method="range"``) is offered for eyeballing, but a new
draw falls inside the range of n runs only with probability (n-1)/(n+1) (50 % for n = 3).

Whatever the method, the half-width is never below half a unit of the paper's last printed digit (a
printed 25.1 stands for [25.05, 25.15)), so identical seeds (std 0) do not make every cell fail.
For n = 1 there is no spread: the verdict falls back to the fixed per-metric tolerance (as in
``workflows/config/config.yaml``), with a note that LVIS APr is noisy and one run says little about it.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from ltbench.errors import LtbenchError

WITHIN, BETTER, WORSE, UNDETERMINED = "within", "better", "worse", "undetermined"
METHODS = ("prediction", "ci", "range")

# Two-sided 95 % Student t quantiles t_{0.975, df} for df = 1..30 (standard table values, 3 decimals
# are plenty next to AP noise). Beyond 30 a Cornish-Fisher expansion around the normal quantile.
_T975 = (
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
    2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
    2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
)
_Z975 = 1.959964

NOISY_NOTE = "n = 1: LVIS APr is noisy (rare categories have few val instances, so APr varies more between seeds than AP); judged by the fixed tolerance"
SINGLE_NOTE = "n = 1: no seed spread; judged by the fixed tolerance"


def t975(df: int) -> float:
    """The 97.5 % quantile of Student's t with ``df`` degrees of freedom (df >= 1)."""
    if df < 1:
        raise LtbenchError(f"t quantile needs df >= 1, got {df}", expected="at least two seeds")
    if df <= len(_T975):
        return _T975[df - 1]
    z = _Z975
    g1 = (z**3 + z) / 4
    g2 = (5 * z**5 + 16 * z**3 + 3 * z) / 96
    g3 = (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / 384
    return z + g1 / df + g2 / df**2 + g3 / df**3


@dataclass(frozen=True)
class SeedStats:
    """Statistics of one cell over seeds (AP points). ``std`` is None for n < 2."""

    n: int
    mean: float
    std: float | None
    median: float
    min: float
    max: float
    values: tuple[float, ...]
    n_undefined: int = 0  # values that were -1 (undefined) and left out

    def format(self, precision: int = 1) -> str:
        """``"25.3 ± 0.4 (n=3)"``; ``"25.3 (n=1)"`` for a single seed."""
        mean = f"{self.mean:.{precision}f}"
        if self.std is None:
            return f"{mean} (n={self.n})"
        return f"{mean} ± {self.std:.{precision}f} (n={self.n})"


def aggregate(values: Iterable[float | None]) -> SeedStats | None:
    """Seed statistics of the defined values (None and negative = undefined are dropped); None if none."""
    raw = list(values)
    defined = [float(v) for v in raw if v is not None and not math.isnan(float(v)) and float(v) >= 0]
    if not defined:
        return None
    n = len(defined)
    return SeedStats(
        n=n,
        mean=statistics.fmean(defined),
        std=statistics.stdev(defined) if n > 1 else None,
        median=statistics.median(defined),
        min=min(defined),
        max=max(defined),
        values=tuple(defined),
        n_undefined=len(raw) - n,
    )


def interval(stats: SeedStats, method: str = "prediction") -> tuple[float, float]:
    """The interval of the reproduced runs (n >= 2), see the module docstring for the methods."""
    if method not in METHODS:
        raise LtbenchError(f"unknown seed interval method {method!r}", expected="one of " + ", ".join(METHODS))
    if stats.n < 2 or stats.std is None:
        raise LtbenchError(f"a seed interval needs n >= 2 values, got n = {stats.n}", hint="use the fixed tolerance for n = 1")
    if method == "range":
        return stats.min, stats.max
    scale = math.sqrt(1 + 1 / stats.n) if method == "prediction" else 1 / math.sqrt(stats.n)
    half = t975(stats.n - 1) * stats.std * scale
    return stats.mean - half, stats.mean + half


def decimals(printed: str) -> int:
    text = str(printed).strip()
    return len(text.split(".", 1)[1]) if "." in text else 0


@dataclass
class SeedVerdict:
    """The verdict of one cell: ``within`` | ``better`` | ``worse`` | ``undetermined``, and why."""

    verdict: str
    stats: SeedStats | None
    reported: float | None
    low: float | None = None  # the interval the reported value was compared with
    high: float | None = None
    method: str = ""  # prediction | ci | range | tolerance
    notes: list[str] = field(default_factory=list)

    def describe(self) -> str:
        if self.stats is None or self.reported is None:
            return f"{self.verdict}: " + "; ".join(self.notes)
        where = f"[{self.low:.2f}, {self.high:.2f}] ({self.method})"
        return f"{self.verdict}: reported {self.reported:g} vs {self.stats.format(2)}, interval {where}" + (
            "; " + "; ".join(self.notes) if self.notes else ""
        )


def cell_verdict(
    reported: str | float | None,
    values: Sequence[float | None],
    *,
    metric: str = "",
    tolerance: float = 1.0,
    lower_is_better: bool = False,
    method: str = "prediction",
) -> SeedVerdict:
    """Compare the paper's printed number with the seed distribution of the reproduced runs.

    Args:
        reported: the paper's number, ideally as printed (``"25.1"``; its decimals give the rounding
            half-unit added to the interval), or a float.
        values: the reproduced values, one per seed (AP points; -1/None = undefined, dropped).
        metric: the canonical key (``segm.APr``); APr gets the noisy note at n = 1.
        tolerance: the fixed per-metric tolerance (points), used when n = 1.
        lower_is_better: PwB-like metrics: a reproduced value *below* the paper is "better".
        method: ``prediction`` (default) | ``ci`` | ``range``.

    ``better`` / ``worse`` say on which side of the interval the paper's number lies, from the
    reproduction's point of view: ``worse`` = our runs are worse than the paper beyond the seed spread.
    """
    if method not in METHODS:
        raise LtbenchError(f"unknown seed interval method {method!r}", expected="one of " + ", ".join(METHODS))
    stats = aggregate(values)
    if reported is None:
        return SeedVerdict(UNDETERMINED, stats, None, notes=["the paper reports no number for this cell"])
    if stats is None:
        return SeedVerdict(UNDETERMINED, None, float(reported), notes=["no defined reproduced value (pending or -1)"])
    ref = float(reported)
    half_unit = 0.5 * 10 ** (-decimals(str(reported))) if isinstance(reported, str) else 0.0
    notes: list[str] = []
    if stats.n_undefined:
        notes.append(f"{stats.n_undefined} seed(s) undefined (-1) left out")
    if stats.n == 1:
        low, high, used = stats.mean - tolerance, stats.mean + tolerance, "tolerance"
        notes.append(NOISY_NOTE if metric.split(".")[-1] == "APr" else SINGLE_NOTE)
    else:
        low, high = interval(stats, method)
        used = method
        center = stats.mean if method != "range" else (low + high) / 2
        if high - center < half_unit:
            low, high = center - half_unit, center + half_unit
            notes.append("interval widened to the paper's rounding half-unit")
    if low - 1e-9 <= ref <= high + 1e-9:
        verdict = WITHIN
    else:
        ours_above = ref < low  # the paper's number is below our interval
        verdict = BETTER if ours_above != lower_is_better else WORSE
    return SeedVerdict(verdict, stats, ref, low, high, used, notes)


def difference_stats(a: Sequence[float | None], b: Sequence[float | None]) -> tuple[float, float, float] | None:
    """(difference of means, low, high) for A - B over independent seeds (95 %); None if a side is empty.

    - n >= 2 on both sides: Welch, ``d ± t_{0.975, df} · sqrt(sA²/nA + sB²/nB)`` with the
      Welch-Satterthwaite df (rounded down: conservative).
    - one seed on one side, n >= 2 on the other: the single run is assumed to have the same seed spread
      as the other side (same training recipe), ``d ± t_{0.975, n-1} · s · sqrt(1/nA + 1/nB)``.
    - one seed on both sides: no spread is known, low == high == d.
    Used by claims: a difference "holds beyond the seed spread" when its interval excludes 0.
    """
    sa, sb = aggregate(a), aggregate(b)
    if sa is None or sb is None:
        return None
    d = sa.mean - sb.mean
    if sa.std is None and sb.std is None:
        return d, d, d
    if sa.std is None or sb.std is None:
        known = sa if sa.std is not None else sb
        half = t975(known.n - 1) * known.std * math.sqrt(1 / sa.n + 1 / sb.n)  # type: ignore[operator]
        return d, d - half, d + half
    va, vb = sa.std**2 / sa.n, sb.std**2 / sb.n
    se = math.sqrt(va + vb)
    if se == 0:
        return d, d, d
    df = (va + vb) ** 2 / (va**2 / (sa.n - 1) + vb**2 / (sb.n - 1))
    t = t975(max(1, math.floor(df)))
    return d, d - t * se, d + t * se


def tolerance_for(key: str, tolerances: Mapping[str, float]) -> float:
    """Per-metric tolerance: exact key (``segm.APr``), then bare metric (``APr``), then ``default`` (1.0)."""
    if key in tolerances:
        return float(tolerances[key])
    bare = key.split(".", 1)[1] if "." in key else key
    return float(tolerances.get(bare, tolerances.get("default", 1.0)))


def table_notes(cells: Iterable[tuple[str, int]]) -> list[str]:
    """Footnotes a rendered table needs, from its measured cells as (metric key, n seeds).

    ``["APr is noisy: 2 APr cells rest on a single run (n = 1) ..."]`` when some APr cell has n = 1;
    a note that verdicts with n = 1 use the fixed tolerance when any cell has n = 1.
    """
    cells = list(cells)
    single = [key for key, n in cells if n == 1]
    notes = []
    rare = [key for key in single if key.split(".")[-1] == "APr"]
    if rare:
        notes.append(f"LVIS APr is noisy: {len(rare)} APr cell(s) rest on a single run (n = 1); rare categories "
                     "have few val instances, so APr varies more between seeds than AP. Run more seeds before "
                     "reading an APr difference.")
    if single:
        notes.append("Cells with n = 1 are judged by the fixed per-metric tolerance; cells with n >= 2 by whether "
                     "the paper's number lies in the 95 % prediction interval of the seeds.")
    return notes
