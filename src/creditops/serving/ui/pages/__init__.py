"""The dashboard's pages, one module each; :data:`ROUTERS` is every router, in menu order."""

from fastapi import APIRouter

from creditops.serving.ui.pages import audit, decide, login, models, overview, policy, version

# models before version: /ui/models/compare is not a version number.
ROUTERS: tuple[APIRouter, ...] = (
    login.router,
    overview.router,
    models.router,
    version.router,
    policy.router,
    decide.router,
    audit.router,
)
