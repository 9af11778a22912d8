"""Settings, all read from the environment in one place.

Every variable is listed with its default in docs/operations.md. Secrets have no default outside
debug and testing: a misconfigured deploy stops at start with a one-line reason.
"""

import logging
import os
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError


class ConfigError(RuntimeError):
    """A setting is missing or malformed; the message is one line for the operator."""


def integer(environ: Mapping[str, str], name: str, default: int, minimum: int = 0) -> int:
    raw = environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from None
    if value < minimum:
        raise ConfigError(f"{name} must be at least {minimum}, got {value}")
    return value


_TRUE, _FALSE = {"1", "true", "yes", "on"}, {"0", "false", "no", "off"}


def _bool(environ: Mapping[str, str], name: str, default: bool = False) -> bool:
    raw = environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    value = raw.strip().lower()
    if value not in _TRUE | _FALSE:
        raise ConfigError(f"{name} must be one of 1, true, yes, on, 0, false, no, off; got {raw!r}")
    return value in _TRUE


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def _log_level(environ: Mapping[str, str]) -> str:
    level = (environ.get("LOG_LEVEL") or "").strip().upper() or "INFO"
    if level not in LOG_LEVELS:
        raise ConfigError(f"LOG_LEVEL must be one of {', '.join(LOG_LEVELS)}; got {level!r}")
    return level


def _database_url(environ: Mapping[str, str]) -> str | None:
    """A PostgreSQL or SQLite URL; empty for the SQLite file in the instance folder."""
    raw = environ.get("DATABASE_URL", "").strip()
    if not raw:
        return None
    try:
        url = make_url(normalize_database_url(raw))
        url.port  # noqa: B018 - a port that is not a number fails here, not at first use
    except (ArgumentError, ValueError):
        raise ConfigError("DATABASE_URL is not a database URL") from None
    if url.get_backend_name() not in {"postgresql", "sqlite"}:
        raise ConfigError("DATABASE_URL must be a PostgreSQL (postgresql://) or SQLite URL")
    return raw


@dataclass(frozen=True)
class Limit:
    """At most `amount` in a window of `seconds`."""

    amount: int
    seconds: int


_UNITS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}
_LIMIT = re.compile(r"\s*(\d+)\s*(?:per|/)\s*(second|minute|hour|day)s?\s*", re.IGNORECASE)


@cache
def parse_limit(text: str) -> Limit:
    """ "10 per minute", "100/hour" ... as a Limit (ValueError if it reads otherwise)."""
    match = _LIMIT.fullmatch(text)
    if match is None or int(match[1]) < 1:
        raise ValueError(f"a limit reads like '10 per minute', not {text!r}")
    return Limit(int(match[1]), _UNITS[match[2].lower()])


def _limit(environ: Mapping[str, str], name: str, default: str) -> str:
    text = (environ.get(name) or "").strip() or default
    try:
        parse_limit(text)
    except ValueError as err:
        raise ConfigError(f"{name}: {err}") from None
    return text


def normalize_database_url(url: str) -> str:
    """Send every PostgreSQL URL spelling (as PaaS hosts hand them out) to psycopg 3."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def from_environment(environ: Mapping[str, str] | None = None) -> dict:
    """Build the Flask config mapping from environment variables."""
    environ = os.environ if environ is None else environ
    return {
        # None means "a SQLite file in the instance folder", resolved in create_app.
        "SQLALCHEMY_DATABASE_URI": _database_url(environ),
        "JWT_SECRET_KEY": environ.get("JWT_SECRET_KEY") or None,
        "JWT_ACCESS_TOKEN_EXPIRES": integer(environ, "JWT_ACCESS_TOKEN_EXPIRES", 3600, minimum=1),
        "MAX_CONTENT_LENGTH": integer(environ, "MAX_CONTENT_LENGTH", 1024 * 1024, minimum=1),
        # How long a request's head, then its body, may take to arrive (serving.py).
        "REQUEST_HEADER_TIMEOUT": integer(environ, "REQUEST_HEADER_TIMEOUT", 10, minimum=1),
        "REQUEST_BODY_TIMEOUT": integer(environ, "REQUEST_BODY_TIMEOUT", 30, minimum=1),
        # An upload's body (files from a phone on a slow network) may take this long.
        "UPLOAD_BODY_TIMEOUT": integer(environ, "UPLOAD_BODY_TIMEOUT", 300, minimum=1),
        # Each of a worker's threads serves one request at a time, on one connection.
        "WEB_THREADS": (threads := integer(environ, "WEB_THREADS", 1, minimum=1)),
        "DB_POOL_SIZE": integer(environ, "DB_POOL_SIZE", threads, minimum=1),
        "DB_MAX_OVERFLOW": integer(environ, "DB_MAX_OVERFLOW", 10, minimum=0),
        "DB_CONNECT_TIMEOUT": integer(environ, "DB_CONNECT_TIMEOUT", 5, minimum=1),
        "DB_STATEMENT_TIMEOUT_MS": integer(environ, "DB_STATEMENT_TIMEOUT_MS", 15000, minimum=0),
        "LOGIN_RATE_LIMIT_PER_EMAIL_ADDRESS": _limit(
            environ, "LOGIN_RATE_LIMIT_PER_EMAIL_ADDRESS", "10 per minute"
        ),
        "LOGIN_RATE_LIMIT_PER_ADDRESS": _limit(
            environ, "LOGIN_RATE_LIMIT_PER_ADDRESS", "60 per minute"
        ),
        "LOGIN_RATE_LIMIT_PER_EMAIL": _limit(environ, "LOGIN_RATE_LIMIT_PER_EMAIL", "100 per hour"),
        "WEBHOOK_ALLOW_PRIVATE": _bool(environ, "WEBHOOK_ALLOW_PRIVATE"),
        "WEBHOOK_TIMEOUT": integer(environ, "WEBHOOK_TIMEOUT", 10, minimum=1),
        "WEBHOOK_CONCURRENCY": integer(environ, "WEBHOOK_CONCURRENCY", 16, minimum=1),
        "WEBHOOK_ENDPOINT_CONCURRENCY": integer(
            environ, "WEBHOOK_ENDPOINT_CONCURRENCY", 4, minimum=1
        ),
        "WEBHOOK_ISP_CONCURRENCY": integer(environ, "WEBHOOK_ISP_CONCURRENCY", 8, minimum=1),
        "WEBHOOK_CIRCUIT_FAILURES": integer(environ, "WEBHOOK_CIRCUIT_FAILURES", 10, minimum=1),
        "WEBHOOK_MAX_ENDPOINTS": integer(environ, "WEBHOOK_MAX_ENDPOINTS", 20, minimum=1),
        "WEBHOOK_REDELIVER_LIMIT": integer(environ, "WEBHOOK_REDELIVER_LIMIT", 100, minimum=1),
        # Requests a minute per caller and per ISP (ratelimits.py), counted in Redis when
        # REDIS_URL is set (else in each process). On unless RATE_LIMITS is off.
        "RATE_LIMITS": _bool(environ, "RATE_LIMITS", default=True),
        "RATE_LIMIT_PER_USER": integer(environ, "RATE_LIMIT_PER_USER", 600, minimum=1),
        # An API key's default; a key's own rate_limit (at most the ISP's ceiling) wins.
        "RATE_LIMIT_PER_KEY": integer(environ, "RATE_LIMIT_PER_KEY", 1200, minimum=1),
        "RATE_LIMIT_PER_ISP": integer(environ, "RATE_LIMIT_PER_ISP", 6000, minimum=1),
        "REDIS_URL": environ.get("REDIS_URL") or None,
        # Attachments (attachments.py, storage.py): the largest file, and where the bytes go
        # (a directory, by default the instance folder's attachments/; or an S3 bucket).
        "ATTACHMENT_MAX_BYTES": integer(
            environ, "ATTACHMENT_MAX_BYTES", 10 * 1024 * 1024, minimum=1
        ),
        "ATTACHMENT_DIR": environ.get("ATTACHMENT_DIR") or None,
        "ATTACHMENT_S3_URL": environ.get("ATTACHMENT_S3_URL") or None,
        # The subscriber's link (public.py): reads and replies a minute, per token and per
        # client address. On unless RATE_LIMITS is off.
        "PUBLIC_RATE_LIMIT_READS": _limit(environ, "PUBLIC_RATE_LIMIT_READS", "20 per minute"),
        "PUBLIC_RATE_LIMIT_REPLIES": _limit(environ, "PUBLIC_RATE_LIMIT_REPLIES", "5 per minute"),
        "AUDIT_RETENTION_DAYS": integer(environ, "AUDIT_RETENTION_DAYS", 365, minimum=1),
        "CORS_ORIGINS": [
            origin.strip()
            for origin in environ.get("CORS_ORIGINS", "").split(",")
            if origin.strip()
        ],
        "TRUSTED_PROXIES": integer(environ, "TRUSTED_PROXIES", 0, minimum=0),
        "LOG_LEVEL": _log_level(environ),
        "DEBUG": _bool(environ, "FLASK_DEBUG"),
    }


# Settings that are fixed by the design rather than by the operator.
FIXED = {
    "JWT_ALGORITHM": "HS256",
    "JWT_DECODE_ALGORITHMS": ["HS256"],
    "JWT_TOKEN_LOCATION": ["headers"],
    "JWT_ERROR_MESSAGE_KEY": "message",
    # Tokens travel in headers only: no CSRF claim (a cookie defence) and no nbf (always iat);
    # each claim less is less to decode on every request.
    "JWT_COOKIE_CSRF_PROTECT": False,
    "JWT_ENCODE_NBF": False,
    "SQLALCHEMY_TRACK_MODIFICATIONS": False,
}

MIN_SECRET_BYTES = 32


def check_secrets(config: dict) -> None:
    """Fail fast on a missing JWT key, warn on a short one; debug and testing get a throwaway."""
    key = config.get("JWT_SECRET_KEY")
    if not key:
        if config.get("DEBUG") or config.get("TESTING"):
            config["JWT_SECRET_KEY"] = secrets.token_hex(32)
            return
        raise ConfigError(
            "JWT_SECRET_KEY is not set: export a random secret of at least "
            f"{MIN_SECRET_BYTES} bytes (e.g. the output of `openssl rand -hex 32`)"
        )
    if len(key.encode()) < MIN_SECRET_BYTES:
        # Refusing would turn an existing deploy's key rotation into an outage; say it loudly.
        logging.getLogger("tickets_service").warning(
            "JWT_SECRET_KEY is shorter than %d bytes: tokens are easier to forge; "
            "replace it with a longer random key",
            MIN_SECRET_BYTES,
        )
