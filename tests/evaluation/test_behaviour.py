"""Model behaviour (Made-With-ML's third test tier): monotone responses the domain expects."""

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer

from creditops.data.spec import FeatureSchema, MonotoneExpectations, ResolvedSpec
from creditops.evaluation.behaviour import behaviour_checks


def _spec(monotone: MonotoneExpectations) -> ResolvedSpec:
    return ResolvedSpec(
        dataset="toy",
        target="y",
        positive=1,
        negative=0,
        protected=[],
        id=None,
        numeric=["debt", "income"],
        categorical=[],
        schema=[
            FeatureSchema(name="debt", kind="numeric", missing_rate=0.0),
            FeatureSchema(name="income", kind="numeric", missing_rate=0.0),
        ],
        monotone=monotone,
        n_rows=200,
        positive_rate=0.5,
    )


def _model(debt_sign: float):
    rng = np.random.default_rng(0)
    X = pd.DataFrame({"debt": rng.normal(size=400), "income": rng.normal(size=400)})
    logit = debt_sign * 2 * X["debt"] - X["income"]
    y = (rng.random(400) < 1 / (1 + np.exp(-logit))).astype(int)
    return make_pipeline(FunctionTransformer(), LogisticRegression()).fit(X, y), X


def test_a_model_that_respects_the_domain_passes():
    model, X = _model(+1.0)
    report = behaviour_checks(
        model, X, _spec(MonotoneExpectations(increasing=["debt"], decreasing=["income"]))
    )
    assert [c.feature for c in report.checks] == ["debt", "income"]
    assert report.passed
    assert all(c.violations == 0 and c.mean_risk_change > 0 for c in report.checks)


def test_a_model_where_debt_lowers_risk_fails_with_the_share_of_rows():
    model, X = _model(-1.0)
    report = behaviour_checks(model, X, _spec(MonotoneExpectations(increasing=["debt"])))
    check = report.checks[0]
    assert not report.passed
    assert check.violation_share > 0.9
    assert check.violations == round(check.violation_share * len(X))


def test_credit_champion_candidates_respect_debt_and_arrears(credit_case):
    report = behaviour_checks(
        credit_case.models["logistic_regression"], credit_case.X_test, credit_case.spec
    )
    assert {c.feature for c in report.checks} == {"Debt", "Records"}
    records = next(c for c in report.checks if c.feature == "Records")
    assert records.passed
    assert records.mean_risk_change > 0.05  # a record of arrears raises the risk markedly
