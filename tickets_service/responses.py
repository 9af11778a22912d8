"""The envelope: the only place a response body is built."""

from typing import Any

from flask import Response, jsonify


def success(
    data: Any = None,
    message: str | None = None,
    status: int = 200,
    meta: dict | None = None,
) -> tuple[Response, int]:
    """`{"success": true, "message"?, "data"?, "meta"?}` with the given status code."""
    body: dict[str, Any] = {"success": True}
    if message is not None:
        body["message"] = message
    if data is not None:
        body["data"] = data
    if meta is not None:
        body["meta"] = meta
    return jsonify(body), status


def error(message: str, status: int, errors: dict | None = None) -> Response:
    """`{"success": false, "message", "errors"?}` with the given status code."""
    body: dict[str, Any] = {"success": False, "message": message}
    if errors:
        body["errors"] = errors
    response = jsonify(body)
    response.status_code = status
    return response
