"""Every API router, composed in the order the docs list them."""

from fastapi import APIRouter

from creditops.serving.api import decisions, docs, explanations, feedback, models, ops

api_router = APIRouter()
api_router.include_router(decisions.router)
api_router.include_router(explanations.router)
api_router.include_router(feedback.router)
api_router.include_router(models.router)
api_router.include_router(ops.router)
api_router.include_router(docs.router)
