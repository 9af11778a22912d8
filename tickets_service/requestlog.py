"""One JSON line per request on stdout, tied together by a request id.

Only method, path, status, duration and ids are logged: never headers, bodies or query
strings, so no token or password can reach a log.
"""

import logging
import re
import sys
import time
import uuid

import orjson
from flask import Flask, g, request
from pythonjsonlogger.json import JsonFormatter

log = logging.getLogger("tickets_service.request")

REQUEST_ID_HEADER = "X-Request-ID"
# A client's request id is echoed back and logged, so only a tame one is accepted.
_SAFE_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")


def configure_logging(level: str) -> None:
    """Send the package's logs to stdout as JSON lines (once per process)."""
    package_logger = logging.getLogger("tickets_service")
    package_logger.setLevel(level)
    if not any(isinstance(h.formatter, JsonFormatter) for h in package_logger.handlers):
        handler = logging.StreamHandler(sys.stdout)
        handler.setFormatter(
            JsonFormatter(
                "{levelname}{name}{message}",
                style="{",
                rename_fields={"levelname": "level", "name": "logger"},
                timestamp="time",
                json_serializer=_orjson_text,
            )
        )
        package_logger.addHandler(handler)


def _orjson_text(value, default=None, **_options) -> str:
    """python-json-logger's serializer, by orjson (one line per request adds up)."""
    return orjson.dumps(value, default=default).decode()


def init_app(app: Flask) -> None:
    configure_logging(app.config["LOG_LEVEL"])
    app.before_request(_start)
    app.after_request(_finish)


def _start() -> None:
    g.request_started = time.perf_counter()
    given = request.headers.get(REQUEST_ID_HEADER, "")
    g.request_id = given if _SAFE_REQUEST_ID.fullmatch(given) else uuid.uuid4().hex


def _finish(response):
    request_id = g.get("request_id") or uuid.uuid4().hex
    response.headers[REQUEST_ID_HEADER] = request_id
    started = g.get("request_started")
    duration = (time.perf_counter() - started) * 1000 if started is not None else None
    log.info(
        "%s %s %s",
        request.method,
        request.path,
        response.status_code,
        extra={
            "method": request.method,
            "path": request.path,
            "status": response.status_code,
            "duration_ms": round(duration, 2) if duration is not None else None,
            "request_id": request_id,
            "user_id": g.get("user_id"),
            "key_id": g.get("key_id"),
        },
    )
    return response
