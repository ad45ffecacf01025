"""Feed-forward PyTorch network exposed as a scikit-learn binary classifier.

The estimator is meant to sit at the end of a sklearn ``Pipeline`` after a
``ColumnTransformer``, so it accepts numeric dense arrays or scipy sparse matrices and
follows the scikit-learn estimator contract (cloneable, picklable, validated inputs).
That lets it share tuning, evaluation and MLflow logging code with the tree models.
"""

from __future__ import annotations

import math
import numbers
import threading
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Self

import numpy as np
import numpy.typing as npt
import torch
from scipy import sparse
from scipy.special import expit
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.model_selection import train_test_split
from sklearn.utils import Tags, check_random_state
from sklearn.utils.multiclass import check_classification_targets, type_of_target
from sklearn.utils.validation import check_is_fitted, validate_data
from torch import nn
from torch.func import functional_call

__all__ = ["TorchMLPClassifier"]

_ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "leaky_relu": nn.LeakyReLU,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "elu": nn.ELU,
    "tanh": nn.Tanh,
}

# Rows per forward pass at prediction time: bounds memory (sparse input is densified
# chunk by chunk) while keeping the per-call overhead negligible.
# Serialises float64 inference across threads (see ``_logits``).
_INFERENCE_LOCK = threading.Lock()
_PREDICT_CHUNK = 4096


@contextmanager
def _torch_threads(num_threads: int | None) -> Iterator[None]:
    """Temporarily set torch's intra-op thread count, restoring the previous value.

    Torch's setting is process-global; changing it for good would silently slow down or
    oversubscribe whatever else runs in the process (e.g. joblib workers, xgboost).
    """
    previous = torch.get_num_threads()
    if num_threads is None or num_threads == previous:
        yield
        return
    torch.set_num_threads(num_threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _rows_to_tensor(X: np.ndarray | sparse.csr_matrix, rows: Any = None) -> torch.Tensor:
    """Return selected rows of ``X`` as a fresh, writable float32 tensor.

    Sparse input is densified here, per chunk, so a large one-hot matrix never has to
    be materialised densely as a whole. The copy also keeps torch from warning about
    read-only (memory-mapped) arrays.
    """
    block = X if rows is None else X[rows]
    if sparse.issparse(block):
        block = block.toarray()
    return torch.from_numpy(np.array(block, dtype=np.float32, order="C", copy=True))


class TorchMLPClassifier(ClassifierMixin, BaseEstimator):
    """Multi-layer perceptron for binary classification, trained with PyTorch.

    A stack of ``Linear -> activation -> Dropout`` blocks ending in a single logit,
    trained with Adam on ``BCEWithLogitsLoss``. Early stopping monitors the loss on a
    stratified hold-out of the training data and the best weights are restored, so
    ``max_epochs`` is a budget rather than a setting that needs tuning.

    Parameters
    ----------
    hidden_layer_sizes : tuple of int, default=(64, 32)
        Width of each hidden layer; ``()`` gives a logistic regression.
    activation : {"relu", "leaky_relu", "gelu", "silu", "elu", "tanh"}, default="relu"
    dropout : float in [0, 1), default=0.1
        Dropout probability after each hidden activation.
    learning_rate : float, default=1e-3
        Adam step size.
    weight_decay : float, default=1e-4
        L2 penalty added by Adam.
    batch_size : int, default=256
    max_epochs : int, default=200
        Upper bound on passes over the training data.
    patience : int or None, default=10
        Stop after this many epochs without an improvement larger than ``tol`` in the
        monitored loss. ``None`` trains for ``max_epochs`` (best weights still restored).
    validation_fraction : float in [0, 1), default=0.15
        Share of the training rows held out (stratified) to monitor early stopping.
        When it is 0, or a class has too few rows to split, the training loss is
        monitored instead and ``validation_loss_curve_`` stays empty.
    tol : float, default=1e-4
        Minimum decrease of the monitored loss that counts as an improvement.
    class_weight : None, "balanced" or dict, default=None
        ``"balanced"`` weights positive rows by ``n_neg / n_pos``, which is the same
        objective as ``BCEWithLogitsLoss(pos_weight=n_neg / n_pos)``. A dict maps class
        labels to weights (missing labels get 1).
    random_state : int, RandomState instance or None, default=None
        Seeds weight initialisation, dropout, shuffling and the validation split. The
        global torch RNG is left as it was found.
    num_threads : int or None, default=1
        Torch intra-op threads used during ``fit``/``predict`` (restored afterwards).
        One thread is the right default for small tabular networks and avoids
        oversubscription when the estimator runs inside joblib workers. ``None`` keeps
        torch's current setting.

    Attributes
    ----------
    classes_ : ndarray of shape (2,)
        Sorted class labels; ``classes_[1]`` is the positive class.
    n_features_in_ : int
    feature_names_in_ : ndarray of str
        Only when ``X`` had string column names.
    model_ : torch.nn.Module
        The trained network (CPU, eval mode) holding the best weights.
    n_epochs_ : int
        Epochs actually run; equal to ``max_epochs`` if early stopping never triggered.
    best_epoch_ : int
        1-based epoch whose weights were restored.
    best_val_loss_ : float
        Validation loss at ``best_epoch_``; NaN when no validation split was used.
    loss_curve_ : list of float
        Weighted mean training loss per epoch (dropout active).
    validation_loss_curve_ : list of float
        Validation loss per epoch; empty when no validation split was used.
    """

    def __init__(
        self,
        hidden_layer_sizes: tuple[int, ...] = (64, 32),
        activation: str = "relu",
        dropout: float = 0.1,
        learning_rate: float = 1e-3,
        weight_decay: float = 1e-4,
        batch_size: int = 256,
        max_epochs: int = 200,
        patience: int | None = 10,
        validation_fraction: float = 0.15,
        tol: float = 1e-4,
        class_weight: str | Mapping[Any, float] | None = None,
        random_state: int | np.random.RandomState | None = None,
        num_threads: int | None = 1,
    ) -> None:
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.dropout = dropout
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.patience = patience
        self.validation_fraction = validation_fraction
        self.tol = tol
        self.class_weight = class_weight
        self.random_state = random_state
        self.num_threads = num_threads

    def __sklearn_tags__(self) -> Tags:
        tags = super().__sklearn_tags__()
        # Binary only: credit default is a yes/no target and a single logit keeps the
        # loss, class weighting and calibration simple. Declaring it lets sklearn's
        # checks (and meta-estimators) know instead of discovering it by failure.
        tags.classifier_tags.multi_class = False
        tags.input_tags.sparse = True
        return tags

    # ------------------------------------------------------------------ fitting

    def fit(
        self,
        X: npt.ArrayLike | sparse.spmatrix | sparse.sparray,
        y: npt.ArrayLike,
        sample_weight: npt.ArrayLike | None = None,
    ) -> Self:
        """Train the network; ``sample_weight`` multiplies each row's loss."""
        hidden = self._check_params()
        X, y = validate_data(
            self, X, y, accept_sparse="csr", dtype=[np.float32, np.float64], reset=True
        )
        check_classification_targets(y)
        y_type = type_of_target(y, input_name="y")
        if y_type != "binary":
            raise ValueError(
                "Only binary classification is supported. The type of the target is "
                f"{y_type} ({np.unique(y).size} classes)."
            )
        self.classes_, y_enc = np.unique(y, return_inverse=True)
        if self.classes_.size < 2:
            raise ValueError(
                "TorchMLPClassifier needs samples of at least 2 classes in the data, but "
                f"the data contains only one class: {self.classes_[0]!r}."
            )
        weights = self._sample_weights(y_enc, sample_weight)

        rng = check_random_state(self.random_state)
        seed = int(rng.randint(np.iinfo(np.int32).max))
        train_idx, val_idx = self._split(y_enc, weights, rng)

        with _torch_threads(self.num_threads), torch.random.fork_rng(devices=[]):
            # fork_rng restores the global torch RNG on exit: dropout and nn.Linear
            # initialisation draw from it, and callers must not see it move.
            torch.manual_seed(seed)
            generator = torch.Generator().manual_seed(seed)
            self.model_ = self._build_model(X.shape[1], hidden)
            self._train(X, y_enc, weights, train_idx, val_idx, generator)
        return self

    def _check_params(self) -> tuple[int, ...]:
        """Validate hyper-parameters at fit time (sklearn forbids it in ``__init__``)."""
        sizes = self.hidden_layer_sizes
        hidden = (sizes,) if isinstance(sizes, numbers.Integral) else tuple(sizes)
        if not all(isinstance(h, numbers.Integral) and h > 0 for h in hidden):
            raise ValueError(f"hidden_layer_sizes must be positive ints, got {sizes!r}.")
        if self.activation not in _ACTIVATIONS:
            raise ValueError(
                f"activation must be one of {sorted(_ACTIVATIONS)}, got {self.activation!r}."
            )
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout!r}.")
        if not self.learning_rate > 0:
            raise ValueError(f"learning_rate must be > 0, got {self.learning_rate!r}.")
        if not self.weight_decay >= 0:
            raise ValueError(f"weight_decay must be >= 0, got {self.weight_decay!r}.")
        if not self.tol >= 0:
            raise ValueError(f"tol must be >= 0, got {self.tol!r}.")
        for name in ("batch_size", "max_epochs"):
            value = getattr(self, name)
            if not isinstance(value, numbers.Integral) or value < 1:
                raise ValueError(f"{name} must be an int >= 1, got {value!r}.")
        for name in ("patience", "num_threads"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, numbers.Integral) or value < 1):
                raise ValueError(f"{name} must be None or an int >= 1, got {value!r}.")
        if not 0.0 <= self.validation_fraction < 1.0:
            raise ValueError(
                f"validation_fraction must be in [0, 1), got {self.validation_fraction!r}."
            )
        if not (
            self.class_weight is None
            or self.class_weight == "balanced"
            or isinstance(self.class_weight, Mapping)
        ):
            raise ValueError(
                f"class_weight must be None, 'balanced' or a dict, got {self.class_weight!r}."
            )
        return hidden

    def _sample_weights(self, y_enc: np.ndarray, sample_weight: npt.ArrayLike | None) -> np.ndarray:
        """Combine ``sample_weight`` and ``class_weight`` into per-row loss weights.

        Weights are rescaled to mean 1 so the effective step size and the relative
        strength of ``weight_decay`` do not depend on their overall scale.
        """
        n = y_enc.shape[0]
        if sample_weight is None:
            weights = np.ones(n, dtype=np.float64)
        else:
            weights = np.array(sample_weight, dtype=np.float64, copy=True)
            if weights.ndim != 1 or weights.shape[0] != n:
                raise ValueError(f"sample_weight must have shape ({n},), got {weights.shape}.")
            if not np.all(np.isfinite(weights)) or np.any(weights < 0):
                raise ValueError("sample_weight must be finite and non-negative.")
            if not np.any(weights > 0):
                raise ValueError("Sample weights must contain at least one non-zero number.")

        if self.class_weight == "balanced":
            n_neg, n_pos = np.bincount(y_enc, weights=weights, minlength=2)
            if n_pos > 0:
                weights[y_enc == 1] *= n_neg / n_pos
        elif isinstance(self.class_weight, Mapping):
            for code, label in enumerate(self.classes_):
                weights[y_enc == code] *= float(self.class_weight.get(label, 1.0))

        per_class = np.bincount(y_enc, weights=weights, minlength=2)
        if np.count_nonzero(per_class) < 2:
            raise ValueError(
                "After applying sample_weight/class_weight only one class has non-zero "
                "weight; both classes need positive weight to train a binary classifier."
            )
        return weights / weights.mean()

    def _split(
        self, y_enc: np.ndarray, weights: np.ndarray, rng: np.random.RandomState
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Stratified train/validation split, or no split when the data is too small.

        Each class needs at least two rows in training and one in validation; otherwise
        (tiny or extremely imbalanced data) early stopping falls back to training loss.
        """
        indices = np.arange(y_enc.shape[0])
        if self.validation_fraction == 0:
            return indices, None
        counts = np.bincount(y_enc, minlength=2)
        n_val = math.ceil(self.validation_fraction * y_enc.shape[0])
        if counts.min() < 3 or n_val < 2 or y_enc.shape[0] - n_val < 2:
            return indices, None
        train_idx, val_idx = train_test_split(
            indices, test_size=n_val, stratify=y_enc, random_state=rng
        )
        # Zero-weight rows carry no signal: a validation set made only of them (or
        # missing a class after weighting) cannot drive early stopping.
        if np.count_nonzero(np.bincount(y_enc[val_idx], weights=weights[val_idx])) < 2:
            return indices, None
        return np.sort(train_idx), np.sort(val_idx)

    def _build_model(self, n_features: int, hidden: tuple[int, ...]) -> nn.Sequential:
        layers: list[nn.Module] = []
        width = n_features
        for size in hidden:
            layers += [nn.Linear(width, size), _ACTIVATIONS[self.activation]()]
            if self.dropout > 0:
                layers.append(nn.Dropout(self.dropout))
            width = size
        layers.append(nn.Linear(width, 1))
        return nn.Sequential(*layers)

    def _train(
        self,
        X: np.ndarray | sparse.csr_matrix,
        y_enc: np.ndarray,
        weights: np.ndarray,
        train_idx: np.ndarray,
        val_idx: np.ndarray | None,
        generator: torch.Generator,
    ) -> None:
        model = self.model_
        optimizer = torch.optim.Adam(
            model.parameters(), lr=self.learning_rate, weight_decay=self.weight_decay
        )
        criterion = nn.BCEWithLogitsLoss(reduction="none")
        is_sparse = sparse.issparse(X)
        # Dense data is converted once; sparse rows are densified batch by batch.
        X_train = X[train_idx] if is_sparse else _rows_to_tensor(X, train_idx)
        y_train = torch.from_numpy(y_enc[train_idx].astype(np.float32))
        w_train = torch.from_numpy(weights[train_idx].astype(np.float32))
        n_train = y_train.shape[0]
        batch_size = min(self.batch_size, n_train)

        self.loss_curve_: list[float] = []
        self.validation_loss_curve_: list[float] = []
        best_loss, best_state, best_epoch, stale = math.inf, None, 0, 0
        epoch = 0
        if val_idx is not None:
            X_val, y_val, w_val = X[val_idx], y_enc[val_idx], weights[val_idx]
        for epoch in range(1, self.max_epochs + 1):
            model.train()
            perm = torch.randperm(n_train, generator=generator)
            total = 0.0
            for start in range(0, n_train, batch_size):
                rows = perm[start : start + batch_size]
                xb = _rows_to_tensor(X_train, rows.numpy()) if is_sparse else X_train[rows]
                wb = w_train[rows]
                loss_terms = criterion(model(xb).squeeze(1), y_train[rows]) * wb
                optimizer.zero_grad(set_to_none=True)
                loss_terms.mean().backward()
                optimizer.step()
                total += float(loss_terms.detach().sum())
            train_loss = total / float(w_train.sum())
            self.loss_curve_.append(train_loss)

            if val_idx is None:
                monitored = train_loss
            else:
                monitored = self._weighted_loss(X_val, y_val, w_val)
                self.validation_loss_curve_.append(monitored)

            if not math.isfinite(monitored):
                warnings.warn(
                    f"Non-finite loss at epoch {epoch}; stopping and keeping the best "
                    "weights so far. Lower learning_rate or scale the inputs.",
                    RuntimeWarning,
                    stacklevel=3,
                )
                break
            if monitored < best_loss - self.tol or best_state is None:
                best_loss, best_epoch, stale = monitored, epoch, 0
                best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            else:
                stale += 1
                if self.patience is not None and stale >= self.patience:
                    break

        if best_state is not None:
            model.load_state_dict(best_state)
        model.eval()
        self.n_epochs_ = epoch
        self.best_epoch_ = best_epoch
        self.best_val_loss_ = best_loss if val_idx is not None else math.nan

    def _weighted_loss(
        self, X: np.ndarray | sparse.csr_matrix, y_enc: np.ndarray, weights: np.ndarray
    ) -> float:
        """Weighted mean BCE of the current model (eval mode) on ``X``."""
        logits = self._logits(X)
        per_row = np.logaddexp(0.0, logits) - y_enc * logits  # stable BCE-with-logits
        return float(np.sum(weights * per_row) / np.sum(weights))

    # --------------------------------------------------------------- prediction

    def _logits(self, X: np.ndarray | sparse.csr_matrix) -> np.ndarray:
        """Positive-class logits, computed chunk-wise in float64 without autograd.

        Inference runs in float64 (on a float64 copy of the float32 weights) because
        float32 matrix kernels change their summation order with the number of rows: a
        row's score would then depend on which other rows are scored in the same call,
        which is unacceptable for an auditable credit score.
        """
        model = self.model_
        out = np.empty(X.shape[0], dtype=np.float64)
        # functional_call swaps the module's parameters in place while it runs, so two threads
        # inside it at once would each see the other's: one at a time (a served ensemble
        # explains its network member from several request threads).
        with _INFERENCE_LOCK, torch.inference_mode():
            model.eval()
            params = {k: v.double() for k, v in model.state_dict().items()}
            for start in range(0, X.shape[0], _PREDICT_CHUNK):
                stop = start + _PREDICT_CHUNK
                xb = _rows_to_tensor(X, slice(start, stop)).double()
                out[start:stop] = functional_call(model, params, (xb,)).squeeze(1).numpy()
        return out

    def decision_function(self, X: npt.ArrayLike | sparse.spmatrix | sparse.sparray) -> np.ndarray:
        """Logit of the positive class ``classes_[1]``, shape (n_samples,)."""
        check_is_fitted(self)
        X = validate_data(self, X, accept_sparse="csr", dtype=[np.float32, np.float64], reset=False)
        with _torch_threads(self.num_threads):
            return self._logits(X)

    def predict_proba(self, X: npt.ArrayLike | sparse.spmatrix | sparse.sparray) -> np.ndarray:
        """Class probabilities, shape (n_samples, 2), columns ordered as ``classes_``."""
        p = expit(self.decision_function(X))
        return np.column_stack([1.0 - p, p])

    def predict(self, X: npt.ArrayLike | sparse.spmatrix | sparse.sparray) -> np.ndarray:
        """Predicted labels (from ``classes_``), thresholding probability at 0.5."""
        positive = self.decision_function(X) > 0  # checks fitted state before classes_
        return self.classes_[positive.astype(np.intp)]
