"""The fitted calibrator of ``CalibratedClassifierCV(ensemble=False)``, applied as sklearn does."""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.special import expit
from sklearn.calibration import _SigmoidCalibration
from sklearn.isotonic import IsotonicRegression

from creditops.exceptions import UnsupportedModel
from creditops.serving.fastpath._preprocess import _describe


class _Calibration:
    """The fitted calibrator of CalibratedClassifierCV(ensemble=False), applied as sklearn does."""

    def __init__(self, calibrator: Any) -> None:
        if isinstance(calibrator, _SigmoidCalibration):
            self.kind = "sigmoid"
        elif isinstance(calibrator, IsotonicRegression):
            if calibrator.out_of_bounds != "clip" or not hasattr(calibrator, "f_"):
                raise UnsupportedModel("an isotonic calibrator that does not clip")
            self.kind = "isotonic"
        else:
            raise UnsupportedModel(f"calibrator {_describe(calibrator)}")
        self.calibrator = calibrator

    def __call__(self, response: np.ndarray) -> np.ndarray:
        cal = self.calibrator
        if self.kind == "sigmoid":
            calibrated = expit(-(cal.a_ * response + cal.b_))
        else:
            T = np.asarray(response, dtype=cal.X_thresholds_.dtype)
            T = np.clip(T, cal.X_min_, cal.X_max_)
            calibrated = cal.f_(T).astype(T.dtype)
        proba = np.asarray(calibrated, dtype=np.float64)
        proba[(proba > 1.0) & (proba <= 1.0 + 1e-5)] = 1.0
        return proba
