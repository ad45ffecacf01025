"""Explanations of individual decisions and of the model as a whole.

One :class:`Explainer` is built per model (``build_explainer``) and reused for every applicant,
so the per-call cost is one preprocessing pass plus the attribution itself. The method follows
the model:

* logistic regression, and PCA → logistic regression: exact linear SHAP on the log-odds. The
  model is affine in the preprocessed columns (for PCA, ``coef = PCA.components_.T @ lr.coef_``,
  found by probing the fitted steps and verified on the background), so the interventional
  Shapley value of column ``j`` is ``coef_j · (x_j − mean_j)`` over the background: what
  ``shap.LinearExplainer`` computes, done here with one vectorised product.
* XGBoost: interventional TreeSHAP on the background, of the margin (log-odds), computed exactly
  from per-leaf tables (:mod:`creditops.evaluation.treeshap`; ``shap.TreeExplainer`` for
  the trees the tables cannot hold),
  or with ``tree_perturbation="tree_path_dependent"`` XGBoost's own path-dependent TreeSHAP
  (``pred_contribs``, C++ on every core, no background): the values shap gives for it.
* LightGBM: its own exact path-dependent TreeSHAP of the raw score (``pred_contrib``), which
  handles its native categorical splits; the base value is the model's expected raw score.
* random forest: ``shap.TreeExplainer`` of the positive-class probability, tree-path-dependent by
  default: exact, needs no background and costs a few ms per row, where interventional costs
  trees × background rows (over 100 ms for 300 deep trees); its base value is the forest's own
  (class-weighted) training expectation.
* the WoE scorecard: points lost, the traditional adverse-action method. The log-odds is
  ``intercept + Σ_j coefficient_j · WoE_j`` and each feature's term takes one value per bin,
  so feature ``j`` contributes ``coefficient_j · WoE_j(x) − best_j``, where ``best_j`` is the
  lowest term any of its bins holding training rows gives (its best bin), and the base value is
  ``intercept + Σ_j best_j``: exact, never negative, and times the scale's factor (PDO / ln 2)
  the points the applicant lost on that feature against its best bin. Its preprocessed space is
  the scorecard's WoE columns (one per scored feature), so the serving fast path, whose lookups
  give the same columns, feeds it directly.
* anything else (the PyTorch network): ``shap.PermutationExplainer`` of the logit
  (``decision_function``), or of the probability for models without a logit. Its players are the
  original features: the masker swaps all preprocessed columns of a feature at once, so masked
  rows never mix one-hot columns of two categories, and 11 players need far fewer model calls
  than 24 columns. Antithetic permutations make it exactly additive.
* a stacked ensemble (:class:`EnsembleExplainer`): each member explained by its own method
  above, and the member's contributions to its log-odds times its stacking weight summed, since
  the ensemble's log-odds is the intercept plus the weighted sum of the members' log-odds
  (exact). A member explained in probability space (the forest) has its contributions rescaled
  to its log-odds, each in proportion to its share of the member's move from its base value.

Attributions are made in the preprocessed space and summed back to the original features (the
value column, its missing-indicator and its one-hot columns), so each feature gets one
contribution and ``base_value + Σ contributions == raw_output``. ``output_space`` says whether
that raw output is log-odds or a probability; ``proba`` is always the full model's (calibrated)
probability of default.

LIME (:mod:`creditops.evaluation.local_surrogate`) and the counterfactual hint
(:mod:`creditops.evaluation.counterfactual`) need only ``predict_proba`` and the spec, and live
apart from this explainer.
"""

from __future__ import annotations

import copy
import math
import threading
from collections.abc import Mapping, Sequence
from itertools import pairwise
from typing import Any, Literal

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from pydantic import BaseModel, ConfigDict, Field
from sklearn.compose import ColumnTransformer
from sklearn.pipeline import Pipeline

from creditops.data.spec import ResolvedSpec
from creditops.evaluation.attribution import (
    GroupMasker,
    affine_map,
    column_groups,
    seeded_global_numpy,
)
from creditops.evaluation.plots import beeswarm_figure, importance_figure
from creditops.evaluation.treeshap import InterventionalTreeShap
from creditops.exceptions import UnsupportedModel
from creditops.models.anatomy import anatomy, estimator_family, is_ensemble
from creditops.models.ensemble import PROBABILITY_FLOOR, member_log_odds, stack

OutputSpace = Literal["log_odds", "probability"]
Method = Literal[
    "linear", "points", "tree_interventional", "tree_path_dependent", "permutation", "stacked"
]
TreePerturbation = Literal["auto", "interventional", "tree_path_dependent"]


# --------------------------------------------------------------------------- result models


class FeatureContribution(BaseModel):
    feature: str
    value: float | str | None
    contribution: float


class LocalExplanation(BaseModel):
    """Why one applicant got their score: ``base_value + Σ contribution == raw_output``."""

    schema_version: int = 1
    model_type: str
    method: Method
    output_space: OutputSpace
    base_value: float
    raw_output: float
    additivity_gap: float  # raw_output − (base_value + Σ contributions)
    calibrated: bool  # True: proba is a calibration of raw_output, not just its link
    proba: float
    contributions: list[FeatureContribution]  # in the spec's feature order


class FeatureImportance(BaseModel):
    feature: str
    mean_abs_contribution: float
    mean_contribution: float
    share: float  # of the total mean |contribution|


class GlobalExplanation(BaseModel):
    """Mean |SHAP| per original feature, largest first; figures are not serialised."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    schema_version: int = 1
    model_type: str
    method: Method
    output_space: OutputSpace
    base_value: float
    n_rows: int
    importance: list[FeatureImportance]
    figures: dict[str, Figure] = Field(default_factory=dict, exclude=True)


# --------------------------------------------------------------------------- the explainer


class Explainer:
    """A model prepared for explanation; build it once with :func:`build_explainer`."""

    def __init__(
        self,
        *,
        model: Any,
        pipeline: Pipeline,
        calibrated: Any | None,
        spec: ResolvedSpec,
        model_type: str,
        method: Method,
        output_space: OutputSpace,
        background: np.ndarray,
        groups: np.ndarray,
        column_names: list[str],
        seed: int,
    ) -> None:
        self.model = model
        self.pipeline = pipeline
        self.spec = spec
        self.features = list(spec.features)
        self.model_type = model_type
        self.method = method
        self.output_space = output_space
        self.background = background
        self._background_mean = background.mean(axis=0)
        self.groups = groups  # preprocessed column → index of its original feature
        self.column_names = column_names
        self.seed = seed
        self.calibrated = calibrated is not None
        self.base_value = math.nan
        self._preprocess = pipeline.steps[0][1]
        self._post = pipeline[1:]  # the fitted steps after preprocessing (shared, not copied)
        self._final = pipeline.steps[-1][1]
        self._points: tuple[np.ndarray, np.ndarray] | None = None  # (coefficients, best terms)
        if method == "points":
            # The scorecard's logistic regression on its WoE columns: the explained space.
            self._post = self._final.logistic_
            bins = self._final.bins_
            self._points = (
                np.array([b.coefficient for b in bins]),
                np.array([b.best_term for b in bins]),
            )
        self._xgboost = estimator_family(self._final) == "xgboost"
        if self._xgboost:
            # One row gains nothing from threads, and an OpenMP pool stalls whenever a core is
            # busy elsewhere (tens of ms): predict with a single-threaded copy of the booster.
            self._final = copy.deepcopy(self._final).set_params(n_jobs=1)
            self._post = Pipeline([*self._post.steps[:-1], (self._post.steps[-1][0], self._final)])
        # The calibrator applied to the already-transformed row saves a second preprocessing
        # pass: the fitted calibration with its estimator swapped for the post-preprocess steps.
        self._calibrated = None
        if calibrated is not None:
            self._calibrated = copy.copy(calibrated)
            self._calibrated.estimator = self._post
        self._aggregate = np.zeros((len(groups), len(self.features)))
        self._aggregate[np.arange(len(groups)), groups] = 1.0
        self._linear: tuple[np.ndarray, float] | None = None
        self._shap: Any = None
        self._native: Any = None  # a model's own exact SHAP values (LightGBM's pred_contrib)
        self._max_evals = 0
        self._lock = threading.Lock()

    # -- model outputs on preprocessed rows --------------------------------------------------

    def transform(self, X: pd.DataFrame) -> np.ndarray:
        """Preprocess original rows into the space the attributions are made in (for the
        scorecard: the WoE of each scored feature)."""
        if self.method == "points":
            return self._final.woe(self._preprocess.transform(X[self.features]))
        return np.asarray(self._preprocess.transform(X[self.features]), dtype=np.float64)

    def raw_output(self, Xt: np.ndarray) -> np.ndarray:
        """The explained output (log-odds or probability, before any calibration)."""
        if self.output_space == "probability":
            return np.asarray(self._post.predict_proba(Xt)[:, 1], dtype=np.float64)
        if self._xgboost:
            inner = self._post[:-1].transform(Xt) if len(self._post) > 1 else Xt
            return np.asarray(self._final.predict(inner, output_margin=True), dtype=np.float64)
        return np.asarray(self._post.decision_function(Xt), dtype=np.float64).ravel()

    def proba(self, Xt: np.ndarray) -> np.ndarray:
        """The full model's probability of default, from preprocessed rows."""
        if self._calibrated is not None:
            return np.asarray(self._calibrated.predict_proba(Xt)[:, 1], dtype=np.float64)
        return np.asarray(self._post.predict_proba(Xt)[:, 1], dtype=np.float64)

    # -- attributions ---------------------------------------------------------------------

    def transformed_contributions(self, Xt: np.ndarray) -> np.ndarray:
        """SHAP values per preprocessed column, shape (rows, columns); exact methods only.

        The permutation explainer plays with whole features, so it has no per-column values.
        """
        if self.method == "linear":
            coef, _ = self._linear  # type: ignore[misc]
            return (Xt - self._background_mean) * coef
        if self._native is not None:
            return self._native(Xt)[:, :-1]
        if self.method == "points":
            coef, best = self._points  # type: ignore[misc]
            return Xt * coef - best
        if self.method.startswith("tree"):
            values = np.asarray(self._shap.shap_values(Xt, check_additivity=False), dtype=float)
            return values[..., 1] if values.ndim == 3 else values
        raise ValueError("the permutation explainer attributes whole features, not columns")

    def attribute(self, Xt: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Contributions per original feature, the raw output and the probability of default.

        A random forest's probability is the average of hundreds of trees, costly to evaluate
        one row at a time; path-dependent TreeSHAP is exact for it (the base value plus the
        contributions *is* the forest's probability), so the forest is walked once, by TreeSHAP,
        and both outputs are read off its result (tested equal to ``predict_proba``).
        """
        if self.method != "tree_path_dependent" or self.output_space != "probability":
            return self.contributions(Xt), self.raw_output(Xt), self.proba(Xt)
        per_column = self.transformed_contributions(Xt)
        raw = self.base_value + per_column.sum(axis=1)
        return per_column @ self._aggregate, raw, self.proba_from_raw(raw)

    def proba_from_raw(self, raw: np.ndarray) -> np.ndarray:
        """The full model's probability given the raw output (a forest's probability)."""
        if self.output_space != "probability":
            raise ValueError("proba_from_raw needs a probability-space explainer")
        if self._calibrated is None:
            return raw
        fitted = self._calibrated  # the single fitted calibration of CalibratedClassifierCV
        # The calibrator was fitted on the forest's probability (a forest has no
        # decision_function), exactly what sklearn feeds it in predict_proba.
        return np.asarray(fitted.calibrators[0].predict(raw), dtype=np.float64)

    def contributions(self, Xt: np.ndarray) -> np.ndarray:
        """SHAP values per original feature, shape (rows, features)."""
        if self.method != "permutation":
            return self.transformed_contributions(Xt) @ self._aggregate
        out = np.empty((Xt.shape[0], len(self.features)))
        # shap's permutation explainer draws from numpy's global RNG: seed it per row (so a
        # row's values do not depend on its batch) and restore it, under a lock for threads.
        with self._lock:
            for i in range(Xt.shape[0]):
                with seeded_global_numpy(self.seed):
                    result = self._shap(
                        Xt[i : i + 1],
                        max_evals=self._max_evals,
                        # one model call per permutation (shap's "auto" splits it in three)
                        batch_size=2 * len(self.features) + 1,
                        silent=True,
                    )
                out[i] = np.asarray(result.values, dtype=float).reshape(-1)
        return out


class EnsembleExplainer(Explainer):
    """A stacked ensemble explained through its members' explainers (module docstring).

    Its preprocessed row is the members' preprocessed rows side by side, as the ensemble's
    compiled fast path gives them; its raw output is the ensemble's log-odds.
    """

    def __init__(
        self,
        *,
        model: Any,
        members: Sequence[Explainer],
        names: Sequence[str],
        spec: ResolvedSpec,
        seed: int,
    ) -> None:
        # No single pipeline to take apart: only what the explaining functions read is set.
        self.model = model
        self.spec = spec
        self.features = list(spec.features)
        self.model_type = "ensemble"
        self.method = "stacked"
        self.output_space = "log_odds"
        self.seed = seed
        self.calibrated = False  # the stacker is the ensemble's probability: expit(raw output)
        self.members = list(members)
        self._weights = np.asarray(model.weights_, dtype=np.float64)
        self._intercept = float(model.intercept_)
        widths = [m.background.shape[1] for m in members]
        bounds = np.cumsum([0, *widths])
        self._slices = [slice(int(a), int(b)) for a, b in pairwise(bounds)]
        self.background = np.hstack([m.background for m in members])
        self.column_names = [
            f"{name}:{column}"
            for name, member in zip(names, members, strict=True)
            for column in member.column_names
        ]
        bases = [
            m.base_value if m.output_space == "log_odds" else float(member_log_odds(m.base_value))
            for m in members
        ]
        self.base_value = float(self._intercept + self._weights @ np.array(bases))

    def transform(self, X: pd.DataFrame) -> np.ndarray:
        return np.hstack([m.transform(X) for m in self.members])

    def _members(self, Xt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Each member's contributions to its log-odds (members × rows × features) and its
        clipped log-odds (rows × members), from one attribution pass per member."""
        contributions, log_odds = [], []
        for member, where in zip(self.members, self._slices, strict=True):
            values, raw, proba = member.attribute(Xt[:, where])
            odds = member_log_odds(proba)
            if member.output_space == "probability":
                values = values * _log_odds_per_probability(raw, member.base_value)[:, None]
            else:
                # Where the stack clips the member's probability, its log-odds moves less than
                # its contributions say: scale them to the clipped move, so the sum still holds.
                clipped = (proba <= PROBABILITY_FLOOR) | (proba >= 1.0 - PROBABILITY_FLOOR)
                moved = values.sum(axis=1)
                scale = np.divide(
                    odds - member.base_value,
                    moved,
                    out=np.ones_like(moved),
                    where=clipped & (np.abs(moved) > 1e-12),
                )
                values = values * scale[:, None]
            contributions.append(values)
            log_odds.append(odds)
        return np.stack(contributions), np.column_stack(log_odds)

    def attribute(self, Xt: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        contributions, log_odds = self._members(Xt)
        raw = stack(self._intercept, self._weights, log_odds)
        return np.tensordot(self._weights, contributions, axes=1), raw, _expit(raw)

    def contributions(self, Xt: np.ndarray) -> np.ndarray:
        return self.attribute(Xt)[0]

    def raw_output(self, Xt: np.ndarray) -> np.ndarray:
        return self.attribute(Xt)[1]

    def proba(self, Xt: np.ndarray) -> np.ndarray:
        return self.attribute(Xt)[2]

    def transformed_contributions(self, Xt: np.ndarray) -> np.ndarray:
        raise ValueError("a stacked ensemble attributes its members' features, not columns")


def _log_odds_per_probability(proba: np.ndarray, base: float) -> np.ndarray:
    """Per row, the member's move in log-odds from its base value over its move in
    probability (the derivative of the logit where the two nearly coincide)."""
    proba = np.asarray(proba, dtype=np.float64)
    moved = proba - base
    clipped = np.clip(proba, 1e-6, 1 - 1e-6)
    slope = 1.0 / (clipped * (1.0 - clipped))
    ratio = np.divide(
        member_log_odds(proba) - member_log_odds(base),
        moved,
        out=slope.copy(),
        where=np.abs(moved) > 1e-9,
    )
    return ratio


def _expit(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


def build_explainer(
    model: Any,
    X_background: pd.DataFrame,
    spec: ResolvedSpec,
    *,
    seed: int = 0,
    background_size: int = 100,
    tree_perturbation: TreePerturbation = "auto",
    permutations: int = 10,
    warm_up: bool = True,
) -> Explainer:
    """Prepare ``model`` (a zoo pipeline, optionally in ``CalibratedClassifierCV``, or a stacked
    ensemble of them) for explanation against a seeded sample of ``background_size`` rows of
    ``X_background``."""
    if is_ensemble(model):
        members = [
            build_explainer(
                member,
                X_background,
                spec,
                seed=seed,
                background_size=background_size,
                tree_perturbation=tree_perturbation,
                permutations=permutations,
                warm_up=warm_up,
            )
            for member in model.members_
        ]
        return EnsembleExplainer(
            model=model, members=members, names=model.member_names_, spec=spec, seed=seed
        )
    parts = anatomy(model)
    pipeline, calibrated, preprocess = parts.pipeline, parts.calibration, parts.preprocess
    if not isinstance(preprocess, ColumnTransformer):
        raise TypeError("the pipeline's first step must be the preprocessing ColumnTransformer")
    features = list(spec.features)
    if len(X_background) == 0:
        raise ValueError("X_background has no rows")
    rng = np.random.default_rng(seed)
    rows = np.arange(len(X_background))
    if len(rows) > background_size:
        rows = np.sort(rng.choice(rows, size=background_size, replace=False))
    final, middle = parts.estimator, parts.middle
    sample = X_background.iloc[rows][features]
    if parts.kind == "scorecard":
        background = final.woe(preprocess.transform(sample))
        column_names = list(final.features_)
        unknown = [c for c in column_names if c not in features]
        if unknown:
            raise ValueError(f"the scorecard scores columns that are not features: {unknown}")
        groups = np.array([features.index(c) for c in column_names], dtype=int)
    else:
        background = np.asarray(preprocess.transform(sample), dtype=np.float64)
        column_names = [str(n) for n in preprocess.get_feature_names_out()]
        groups = column_groups(preprocess, features)
    if len(groups) != background.shape[1]:
        raise ValueError("could not map every preprocessed column to an original feature")
    is_logistic = parts.family == "logistic_regression" and np.shape(final.coef_)[0] == 1
    linear = affine_map(pipeline, background) if is_logistic else None
    if parts.kind == "scorecard":
        method: Method = "points"
        model_type = "scorecard"
        space: OutputSpace = "log_odds"
    elif not middle and parts.kind == "lightgbm":
        # LightGBM's own exact TreeSHAP of the raw score, categorical splits included
        method, model_type, space = "tree_path_dependent", "lightgbm", "log_odds"
    elif linear is not None:
        method = "linear"
        model_type = "pca_logistic" if middle else "logistic_regression"
        space = "log_odds"
    elif not middle and parts.kind in ("xgboost", "random_forest"):
        is_xgb = parts.kind == "xgboost"
        model_type = parts.kind
        space = "log_odds" if is_xgb else "probability"
        perturbation = tree_perturbation
        if perturbation == "auto":
            perturbation = "interventional" if is_xgb else "tree_path_dependent"
        method = (
            "tree_interventional" if perturbation == "interventional" else "tree_path_dependent"
        )
    else:
        method = "permutation"
        is_neural = parts.family == "neural_network"
        model_type = "neural_network" if is_neural else type(final).__name__
        has_logit = parts.family == "xgboost" or (
            hasattr(pipeline, "decision_function") and (is_neural or is_logistic)
        )
        space = "log_odds" if has_logit else "probability"

    explainer = Explainer(
        model=model,
        pipeline=pipeline,
        calibrated=calibrated,
        spec=spec,
        model_type=model_type,
        method=method,
        output_space=space,
        background=background,
        groups=groups,
        column_names=column_names,
        seed=seed,
    )
    if method == "points":
        _, best = explainer._points  # type: ignore[misc]
        explainer.base_value = float(final.intercept + best.sum())
    elif method == "linear":
        explainer._linear = linear
        coef, intercept = linear  # type: ignore[misc]
        explainer.base_value = float(intercept + coef @ background.mean(axis=0))
    elif model_type == "lightgbm":
        explainer._native = final.contributions
        explainer.base_value = float(final.contributions(background[:1])[0, -1])
    elif model_type == "xgboost" and method == "tree_path_dependent":
        # XGBoost's own path-dependent TreeSHAP (``pred_contribs``): exact for the trees, in
        # C++ on every core, no background; the values shap's TreeExplainer gives for it.
        explainer._native = _xgboost_contributions(final)
        explainer.base_value = float(explainer._native(background[:1])[0, -1])
    elif (
        method == "tree_interventional"
        and model_type == "xgboost"
        and (fast := _interventional_tables(final, background))
    ):
        # Exact interventional TreeSHAP from per-leaf tables (creditops.evaluation.treeshap):
        # shap's values, tens of times faster per row.
        explainer._native = fast.contributions
        explainer.base_value = fast.base_value
    elif method.startswith("tree"):
        import shap

        explainer._shap = shap.TreeExplainer(
            final,
            data=background if method == "tree_interventional" else None,
            feature_perturbation="interventional"
            if method == "tree_interventional"
            else "tree_path_dependent",
            # "raw" is the margin for XGBoost and the leaf class probability for a forest
            model_output="raw",
        )
        expected = np.atleast_1d(np.asarray(explainer._shap.expected_value, dtype=float))
        explainer.base_value = float(expected[-1])
    else:
        import shap

        masker = GroupMasker(background, groups, len(features))
        with seeded_global_numpy(seed):  # the constructor reseeds numpy's global RNG
            explainer._shap = shap.PermutationExplainer(explainer.raw_output, masker, seed=seed)
        explainer._max_evals = permutations * (2 * len(features) + 1)
        explainer.base_value = float(np.mean(explainer.raw_output(background)))
    if warm_up:  # first calls compile numba kernels; pay that here, not per applicant
        explainer.contributions(background[:1])
        if explainer._native is not None:  # the tables' batch loop as well as the one-row one
            explainer.contributions(background[:2])
    return explainer


def _interventional_tables(estimator: Any, background: np.ndarray) -> Any:
    """The table-driven interventional TreeSHAP of an XGBoost model, or None where it does not
    apply (categorical splits, dart, trees too deep for the tables): shap explains those."""
    try:
        return InterventionalTreeShap(estimator, background)
    except UnsupportedModel:
        return None


def _xgboost_contributions(estimator: Any) -> Any:
    """Per-column path-dependent SHAP values of an XGBoost classifier's margin, the base value
    last, over the trees it predicts with (up to its best iteration when it stopped early)."""
    import xgboost

    booster = estimator.get_booster()
    try:
        iterations = (0, estimator.best_iteration + 1)
    except AttributeError:
        iterations = (0, 0)
    missing = estimator.missing

    def contributions(Xt: np.ndarray) -> np.ndarray:
        matrix = xgboost.DMatrix(np.asarray(Xt, dtype=np.float32), missing=missing)
        values = booster.predict(matrix, pred_contribs=True, iteration_range=iterations)
        return np.asarray(values, dtype=np.float64)

    return contributions


def explain_local(explainer: Explainer, row: pd.DataFrame | pd.Series) -> LocalExplanation:
    """Explain one applicant (a one-row frame or a Series)."""
    frame = row.to_frame().T if isinstance(row, pd.Series) else row
    if len(frame) != 1:
        raise ValueError(f"explain_local takes one row, got {len(frame)}; use explain_rows")
    return explain_rows(explainer, frame)[0]


def explain_rows(
    explainer: Explainer,
    rows: pd.DataFrame | Sequence[Mapping[str, Any]],
    transformed: np.ndarray | None = None,
    *,
    proba: np.ndarray | None = None,
    raw: np.ndarray | None = None,
) -> list[LocalExplanation]:
    """Explain several applicants in one pass (one preprocessing call, batched attributions).

    ``transformed``: the rows already preprocessed (e.g. by the serving fast path, whose output
    equals the pipeline's preprocessing), which spares the ColumnTransformer call. ``proba``:
    the model's probabilities of default for the rows, when the caller already has them (the
    serving fast path gives the pipeline's exact values), which spares a calibrated prediction.
    ``raw``: the explained output (:meth:`Explainer.raw_output`) when the caller has it exactly,
    used with ``proba``.
    ``rows`` may be records (dicts by feature name) instead of a frame, which spares pandas.
    """
    if isinstance(rows, pd.DataFrame):
        records = rows[explainer.features].to_dict(orient="records")
    else:
        records = list(rows)
        if transformed is None:
            rows = pd.DataFrame.from_records(records, columns=explainer.features)
    Xt = explainer.transform(rows) if transformed is None else np.asarray(transformed, float)
    if proba is not None and explainer.method not in ("tree_path_dependent", "stacked"):
        values = explainer.contributions(Xt)
        raw = explainer.raw_output(Xt) if raw is None else np.asarray(raw, np.float64).reshape(-1)
        proba = np.asarray(proba, dtype=np.float64).reshape(-1)
    else:
        values, raw, proba = explainer.attribute(Xt)
    categorical = set(explainer.spec.categorical)
    results = []
    for i, record in enumerate(records):
        contributions = [
            FeatureContribution(
                feature=feature,
                value=_plain_value(record.get(feature), feature in categorical),
                contribution=float(values[i, j]),
            )
            for j, feature in enumerate(explainer.features)
        ]
        results.append(
            LocalExplanation(
                model_type=explainer.model_type,
                method=explainer.method,  # type: ignore[arg-type]
                output_space=explainer.output_space,
                base_value=explainer.base_value,
                raw_output=float(raw[i]),
                additivity_gap=float(raw[i] - explainer.base_value - values[i].sum()),
                calibrated=explainer.calibrated,
                proba=float(proba[i]),
                contributions=contributions,
            )
        )
    return results


def explain_global(
    explainer: Explainer,
    X: pd.DataFrame,
    *,
    max_rows: int | None = 500,
    max_display: int = 15,
) -> GlobalExplanation:
    """Mean |SHAP| per original feature over (a seeded sample of ``max_rows`` of) ``X``, with a
    bar chart and a beeswarm; the permutation explainer costs tens of ms per row."""
    if max_rows is not None and len(X) > max_rows:
        rng = np.random.default_rng(explainer.seed)
        X = X.iloc[np.sort(rng.choice(len(X), size=max_rows, replace=False))]
    values = explainer.contributions(explainer.transform(X))
    mean_abs = np.abs(values).mean(axis=0)
    total = float(mean_abs.sum()) or 1.0
    order = sorted(range(len(explainer.features)), key=lambda j: (-mean_abs[j], j))
    importance = [
        FeatureImportance(
            feature=explainer.features[j],
            mean_abs_contribution=float(mean_abs[j]),
            mean_contribution=float(values[:, j].mean()),
            share=float(mean_abs[j] / total),
        )
        for j in order
    ]
    shown = order[:max_display]
    unit = "log-odds" if explainer.output_space == "log_odds" else "probability"
    figures = {
        "shap_importance.png": importance_figure(
            [explainer.features[j] for j in shown], mean_abs[shown], unit
        ),
        "shap_beeswarm.png": beeswarm_figure(
            X[explainer.features], values, shown, explainer.features, explainer.spec, unit
        ),
    }
    return GlobalExplanation(
        model_type=explainer.model_type,
        method=explainer.method,  # type: ignore[arg-type]
        output_space=explainer.output_space,
        base_value=explainer.base_value,
        n_rows=len(X),
        importance=importance,
        figures=figures,
    )


def _plain_value(value: Any, categorical: bool) -> float | str | None:
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return None
    if categorical or isinstance(value, str):
        return str(value)
    return float(value)
