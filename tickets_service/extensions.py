"""Extensions, created unbound and bound to the app in create_app, and the database session's
habits in the face of faults: a dropped connection costs a retry, not a 500. Which requests
read without a transaction, and when a request commits, is transactions.py's to say."""

import time
from collections import OrderedDict

import orjson
from flask_jwt_extended import JWTManager
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from psycopg.types.json import set_json_loads
from sqlalchemy import MetaData, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import OperationalError, SQLAlchemyError
from sqlalchemy.orm import DeclarativeBase

from .transactions import RequestSession

# One naming convention for every constraint, so migrations name them the same on every
# database and SQLite batch migrations can find them again.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


# psycopg parses JSON columns (history values, Fetch Ticket's replies) with orjson.
set_json_loads(orjson.loads)


def discard_transaction() -> None:
    """Roll the session back; if its connection is gone (a restart), drop it instead, so
    cleaning up after a database fault never raises a second fault."""
    try:
        db.session.rollback()
    except SQLAlchemyError:
        db.session().invalidate()


def first_statement(run):
    """Run a request's first statement; if the pooled connection turns out to have been
    dropped (a database restart, a failover), run it once more on a fresh one. This replaces
    a ping before every checkout: one round trip saved on every request."""
    try:
        return run()
    except OperationalError as err:
        if not err.connection_invalidated:
            raise
        discard_transaction()
        return run()


# expire_on_commit off: a view that committed answers from what it just wrote, without reading
# every row back (the session ends with the request anyway).
db = SQLAlchemy(
    model_class=Base, session_options={"class_": RequestSession, "expire_on_commit": False}
)


# Locks a transaction takes on a name and an id (pg_advisory_xact_lock's two keys).
LOCK_NAMES = {"webhook endpoints of an ISP": 1}


def lock_until_commit(name: str, key: int) -> None:
    """Serialise the transactions that take this lock (on PostgreSQL; SQLite's writers take
    turns anyway): a count checked then added to holds, even over rows not yet there. The
    lock ends with the transaction, so nothing of it outlives a pooled server connection."""
    if db.session.get_bind().dialect.name == "postgresql":
        db.session.execute(
            text("SELECT pg_advisory_xact_lock(:name, :key)"),
            {"name": LOCK_NAMES[name], "key": key},
        )


def insert(model, connection=None):
    """INSERT for the database in use, with its ON CONFLICT clauses (PostgreSQL or SQLite)."""
    dialect = connection.dialect if connection is not None else db.session.get_bind().dialect
    return (postgresql if dialect.name == "postgresql" else sqlite).insert(model)


migrate = Migrate(render_as_batch=True, compare_type=True)


class VerifiedTokens(JWTManager):
    """flask-jwt-extended, verifying each distinct token once per process.

    A client sends the same token with every request, and decoding it costs flask-jwt-extended
    four passes of PyJWT. A token whose signature and claims checked out is remembered (a
    bounded map from its exact text to its claims); later requests re-check only its time
    limits, which are all that can change. Revocation and the user's state are still read on
    every request.
    """

    CAPACITY = 4096

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._verified: OrderedDict[str, dict] = OrderedDict()

    def _decode_jwt_from_config(self, encoded_token, csrf_value=None, allow_expired=False):
        claims = self._verified.get(encoded_token)
        if claims is not None and not allow_expired and csrf_value is None:
            now = time.time()
            if claims["exp"] > now and claims.get("nbf", 0) <= now:
                return dict(claims)
        claims = super()._decode_jwt_from_config(encoded_token, csrf_value, allow_expired)
        if not allow_expired and "exp" in claims:
            self._verified[encoded_token] = dict(claims)
            if len(self._verified) > self.CAPACITY:
                self._verified.popitem(last=False)
        return claims


jwt = VerifiedTokens()
