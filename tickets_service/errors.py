"""Every failure becomes the envelope: HTTP errors, validation, database faults, bugs."""

import logging

from flask import Flask, current_app, request
from marshmallow import ValidationError
from sqlalchemy.exc import IntegrityError, OperationalError
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from .extensions import discard_transaction
from .responses import error

log = logging.getLogger(__name__)

# Headers an HTTP error carries that a client needs (405's Allow, 429's Retry-After, ...).
_KEPT_HEADERS = {"allow", "retry-after", "www-authenticate", "etag"}
_MESSAGES = {
    400: "Bad request.",
    404: "Not found.",
    405: "Method not allowed.",
    409: "Conflict.",
    412: "Precondition failed.",
    413: "Request body too large.",
    415: "Unsupported media type.",
}
# Past this much, an oversized body is not worth reading just to answer cleanly.
_MAX_DRAIN = 64 * 1024 * 1024
# What is read of an upload's rest after it was refused.
_UPLOAD_DRAIN = 1024 * 1024


def register_error_handlers(app: Flask) -> None:
    """Install the handlers app-wide (blueprint handlers would hide the JWT loaders)."""
    app.register_error_handler(HTTPException, handle_http_error)
    app.register_error_handler(ValidationError, handle_validation_error)
    app.register_error_handler(OperationalError, handle_database_unavailable)
    app.register_error_handler(IntegrityError, handle_conflict)
    app.register_error_handler(Exception, handle_unexpected_error)


def handle_http_error(exc: HTTPException):
    """abort() and routing errors: our message if a view gave one, else the standard name."""
    if isinstance(exc, RequestEntityTooLarge):
        _discard_request_body()
    by_location = getattr(exc, "data", {}).get("messages")
    if by_location is not None:  # webargs' 422: {location: {field: [...]}}
        merged = {
            field: problems for part in by_location.values() for field, problems in part.items()
        }
        return handle_validation_error(ValidationError(merged))
    custom = exc.description and exc.description != type(exc).description
    message = exc.description if custom else _MESSAGES.get(exc.code, exc.name)
    response = error(message, exc.code or 500)
    for name, value in exc.get_headers():
        if name.lower() in _KEPT_HEADERS:
            response.headers[name] = value
    return response


# A 422 names at most this many fields: a body of a hundred thousand unknown names gets a
# short answer, not one as large as itself.
MAX_FIELD_ERRORS = 20


def handle_validation_error(exc: ValidationError):
    """422 with the per-field messages (the first MAX_FIELD_ERRORS fields)."""
    errors = _flatten(exc.messages if isinstance(exc.messages, dict) else {"_schema": exc.messages})
    message = "Validation failed."
    if len(errors) > MAX_FIELD_ERRORS:
        message = f"Validation failed: {len(errors)} fields, the first {MAX_FIELD_ERRORS} shown."
        errors = dict(list(errors.items())[:MAX_FIELD_ERRORS])
    return error(message, 422, errors)


def _flatten(messages: dict, prefix: str = "") -> dict[str, list[str]]:
    """Nested messages ({"events": {0: [...]}}) as dotted fields ({"events.0": [...]})."""
    flat: dict[str, list[str]] = {}
    for field, problems in messages.items():
        name = f"{prefix}{field}"
        if isinstance(problems, dict):
            flat.update(_flatten(problems, f"{name}."))
        else:
            flat.setdefault(name, []).extend(str(p) for p in problems)
    return flat


# PostgreSQL gave up on this transaction for another's sake: a deadlock, or a serialization
# failure. The request lost a race; nothing of it was kept.
_LOST_A_RACE = {"40P01", "40001"}


def handle_database_unavailable(exc: OperationalError):
    """The database could not be reached or gave up: 503, so clients retry (409 when the
    request only lost a race to a concurrent one)."""
    discard_transaction()
    if getattr(exc.orig, "sqlstate", None) in _LOST_A_RACE:
        log.warning("concurrent conflict: %s", exc.orig.__class__.__name__)
        return error("A concurrent change conflicted with this one; reload and retry.", 409)
    log.error("database unavailable: %s", exc.__class__.__name__)
    return error("Database unavailable, try again shortly.", 503)


def handle_conflict(exc: IntegrityError):
    """A unique key taken by a concurrent write: the client's request conflicts, 409."""
    discard_transaction()
    log.warning("integrity conflict: %s", exc.orig.__class__.__name__)
    return error("The request conflicts with existing data; reload and retry.", 409)


def handle_unexpected_error(exc: Exception):
    """A bug: log it with its traceback, show the client nothing of it."""
    discard_transaction()
    log.exception("unhandled error on %s %s", request.method, request.path)
    return error("Internal server error.", 500)


def _discard_request_body() -> None:
    """Read an oversized body off the socket so the client receives the 413 we send.

    Closing with unread data makes the kernel reset the connection, and many clients then
    report a broken pipe instead of our answer.
    """
    length = request.content_length
    stream = request.environ.get("wsgi.input")
    if stream is None or (length is None and not request.environ.get("wsgi.input_terminated")):
        return  # nothing says where the body ends: reading could block
    view = current_app.view_functions.get(request.endpoint)
    if getattr(view, "streams_body", False):
        # An upload refused at its limit: the rest is not read, beyond a last little bit
        # (a file just over the limit still gets its 413 cleanly).
        remaining = min(length if length is not None else _UPLOAD_DRAIN, _UPLOAD_DRAIN)
    elif length is not None and length > _MAX_DRAIN:
        return
    else:
        remaining = length if length is not None else _MAX_DRAIN
    while remaining > 0:
        chunk = stream.read(min(remaining, 64 * 1024))
        if not chunk:
            break
        remaining -= len(chunk)
