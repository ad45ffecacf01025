"""The stores the dashboard reads besides the decision log, opened once per worker."""

from __future__ import annotations

import threading

from fastapi import Request

from creditops.store.alerts import AlertStore

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
