"""Strict request-body parsing and field-error locations, without a model version."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from creditops.exceptions import JSONBodyError
from creditops.serving.parsing import format_location, parse_json_strict

# --- strict JSON ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "problem", "leak"),
    [
        (b'{"Income": NaN}', r"NaN is not a JSON number", None),
        (b'{"Income": Infinity}', r"Infinity is not a JSON number", None),
        (b'{"Income": -Infinity}', r"-Infinity is not a JSON number", None),
        (b'{"Income": 1e400}', r"too large", "1e400"),
        (b'{"Income": -4.2E+999}', r"too large", "4.2"),
        (b'{"Income": 1' + b"0" * 400 + b"}", r"too large", "0000"),
        (b'{"Income": 1' + b"0" * 5000 + b"}", r"too large", "0000"),
        (b'{"Home": "\\ud800"}', r"^Home: .*unpaired UTF-16 surrogate", "ud800"),
        (b'{"a": [1, {"Home": "x\\udc00y"}]}', r"^a\[1\]\.Home: .*surrogate", "udc00"),
        (b'{"\\ud800": 1}', r"^body: .*surrogate", "ud800"),
        (b'{"Home": "\xff\xfe"}', r"not valid UTF-8 \(invalid byte at position 10\)", None),
        (b'{"Home": "\xc0\xaf"}', r"not valid UTF-8", None),  # overlong encoding of "/"
        (b'{"Home": "\xed\xa0\x80"}', r"not valid UTF-8", None),  # a surrogate, UTF-8 encoded
        (b'\xef\xbb\xbf{"Income": 1}', r"byte order mark", None),
        (b'{"Income": 1, "Income": -5}', r"repeats the key 'Income'", None),
        (b'{"Income": 12', r"invalid JSON: .* line 1 column 14", None),
        (b'{"Home": "rent"} trailing', r"invalid JSON: Extra data", "trailing"),
        (b"[" * 100_000 + b"]" * 100_000, r"nested too deeply", None),
        (b"", r"invalid JSON", None),
    ],
)
def test_parse_json_strict_refuses(body: bytes, problem: str, leak: str | None) -> None:
    with pytest.raises(JSONBodyError, match=problem) as caught:
        parse_json_strict(body)
    assert isinstance(caught.value, ValueError)
    # no chained exception carries the body along
    assert caught.value.__cause__ is None
    assert caught.value.__context__ is None or caught.value.__suppress_context__
    if leak is not None:
        assert leak not in str(caught.value)


def test_parse_json_strict_accepts_normal_json() -> None:
    body = (
        '{"Income": 125, "Assets": 3000.5, "Debt": null, "Home": "rent", "ok": true, '
        '"name": "Zoë \\ud83d\\ude00 \\\\ud800", "tiny": 1e-400, "list": [1, -2.5e3, "x", {}]}'
    ).encode()
    parsed = parse_json_strict(body)
    assert parsed == json.loads(body)
    assert parsed["name"] == "Zoë 😀 \\ud800"
    assert isinstance(parsed["Income"], int)
    assert parse_json_strict(bytearray(b"[]")) == []
    assert parse_json_strict(memoryview(b"3")) == 3


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(st.characters(exclude_categories=["Cs"])),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=200, deadline=None, database=None)
@given(value=json_values, ascii_only=st.booleans())
def test_parse_json_strict_agrees_with_json_on_valid_json(value: Any, ascii_only: bool) -> None:
    body = json.dumps(value, ensure_ascii=ascii_only).encode("utf-8")
    assert parse_json_strict(body) == json.loads(body)


# --- error formatting -----------------------------------------------------------------------


def test_format_location() -> None:
    assert format_location(("applications", 3, "Income")) == "applications[3].Income"
    assert format_location(()) == "body"
    assert format_location(("x" * 500,)) == "x" * 100 + "…"
