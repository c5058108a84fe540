"""Declared inputs: one `Field` is both the OpenAPI schema of a parameter or body member
and the check of what a client sent, so the document and the validation cannot drift.

Every value is bounded before it is used (digits of a number, length of a text, items of
a list); a value that fails is a 400 problem naming the field. Query strings refuse
unknown and repeated parameters, bodies refuse unknown members: a typo in a filter is an
error, never a filter silently ignored. Patterns are anchored character classes with a
length bound (nothing to backtrack on), anchored with ``^…$`` because JSON Schema's
``pattern`` matches anywhere; the check is a full match all the same.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from starlette.datastructures import QueryParams

from .problems import Problem

MAX_QUERY = 4096
MAX_NUMBER_DIGITS = 12


@dataclass(frozen=True, slots=True)
class Field:
    name: str
    type: str
    """``string``, ``integer``, ``boolean`` or ``array`` (of strings)."""
    description: str = ""
    required: bool = False
    minimum: int | None = None
    """integer: minimum; string: minLength; array: minItems."""
    maximum: int | None = None
    """integer: maximum; string: maxLength; array: maxItems."""
    enum: tuple[str, ...] | None = None
    pattern: str | None = None
    default: Any = None
    item_max: int = 256
    """array: each string's maxLength."""

    def schema(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.type}
        if self.description:
            out["description"] = self.description
        low, high = {"integer": ("minimum", "maximum"), "string": ("minLength", "maxLength"),
                     "array": ("minItems", "maxItems")}.get(self.type, ("", ""))
        if self.minimum is not None and low:
            out[low] = self.minimum
        if self.maximum is not None and high:
            out[high] = self.maximum
        if self.enum is not None:
            out["enum"] = list(self.enum)
        if self.pattern is not None:
            out["pattern"] = self.pattern
        if self.default is not None:
            out["default"] = self.default
        if self.type == "array":
            out["items"] = {"type": "string", "minLength": 1, "maxLength": self.item_max}
        return out

    def parameter(self, where: str) -> dict[str, Any]:
        return {"name": self.name, "in": where, "required": where == "path" or self.required,
                "schema": self.schema(), **({"description": self.description}
                                            if self.description else {})}

    # -- checks -----------------------------------------------------------------------

    def bad(self, why: str) -> Problem:
        return Problem(400, f"{self.name}: {why}")

    def from_text(self, raw: str) -> Any:
        """A query or path value (text) as its type, checked."""
        if self.type == "integer":
            if not raw or len(raw) > MAX_NUMBER_DIGITS or not re.fullmatch(r"-?[0-9]+", raw):
                raise self.bad("expected an integer")
            return self.check(int(raw))
        if self.type == "boolean":
            if raw not in ("true", "false"):
                raise self.bad("expected true or false")
            return raw == "true"
        return self.check(raw)

    def check(self, value: Any) -> Any:
        """A JSON value (or a query value already typed) checked against the field."""
        if self.type == "integer":
            if not isinstance(value, int) or isinstance(value, bool):
                raise self.bad("expected an integer")
            self._range(value, "")
        elif self.type == "boolean":
            if not isinstance(value, bool):
                raise self.bad("expected true or false")
        elif self.type == "string":
            self._text(value, self.maximum, self.minimum)
            if self.enum is not None and value not in self.enum:
                raise self.bad(f"expected one of: {', '.join(self.enum)}")
            if self.pattern is not None and not re.fullmatch(self.pattern, value):
                raise self.bad("not in the expected form")
        elif self.type == "array":
            if not isinstance(value, list):
                raise self.bad("expected a list of texts")
            self._range(len(value), " items")
            for item in value:
                self._text(item, self.item_max, 1)
        return value

    def _range(self, value: int, unit: str) -> None:
        if self.minimum is not None and value < self.minimum:
            raise self.bad(f"at least {self.minimum}{unit}")
        if self.maximum is not None and value > self.maximum:
            raise self.bad(f"at most {self.maximum}{unit}")

    def _text(self, value: Any, maximum: int | None, minimum: int | None) -> None:
        if not isinstance(value, str):
            raise self.bad("expected a text")
        if maximum is not None and len(value) > maximum:
            raise self.bad(f"at most {maximum} characters")
        if minimum is not None and len(value) < minimum:
            raise self.bad(f"at least {minimum} characters")
        try:
            value.encode()
        except UnicodeEncodeError:
            raise self.bad("not valid text") from None
        if "\x00" in value:  # no database stores it (PostgreSQL refuses it in text)
            raise self.bad("not valid text (NUL)")


def query(params: QueryParams, raw_length: int, fields: Iterable[Field]) -> dict[str, Any]:
    """The query string's values by name (defaults filled in)."""
    if raw_length > MAX_QUERY:
        raise Problem(400, f"the query string is longer than {MAX_QUERY} bytes")
    known = {f.name: f for f in fields}
    out: dict[str, Any] = {name: f.default for name, f in known.items()}
    seen: set[str] = set()
    for name, raw in params.multi_items():
        field = known.get(name)
        if field is None:
            allowed = ", ".join(sorted(known)) or "none"
            raise Problem(400, f"unknown query parameter {name[:64]!r} (known: {allowed})")
        if name in seen:
            raise Problem(400, f"{name}: given more than once")
        seen.add(name)
        out[name] = field.from_text(raw)
    for name, field in known.items():
        if field.required and name not in seen:
            raise field.bad("required")
    return out


def path(values: Mapping[str, Any], fields: Iterable[Field]) -> dict[str, Any]:
    return {f.name: f.from_text(str(values.get(f.name, ""))) for f in fields}


def body(value: Any, fields: Iterable[Field]) -> dict[str, Any]:
    """A JSON object's members by name, checked; absent optional members are defaults."""
    if not isinstance(value, dict):
        raise Problem(400, "the body must be a JSON object")
    known = {f.name: f for f in fields}
    unknown = sorted(set(value) - set(known))
    if unknown:
        raise Problem(400, f"unknown member {str(unknown[0])[:64]!r} (known: "
                           f"{', '.join(sorted(known)) or 'none'})")
    out: dict[str, Any] = {}
    for name, field in known.items():
        if name not in value or value[name] is None:
            if field.required:
                raise field.bad("required")
            out[name] = field.default
        else:
            out[name] = field.check(value[name])
    return out


def body_schema(fields: Iterable[Field]) -> dict[str, Any]:
    listed = list(fields)
    schema: dict[str, Any] = {
        "type": "object", "additionalProperties": False,
        "properties": {f.name: f.schema() for f in listed}}
    required = [f.name for f in listed if f.required]
    if required:
        schema["required"] = required
    return schema


# -- fields shared by several routes -------------------------------------------------------

LIMIT = Field("limit", "integer", "page size", minimum=1, maximum=500, default=100)
SERIAL = Field("serial", "string", "certificate serial in hex (as `openssl x509 -serial` "
               "prints it, or without leading zeros)", minimum=1, maximum=64,
               pattern=r"^(0[xX])?[0-9A-Fa-f:]{1,60}$")
REQUEST_ID = Field("request_id", "string", "request id", minimum=1, maximum=64,
                   pattern=r"^[A-Za-z0-9_-]{1,64}$")
