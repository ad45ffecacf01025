"""Monitoring: checks that compare live data and outcomes with the champion's reference.

Each check is a :class:`Calculator` fitted on a reference and calculated on current data,
returning a :class:`Result` with ``to_dict()`` and :class:`Flag` s; alerts are made from the
flags by one function (:func:`creditops.monitoring.alerts.alerts_from_flags`). Importing this
package registers the built-in checks (:func:`available_calculators`): ``data_drift``
(with prediction drift), ``performance`` (realised), ``estimated_performance`` (CBPE) and
``fairness`` (approval by group) and ``out_of_range`` (decisions on inputs past the training
range or categories it never saw); the monitor job (:mod:`creditops.monitoring.monitor`) runs
every registered check.
"""

from creditops.monitoring.base import (
    Calculator,
    CurrentData,
    Flag,
    Level,
    Reference,
    Result,
    alert_checks,
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
from creditops.monitoring.estimated import EstimatedPerformanceCalculator
from creditops.monitoring.fairness_watch import FairnessCalculator
from creditops.monitoring.out_of_range import OutOfRangeCalculator, OutOfRangeConfig
from creditops.monitoring.performance import PerformanceCalculator
from creditops.monitoring.windows import PerformanceConfig

__all__ = [
    "Calculator",
    "CurrentData",
    "DataDriftCalculator",
    "DataDriftResult",
    "DriftConfig",
    "EstimatedPerformanceCalculator",
    "FairnessCalculator",
    "FeatureDrift",
    "Flag",
    "Level",
    "OutOfRangeCalculator",
    "OutOfRangeConfig",
    "PerformanceCalculator",
    "PerformanceConfig",
    "PredictionDriftResult",
    "Reference",
    "Result",
    "alert_checks",
    "available_calculators",
    "available_methods",
    "get_calculator",
    "prediction_drift",
    "register_calculator",
    "register_method",
]
