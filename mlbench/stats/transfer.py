"""Does the loss ranking transfer from one test set to another? Kendall's tau between the
orderings of the losses of one setup by mean AUC on two test sets, with a percentile
interval over both sources of uncertainty (SPEC §5.1): seeds and test-set patients.

Each bootstrap replicate

* draws patients with replacement from the union of the two test sets' patients (an id found
  in both is one patient: ``nih`` and ``nih-expert`` share their images, so a patient drawn
  twice weighs twice in both), every image weighing as many times as its patient is drawn;
* draws S seed indices with replacement, the same for every loss and for both test sets (runs
  are paired by seed, and the same runs are scored on both test sets);
* computes every run's mean AUC over the classes used under those patient weights (to first
  order from the DeLong influence values by default; exactly, by the weighted Mann-Whitney
  sums of :class:`mlbench.stats.metrics.WeightedAUC`, with ``method="exact"``; masks honoured),
  averages each loss over the drawn seeds, and takes Kendall's tau-b between the orderings.

The point estimate is the tau of the losses' seed-averaged mean AUCs on the full test sets;
the interval is the replicates' percentile interval. The verdict: "transfers" when the whole
interval is above 0, "reverses" when it is below 0, otherwise neither is shown. The
simulation behind these rules (A/A-type null, identical, reversed and unrelated orderings) is
``tools/ranking_transfer.py``; its figures are in docs/HARNESS.md.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from mlbench.stats.metrics import WeightedAUC, group_index, skipped_classes


@dataclass
class ScoredTestSet:
    """One test set's scores for the L losses x S seeds of a setup.

    Attributes:
        scores: (L, S, N, C) scores of the test set's findings (the label map applied).
        targets: (N, C) in {0, 1} (anything where ``mask`` is False).
        groups: (N,) patient ids; an id in two test sets is the same patient.
        mask: optional (N, C) bool, True where the label is known.
        classes: class indices used (default: every class with a positive and a negative).
    """

    scores: np.ndarray
    targets: np.ndarray
    groups: np.ndarray
    mask: np.ndarray | None = None
    classes: list[int] | None = None


@dataclass
class RankingAgreement:
    """Kendall's tau-b between two test sets' loss orderings, with its interval."""

    tau: float
    ci_lo: float
    ci_hi: float
    verdict: str  # "transfers" | "reverses" | "not shown"
    n_losses: int
    n_seeds: int
    n_boot: int
    means_a: list[float] = field(default_factory=list)  # per loss, seed-averaged mean AUC
    means_b: list[float] = field(default_factory=list)
    p_positive: float = float("nan")  # fraction of replicates with tau > 0
    method: str = ("Kendall tau-b of the losses' seed-averaged mean AUC; percentile interval "
                   "over a joint patient bootstrap x seed resampling")
    replicates: str = "linear"  # how replicate mean AUCs were computed: "linear" | "exact"

    def to_dict(self) -> dict:
        return asdict(self)

    def line(self) -> str:
        """One-line verdict for a leaderboard or report."""
        say = {"transfers": "the ranking transfers", "reverses": "the ranking reverses",
               "not shown": "transfer not shown"}[self.verdict]
        return (f"Kendall tau {self.tau:+.2f} [{self.ci_lo:+.2f}, {self.ci_hi:+.2f}] over "
                f"{self.n_losses} losses x {self.n_seeds} seeds: {say}")


def kendall_tau_b(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Kendall's tau-b between the rows of x and y, (B, L) each -> (B,); NaN where either
    row is constant (scipy.stats.kendalltau's tau-b, vectorised over rows; tested)."""
    x, y = np.atleast_2d(x), np.atleast_2d(y)
    i, j = np.triu_indices(x.shape[1], 1)
    sx, sy = np.sign(x[:, i] - x[:, j]), np.sign(y[:, i] - y[:, j])
    den = np.sqrt((sx**2).sum(axis=1) * (sy**2).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, (sx * sy).sum(axis=1) / den, np.nan)


def _checked(ts: ScoredTestSet) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray]:
    """(scores (L, S, N, C), targets bool (N, C), known or None, classes used)."""
    sc = np.asarray(ts.scores, dtype=np.float64)
    if sc.ndim != 4:
        raise ValueError(f"Expected `scores` of shape (L, S, N, C), got {sc.shape}")
    if not np.all(np.isfinite(sc)):
        raise ValueError("Expected finite `scores`, got NaN or inf")
    targets = np.asarray(ts.targets, dtype=np.float64)
    if targets.shape != sc.shape[2:]:
        raise ValueError(f"Expected targets of shape {sc.shape[2:]}, got {targets.shape}")
    known = None if ts.mask is None else np.asarray(ts.mask, dtype=bool)
    labelled = targets if known is None else np.where(known, targets, 0.0)
    if not np.isin(labelled, (0.0, 1.0)).all():
        raise ValueError("Expected `targets` in {0, 1} where labelled (NaN: pass a mask)")
    t = labelled.astype(bool)
    skipped = skipped_classes(t, mask=known)
    valid = np.array([c for c in range(t.shape[1]) if c not in skipped], dtype=int)
    cls = valid if ts.classes is None else np.asarray(ts.classes, dtype=int)
    if cls.size == 0:
        raise ValueError("a test set has no class with both a positive and a negative label")
    return sc, t, known, cls


class _Exact:
    """Every run's mean AUC under patient weights, exactly: the Mann-Whitney sums of
    :class:`WeightedAUC` (each class sorted once per run)."""

    def __init__(self, ts: ScoredTestSet, gi: np.ndarray, ng: int):
        sc, t, known, cls = _checked(ts)
        kn = None if known is None else known[:, cls]
        self.gi = gi
        self.runs = [[WeightedAUC(t[:, cls], sc[i, s][:, cls], kn) for s in range(sc.shape[1])]
                     for i in range(sc.shape[0])]

    def _mean(self, w: np.ndarray) -> np.ndarray:  # w (B, N) -> (L, S, B)
        out = np.empty((len(self.runs), len(self.runs[0]), w.shape[0]))
        for i, row in enumerate(self.runs):
            for s, run in enumerate(row):
                auc = run(w)
                ok = ~np.isnan(auc)  # a class undefined in a replicate: out of its mean
                out[i, s] = np.where(ok, auc, 0.0).sum(axis=1) / np.maximum(ok.sum(axis=1), 1)
        return out

    def point(self) -> np.ndarray:
        return self._mean(np.ones((1, len(self.gi))))[:, :, 0]

    def under(self, draws: np.ndarray) -> np.ndarray:  # draws (B, patients) -> (L, S, B)
        return self._mean(draws[:, self.gi])


class _Linear:
    """Every run's mean AUC under patient weights to first order: mean AUC + sum over patients
    of (weight - 1) x the patient's summed influence (the derivative of a weighted AUC in an
    image's weight is (V10_i - AUC) / m for a positive, (V01_j - AUC) / n for a negative: the
    DeLong components, :func:`mlbench.stats.delong.influence` rescaled). One matrix product
    per block of replicates instead of a weighted AUC per class and run."""

    def __init__(self, ts: ScoredTestSet, gi: np.ndarray, ng: int):
        from mlbench.stats.delong import influence

        sc, t, known, cls = _checked(ts)
        tk = t[:, cls]
        kn = np.ones(tk.shape, bool) if known is None else known[:, cls]
        pos, neg = tk & kn, ~tk & kn
        m, n = pos.sum(axis=0).astype(float), neg.sum(axis=0).astype(float)
        scale = np.where(pos, np.sqrt(m * (m - 1)) / m, np.where(neg, np.sqrt(n * (n - 1)) / n, 0))
        n_l, n_s = sc.shape[:2]
        self.mean = np.empty((n_l, n_s))
        self.psi = np.zeros((n_l, n_s, ng))
        for i in range(n_l):
            for s in range(n_s):
                auc, phi = influence(tk, sc[i, s][:, cls], None if known is None else kn)
                self.mean[i, s] = auc.mean()
                self.psi[i, s] = np.bincount(gi, (phi * scale).mean(axis=1), ng)

    def point(self) -> np.ndarray:
        return self.mean

    def under(self, draws: np.ndarray) -> np.ndarray:
        return self.mean[..., None] + np.einsum("lsg,bg->lsb", self.psi, draws - 1.0)


METHODS = {"linear": _Linear, "exact": _Exact}
EXACT_CELLS = 20_000  # "auto": exact replicates up to this many images x classes per test set


def ranking_agreement(a: ScoredTestSet, b: ScoredTestSet, *, n_boot: int = 1000,
                      seed: int = 0, alpha: float = 0.05, method: str = "auto",
                      chunk: int = 32) -> RankingAgreement:
    """Kendall's tau between the loss orderings on test sets ``a`` and ``b`` (module doc).

    Args:
        a, b: the same L losses x S seeds (paired by index) scored on each test set.
        n_boot: bootstrap replicates. seed: their seed. alpha: 1 - interval level.
        method: how a replicate's mean AUCs are computed: "linear" (first order in the
            patient weights, from the DeLong influence values: ~1 s for 200 replicates on the
            official test split, 5 losses x 3 seeds), "exact" (weighted Mann-Whitney sums:
            ~1 min there) or "auto" (exact up to ``EXACT_CELLS`` image x class cells per test
            set, where the first-order error, of order 1/N, is largest; linear above). The
            point estimate is exact either way.
        chunk: replicates computed at once (memory: chunk x N floats per class).

    Returns:
        :class:`RankingAgreement`.
    """
    la, lb = np.shape(a.scores), np.shape(b.scores)
    if la[:2] != lb[:2]:
        raise ValueError(f"Expected the same losses x seeds on both test sets, got {la[:2]} "
                         f"and {lb[:2]}")
    n_losses, n_seeds = la[:2]
    if n_losses < 2:
        raise ValueError(f"Expected at least 2 losses to rank, got {n_losses}")
    if n_boot < 2 or not 0 < alpha < 1:
        raise ValueError(f"Expected `n_boot` >= 2 and `alpha` in (0, 1), got {n_boot}, {alpha}")
    if method not in (*METHODS, "auto"):
        raise ValueError(f"Expected argument `method` to be one of {[*METHODS, 'auto']} but "
                         f"got {method!r}")
    na, nb = np.shape(a.scores)[2], np.shape(b.scores)[2]
    if method == "auto":
        cells = max(int(np.prod(np.shape(x.scores)[2:])) for x in (a, b))
        method = "exact" if cells <= EXACT_CELLS else "linear"
    ga, gb = np.asarray(a.groups).reshape(-1), np.asarray(b.groups).reshape(-1)
    if ga.shape[0] != na or gb.shape[0] != nb:
        raise ValueError("Expected one patient id per image in each test set")
    gi, ng = group_index(np.concatenate([ga.astype(str), gb.astype(str)]))
    rep_a, rep_b = METHODS[method](a, gi[:na], ng), METHODS[method](b, gi[na:], ng)
    mean_a, mean_b = rep_a.point().mean(axis=1), rep_b.point().mean(axis=1)
    tau = float(kendall_tau_b(mean_a[None], mean_b[None])[0])

    rng = np.random.default_rng(seed)
    taus = np.empty(n_boot)
    for b0 in range(0, n_boot, chunk):
        k = min(chunk, n_boot - b0)
        draws = rng.multinomial(ng, np.full(ng, 1.0 / ng), size=k).astype(np.float64)
        seeds = rng.integers(0, n_seeds, (k, n_seeds))
        ma, mb = rep_a.under(draws), rep_b.under(draws)  # (L, S, k)
        pick = np.broadcast_to(seeds.T[None], (n_losses, n_seeds, k))
        ra = np.take_along_axis(ma, pick, 1).mean(axis=1).T  # (k, L)
        rb = np.take_along_axis(mb, pick, 1).mean(axis=1).T
        taus[b0:b0 + k] = kendall_tau_b(ra, rb)
    ok = taus[~np.isnan(taus)]
    lo, hi = (np.percentile(ok, [100 * alpha / 2, 100 * (1 - alpha / 2)])
              if ok.size else (np.nan, np.nan))
    verdict = "transfers" if lo > 0 else "reverses" if hi < 0 else "not shown"
    return RankingAgreement(tau, float(lo), float(hi), verdict, n_losses, n_seeds, n_boot,
                            mean_a.tolist(), mean_b.tolist(),
                            float((ok > 0).mean()) if ok.size else float("nan"),
                            replicates=method)
