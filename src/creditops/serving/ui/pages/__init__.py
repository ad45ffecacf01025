"""The dashboard's pages, one module each; :data:`ROUTERS` is every router, in menu order."""

from fastapi import APIRouter

from creditops.serving.ui.pages import decide, login, overview

ROUTERS: tuple[APIRouter, ...] = (login.router, overview.router, decide.router)
