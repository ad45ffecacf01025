"""Feature preprocessing fitted inside each model pipeline."""

from creditops.features.preprocessing import build_preprocessor

__all__ = ["build_preprocessor"]
