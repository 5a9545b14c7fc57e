"""Cost/quality metrics of a router on recorded outcomes: the curve, APGR, CPT, cost at a quality.

Definitions (RouteLLM, arXiv 2406.18665, generalised to any number of models):
- *weak* = the cheapest model, *strong* = the model with the best mean score (ties → cheaper).
- PGR(q) = (q − q_weak) / (q_strong − q_weak): the share of the quality gap a router recovers.
- The x axis is either `calls` — the share of calls not sent to the weak model (for two models: calls
  to the strong one, the paper's axis) — or `cost` — (cost − cost_weak) / (cost_strong − cost_weak).
- A router's curve is the set of operating points of its threshold sweep, linearly interpolated
  (a mix of two operating points is itself a policy) and made non-decreasing (with a budget of x you
  may always run a cheaper point). Points past the router's costliest point keep its quality.
- APGR = mean of PGR over x ∈ [0, 1]; CPT(p) = the smallest x whose PGR reaches p (None if never).
- The *headline* axis is `calls` for exactly two models and `cost` for more: with three or more, a
  share of calls mixes models of very different prices (a call to a model barely dearer than the
  weak one counts as much as a call to the strong one), so only the cost share is comparable.
- When weak is strong (the cheapest model also scores best, e.g. every score ties) there is no gap to
  recover: reports give PGR, APGR and CPT as None (`Reference.routable`, `nothing_to_route`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

GRID = 1001
AXES = ("calls", "cost")


def headline_axis(n_models: int) -> str:
    """The axis headline figures are reported on: `calls` for two models, `cost` otherwise (the rule
    training selects hyper-parameters by, `thrifty.routing.train`)."""
    return "calls" if n_models == 2 else "cost"


def require_models(models: list[str]) -> None:
    """Routing and cascades choose between models: one is an error (ValueError, exit 2 in the CLI)."""
    if len(models) < 2:
        raise ValueError(f"routing needs at least two models; the data has one: {models[0]!r}")


def nothing_to_route(
    ref: Reference, scores: np.ndarray, models: list[str], split: str = "test"
) -> str | None:
    """Why no policy can beat always calling one model on these outcomes (None: there is a choice);
    `split` names the prompts (`test`, `calibration`)."""
    import numpy as np

    mean_q = scores.mean(axis=0)
    if ref.routable:
        if ref.c_strong <= ref.c_weak:
            return (
                f"nothing to route: the best model, {models[ref.strong]}, costs no more than the "
                f"cheapest, {models[ref.weak]}: always call it (the cost axis has no width)"
            )
        return None
    if np.allclose(mean_q, mean_q[0]):
        why = f"every model has the same mean score ({mean_q[0]:.3f})"
    else:
        why = f"the cheapest model, {models[ref.weak]}, also has the best mean score ({ref.q_strong:.3f})"
    return (
        f"nothing to route: {why} on the {len(scores)} {split} prompts, so weak = strong; "
        "PGR, APGR and CPT are n/a"
    )


@dataclass(slots=True)
class Point:
    """One operating point of a policy on a dataset."""

    quality: float
    cost_usd: float
    calls_share: float
    cost_share: float


@dataclass(slots=True)
class Reference:
    """The fixed points every curve is measured against."""

    weak: int
    strong: int
    q_weak: float
    q_strong: float
    c_weak: float
    c_strong: float

    @classmethod
    def of(cls, scores: np.ndarray, costs: np.ndarray) -> Reference:
        import numpy as np

        mean_q = scores.mean(axis=0)
        total_c = costs.sum(axis=0)
        weak = int(np.argmin(total_c))
        best = mean_q.max()
        tied = np.flatnonzero(np.isclose(mean_q, best))
        strong = int(tied[np.argmin(total_c[tied])])
        return cls(
            weak, strong, float(mean_q[weak]), float(best), float(total_c[weak]), float(total_c[strong])
        )

    @property
    def routable(self) -> bool:
        """Whether there is a quality gap between weak and strong to recover (PGR is defined)."""
        return self.weak != self.strong and self.q_strong > self.q_weak

    def pgr(self, quality: float) -> float:
        gap = self.q_strong - self.q_weak
        return 0.0 if gap <= 0 else (quality - self.q_weak) / gap

    def cost_share(self, cost: float) -> float:
        gap = self.c_strong - self.c_weak
        return 0.0 if gap <= 0 else (cost - self.c_weak) / gap


def point(choice: np.ndarray, scores: np.ndarray, costs: np.ndarray, ref: Reference) -> Point:
    """The operating point of a per-prompt choice of model index."""
    import numpy as np

    rows = np.arange(len(choice))
    cost = float(costs[rows, choice].sum())
    return Point(
        quality=float(scores[rows, choice].mean()),
        cost_usd=cost,
        calls_share=float(np.mean(choice != ref.weak)),
        cost_share=ref.cost_share(cost),
    )


def _envelope(xs: np.ndarray, ys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """PGR on the GRID over [0, 1]: interpolated, then running max (budget semantics)."""
    import numpy as np

    order = np.lexsort((ys, xs))
    xs, ys = xs[order], ys[order]
    grid = np.linspace(0.0, 1.0, GRID)
    inside = np.interp(grid, xs, ys, left=ys[0], right=ys[-1])
    below = grid < xs[0]
    inside[below] = 0.0 if xs[0] > 0 else ys[0]
    return grid, np.maximum.accumulate(inside)


@dataclass(slots=True)
class Curve:
    """A policy's operating points plus the derived summary figures."""

    points: list[Point]
    ref: Reference

    def pgr_on(self, axis: str) -> tuple[np.ndarray, np.ndarray]:
        import numpy as np

        xs = np.array([getattr(p, f"{axis}_share") for p in self.points] + [0.0])
        ys = np.array([self.ref.pgr(p.quality) for p in self.points] + [0.0])
        return _envelope(np.clip(xs, 0.0, None), ys)

    def apgr(self, axis: str = "calls") -> float:
        import numpy as np

        grid, pgr = self.pgr_on(axis)
        return float(np.trapezoid(pgr, grid))

    def cpt(self, target: float, axis: str = "calls") -> float | None:
        import numpy as np

        grid, pgr = self.pgr_on(axis)
        hit = np.flatnonzero(pgr >= target - 1e-12)
        return float(grid[hit[0]]) if len(hit) else None

    def cost_at_quality(self, share_of_best: float) -> tuple[float, float] | None:
        """Cheapest point whose quality is ≥ share_of_best × the strong model's: (USD, × strong cost)."""
        needed = share_of_best * self.ref.q_strong - 1e-12
        ok = [p for p in self.points if p.quality >= needed]
        if not ok:
            return None
        best = min(ok, key=lambda p: p.cost_usd)
        return best.cost_usd, best.cost_usd / self.ref.c_strong if self.ref.c_strong else 0.0

    def headline(self, axis: str) -> dict[str, str | float | None]:
        """APGR, CPT(50 %) and CPT(80 %) on `axis`, named: the figures a report leads with (None when
        the reference is not routable)."""
        if not self.ref.routable:
            return {"axis": axis, "apgr": None, "cpt50": None, "cpt80": None}
        return {
            "axis": axis,
            "apgr": self.apgr(axis),
            "cpt50": self.cpt(0.5, axis),
            "cpt80": self.cpt(0.8, axis),
        }

    def summary(self) -> dict[str, float | None]:
        """Both axes' APGR and CPTs (None when the reference is not routable), and cost at 95 %."""
        at95 = self.cost_at_quality(0.95)
        figures: dict[str, float | None] = {}
        for axis in AXES:
            head = self.headline(axis)
            figures.update({_suffixed(k, axis): head[k] for k in ("apgr", "cpt50", "cpt80")})
        return {
            **figures,
            "cost_at_95_usd": None if at95 is None else at95[0],
            "cost_at_95_share": None if at95 is None else at95[1],
        }


def _suffixed(figure: str, axis: str) -> str:
    """JSON key of a figure on an axis: `apgr` on the calls axis, `apgr_cost` on the cost axis."""
    return figure if axis == "calls" else f"{figure}_{axis}"


def sweep(
    probs: np.ndarray,
    est_cost: np.ndarray,
    scores: np.ndarray,
    costs: np.ndarray,
    ref: Reference,
    *,
    limit: int = 1500,
) -> Curve:
    """Curve of the policy `argmax_j probs[:, j] − λ·est_cost[j]` over all λ ≥ 0.

    `probs` (n, m): predicted quality per prompt and model; `est_cost` (m,): the router's cost estimate
    per call (a constant per model, as known before the call); `limit`: at most that many λ values."""
    import numpy as np

    lambdas = _breakpoints(probs, est_cost, limit)
    points = []
    for lam in lambdas:
        choice = np.argmax(probs - lam * est_cost[None, :], axis=1)
        points.append(point(choice, scores, costs, ref))
    points.append(point(np.full(len(probs), int(np.argmin(est_cost))), scores, costs, ref))
    return Curve(points, ref)


def _breakpoints(probs: np.ndarray, est_cost: np.ndarray, limit: int = 1500) -> np.ndarray:
    """λ values at which some prompt changes model (sub-sampled to `limit`), plus 0."""
    import numpy as np

    m = probs.shape[1]
    found = [np.zeros(1)]
    for j in range(m):
        for k in range(m):
            dc = est_cost[j] - est_cost[k]
            if dc > 0:
                lam = (probs[:, j] - probs[:, k]) / dc
                found.append(lam[lam > 0])
    values = np.unique(np.concatenate(found))
    if len(values) > limit:
        values = np.quantile(values, np.linspace(0, 1, limit))
    # nudge just below each breakpoint so the costlier choice wins the tie
    return np.concatenate([values * (1 - 1e-9), values * (1 + 1e-9)])


def ranking_curve(score: np.ndarray, scores: np.ndarray, costs: np.ndarray, ref: Reference) -> Curve:
    """Exact curve of a two-level policy: send the top-k prompts by `score` to strong, the rest to weak."""
    import numpy as np

    order = np.argsort(-score, kind="stable")
    n = len(score)
    rows = np.arange(n)
    weak_q, strong_q = scores[:, ref.weak], scores[:, ref.strong]
    weak_c, strong_c = costs[:, ref.weak], costs[:, ref.strong]
    dq = np.concatenate([[0.0], np.cumsum((strong_q - weak_q)[order])])
    dc = np.concatenate([[0.0], np.cumsum((strong_c - weak_c)[order])])
    del rows
    points = [
        Point(
            quality=float((weak_q.sum() + dq[k]) / n),
            cost_usd=float(weak_c.sum() + dc[k]),
            calls_share=k / n,
            cost_share=ref.cost_share(float(weak_c.sum() + dc[k])),
        )
        for k in range(n + 1)
    ]
    return Curve(points, ref)
