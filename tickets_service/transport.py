"""How requests arrive and answers leave: ids in paths, request bodies, response headers, CORS
and the client's address behind a proxy."""

import io
import ipaddress

from flask import Flask, abort, current_app, request
from werkzeug.exceptions import BadRequest, RequestEntityTooLarge
from werkzeug.middleware.proxy_fix import ProxyFix
from werkzeug.routing import BaseConverter

from .models import MAX_ID


class IdConverter(BaseConverter):
    """`<id:name>`: ASCII digits only (werkzeug's int also takes other scripts' digits, like a
    fullwidth one). At most 19 digits, so int() never meets Python's digit limit; the range is
    checked by reject_impossible_ids."""

    regex = r"[0-9]{1,19}"
    part_isolating = True

    def to_python(self, value: str) -> int:
        return int(value)

    def to_url(self, value: int) -> str:
        return str(value)


def reject_impossible_ids(message: str):
    """A url_value_preprocessor: an id outside the INTEGER column is 404 on every method and
    never reaches SQL. (A range in the converter would make werkzeug answer 405 for PUT.)"""

    def check(_endpoint, values) -> None:
        if values and any(
            isinstance(value, int) and not 1 <= value <= MAX_ID for value in values.values()
        ):
            abort(404, message)

    return check


def init_app(app: Flask) -> None:
    """Id paths, bodies read up front, hardened responses, CORS only where configured."""
    app.url_map.converters["id"] = IdConverter
    app.before_request(_read_body)
    app.after_request(_harden)
    if app.config["CORS_ORIGINS"]:
        from flask_cors import CORS

        CORS(
            app,
            resources={r"/api/*": {"origins": app.config["CORS_ORIGINS"]}},
            allow_headers=[
                *("Authorization", "Content-Type", "Accept", "X-Request-ID"),
                *("If-Match", "If-None-Match", "Idempotency-Key"),
            ],
            expose_headers=[
                *("X-Request-ID", "Retry-After", "ETag", "Idempotent-Replayed"),
                *("RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset"),
            ],
            max_age=600,
        )
    if app.config["TRUSTED_PROXIES"]:
        # Behind N proxies (a PaaS router), the client is the Nth address from the right of
        # X-Forwarded-For; rate limits key on it. Never trust more hops than really exist.
        behind = _OnlyAddresses(app.wsgi_app)
        app.wsgi_app = ProxyFix(behind, x_for=app.config["TRUSTED_PROXIES"], x_proto=1)


# The longest address written down (audit entries, a key's last address): an IPv6 one.
MAX_ADDRESS = 45


class _OnlyAddresses:
    """Behind ProxyFix: an X-Forwarded-For hop that is not an IP address (a client writes what
    it likes there when the proxies are fewer than TRUSTED_PROXIES says) is not taken for the
    client's address; the connection's own address is kept."""

    def __init__(self, app):
        self.app = app

    def __call__(self, environ, start_response):
        address = environ.get("REMOTE_ADDR")
        if address is not None and not _is_address(address):
            environ["REMOTE_ADDR"] = environ["werkzeug.proxy_fix.orig"]["REMOTE_ADDR"]
        return self.app(environ, start_response)


def _is_address(text: str) -> bool:
    if len(text) > MAX_ADDRESS:
        return False
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def body_limit(size: int):
    """A route that reads at most `size` bytes of body (413 beyond), below MAX_CONTENT_LENGTH:
    login, which anyone may call, refuses a large body before parsing any of it."""

    def decorator(view):
        view.body_limit = size
        return view

    return decorator


def streams_body(view):
    """A route that reads its body itself, as a stream (uploads): it is not read up front,
    and its limit is its own (a view sets request.max_content_length as it parses)."""
    view.streams_body = True
    return view


def _limit() -> int:
    """The largest body the route takes: its own limit, or MAX_CONTENT_LENGTH."""
    limit = current_app.config["MAX_CONTENT_LENGTH"]
    view = current_app.view_functions.get(request.endpoint)
    return min(limit, getattr(view, "body_limit", limit))


def _read_body() -> None:
    """Read the body before anything can answer early (a 401, a 404).

    A server that answers without reading the body closes a socket with unread data, and the
    kernel then resets the connection: the client sees a broken pipe instead of our answer.
    Reading it also makes an oversized body a 413 before anything else (MAX_CONTENT_LENGTH,
    or the route's body_limit). A body cut off by its client (an aborted chunked upload) is
    the client's 400, never a 500.
    """
    if request.method not in {"POST", "PUT", "PATCH", "DELETE"}:
        return
    view = current_app.view_functions.get(request.endpoint)
    if getattr(view, "streams_body", False):
        return
    limit = request.max_content_length = _limit()
    try:
        if request.content_length is None and request.environ.get("wsgi.input_terminated"):
            # A chunked body has no length to check up front, and werkzeug silently truncates
            # it at the limit: read one byte past the limit ourselves to tell "too large".
            body = request.environ["wsgi.input"].read(limit + 1)
            if len(body) > limit:
                raise RequestEntityTooLarge()
            request.environ["wsgi.input"] = io.BytesIO(body)
            request.environ["CONTENT_LENGTH"] = str(len(body))
            request.environ.pop("wsgi.input_terminated")
            # Now a body of known length: werkzeug ignores the length while this says chunked.
            request.environ.pop("HTTP_TRANSFER_ENCODING", None)
        request.get_data(cache=True)
    except (OSError, ValueError):  # the server's reader: the body ended early or malformed
        raise BadRequest("The request body ended before it was complete.") from None


def _harden(response):
    response.headers["X-Content-Type-Options"] = "nosniff"
    # Ticket data must not sit in shared or browser caches; static assets set their own.
    response.headers.setdefault("Cache-Control", "no-store")
    return response
