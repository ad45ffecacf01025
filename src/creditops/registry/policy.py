"""The decision policy of a registered version: the one function every reader calls.

A version registered by this creditops carries the policy its training derived. A version
registered by an older creditops has none: the first command that needs it derives it from the
version's validation split exactly as training would, stores it on the version's run and tags,
and every later reader gets the stored one. A lock file in ``CREDITOPS_HOME`` makes the processes
of one host derive it once; processes on several hosts sharing a tracking server may each derive
it, but the derivation is deterministic (the same rows, model and defaults), so they write the
same policy.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
from collections.abc import Iterator
from contextlib import contextmanager

from creditops.config import Settings
from creditops.evaluation.business import derive_policy
from creditops.evaluation.policy import DecisionPolicy
from creditops.exceptions import ModelNotFoundError
from creditops.registry.client import client, get_version
from creditops.registry.load import LoadedModel, load_version_artifact, load_version_data
from creditops.training import tracking

#: The version tag that changes whenever the version's policy is replaced.
POLICY_REVISION = "policy_revision"


def stored_policy(settings: Settings, loaded: LoadedModel) -> DecisionPolicy | None:
    """The policy stored with ``loaded``, or None for a version registered without one."""
    text = load_version_artifact(settings, loaded, tracking.POLICY_FILE)
    return None if text is None else DecisionPolicy.model_validate_json(text)


def version_policy(settings: Settings, loaded: LoadedModel) -> DecisionPolicy:
    """The decision policy of ``loaded``: the stored one, written once first when the version
    has none (see the module docstring)."""
    policy = stored_policy(settings, loaded)
    if policy is not None:
        return policy
    with _policy_lock(settings, loaded):
        policy = stored_policy(settings, loaded)  # another process may have written it
        if policy is None:
            policy = _derive(settings, loaded)
            _store(settings, loaded, policy)
    return policy


def _derive(settings: Settings, loaded: LoadedModel) -> DecisionPolicy:
    spec = loaded.spec
    data = load_version_data(settings, loaded)
    validation, y = data.part("validation", spec)
    proba = loaded.model.predict_proba(validation[spec.features])[:, 1]
    return derive_policy(y, proba, validation, spec, data.frame)


def save_policy(settings: Settings, version: str, policy: DecisionPolicy) -> DecisionPolicy:
    """Replace the decision policy of version ``version`` (a number): its artifact and tags,
    and a ``policy_revision`` tag (the policy's digest) by which serving workers notice the
    change. Auditing the change is the caller's (see ``retraining.change_policy``)."""
    found = get_version(settings, version)
    if found is None:
        raise ModelNotFoundError(
            f"no version {version!r} of model {settings.registered_model_name!r} is registered"
        )
    if found.run_id:
        tracking.configure_tracking(settings)
        with tracking.start_run("policy", run_id=found.run_id):
            tracking.log_text(policy.model_dump_json(indent=2), tracking.POLICY_FILE)
    mlflow_client = client(settings)
    for key, value in {**policy.tags(), POLICY_REVISION: policy_revision(policy)}.items():
        mlflow_client.set_model_version_tag(settings.registered_model_name, version, key, value)
    return policy


def policy_revision(policy: DecisionPolicy) -> str:
    """A short digest of the policy: equal digests, equal decisions."""
    return hashlib.sha256(policy.model_dump_json().encode()).hexdigest()[:16]


def _store(settings: Settings, loaded: LoadedModel, policy: DecisionPolicy) -> None:
    if loaded.run_id is not None:
        tracking.configure_tracking(settings)
        with tracking.start_run("policy", run_id=loaded.run_id):
            tracking.log_text(policy.model_dump_json(indent=2), tracking.POLICY_FILE)
    mlflow_client = client(settings)
    for key, value in policy.tags().items():
        mlflow_client.set_model_version_tag(loaded.name, loaded.version, key, value)
        loaded.tags[key] = value


@contextmanager
def _policy_lock(settings: Settings, loaded: LoadedModel) -> Iterator[None]:
    locks = settings.ensure_home() / "locks"
    locks.mkdir(exist_ok=True)
    fd = os.open(locks / f"policy-{loaded.name}-{loaded.version}.lock", os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # waits while another process derives it
        yield
    finally:
        os.close(fd)
