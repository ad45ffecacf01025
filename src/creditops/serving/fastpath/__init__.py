"""A fast path for scoring single applications: the fitted pipeline compiled to numpy.

``model.predict_proba(one-row DataFrame)`` spends several milliseconds in pandas, input
validation and ColumnTransformer bookkeeping while the model itself needs a fraction of a
millisecond. :meth:`FastScorer.compile` reads the fitted attributes of the preprocessing
(imputation statistics and missingness indicators, Yeo-Johnson lambdas and their standard
scaler, one-hot categories with infrequent buckets, the column layout of the
ColumnTransformer) and of the final estimator, and replays them with plain array operations
on records as they arrive in a JSON request.

The compiled path must give the pipeline's numbers, so it refuses (``UnsupportedModel``)
anything it does not reproduce exactly, and by default checks itself against the pipeline on
probe rows built from the dataset spec before it is used. Callers keep the pipeline as the
fallback: :func:`compile_or_none`.

Inside: ``_parse`` (request values → numbers and text), ``_preprocess`` (the ColumnTransformer),
``_scorecard`` (the WoE scorecard's bins as lookups), ``_heads`` and ``_xgboost`` (final
estimators), ``_calibration``, ``_scorer`` (FastScorer), ``_ensemble`` (EnsembleScorer),
``_compile`` (either, by the model's kind).

Per final estimator:

* ``LogisticRegression`` (optionally after ``PCA``): one affine map on the preprocessed row;
  PCA is folded into the coefficients.
* ``ScorecardClassifier`` (the WoE scorecard): a lookup head. Its binning preprocessor only
  converts values (numbers as float, categories as text), so each request value is read as the
  converter reads it, placed in its bin (numbers by the bin edges, as optbinning does with
  ``np.digitize``; categories by name; missing values in the missing bin; categories never seen
  in training where optbinning puts them) and replaced by the bin's WoE; the scorecard's
  logistic regression is then the affine map above on those WoE columns, i.e. the sum of each
  feature's coefficient × WoE plus the intercept, through the logistic link. Its "preprocessed
  row" (``transform_many``) is therefore the WoE row, one column per scored feature, which is
  also the space the scorecard's explanations (points lost) work in.
* ``XGBClassifier``: for a few rows the booster's trees, read from its JSON model, are walked
  with vectorised numpy exactly as XGBoost walks them (float32 comparisons, default
  directions, float32 sums in tree order, the C library's ``expf`` in the logistic link); for
  larger batches ``inplace_predict`` on a single-threaded copy of the booster, asking for the
  output the sklearn wrapper asks for. Both are bit-identical to ``predict_proba``.
* ``RandomForestClassifier`` / ``ExtraTreesClassifier``: for a few rows all trees are walked
  at once with vectorised numpy (one step per tree level instead of one sklearn call per
  tree); for larger batches each tree's compiled ``tree_.predict``. Per-tree probabilities
  are summed in tree order, exactly as sklearn does, so results are bit-identical too.
* ``TorchMLPClassifier``: the network's layers as float64 numpy matmuls, mirroring the
  estimator's own float64 inference (inputs rounded to float32 first, as it does).
* ``CalibratedClassifierCV(ensemble=False)`` around any of these: its fitted calibrator
  applied to the response sklearn feeds it (the decision function when the pipeline has one,
  else the positive-class probability, in the same dtype).
* ``StackedEnsembleClassifier``: each member compiled as above (``_ensemble``), its
  probabilities clipped and turned into log-odds and stacked with the ensemble's weights; a
  preprocessed row is the members' preprocessed rows side by side. :func:`compile_scorer`
  compiles either kind.

Costs per application on the 2-core development machine (``benchmarks/fastpath.py``; the
pipeline takes 7-8 ms, forests ~20 ms): ~6 µs for the WoE scorecard (one lookup per scored
feature, in plain Python), ~27 µs for the logistic models, ~34 µs for the
network, ~63 µs for XGBoost (150 trees walked with numpy; one ``inplace_predict`` call costs
~150 µs even for a single tree) and ~0.3 ms for a 300-tree full-depth forest (sklearn's own
``predict_proba`` on the preprocessed numpy row costs ~13 ms: joblib plus one validated call
per tree).

Records are mappings as decoded from JSON: numbers as int or float (or numeric text, read as
``pd.to_numeric`` reads it), categories as text (surrounding blanks stripped); an absent key,
None, NaN, or empty text is missing and imputed. A compiled scorer is immutable and safe to
share between threads.
"""

from creditops.exceptions import UnsupportedModel
from creditops.serving.fastpath._compile import compile_or_none, compile_scorer
from creditops.serving.fastpath._ensemble import EnsembleScorer
from creditops.serving.fastpath._scorer import CompiledScorer, FastScorer

__all__ = [
    "CompiledScorer",
    "EnsembleScorer",
    "FastScorer",
    "UnsupportedModel",
    "compile_or_none",
    "compile_scorer",
]
