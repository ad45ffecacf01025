"""Monitoring: checks that compare live data and outcomes with the champion's reference.

Each check is a :class:`Calculator` fitted on a reference and calculated on current data,
returning a :class:`Result` with ``to_dict()`` and :class:`Flag` s; alerts are made from the
flags by one function (:func:`creditops.monitoring.alerts.alerts_from_flags`).
"""

from creditops.monitoring.base import (
    Calculator,
    Flag,
    Level,
    Result,
    available_calculators,
    get_calculator,
    register_calculator,
)
from creditops.monitoring.drift import (
    DataDriftCalculator,
    DataDriftResult,
    DriftConfig,
    FeatureDrift,
    PredictionDriftResult,
    prediction_drift,
)
from creditops.monitoring.drift_methods import available_methods, register_method
from creditops.monitoring.performance import PerformanceCalculator

__all__ = [
    "Calculator",
    "DataDriftCalculator",
    "DataDriftResult",
    "DriftConfig",
    "FeatureDrift",
    "Flag",
    "Level",
    "PerformanceCalculator",
    "PredictionDriftResult",
    "Result",
    "available_calculators",
    "available_methods",
    "get_calculator",
    "prediction_drift",
    "register_calculator",
    "register_method",
]
