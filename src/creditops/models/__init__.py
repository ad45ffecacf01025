"""Candidate models: scikit-learn pipelines with preprocessing fitted inside, among them the WoE
logistic scorecard (:class:`ScorecardClassifier`), the benchmark every other one is measured
against."""

from creditops.models.scorecard import ScorecardClassifier
from creditops.models.zoo import CANDIDATES, Candidate, FeatureSet, get_candidates

__all__ = ["CANDIDATES", "Candidate", "FeatureSet", "ScorecardClassifier", "get_candidates"]
