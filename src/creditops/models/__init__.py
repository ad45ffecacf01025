"""Candidate models: scikit-learn pipelines with preprocessing fitted inside."""

from creditops.models.zoo import CANDIDATES, Candidate, FeatureSet, get_candidates

__all__ = ["CANDIDATES", "Candidate", "FeatureSet", "get_candidates"]
