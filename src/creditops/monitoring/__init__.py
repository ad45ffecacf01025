"""Monitoring: checks that compare live data and outcomes with the champion's reference.

Each check is fitted on a reference and calculated on current data, returning a result with
``to_dict()`` and alert flags.
"""

from creditops.monitoring.drift import (
    DataDriftCalculator,
    DataDriftResult,
    DriftConfig,
    DriftFlag,
    FeatureDrift,
    PredictionDriftResult,
    available_methods,
    prediction_drift,
    register_method,
)

__all__ = [
    "DataDriftCalculator",
    "DataDriftResult",
    "DriftConfig",
    "DriftFlag",
    "FeatureDrift",
    "PredictionDriftResult",
    "available_methods",
    "prediction_drift",
    "register_method",
]
