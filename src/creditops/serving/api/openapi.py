"""The OpenAPI document of the version being served.

The decision routes read their bodies as bytes and validate them against request models
generated from the served version's spec, so FastAPI cannot see those models. Routes declare
their bodies by reference (:func:`request_body`, :data:`APPLICATION`, :data:`BATCH`); the
document fills the references with the served version's models and an example built from a
real training row, and is rebuilt when another version is served. The feedback routes read
their bodies the same way; their models (:data:`FEEDBACK`, :data:`FEEDBACK_BATCH`) are fixed.

Two refusals no route raises itself are documented on every route they can reach: 503 when the
worker is overloaded (:mod:`creditops.serving.admission`; every route but the probes and the
scrape) and 429 past a key's rate limit (:mod:`creditops.serving.ratelimit`; every route that
takes a key).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from creditops.serving.parsing import example_csv
from creditops.serving.schemas import (
    FeedbackBatch,
    FeedbackRequest,
    LoggedDecision,
    build_batch_model,
)

_REFS = "#/components/schemas/"
_ERROR_BODY = {"application/json": {"schema": {"$ref": f"{_REFS}ErrorBody"}}}
_RETRY_AFTER = {
    "Retry-After": {
        "description": "seconds to wait before trying again",
        "schema": {"type": "integer"},
    }
}
_OVERLOADED = "overloaded: the worker handles CREDITOPS_MAX_IN_FLIGHT requests already"
_RATE_LIMITED = "the key's rate limit (CREDITOPS_RATE_LIMIT_PER_SECOND) is exceeded"
_ALWAYS_ADMITTED = frozenset({"/health", "/ready", "/metrics"})
APPLICATION = {"$ref": f"{_REFS}Application"}
BATCH = {"$ref": f"{_REFS}ApplicationBatch"}
LOGGED = {"$ref": f"{_REFS}LoggedDecision"}
FEEDBACK = {"$ref": f"{_REFS}FeedbackRequest"}
FEEDBACK_BATCH = {"$ref": f"{_REFS}FeedbackBatch"}
CSV = "text/csv"


def request_body(content: dict[str, dict[str, Any]], *, example: Any = None) -> dict[str, Any]:
    """``openapi_extra`` for a route whose body FastAPI does not parse: media type → schema.

    ``example`` is the JSON body's example when it does not depend on the served version."""
    media_types: dict[str, dict[str, Any]] = {
        media: {"schema": schema} for media, schema in content.items()
    }
    if example is not None:
        media_types["application/json"]["example"] = example
    return {"requestBody": {"required": True, "content": media_types}}


def served_openapi(app: FastAPI) -> dict[str, Any]:
    """The document for the version serving now (cached per version)."""
    service = getattr(app.state, "service", None)
    served = service.served if service is not None and service.ready else None
    key = None if served is None else (served.name, served.version)
    cached = getattr(app.state, "openapi_cache", None)
    if cached is not None and cached[0] == key:
        return cached[1]
    document = get_openapi(
        title=app.title,
        version=app.version,
        description=app.description,
        routes=app.routes,
    )
    if served is None:
        _add_bodies(document, None, app.state.settings.max_batch)
    else:
        _add_bodies(document, served.application_model, app.state.settings.max_batch)
    _add_refusals(document)
    app.state.openapi_cache = (key, document)
    return document


def _add_bodies(
    document: dict[str, Any], application: type[BaseModel] | None, max_batch: int
) -> None:
    components = document.setdefault("components", {}).setdefault("schemas", {})
    models: list[type[BaseModel]] = [LoggedDecision, FeedbackRequest, FeedbackBatch]
    example = None
    if application is not None:
        batch = build_batch_model(application, max_batch)  # type: ignore[arg-type]
        models += [application, batch]
        example = getattr(application, "example", None)
    _, definitions = models_json_schema(
        [(model, "validation") for model in models], ref_template=_REFS + "{model}"
    )
    components.update(definitions.get("$defs", {}))
    if application is None:  # no version served: any object, refused with 503 until one is
        components["Application"] = {
            "type": "object",
            "title": "Application",
            "description": "the fields of the served version (no version is served now)",
        }
        components["ApplicationBatch"] = {
            "type": "object",
            "title": "ApplicationBatch",
            "properties": {"applications": {"type": "array", "items": APPLICATION}},
            "required": ["applications"],
        }
    if example is None:
        return
    for path in document.get("paths", {}).values():
        for operation in path.values():
            content = operation.get("requestBody", {}).get("content", {})
            for media, entry in content.items():
                if media == CSV:
                    entry["example"] = example_csv(example)
                elif entry.get("schema") == APPLICATION:
                    entry["example"] = example
                elif entry.get("schema") == BATCH:
                    entry["example"] = {"applications": [example]}


def _add_refusals(document: dict[str, Any]) -> None:
    """The overload 503 and the rate limit's 429, with Retry-After, where they can answer."""
    for path, item in document.get("paths", {}).items():
        if path in _ALWAYS_ADMITTED:
            continue
        for operation in item.values():
            responses = operation.setdefault("responses", {})
            if "503" in responses:
                responses["503"]["description"] += f"; or {_OVERLOADED}"
                responses["503"]["headers"] = _RETRY_AFTER
            else:
                responses["503"] = {
                    "description": _OVERLOADED,
                    "headers": _RETRY_AFTER,
                    "content": _ERROR_BODY,
                }
            if "401" in responses:
                responses["429"] = {
                    "description": _RATE_LIMITED,
                    "headers": _RETRY_AFTER,
                    "content": _ERROR_BODY,
                }
