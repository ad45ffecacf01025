"""One exception hierarchy, so callers (CLI, API) can turn any creditops failure into a clear
message without catching library internals."""

from __future__ import annotations

from collections.abc import Sequence


class CreditOpsError(Exception):
    """Base class of every error creditops raises on purpose."""


class ConfigurationError(CreditOpsError):
    """A setting or dataset spec is invalid."""


class DataValidationError(CreditOpsError):
    """The data cannot be used as given; the message names the column and the problem."""

    def __init__(self, message: str, *, column: str | None = None) -> None:
        super().__init__(message)
        self.column = column


class DatasetNotFoundError(CreditOpsError):
    """A built-in dataset name or a data file does not exist."""


class ModelNotFoundError(CreditOpsError):
    """No registered model matches the requested name, version or alias."""


class RegistryUnavailableError(CreditOpsError):
    """The model registry (the MLflow tracking server) did not answer, or failed: unlike
    :class:`ModelNotFoundError`, nothing is known about what is registered."""


class CanaryStateError(CreditOpsError):
    """A canary switch that does not apply: halting one that is not deciding, resuming one
    that is not halted, or either with no canary configured or no challenger."""


class IncomparableVersionsError(CreditOpsError):
    """Two registered versions share no test split (other data, another split, another
    outcome), so measuring them side by side on one split would favour one of them."""


class NotFittedError(CreditOpsError):
    """A monitoring calculator was asked to ``calculate`` before ``fit``: there is no
    reference to compare the current data with."""


class InsufficientDataError(CreditOpsError):
    """A monitoring check cannot judge the data it was given (too few decisions, no outcomes
    yet, nothing to compare). The monitor job reports that check as skipped, with this message
    as the reason, and runs the others: no data is not a finding, and not a crash either."""


class ModelStructureError(CreditOpsError, TypeError):
    """A fitted model is not the calibrated-or-plain preprocessing pipeline creditops expects."""


class UnsupportedModel(CreditOpsError):  # noqa: N818 (the serving API's agreed name)
    """The model holds a step the fast path cannot reproduce exactly; serve the pipeline."""


class ServiceUnavailableError(CreditOpsError):
    """The decision service cannot be reached, or has no model to decide with."""


class AlertStoreError(CreditOpsError):
    """The alert store could not read or write (database unreachable, locked, read-only)."""


class AuditLogError(CreditOpsError):
    """The retraining audit could not be read or written."""


class KeyStoreError(CreditOpsError):
    """An API key could not be created, found or revoked (the message says why)."""


class BearerTokenError(CreditOpsError):
    """A bearer token was refused: malformed, forged, expired, not yet valid, for another
    issuer or audience, or signed with a key the identity provider does not publish (the API
    answers 401). The message says which, never the token."""


class IdentityProviderError(CreditOpsError):
    """Bearer tokens cannot be verified now: the identity provider's published keys could not
    be fetched or read (the API answers 503; keys keep working)."""


class JobError(CreditOpsError):
    """The job store could not read or write, or a job cannot do what was asked (unknown id,
    already finished)."""


class JobCancelledError(CreditOpsError):
    """A running job was asked to stop; raised inside its worker to unwind it."""


class NotClearedError(CreditOpsError):
    """A version may not be promoted without ``force``: no retrain cleared it (its gates did
    not pass, it did not come from a retrain) or it was rolled back since."""


class RetrainInProgressError(CreditOpsError):
    """Another retrain holds the lock."""


class ClusterError(CreditOpsError):
    """Work sent to a Dask cluster failed there (a worker left, the scheduler went away)."""


class SchemaError(CreditOpsError):
    """The database's schema cannot be brought to the revision this creditops needs (a newer
    release wrote it, its tables are not creditops's, or the upgrade failed)."""


class PredictionLogError(CreditOpsError):
    """The log could not do what was asked (database unreachable, locked, read-only, full).

    Nothing was acknowledged: a write that raises this may not be reported to the client as a
    decision (the API answers 503).
    """


class RecordRejectedError(PredictionLogError):
    """The database refused these records themselves (not the database's state)."""


class DuplicatePredictionError(RecordRejectedError):
    """A prediction_id is already in the log, or appears twice in one batch."""

    def __init__(self, message: str = "prediction_id already logged", ids: Sequence[str] = ()):
        super().__init__(message)
        self.ids = list(ids)


class PersonalDataError(CreditOpsError):
    """Personal data cannot be sealed or opened: no key, a malformed key, or a token that no
    configured key opens. The message never holds the data."""


class ChainError(CreditOpsError):
    """The decision log's chain cannot be signed, verified or purged as asked: no audit key, a
    chain that no longer extends what was signed, an unreadable checkpoint export."""


class UnknownPredictionError(CreditOpsError, LookupError):
    """An outcome was sent for a prediction_id that was never logged (the API answers 404)."""

    def __init__(self, message: str = "unknown prediction_id", ids: Sequence[str] = ()):
        super().__init__(message)
        self.ids = list(ids)


class OutcomeConflictError(CreditOpsError):
    """A different outcome is already recorded for this prediction (the API answers 409).

    Outcomes are facts: a second, different label for the same loan is a data problem to be
    resolved by a person, not silently overwritten.
    """

    def __init__(
        self,
        message: str = "a different outcome is already recorded",
        prediction_id: str = "",
        recorded: int | None = None,
        requested: int | None = None,
    ) -> None:
        super().__init__(message)
        self.prediction_id = prediction_id
        self.recorded = recorded
        self.requested = requested


class ModelCheckError(CreditOpsError):
    """A version failed the checks made before it may serve."""


class JSONBodyError(CreditOpsError, ValueError):
    """A request body that is not strict JSON; the message names the problem, not the input."""


class CellError(JSONBodyError):
    """One cell of a CSV upload cannot be read as its column's type. ``row`` counts the data
    rows from 0 (the header is not a row), so the message reads like a batch's field errors
    (``applications[7].Income``)."""

    def __init__(self, message: str, *, row: int, column: str, problem: str) -> None:
        super().__init__(message)
        self.row = row
        self.column = column
        self.problem = problem


class BatchValidationError(DataValidationError):
    """A file of applications was refused before anything was decided; ``problems`` lists
    each bad value as ``{"row", "column", "problem"}`` (``row`` from 1, the first data row;
    ``row`` or ``column`` is None when the problem is the file's, not one cell's)."""

    def __init__(self, message: str, problems: Sequence[dict[str, object]] = ()) -> None:
        super().__init__(message)
        self.problems = list(problems)


class LoginRequiredError(CreditOpsError):
    """A dashboard page was asked for by someone not logged in; ``next_path`` is where to
    return after logging in."""

    def __init__(self, next_path: str) -> None:
        super().__init__(next_path)
        self.next_path = next_path


class AccessDeniedError(CreditOpsError):
    """The session may not do this: a reader asked for an admin action, or a form's CSRF token
    was missing or wrong."""
