"""The stores the dashboard reads besides the decision log, opened once per worker."""

from __future__ import annotations

import threading

from fastapi import Request

from creditops.store.alerts import AlertStore
from creditops.store.audit import AuditLog

_LOCK = threading.Lock()


def alert_store(request: Request) -> AlertStore:
    state = request.app.state
    store = getattr(state, "ui_alert_store", None)
    if store is None:
        with _LOCK:
            store = getattr(state, "ui_alert_store", None)
            if store is None:
                store = AlertStore.from_settings(state.settings)
                state.ui_alert_store = store
    return store


def audit_log(request: Request) -> AuditLog:
    state = request.app.state
    log = getattr(state, "ui_audit_log", None)
    if log is None:
        with _LOCK:
            log = getattr(state, "ui_audit_log", None)
            if log is None:
                log = AuditLog.from_settings(state.settings)
                state.ui_audit_log = log
    return log
