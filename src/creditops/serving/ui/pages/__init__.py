"""The dashboard's pages, one module each; :data:`ROUTERS` is every router, in menu order."""

from fastapi import APIRouter

from creditops.serving.ui.pages import (
    audit,
    data,
    decide,
    jobs,
    login,
    models,
    monitoring,
    overview,
    policy,
    retraining,
    version,
)

# models before version: /ui/models/compare is not a version number.
ROUTERS: tuple[APIRouter, ...] = (
    login.router,
    overview.router,
    models.router,
    version.router,
    policy.router,
    decide.router,
    data.router,
    jobs.router,
    monitoring.router,
    retraining.router,
    audit.router,
)
