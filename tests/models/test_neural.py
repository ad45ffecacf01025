"""Tests for the PyTorch MLP wrapped as a scikit-learn binary classifier."""

import pickle

import cloudpickle
import numpy as np
import pytest
import torch
from numpy.testing import assert_allclose, assert_array_equal
from scipy import sparse
from sklearn.datasets import make_classification
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

from creditops.models.neural import TorchMLPClassifier

_SAMPLE_WEIGHT_REASON = (
    "minibatch Adam with per-epoch shuffling, a row-level validation split and "
    "early stopping: repeating a row changes the number of rows, batches and steps, "
    "so an integer weight is honoured in expectation but not reproduced exactly"
)


def _expected_failed_checks(estimator: TorchMLPClassifier) -> dict[str, str]:
    return {
        "check_sample_weight_equivalence_on_dense_data": _SAMPLE_WEIGHT_REASON,
        "check_sample_weight_equivalence_on_sparse_data": _SAMPLE_WEIGHT_REASON,
    }


# Small budget and a larger step size keep the ~65 checks at a few seconds in total
# while still clearing the accuracy bars in check_classifiers_train & co.
@parametrize_with_checks(
    [TorchMLPClassifier(max_epochs=30, learning_rate=1e-2, random_state=0)],
    expected_failed_checks=_expected_failed_checks,
)
def test_sklearn_estimator_checks(estimator, check, monkeypatch):
    # sklearn skips its array-API check (NumPy inputs with array_api_dispatch on) unless
    # this is set; the NumPy-only variant needs nothing else, so run it for real.
    monkeypatch.setenv("SCIPY_ARRAY_API", "1")
    check(estimator)


@pytest.fixture(scope="module")
def separable():
    X, y = make_classification(
        n_samples=1200,
        n_features=12,
        n_informative=6,
        n_redundant=2,
        class_sep=2.0,
        flip_y=0.0,
        random_state=0,
    )
    return train_test_split(X, y, test_size=0.3, stratify=y, random_state=0)


def _fast(**params) -> TorchMLPClassifier:
    defaults = {"max_epochs": 40, "learning_rate": 5e-3, "random_state": 0}
    return TorchMLPClassifier(**(defaults | params))


def test_learns_separable_problem(separable):
    X_train, X_test, y_train, y_test = separable
    clf = _fast().fit(X_train, y_train)

    proba = clf.predict_proba(X_test)
    assert roc_auc_score(y_test, proba[:, 1]) > 0.95
    assert proba.shape == (len(X_test), 2)
    assert proba.dtype == np.float64
    assert_allclose(proba.sum(axis=1), 1.0)
    assert_array_equal(clf.classes_, [0, 1])
    assert clf.n_features_in_ == X_train.shape[1]
    assert isinstance(clf.model_, torch.nn.Module)
    assert not clf.model_.training
    assert all(p.device.type == "cpu" for p in clf.model_.parameters())
    assert len(clf.loss_curve_) == clf.n_epochs_
    assert len(clf.validation_loss_curve_) == clf.n_epochs_
    # predict is the 0.5 threshold of predict_proba and decision_function is its logit.
    assert_array_equal(clf.predict(X_test), (proba[:, 1] > 0.5).astype(int))
    assert_allclose(1 / (1 + np.exp(-clf.decision_function(X_test))), proba[:, 1])


def test_same_random_state_is_reproducible(separable):
    X_train, X_test, y_train, _ = separable
    p1 = _fast(random_state=7).fit(X_train, y_train).predict_proba(X_test)
    p2 = _fast(random_state=7).fit(X_train, y_train).predict_proba(X_test)
    p3 = _fast(random_state=8).fit(X_train, y_train).predict_proba(X_test)

    assert_array_equal(p1, p2)
    assert not np.allclose(p1, p3), "random_state has no effect on training"


def test_fit_leaves_global_torch_state_alone(separable):
    X_train, X_test, y_train, _ = separable
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        rng_state = torch.get_rng_state()
        clf = _fast(max_epochs=3, num_threads=1).fit(X_train, y_train)
        clf.predict_proba(X_test)

        assert torch.get_num_threads() == 2
        assert torch.equal(torch.get_rng_state(), rng_state)
    finally:
        torch.set_num_threads(previous_threads)


def test_early_stopping_stops_and_restores_best_epoch():
    # Weak signal + a wide network with a large step size: validation loss bottoms out
    # after a few epochs and then rises as the network memorises the noise.
    rng = np.random.RandomState(0)
    X = rng.normal(size=(600, 20))
    y = (X[:, 0] + 2.0 * rng.normal(size=600) > 0).astype(int)
    params = {
        "hidden_layer_sizes": (128, 128),
        "dropout": 0.0,
        "learning_rate": 1e-2,
        "batch_size": 32,
        "max_epochs": 200,
        "patience": 5,
        "random_state": 0,
    }
    clf = TorchMLPClassifier(**params).fit(X, y)

    assert clf.n_epochs_ < 50
    assert clf.n_epochs_ == clf.best_epoch_ + 5
    assert clf.best_val_loss_ == pytest.approx(min(clf.validation_loss_curve_))
    assert clf.validation_loss_curve_[clf.best_epoch_ - 1] == clf.best_val_loss_
    assert clf.validation_loss_curve_[-1] > clf.best_val_loss_

    # Training for exactly best_epoch_ epochs replays the same run up to that point, so
    # the restored weights must give the same predictions as that truncated run.
    truncated = TorchMLPClassifier(**(params | {"max_epochs": clf.best_epoch_})).fit(X, y)
    assert truncated.n_epochs_ == clf.best_epoch_
    assert_array_equal(clf.predict_proba(X), truncated.predict_proba(X))
    last = TorchMLPClassifier(**(params | {"max_epochs": clf.n_epochs_, "patience": None}))
    last.fit(X, y)
    # Without patience the final epochs are run but the best weights still win.
    assert_array_equal(clf.predict_proba(X), last.predict_proba(X))


def test_tiny_data_falls_back_to_training_loss():
    X = np.array([[0.0], [1.0], [2.0], [3.0]])
    y = np.array([0, 0, 1, 1])
    clf = TorchMLPClassifier(max_epochs=5, random_state=0).fit(X, y)

    assert clf.validation_loss_curve_ == []
    assert np.isnan(clf.best_val_loss_)
    assert clf.best_epoch_ >= 1
    assert clf.loss_curve_[clf.best_epoch_ - 1] == min(clf.loss_curve_)


def test_balanced_class_weight_raises_minority_probability():
    X, y = make_classification(
        n_samples=1500,
        n_features=8,
        n_informative=3,
        weights=[0.9, 0.1],
        class_sep=0.7,
        random_state=1,
    )
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=0.3, stratify=y, random_state=1
    )
    plain = _fast().fit(X_train, y_train)
    balanced = _fast(class_weight="balanced").fit(X_train, y_train)

    minority = y_test == 1
    p_plain = plain.predict_proba(X_test)[minority, 1].mean()
    p_balanced = balanced.predict_proba(X_test)[minority, 1].mean()
    assert p_balanced > p_plain + 0.1


def test_balanced_equals_explicit_positive_weight(separable):
    X_train, X_test, y_train, _ = separable
    y_train = y_train.copy()
    y_train[: len(y_train) // 3] = 0  # make the classes unequal
    n_neg, n_pos = np.bincount(y_train)
    sample_weight = np.where(y_train == 1, n_neg / n_pos, 1.0)

    balanced = _fast(max_epochs=5, class_weight="balanced").fit(X_train, y_train)
    weighted = _fast(max_epochs=5).fit(X_train, y_train, sample_weight=sample_weight)
    unweighted = _fast(max_epochs=5).fit(X_train, y_train)
    ones = _fast(max_epochs=5).fit(X_train, y_train, sample_weight=np.ones(len(y_train)))

    assert_allclose(balanced.predict_proba(X_test), weighted.predict_proba(X_test), rtol=1e-5)
    assert_array_equal(unweighted.predict_proba(X_test), ones.predict_proba(X_test))
    assert not np.allclose(balanced.predict_proba(X_test), unweighted.predict_proba(X_test))


def test_string_labels(separable):
    X_train, X_test, y_train, y_test = separable
    labels = np.array(["good", "bad"])  # code 1 -> "bad"
    clf = _fast().fit(X_train, labels[y_train])

    assert_array_equal(clf.classes_, ["bad", "good"])  # sorted: positive class is "good"
    pred = clf.predict(X_test)
    assert set(pred) == {"bad", "good"}
    assert np.mean(pred == labels[y_test]) > 0.9
    proba = clf.predict_proba(X_test)
    assert_array_equal(pred, clf.classes_[proba.argmax(axis=1)])
    assert roc_auc_score(labels[y_test] == "good", proba[:, 1]) > 0.95


@pytest.mark.parametrize("dumps", [pickle.dumps, cloudpickle.dumps], ids=["pickle", "cloudpickle"])
def test_pickle_round_trip_keeps_predictions(separable, dumps):
    X_train, X_test, y_train, _ = separable
    clf = _fast(max_epochs=5).fit(X_train, y_train)
    restored = pickle.loads(dumps(clf))

    assert_array_equal(restored.predict_proba(X_test), clf.predict_proba(X_test))
    assert_array_equal(restored.classes_, clf.classes_)
    assert restored.best_epoch_ == clf.best_epoch_


def test_inside_pipeline_with_scaler(separable):
    X_train, X_test, y_train, y_test = separable
    scale = np.logspace(-3, 4, X_train.shape[1])  # wildly different column scales
    pipe = make_pipeline(StandardScaler(), _fast()).fit(X_train * scale, y_train)

    proba = pipe.predict_proba(X_test * scale)[:, 1]
    assert roc_auc_score(y_test, proba) > 0.95


def test_sparse_input_matches_dense(separable):
    X_train, X_test, y_train, _ = separable
    X_train = np.where(np.abs(X_train) < 0.5, 0.0, X_train)
    X_test = np.where(np.abs(X_test) < 0.5, 0.0, X_test)
    dense = _fast(max_epochs=5).fit(X_train, y_train)
    sparse_fit = _fast(max_epochs=5).fit(sparse.csr_matrix(X_train), y_train)

    assert_allclose(
        sparse_fit.predict_proba(sparse.csr_matrix(X_test)),
        dense.predict_proba(X_test),
        rtol=1e-6,
    )


def test_three_classes_rejected():
    X, y = make_classification(n_samples=90, n_classes=3, n_informative=4, random_state=0)
    with pytest.raises(ValueError, match="Only binary classification is supported"):
        TorchMLPClassifier(max_epochs=2).fit(X, y)


@pytest.mark.parametrize(
    ("param", "value"),
    [
        ("activation", "softmax"),
        ("dropout", 1.0),
        ("hidden_layer_sizes", (16, 0)),
        ("batch_size", 0),
        ("validation_fraction", 1.0),
        ("class_weight", "auto"),
        ("patience", 0),
    ],
)
def test_invalid_params_rejected_at_fit(param, value):
    X, y = make_classification(n_samples=40, random_state=0)
    clf = TorchMLPClassifier(**{param: value})  # __init__ must not validate
    with pytest.raises(ValueError, match=param):
        clf.fit(X, y)
