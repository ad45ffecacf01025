"""The traffic simulator: production-like applications sent to a running decision service.

An HTTP client tool (it never imports the service): it draws applications from a built-in
dataset, lets a named drift scenario change who applies or how they repay, posts them to
``/predict/batch`` and feeds outcomes back through ``/feedback/batch``, so drift, alerts and
retraining can be watched without waiting months for real applicants.
"""

from creditops.exceptions import ServiceUnavailableError
from creditops.simulation.traffic import (
    IncomeShock,
    NewSegment,
    NoDrift,
    RequestFailure,
    RisingDefaults,
    Scenario,
    ServedSpec,
    SimulationReport,
    available_scenarios,
    get_scenario,
    register_scenario,
    simulate,
)

__all__ = [
    "IncomeShock",
    "NewSegment",
    "NoDrift",
    "RequestFailure",
    "RisingDefaults",
    "Scenario",
    "ServedSpec",
    "ServiceUnavailableError",
    "SimulationReport",
    "available_scenarios",
    "get_scenario",
    "register_scenario",
    "simulate",
]
