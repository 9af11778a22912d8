"""The one transaction policy of the service: which requests read without a transaction, and
when a request's change commits.

- A request whose method is in READ_METHODS reads without a transaction: in autocommit on
  PostgreSQL (no BEGIN and no ROLLBACK round trips around its queries; each is consistent on
  its own, and a page and its total may see writes between them, as two requests could), and
  in a plain BEGIN on SQLite. Every other request, and the CLI (the webhook workers, the
  loaders), writes: one transaction, which on SQLite takes the write lock when it begins, so it
  waits its turn (busy timeout) rather than fail when it would upgrade a snapshot that a
  concurrent writer has overtaken.
- A view commits its change with db.session.commit(). While an Idempotency-Key holds the
  request (hold_commit), that commit only flushes, and the key's holder commits the change
  together with the answer it stores: all or none.
"""

from contextlib import contextmanager

from flask import g, has_request_context, request
from flask_sqlalchemy.session import Session
from sqlalchemy import event
from sqlalchemy.engine import Engine

READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def reads_only() -> bool:
    """Whether this request only reads (outside a request, the CLI may write)."""
    return has_request_context() and request.method in READ_METHODS


class RequestSession(Session):
    """The app's session: a read-only request on PostgreSQL runs on the engine's autocommit
    twin (same pool); a commit held by hold_commit only flushes."""

    def get_bind(self, *args, **kwargs):
        engine = super().get_bind(*args, **kwargs)
        if engine.dialect.name == "postgresql" and reads_only():
            return _autocommit(engine)
        return engine

    def commit(self) -> None:
        if has_request_context() and g.get("commit_held"):
            self.flush()
            return
        super().commit()


@contextmanager
def hold_commit():
    """Within this block the views' commits only flush; the caller commits at its end, so what
    it writes after the view (an idempotent request's stored answer) commits with the change."""
    g.commit_held = True
    try:
        yield
    finally:
        g.commit_held = False


_AUTOCOMMIT_ENGINES: dict = {}


def _autocommit(engine):
    """The engine's autocommit twin (same pool), made once."""
    twin = _AUTOCOMMIT_ENGINES.get(engine)
    if twin is None:
        twin = _AUTOCOMMIT_ENGINES[engine] = engine.execution_options(isolation_level="AUTOCOMMIT")
    return twin


@event.listens_for(Engine, "begin")
def _begin_sqlite(connection) -> None:
    """SQLite's transactions are begun here (the driver's own are off, see create_app): a
    plain BEGIN for a read-only request, BEGIN IMMEDIATE for everything else."""
    if connection.dialect.name != "sqlite":
        return
    connection.exec_driver_sql("BEGIN" if reads_only() else "BEGIN IMMEDIATE")
