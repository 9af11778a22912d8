"""The envelope: every body the API answers with, and the schemas that publish its shape."""

from dataclasses import dataclass
from functools import cache
from typing import Any

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
