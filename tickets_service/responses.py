"""The envelope: every body the API answers with, and the schemas that publish its shape."""

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

import orjson
from flask import Response, jsonify
from marshmallow import Schema, fields, validate


@dataclass(frozen=True)
class Page:
    """What a list view returns: the items of one page and the page's `meta`."""

    items: Any
    meta: dict


def success(data: Any = None, message: str | None = None, meta: dict | None = None) -> dict:
    """`{"success": true, "message"?, "data"?, "meta"?}` (dumped by the route's envelope)."""
    body: dict[str, Any] = {"success": True}
    if message is not None:
        body["message"] = message
    if data is not None:
        body["data"] = data
    if meta is not None:
        body["meta"] = meta
    return body


def answer(body: dict, status: int, headers=None) -> Response:
    """A JSON response (orjson: the hot paths' bodies are large and frequent)."""
    return Response(orjson.dumps(body), status, headers, mimetype="application/json")


def error(message: str, status: int, errors: dict | None = None) -> Response:
    """`{"success": false, "message", "errors"?}` with the given status code."""
    body: dict[str, Any] = {"success": False, "message": message}
    if errors:
        body["errors"] = errors
    response = jsonify(body)
    response.status_code = status
    return response


# --- The envelope as schemas, for the routes and the document ---------------------------------


def _success_flag(value: bool) -> fields.Boolean:
    return fields.Boolean(required=True, validate=validate.Equal(value), dump_default=value)


class ErrorResponse(Schema):
    success = _success_flag(False)
    message = fields.String(required=True)


class ValidationErrorResponse(ErrorResponse):
    errors = fields.Dict(
        keys=fields.String(),
        values=fields.List(fields.String()),
        required=True,
        metadata={"description": "Messages per field; _schema for the body as a whole."},
    )


@cache
def envelope_schema(
    name: str,
    data: type[Schema] | None = None,
    *,
    many: bool = False,
    message: bool = False,
    meta: type[Schema] | None = None,
) -> Schema:
    """The success envelope around `data`, named for the document (one class per name)."""
    members: dict[str, fields.Field] = {"success": _success_flag(True)}
    if message:
        members["message"] = fields.String(required=True)
    if data is not None:
        members["data"] = fields.Nested(data, many=many, required=True)
    if meta is not None:
        members["meta"] = fields.Nested(meta, required=True)
    return Schema.from_dict(members, name=name)()


# --- Dumping data through its schema, fast ----------------------------------------------------


@cache
def dumper(schema: type[Schema], many: bool = False) -> Callable[[Any], Any]:
    """A function that dumps what `schema` dumps, compiled once from its fields.

    Marshmallow's general machinery costs about a millisecond for a ticket with its replies;
    the response schemas only use plain fields, timestamps and nesting, so each field becomes
    one step: read the attribute (or key), convert it when its field says so. A tuple is a
    row of the schema's own columns, in its order (queries.answer_columns): it is zipped with
    the field names, and only the fields that need it are converted.
    """
    steps = [
        (field.data_key or name, field.attribute or name, _converter(field))
        for name, field in schema().dump_fields.items()
    ]
    names = [name for name, _, _ in steps]
    converted = [(n, convert) for n, (_, _, convert) in enumerate(steps) if convert is not None]

    def dump_row(row: tuple) -> dict:
        values = list(row[: len(names)])
        for n, convert in converted:
            if values[n] is not None:
                values[n] = convert(values[n])
        return dict(zip(names, values, strict=True))

    def dump_one(obj):
        if isinstance(obj, tuple):
            return dump_row(obj)
        if isinstance(obj, Mapping):
            values = [obj[attribute] for _, attribute, _ in steps]
        else:
            values = [getattr(obj, attribute) for _, attribute, _ in steps]
        return {
            name: value if convert is None or value is None else convert(value)
            for (name, _, convert), value in zip(steps, values, strict=True)
        }

    if many:
        # JSON the database already wrote in this schema's shape passes through as it is.
        return lambda objs: (
            objs if isinstance(objs, orjson.Fragment) else [dump_one(o) for o in objs]
        )
    return dump_one


def _converter(field: fields.Field) -> Callable[[Any], Any] | None:
    """None when the value is written as it is; else the conversion the field makes."""
    if isinstance(field, fields.Nested):
        return dumper(type(field.schema), field.many)
    if isinstance(field, fields.List) and isinstance(field.inner, fields.Nested):
        return dumper(type(field.inner.schema), True)
    if isinstance(field, fields.Integer | fields.Boolean | fields.Raw | fields.Dict | fields.List):
        return None
    if type(field) is fields.String:
        return None
    write = getattr(field, "write", None)  # a field of our own (Timestamp) writes one value
    if write is not None:
        return lambda value: value if isinstance(value, str) else write(value)
    return lambda value: field.serialize("value", {"value": value})
