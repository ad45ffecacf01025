"""The feedback routes over real HTTP refuse bad bodies like the decision routes do: a size
limit (413, whatever Content-Length claims), strict JSON and one 422 body naming each field,
and nothing is recorded for a refused request."""

from __future__ import annotations

import json
import shutil
import socket
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from creditops.config import Settings
from creditops.data.datasets import load_builtin
from creditops.serving.schemas import ErrorBody
from creditops.store.predlog import PredictionLog
from helpers import serving

pytestmark = pytest.mark.slow

# Small limits, so a body over them is cheap to send; valid batches of a few outcomes fit.
MAX_BODY = 2048
MAX_BATCH_BODY = 16 * 1024
JSON = {"content-type": "application/json"}


API_KEY = "feedback-test-key-0123456789"
KEYED = {"X-API-Key": API_KEY}


@pytest.fixture(scope="module")
def server(trained, tmp_path_factory) -> Iterator[tuple[str, Settings]]:
    source, _ = trained
    home = tmp_path_factory.mktemp("feedback-home") / "home"
    shutil.copytree(source.home, home)
    settings = Settings(
        home=home, max_body_bytes=MAX_BODY, max_batch_body_bytes=MAX_BATCH_BODY, api_key=API_KEY
    )
    with serving(settings) as url:
        yield url, settings


@pytest.fixture(scope="module")
def application() -> dict[str, Any]:
    frame, spec = load_builtin("credit_data")
    row = frame.iloc[2]
    record = {c: row[c] for c in frame.columns if c not in (spec.target, spec.id)}
    return json.loads(
        json.dumps(
            {k: (None if v != v else v) for k, v in record.items()}, default=lambda v: v.item()
        )
    )


def _decided(server: tuple[str, Settings], application: dict[str, Any], n: int = 1) -> list[str]:
    """``n`` fresh prediction ids, each a logged decision without an outcome."""
    url, _ = server
    with httpx.Client(base_url=url, timeout=60, headers=KEYED) as client:
        responses = [client.post("/predict", json=application) for _ in range(n)]
    assert all(r.status_code == 200 for r in responses), responses[0].text
    return [r.json()["prediction_id"] for r in responses]


def _post(server: tuple[str, Settings], path: str, body: bytes | Iterator[bytes]) -> httpx.Response:
    url, _ = server
    with httpx.Client(base_url=url, timeout=60, headers=KEYED) as client:
        return client.post(path, content=body, headers=JSON)


def _nothing_recorded(server: tuple[str, Settings], *ids: str) -> bool:
    _, settings = server
    with PredictionLog(settings.resolved_database_url) as log:
        return all(log.get_outcome(pid) is None for pid in ids)


def _error(response: httpx.Response, status: int) -> ErrorBody:
    assert response.status_code == status, response.text
    return ErrorBody.model_validate(response.json())


def _raw_post(server: tuple[str, Settings], path: str, declared: int, body: bytes) -> int:
    """POST with a Content-Length that need not match the body (no HTTP client sends one
    that lies); the status of the server's first answer."""
    url, _ = server
    address = urlsplit(url)
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {address.hostname}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {declared}\r\n"
        f"X-API-Key: {API_KEY}\r\nConnection: close\r\n\r\n"
    )
    with socket.create_connection((address.hostname, address.port), timeout=30) as sock:
        sock.sendall(head.encode() + body)
        answer = b""
        while b"\r\n" not in answer:
            chunk = sock.recv(65536)
            assert chunk, "the server closed the connection without answering"
            answer += chunk
    return int(answer.split(b" ", 2)[1])


# --- one outcome --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "field", "detail"),
    [
        (b'{"prediction_id": "{pid}", "outcome": NaN}', None, "NaN is not a JSON number"),
        (b'{"prediction_id": "{pid}", "outcome": "repaid", "x": Infinity}', None, "Infinity"),
        (b'{"prediction_id": "{pid}", "outcome": "repaid", "x": -Infinity}', None, "Infinity"),
        (b'{"prediction_id": "{pid}", "outcome": "repaid", "x": 1e400}', None, "too large"),
        (
            b'{"prediction_id": "{pid}", "outcome": "default", "outcome": "repaid"}',
            None,
            "repeats the key 'outcome'",
        ),
        (b'{"prediction_id": "{pid}", "outcome": "repa\xffid"}', None, "not valid UTF-8"),
        (b'\xef\xbb\xbf{"prediction_id": "{pid}", "outcome": "repaid"}', None, "byte order"),
        (b"", None, "invalid JSON"),
        (b'{"prediction_id": "{pid}", "outcome": "repaid"', None, "invalid JSON"),
        (b'{"prediction_id": "{pid}", "outcome": 1}', "outcome", None),
        (b'{"prediction_id": "{pid}", "outcome": true}', "outcome", None),
        (b'{"prediction_id": 12345, "outcome": "repaid"}', "prediction_id", None),
        (b'{"prediction_id": "not-a-uuid", "outcome": "repaid"}', "prediction_id", None),
        (b'{"outcome": "repaid"}', "prediction_id", None),
        (b'{"prediction_id": "{pid}"}', "outcome", None),
        (b'{"prediction_id": "{pid}", "outcome": "repaid", "amount": 5}', "amount", None),
        (
            b'{"prediction_id": "{pid}", "outcome": "repaid", "observed_at": "2026-05-31T00:00"}',
            "observed_at",
            None,
        ),
        (b'[{"prediction_id": "{pid}", "outcome": "repaid"}]', "body", None),
        (b"null", "body", None),
    ],
    ids=[
        "nan",
        "infinity",
        "minus-infinity",
        "overflow",
        "repeated-key",
        "not-utf8",
        "byte-order-mark",
        "empty",
        "cut",
        "number-outcome",
        "boolean-outcome",
        "number-id",
        "not-a-uuid",
        "missing-id",
        "missing-outcome",
        "extra-field",
        "naive-time",
        "array",
        "null",
    ],
)
def test_a_bad_outcome_is_refused_and_not_recorded(server, application, body, field, detail):
    (pid,) = _decided(server, application)
    error = _error(_post(server, "/feedback", body.replace(b"{pid}", pid.encode())), 422)
    if field is None:  # unreadable JSON: the summary names the problem
        assert detail in error.detail
    else:
        assert field in {e.field for e in error.errors}, error
    assert _nothing_recorded(server, pid)


def test_wrong_types_are_named_field_by_field(server):
    error = _error(_post(server, "/feedback", b'{"prediction_id": [], "outcome": 0, "z": 1}'), 422)
    assert {e.field for e in error.errors} == {"prediction_id", "outcome", "z"}
    assert error.detail == "invalid feedback"


def test_an_outcome_body_over_the_limit_is_413_whatever_it_declares(server, application):
    pid, other, third = _decided(server, application, 3)

    def padded(prediction_id: str, size: int) -> bytes:
        body = json.dumps({"prediction_id": prediction_id, "outcome": "repaid"}).encode()
        return body + b" " * (size - len(body))  # whitespace: valid JSON at any length

    # Declared honestly: refused before the body is read.
    _error(_post(server, "/feedback", padded(pid, MAX_BODY + 1)), 413)
    # No Content-Length (chunked): refused once the bytes received pass the limit.
    chunked = _post(server, "/feedback", iter([padded(pid, MAX_BODY + 1)]))
    assert "larger than" in _error(chunked, 413).detail
    # A Content-Length over the limit for a small body: the header alone refuses it.
    assert _raw_post(server, "/feedback", MAX_BODY + 1, padded(pid, 100)) == 413
    # A Content-Length under the body's size: only the declared bytes are read (cut JSON).
    assert _raw_post(server, "/feedback", 20, padded(other, 200)) == 422
    assert _nothing_recorded(server, pid, other)
    # At the limit exactly it is accepted.
    accepted = _post(server, "/feedback", padded(third, MAX_BODY))
    assert accepted.status_code == 200, accepted.text


# --- a batch --------------------------------------------------------------------------------------


def _batch(*items: str) -> bytes:
    return ('{"outcomes": [' + ", ".join(items) + "]}").encode()


def _item(pid: str, outcome: str = "repaid") -> str:
    return json.dumps({"prediction_id": pid, "outcome": outcome})


@pytest.mark.parametrize(
    ("second", "field", "detail"),
    [
        ('{"prediction_id": "{pid}", "outcome": NaN}', None, "NaN is not a JSON number"),
        ('{"prediction_id": "{pid}", "outcome": "repaid", "x": Infinity}', None, "Infinity"),
        ('{"prediction_id": "{pid}", "prediction_id": "{pid}", "outcome": "repaid"}', None, "key"),
        ('{"prediction_id": "{pid}", "outcome": 0}', "outcomes[1].outcome", None),
        ('{"prediction_id": "{pid}"}', "outcomes[1].outcome", None),
        (
            '{"prediction_id": "{pid}", "outcome": "repaid", "amount": 1}',
            "outcomes[1].amount",
            None,
        ),
        ('"{pid}"', "outcomes[1]", None),
    ],
    ids=["nan", "infinity", "repeated-key", "wrong-type", "missing", "extra", "not-an-object"],
)
def test_one_bad_item_refuses_the_whole_batch(server, application, second, field, detail):
    first, pid = _decided(server, application, 2)
    body = _batch(_item(first), second.replace("{pid}", pid))
    error = _error(_post(server, "/feedback/batch", body), 422)
    if field is None:
        assert detail in error.detail
    else:
        assert field in {e.field for e in error.errors}, error
    assert _nothing_recorded(server, first, pid)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b'{"outcomes": []}', "outcomes"),
        (b'{"outcomes": {}}', "outcomes"),
        (b"{}", "outcomes"),
        (b'{"outcomes": [], "outcomes": []}', None),
        (b"", None),
        (b'{"outcomes": [{"prediction_id": "{pid}", "outcome": "repaid"}], "note": "x"}', "note"),
    ],
    ids=["empty-list", "object", "missing", "repeated-key", "empty-body", "extra-field"],
)
def test_a_bad_batch_body_is_refused(server, application, body, field):
    (pid,) = _decided(server, application)
    error = _error(_post(server, "/feedback/batch", body.replace(b"{pid}", pid.encode())), 422)
    if field is not None:
        assert field in {e.field for e in error.errors}, error
    assert _nothing_recorded(server, pid)


def test_a_batch_repeating_a_prediction_id(server, application):
    """Contradictory outcomes for one id refuse the batch (nothing recorded, not even its other
    items); the same outcome twice is recorded once, like a repeated request."""
    pid, other = _decided(server, application, 2)
    body = _batch(_item(other), _item(pid, "default"), _item(pid, "repaid"))
    assert "nothing recorded" in _error(_post(server, "/feedback/batch", body), 409).detail
    assert _nothing_recorded(server, pid, other)
    same = _post(server, "/feedback/batch", _batch(_item(pid, "default"), _item(pid, "default")))
    assert same.json() == {"count": 2, "recorded": 1, "unchanged": 1}, same.text


def test_a_batch_body_over_the_limit_is_413_whatever_it_declares(server, application):
    ids = _decided(server, application, 2)
    body = _batch(*(_item(pid) for pid in ids))
    over = body + b" " * (MAX_BATCH_BODY + 1 - len(body))
    _error(_post(server, "/feedback/batch", over), 413)
    chunks = [over[i : i + 4096] for i in range(0, len(over), 4096)]
    _error(_post(server, "/feedback/batch", iter(chunks)), 413)
    assert _raw_post(server, "/feedback/batch", MAX_BATCH_BODY + 1, body) == 413
    assert _nothing_recorded(server, *ids)
    # The single-outcome limit does not apply to a batch.
    accepted = _post(server, "/feedback/batch", over[:MAX_BATCH_BODY])
    assert accepted.json() == {"count": 2, "recorded": 2, "unchanged": 0}, accepted.text
