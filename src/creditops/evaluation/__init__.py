"""Evaluation: metrics and diagnostic plots shared by training, reports and monitoring."""

from creditops.evaluation.metrics import HEADLINE_METRICS, classification_metrics, ks_statistic

__all__ = ["HEADLINE_METRICS", "classification_metrics", "ks_statistic"]
