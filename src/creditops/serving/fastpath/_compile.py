"""Compile any fitted credit model: a single pipeline, or a stacked ensemble of them."""

from __future__ import annotations

import logging
from typing import Any

from creditops.data.spec import ResolvedSpec
from creditops.exceptions import UnsupportedModel
from creditops.models.anatomy import is_ensemble
from creditops.serving.fastpath._ensemble import EnsembleScorer
from creditops.serving.fastpath._scorer import CompiledScorer, FastScorer

logger = logging.getLogger(__name__)


def compile_scorer(model: Any, spec: ResolvedSpec, *, verify: bool = True) -> CompiledScorer:
    """The compiled scorer of ``model``; UnsupportedModel if it cannot be compiled exactly."""
    if is_ensemble(model):
        return EnsembleScorer.compile(model, spec, verify=verify)
    return FastScorer.compile(model, spec, verify=verify)


def compile_or_none(model: Any, spec: ResolvedSpec) -> CompiledScorer | None:
    """The compiled scorer, or None (logged) when the model must be served by its pipeline."""
    try:
        return compile_scorer(model, spec)
    except UnsupportedModel as exc:
        logger.warning("fast scoring path unavailable, serving the pipeline: %s", exc)
    except Exception:  # a bug here must never stop the service: the pipeline still scores
        logger.exception("compiling the fast scoring path failed, serving the pipeline")
    return None
