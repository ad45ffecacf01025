"""Reading request bodies strictly, and saying what is wrong with them without quoting them.

Python's json module accepts what RFC 8259 does not (``NaN``, ``1e400`` as infinity, lone
surrogates, repeated keys), and CSV has no types at all; both are read here into the plain
values the generated request models in :mod:`creditops.serving.schemas` then validate, so a
JSON body and a CSV upload are judged by the same rules. Error texts name the field and the
problem, never the submitted value: request bodies hold personal data, and error bodies end up
in client logs.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import ValidationError

from creditops.exceptions import CellError, JSONBodyError

__all__ = [
    "example_csv",
    "field_errors",
    "format_location",
    "located_errors",
    "parse_csv_applications",
    "parse_form_application",
    "parse_json_strict",
    "validation_errors",
]

_MAX_FIELD_NAME = 100


# ---------------------------------------------------------------------------------------------
# Validation errors for the API
# ---------------------------------------------------------------------------------------------


def format_location(location: tuple[str | int, ...]) -> str:
    """``("applications", 3, "Income")`` → ``"applications[3].Income"``; ``()`` → ``"body"``."""
    text = ""
    for part in location:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            part = part if len(part) <= _MAX_FIELD_NAME else part[:_MAX_FIELD_NAME] + "…"
            text += f".{part}" if text else part
    return text or "body"


_PROBLEMS = {
    "float_type": "must be a JSON number (not a string or boolean)",
    "int_type": "must be a whole JSON number (not a string or boolean)",
    "dict_type": "must be a JSON object",
    "model_type": "must be a JSON object",
    "list_type": "must be a JSON array",
}


def _problem(error: Mapping[str, Any]) -> str:
    kind = error["type"]
    if kind in _PROBLEMS:
        return _PROBLEMS[kind]
    message = str(error["msg"])
    value = error.get("input")
    # A safety net: pydantic's messages do not quote the input, custom ones might.
    if isinstance(value, str) and value and f"'{value}'" in message:
        return "invalid value"
    return message


def validation_errors(exc: ValidationError) -> list[dict[str, str]]:
    """``[{"field", "problem"}]`` for a 422 body: no submitted value, no documentation URL."""
    return field_errors(exc.errors(include_url=False, include_input=True, include_context=True))


def field_errors(errors: Iterable[Mapping[str, Any]], *, skip: int = 0) -> list[dict[str, str]]:
    """``[{"field", "problem"}]`` from pydantic-style error dicts; ``skip`` drops the leading
    parts of each location (FastAPI's ``body`` / ``query``), so every 422 reads alike."""
    return [
        {"field": format_location(tuple(error["loc"])[skip:]), "problem": _problem(error)}
        for error in errors
    ]


# ---------------------------------------------------------------------------------------------
# Strict JSON
# ---------------------------------------------------------------------------------------------


def _refuse_constant(name: str) -> Any:
    raise JSONBodyError(f"{name} is not a JSON number; send a finite number or null")


def _finite_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise JSONBodyError("a number is too large (it overflows a 64-bit float)")
    return value


def _bounded_int(text: str) -> int:
    value = int(text)
    if len(text) > 300:  # only then can float(value) overflow
        try:
            float(value)
        except OverflowError:
            raise JSONBodyError("a number is too large (it overflows a 64-bit float)") from None
    return value


_SAFE_KEY = re.compile(r"[\w .\-]{1,64}")


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                shown = f" {key!r}" if _SAFE_KEY.fullmatch(key) else ""
                raise JSONBodyError(f"an object repeats the key{shown}; each key must be unique")
            seen.add(key)
    return result


_DECODER = json.JSONDecoder(
    parse_float=_finite_float,
    parse_int=_bounded_int,
    parse_constant=_refuse_constant,
    object_pairs_hook=_unique_keys,
)
# A \uD800–\uDFFF escape: either half of a surrogate pair, or a lone one (invalid Unicode).
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def _check_unicode(value: Any) -> None:
    stack: list[tuple[Any, tuple[str | int, ...]]] = [(value, ())]
    while stack:
        item, location = stack.pop()
        if isinstance(item, str):
            strings = [item]
        elif isinstance(item, dict):
            strings = list(item)
            stack.extend((v, (*location, k)) for k, v in item.items())
        elif isinstance(item, list):
            strings = []
            stack.extend((v, (*location, i)) for i, v in enumerate(item))
        else:
            continue
        for text in strings:
            try:
                text.encode("utf-8")
            except UnicodeEncodeError:
                where = format_location(location) if _printable(location) else "body"
                raise JSONBodyError(
                    f"{where}: a string holds an unpaired UTF-16 surrogate escape, which is not "
                    "valid Unicode"
                ) from None


def _printable(location: tuple[str | int, ...]) -> bool:
    return all(isinstance(p, int) or _SAFE_KEY.fullmatch(p) for p in location)


def parse_json_strict(body: bytes | bytearray | memoryview) -> Any:
    """Parse a request body as RFC 8259 JSON, refusing what Python's json module lets through.

    ``json.loads`` accepts ``NaN``, ``Infinity`` and ``-Infinity``, turns ``1e400`` into
    infinity, keeps lone surrogate escapes (``"\\ud800"``) and lets a repeated key silently
    override the first; each of those, invalid UTF-8, a byte order mark and absurd nesting
    raise :class:`JSONBodyError` (a ValueError) naming the problem, never quoting the input.
    """
    try:
        text = bytes(body).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise JSONBodyError(
            f"the body is not valid UTF-8 (invalid byte at position {exc.start})"
        ) from None
    if text.startswith("\ufeff"):
        raise JSONBodyError("the body starts with a byte order mark; send UTF-8 without one")
    try:
        value = _DECODER.decode(text)
    except json.JSONDecodeError as exc:
        raise JSONBodyError(
            f"invalid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    except RecursionError:
        raise JSONBodyError("the body is nested too deeply") from None
    except JSONBodyError:
        raise
    except ValueError:  # e.g. an integer literal beyond Python's digit limit
        raise JSONBodyError("a number is too large (it overflows a 64-bit float)") from None
    if _SURROGATE_ESCAPE.search(text):
        _check_unicode(value)
    return value


# ---------------------------------------------------------------------------------------------
# CSV uploads
# ---------------------------------------------------------------------------------------------


def _csv_number(text: str) -> int | float | None:
    try:
        number = float(text)
    except ValueError:
        return None
    if not math.isfinite(number):
        return None
    return int(number) if number.is_integer() else number


def example_csv(example: Mapping[str, Any]) -> str:
    """``example`` as a one-row CSV upload for ``/predict/batch`` (header and row)."""
    import csv
    import io

    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(example), lineterminator="\n")
    writer.writeheader()
    writer.writerow({k: "" if v is None else v for k, v in example.items()})
    return out.getvalue()


def parse_csv_applications(body: bytes, spec: Any, *, max_rows: int) -> dict[str, Any]:
    """A CSV upload as the JSON batch body ``{"applications": [...]}``.

    CSV has no types, so numbers are read here for the spec's numeric features and protected
    attributes (an empty cell is missing); anything that is not a finite number is refused
    with its row and column. Validation then runs exactly as for JSON.
    """
    import csv
    import io

    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise JSONBodyError(f"CSV is not valid UTF-8 (byte {error.start})") from None
    try:
        return _csv_applications(csv.DictReader(io.StringIO(text, newline="")), spec, max_rows)
    except csv.Error as error:  # e.g. a stray carriage return; the message quotes no input
        raise JSONBodyError(f"CSV is malformed: {error}") from None


def _csv_applications(reader: Any, spec: Any, max_rows: int) -> dict[str, Any]:
    if not reader.fieldnames:
        raise JSONBodyError("CSV has no header row")
    duplicated = sorted({n for n in reader.fieldnames if reader.fieldnames.count(n) > 1})
    if duplicated:
        raise JSONBodyError(f"CSV header repeats column(s): {', '.join(duplicated)}")
    rows = []
    for index, row in enumerate(reader):
        if index >= max_rows:
            raise JSONBodyError(f"CSV has more than {max_rows} rows")
        if None in row:
            raise JSONBodyError(f"applications[{index}]: more cells than header columns")
        rows.append(row)
    return {"applications": read_text_cells(rows, spec)}


def read_text_cells(rows: Iterable[Mapping[str, str | None]], spec: Any) -> list[dict[str, Any]]:
    """Rows of text cells (a CSV read as text) as the values JSON would carry, as
    :func:`parse_csv_applications` reads them; a cell that is not its column's type raises
    :class:`CellError` with its row (from 0) and column."""
    cells = _CellReader(spec)
    out = []
    for index, row in enumerate(rows):
        application: dict[str, Any] = {}
        for column, cell in row.items():
            try:
                application[column] = cells.read(column, cell)
            except ValueError as error:
                where = f"applications[{index}].{format_location((column,))}"
                raise CellError(
                    f"{where}: {error}", row=index, column=column, problem=str(error)
                ) from None
        out.append(application)
    return out


class _CellReader:
    """Reads one text cell (CSV, or a dashboard form field) as the value JSON would carry:
    numbers for the spec's numeric features, a number or a label for a protected attribute,
    text otherwise, None for an empty cell."""

    def __init__(self, spec: Any) -> None:
        self.numeric = set(spec.numeric)
        self.protected = set(spec.protected) - self.numeric

    def read(self, column: str, cell: str | None) -> Any:
        value = (cell or "").strip()
        if value == "":
            return None
        if column in self.numeric:
            try:
                number = float(value)
            except ValueError:
                number = math.nan
            if not math.isfinite(number):
                raise ValueError("must be a finite number")
            return int(number) if number.is_integer() else number
        if column in self.protected:  # a number or a label: a number when it reads as one
            number = _csv_number(value)
            return value if number is None else number
        return value


# ---------------------------------------------------------------------------------------------
# Dashboard forms
# ---------------------------------------------------------------------------------------------


def parse_form_application(
    fields: Iterable[tuple[str, Any]], spec: Any
) -> tuple[dict[str, Any], dict[str, str]]:
    """A form's ``(name, value)`` fields (one per column) as the JSON body ``/predict`` takes,
    read cell by cell as a CSV upload is; returns ``(application, problems by field)``.
    A field sent twice is refused, as a repeated JSON key is.

    An empty field is left out rather than sent as null, so the application model judges it
    as an omitted field: imputed when optional, "Field required" when the model needs it.
    The application then goes through the same model validation as the API's.
    """
    cells = _CellReader(spec)
    application: dict[str, Any] = {}
    problems: dict[str, str] = {}
    seen: set[str] = set()
    for column, text in fields:
        if column in seen:
            problems[column] = "sent more than once; send each field once"
            application.pop(column, None)
            continue
        seen.add(column)
        if not isinstance(text, str):  # a file where a value belongs: a forged form
            problems[column] = "must be a value typed in the form, not a file"
            continue
        try:
            value = cells.read(column, text)
        except ValueError as error:
            problems[column] = str(error)
            continue
        if value is not None:
            application[column] = value
    return application, problems


def located_errors(exc: ValidationError) -> list[tuple[tuple[str | int, ...], str]]:
    """Each validation error as ``(location, problem)``: the raw location, for a caller that
    places the problem (next to a form field, in a row and column), with the same problem
    text as :func:`validation_errors`."""
    raw = exc.errors(include_url=False, include_input=True, include_context=True)
    return [(tuple(error["loc"]), _problem(error)) for error in raw]
