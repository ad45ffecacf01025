"""What realised and estimated performance keep of a window's scores, chunk by chunk.

A window of the decision log may hold millions of decisions; its performance figures need
only a histogram of its scores and a few sums, so :class:`ScoreSummary` folds chunks into:

* per distinct score (while there are at most :data:`EXACT_SCORES` distinct scores; then per
  bin of width 2⁻¹⁷ on [0, 1]): the decisions, the labelled defaults and goods, and the sums of
  the probability taken as true (for CBPE) and of the score over the labelled ones;
* exact sums: decisions, labelled rows, defaults, Σp, Σp², Σp·y on the labelled rows, the
  confusion counts at the threshold, and CBPE's expected counts on either side of it.

From these, the ROC AUC (Mann–Whitney, ties half), KS, Brier score, calibration gap, confusion
matrix and the CBPE estimates are those of the raw rows while scores are exact (up to the order
of floating-point sums). The ECE's equal-count bins share a tied score's rows in proportion when
a bin boundary falls among them (the row-level table splits them by row order). Once binned,
scores within a bin count as ties: the AUC then differs from the exact one by at most
half the share of default–good pairs that fall in one bin (:meth:`ScoreSummary.auc_error_bound`,
about 10⁻⁵ on millions of spread scores), and KS by at most the largest bin's share of
defaults plus its share of goods.
"""

from __future__ import annotations

import numpy as np

__all__ = ["BIN_WIDTH", "EXACT_SCORES", "ScoreSummary"]

#: Distinct scores a summary keeps exactly before it moves to bins.
EXACT_SCORES = 200_000
#: Width of a score bin once a summary is binned.
BIN_WIDTH = 2.0**-17

# Columns per score: decisions, Σp (all), defaults, goods, Σp (labelled), Σscore (labelled).
_N, _P, _D, _G, _LP, _LS = range(6)


class ScoreSummary:
    """One window's scores and outcomes, folded in chunk by chunk (:meth:`update`)."""

    def __init__(self, threshold: float) -> None:
        self.threshold = threshold
        self.binned = False
        self._keys = np.array([], dtype=float)
        self._columns = np.zeros((6, 0))
        self.rows = 0
        self.labelled = 0
        self.defaults = 0
        self.sum_score = 0.0  # labelled
        self.sum_score2 = 0.0  # labelled
        self.sum_score_y = 0.0  # labelled
        self.confusion = np.zeros(4)  # tp, fp, fn, tn on the labelled rows
        self.expected = np.zeros(4)  # Σp and Σ(1-p) over predicted defaults, then goods
        self.sum_p = 0.0
        self.sum_p_labelled = 0.0

    def update(self, score: np.ndarray, p: np.ndarray, outcome: np.ndarray) -> None:
        """``score``: the model's probabilities; ``p``: those taken as true (recalibrated, or
        ``score``); ``outcome``: 1 default, 0 good, NaN unknown."""
        score = np.asarray(score, dtype=np.float64)
        p = np.clip(np.asarray(p, dtype=np.float64), 0.0, 1.0)
        outcome = np.asarray(outcome, dtype=np.float64)
        labelled = ~np.isnan(outcome)
        y = np.where(labelled, outcome, 0.0)
        self.rows += len(score)
        self.labelled += int(labelled.sum())
        self.defaults += int(y.sum())
        ls = score[labelled]
        ly = y[labelled]
        self.sum_score += float(ls.sum())
        self.sum_score2 += float((ls * ls).sum())
        self.sum_score_y += float((ls * ly).sum())
        predicted = score >= self.threshold
        lp = predicted[labelled]
        self.confusion += [
            np.sum(lp & (ly == 1)),
            np.sum(lp & (ly == 0)),
            np.sum(~lp & (ly == 1)),
            np.sum(~lp & (ly == 0)),
        ]
        self.expected += [
            p[predicted].sum(),
            (1.0 - p[predicted]).sum(),
            p[~predicted].sum(),
            (1.0 - p[~predicted]).sum(),
        ]
        self.sum_p += float(p.sum())
        self.sum_p_labelled += float(p[labelled].sum())
        columns = np.vstack(
            [
                np.ones(len(score)),
                p,
                labelled & (y == 1),
                labelled & (y == 0),
                np.where(labelled, p, 0.0),
                np.where(labelled, score, 0.0),
            ]
        )
        keys = np.floor(score / BIN_WIDTH) if self.binned else score
        self._merge(keys, columns)
        if not self.binned and len(self._keys) > EXACT_SCORES:
            self.binned = True
            keys, columns = np.floor(self._keys / BIN_WIDTH), self._columns
            self._keys, self._columns = np.array([]), np.zeros((6, 0))
            self._merge(keys, columns)

    def _merge(self, keys: np.ndarray, columns: np.ndarray) -> None:
        keys, inverse = np.unique(np.concatenate([self._keys, keys]), return_inverse=True)
        stacked = np.hstack([self._columns, columns])
        self._columns = np.vstack(
            [np.bincount(inverse, weights=row, minlength=len(keys)) for row in stacked]
        )
        self._keys = keys

    # -- realised ------------------------------------------------------------------------

    def _labelled_columns(self) -> np.ndarray:
        labelled = (self._columns[_D] + self._columns[_G]) > 0
        return self._columns[:, labelled]

    def roc_auc(self) -> float:
        """ROC AUC on the labelled rows (ties count half)."""
        columns = self._labelled_columns()
        d, g = columns[_D], columns[_G]
        below = np.cumsum(g) - g
        return float(np.sum(d * (below + 0.5 * g)) / (d.sum() * g.sum()))

    def auc_error_bound(self) -> float:
        """How far the AUC may be from the rows' (0 while scores are exact)."""
        if not self.binned:
            return 0.0
        columns = self._labelled_columns()
        d, g = columns[_D], columns[_G]
        return float(0.5 * np.sum(d * g) / (d.sum() * g.sum()))

    def ks(self) -> float:
        """Largest gap between the share of defaults and of goods scored at or above a score."""
        columns = self._labelled_columns()
        d, g = columns[_D], columns[_G]
        tpr = np.cumsum(d[::-1]) / d.sum()
        fpr = np.cumsum(g[::-1]) / g.sum()
        return float(max(0.0, np.max(tpr - fpr)))

    def brier(self) -> float:
        n = self.labelled
        return (self.sum_score2 - 2.0 * self.sum_score_y + self.defaults) / n

    def ece(self, n_bins: int = 10) -> float:
        """Expected calibration error on equal-count bins of the labelled rows."""
        columns = self._labelled_columns()
        counts = columns[_D] + columns[_G]
        n = int(counts.sum())
        sizes = np.full(n_bins, n // n_bins)
        sizes[: n % n_bins] += 1
        bounds = np.concatenate([[0], np.cumsum(sizes[sizes > 0])]).astype(float)
        cum_n = np.concatenate([[0.0], np.cumsum(counts)])
        cum_score = np.interp(bounds, cum_n, np.concatenate([[0.0], np.cumsum(columns[_LS])]))
        cum_y = np.interp(bounds, cum_n, np.concatenate([[0.0], np.cumsum(columns[_D])]))
        size = np.diff(bounds)
        gap = np.abs(np.diff(cum_score) / size - np.diff(cum_y) / size)
        return float(np.sum(size / n * gap))

    # -- estimated (CBPE) -----------------------------------------------------------------

    def expected_roc_auc(self, *, labelled: bool = False) -> float | None:
        """CBPE's expected ROC AUC over every row, or over the labelled ones."""
        columns = self._columns
        if labelled:
            count = columns[_D] + columns[_G]
            defaults = columns[_LP][count > 0]
            count = count[count > 0]
        else:
            count, defaults = columns[_N], columns[_P]
        goods = count - defaults
        total = defaults.sum() * goods.sum()
        if len(count) == 0 or total <= 0.0:
            return None
        below = np.cumsum(goods) - goods
        return float(np.sum(defaults * (below + 0.5 * goods)) / total)
