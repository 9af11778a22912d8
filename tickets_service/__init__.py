"""tickets-service: the support-ticket API of an ISP management platform."""

import os
import sqlite3
from collections.abc import Mapping

import psycopg
from flask import Flask
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from . import ratelimits, requestlog, storage, transport
from .config import FIXED, check_secrets, from_environment, normalize_database_url
from .extensions import db, discard_transaction, jwt, migrate


def create_app(config: Mapping | None = None) -> Flask:
    """Build the app: settings from the environment, overridden by ``config`` (tests)."""
    app = Flask(__name__, instance_relative_config=True)
    app.config.update(FIXED)
    app.config.update(from_environment())
    if config:
        app.config.update(config)
    check_secrets(app.config)
    app.json.sort_keys = False  # keep the spec's key order

    configure_database(app)
    register_extensions(app)
    register_blueprints(app)
    register_error_handlers(app)
    register_commands(app)
    return app


def configure_database(app: Flask) -> None:
    """Resolve the database URL and engine options for SQLite or PostgreSQL."""
    url = app.config.get("SQLALCHEMY_DATABASE_URI")
    if not url:
        os.makedirs(app.instance_path, exist_ok=True)
        url = "sqlite:///" + os.path.join(app.instance_path, "tickets.db")
    url = normalize_database_url(url)
    app.config["SQLALCHEMY_DATABASE_URI"] = url
    # No ping before each checkout: a request's first statement retries once on a dropped
    # connection instead (extensions.first_statement). Never put bound parameters (password
    # hashes, ticket text) into error messages or logs.
    options: dict = {"hide_parameters": True}
    if url.startswith("postgresql"):
        timeout = app.config["DB_STATEMENT_TIMEOUT_MS"]
        options.update(
            pool_size=app.config["DB_POOL_SIZE"],
            max_overflow=app.config["DB_MAX_OVERFLOW"],
            connect_args={
                "options": f"-c statement_timeout={timeout}",
                "connect_timeout": app.config["DB_CONNECT_TIMEOUT"],
            },
        )
    elif url.startswith("sqlite"):
        # Several gunicorn workers share the file: wait for a lock rather than fail at once.
        options["connect_args"] = {"timeout": 15}
    app.config["SQLALCHEMY_ENGINE_OPTIONS"] = options


@event.listens_for(Engine, "connect")
def _configure_sqlite(dbapi_connection, _record) -> None:
    """SQLite leaves foreign keys off unless each connection turns them on, and we begin its
    transactions ourselves (transactions.py)."""
    if isinstance(dbapi_connection, sqlite3.Connection):
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.close()
        dbapi_connection.isolation_level = None
        # SQLite's lower() knows ASCII only; search and filters compare Unicode text.
        dbapi_connection.create_function(
            "lower",
            1,
            lambda text: text.lower() if isinstance(text, str) else text,
            deterministic=True,
        )


@event.listens_for(Engine, "connect")
def _session_in_utc(dbapi_connection, _record) -> None:
    """PostgreSQL sessions run in UTC, whatever the server, the database, the role or PGTZ
    say: in another zone, timestamps near 0001 or 9999 come back as years the driver cannot
    read (a due time of 9999-12-31 23:59:59, east of UTC, is in the year 10000). A SET, not a
    startup option: PGTZ overrides those, and a pooler in front carries a SET of the time zone
    over to every server connection it hands this client."""
    if isinstance(dbapi_connection, psycopg.Connection):
        dbapi_connection.execute("SET TIME ZONE 'UTC'")
        dbapi_connection.commit()


def _end_session(_error) -> None:
    """End the request's session before Flask-SQLAlchemy does: a connection that died after the
    view ran (a restart) is dropped rather than raising at teardown, where no error handler
    could turn it into our envelope."""
    try:
        db.session.remove()
    except SQLAlchemyError:
        discard_transaction()
        db.session.remove()


def register_extensions(app: Flask) -> None:
    db.init_app(app)
    app.teardown_request(_end_session)
    migrate.init_app(app, db)
    jwt.init_app(app)
    requestlog.init_app(app)
    transport.init_app(app)
    ratelimits.init_app(app)
    storage.init_app(app)


def register_blueprints(app: Flask) -> None:
    """Each blueprint through the Api, which serves the document generated from them."""
    from . import (
        api_keys,
        attachments,
        audit,
        auth,
        canned,
        desk,
        health,
        incidents,
        network,
        openapi,
        public,
        settings,
        storms,
        subscribers,
        tickets,
        users,
    )
    from .webhooks import views as webhooks

    api = openapi.init_app(app)
    app.teardown_request(attachments.close_received)
    api.register_blueprint(health.bp)
    api.register_blueprint(auth.bp, url_prefix="/api/v1/auth")
    api.register_blueprint(tickets.bp, url_prefix="/api/v1/tickets")
    api.register_blueprint(subscribers.bp, url_prefix="/api/v1/subscribers")
    api.register_blueprint(users.bp, url_prefix="/api/v1/users")
    api.register_blueprint(webhooks.bp, url_prefix="/api/v1/webhooks")
    api.register_blueprint(webhooks.deliveries_bp, url_prefix="/api/v1/deliveries")
    api.register_blueprint(api_keys.bp, url_prefix="/api/v1/api-keys")
    api.register_blueprint(audit.bp, url_prefix="/api/v1/audit")
    api.register_blueprint(network.bp, url_prefix="/api/v1/network")
    api.register_blueprint(storms.bp, url_prefix="/api/v1/incidents/suggestions")
    api.register_blueprint(incidents.bp, url_prefix="/api/v1/incidents")
    api.register_blueprint(settings.bp, url_prefix="/api/v1/settings")
    api.register_blueprint(desk.types_bp, url_prefix="/api/v1/ticket-types")
    api.register_blueprint(desk.policies_bp, url_prefix="/api/v1/sla-policies")
    api.register_blueprint(desk.tags_bp, url_prefix="/api/v1/tags")
    api.register_blueprint(canned.bp, url_prefix="/api/v1/canned-replies")
    api.register_blueprint(attachments.bp, url_prefix="/api/v1")
    api.register_blueprint(public.links_bp, url_prefix="/api/v1/tickets")
    api.register_blueprint(public.public_bp, url_prefix="/api/v1/public/tickets")
    app.register_blueprint(public.page_bp)  # the subscriber's page: HTML, not the API


def register_error_handlers(app: Flask) -> None:
    from .errors import register_error_handlers as register

    register(app)


def register_commands(app: Flask) -> None:
    from .cli import register_commands as register

    register(app)
