"""The HTTP API: one router per resource (decisions, explanations, feedback, models, ops) over
one :class:`~creditops.serving.service.DecisionService`, the shared dependencies, the OpenAPI
document of the served version and the offline API docs."""

from creditops.serving.api.main import ROUTERS, add_routes

__all__ = ["ROUTERS", "add_routes"]
