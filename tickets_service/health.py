"""Liveness and readiness probes for the load balancer; neither needs a token."""

from flask import abort
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from .extensions import db, discard_transaction, first_statement
from .openapi import Blueprint
from .schemas import HealthOut, ReadinessOut

bp = Blueprint("health", __name__, description="Probes for the load balancer (no token).")


@bp.get("/healthz")
@bp.response(200, HealthOut)
def healthz():
    """Liveness: the process answers (the database is not consulted)."""
    return {"status": "ok"}


@bp.get("/readyz")
@bp.response(200, ReadinessOut)
@bp.errors(503)
def readyz():
    """Readiness: the database answers a trivial query."""
    try:
        first_statement(lambda: db.session.execute(text("SELECT 1")))
    except SQLAlchemyError:
        discard_transaction()
        abort(503, "Database unreachable.")
    return {"status": "ready", "database": "ok"}
