"""Liveness and readiness probes for the load balancer; neither needs a token."""

from flask import Blueprint, abort
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from .extensions import db
from .responses import success

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz():
    """The process answers; the database is not consulted."""
    return success({"status": "ok"})


@bp.get("/readyz")
def readyz():
    """The database answers a trivial query; 503 when it does not."""
    try:
        db.session.execute(text("SELECT 1"))
    except SQLAlchemyError:
        db.session.rollback()
        abort(503, "Database unreachable.")
    return success({"status": "ready", "database": "ok"})
