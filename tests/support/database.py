"""Reading the database back, and writing it directly: what a request changed (or that it
changed nothing), and columns moved by hand where the tests stand in for the passing of time."""

import json
import os
import re
from contextlib import contextmanager
from datetime import UTC, datetime

from sqlalchemy import inspect, select, update

from tickets_service.extensions import db
from tickets_service.models import (
    AuditEntry,
    IdempotencyKey,
    RevokedToken,
    Subscriber,
    Ticket,
    TicketCount,
    TicketHistory,
    TicketReply,
    User,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
)
from tickets_service.models import utcnow as now  # noqa: F401 (re-exported for the tests)

ON_POSTGRES = os.environ.get("TEST_DATABASE_URL", "").startswith("postgres")
ON_SQLITE = not ON_POSTGRES
TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$")


def app_config(url: str, **overrides) -> dict:
    """The settings of an app under test, on the database at `url`: rate limits off (the tests
    of them, test_rate_limits.py, turn them on), since tests call far faster than people."""
    from .client import JWT_SECRET

    return {
        "TESTING": True,
        "SQLALCHEMY_DATABASE_URI": url,
        "JWT_SECRET_KEY": JWT_SECRET,
        "RATE_LIMITS": False,
    } | overrides


# Every table an API write can touch: equal before and after a request, or it changed something.
WRITTEN_TABLES = (
    User,
    Subscriber,
    Ticket,
    TicketReply,
    TicketHistory,
    TicketCount,
    IdempotencyKey,
    RevokedToken,
    WebhookEndpoint,
    WebhookDelivery,
    WebhookAttempt,
    AuditEntry,
)
DESK_TABLES = (User, Subscriber, Ticket, TicketReply, TicketHistory, TicketCount)


@contextmanager
def session(app):
    """The app's session, in an app context of its own, removed afterwards."""
    with app.app_context():
        try:
            yield db.session
        finally:
            db.session.remove()


def saved(app, row) -> int:
    """Commit a new row through a session of its own; its id."""
    with session(app) as own:
        own.add(row)
        own.commit()
        return row.id


def row_of(obj) -> dict:
    return {column.key: getattr(obj, column.key) for column in inspect(obj).mapper.column_attrs}


def read_rows(app, model) -> list[dict]:
    """Every row of a table as a dict of its columns, ordered by the whole primary key."""
    with session(app) as own:
        order = inspect(model).primary_key
        return [row_of(obj) for obj in own.scalars(select(model).order_by(*order))]


def database_state(app, tables=WRITTEN_TABLES) -> dict:
    """The content of every table an API write can touch."""
    return {model.__tablename__: read_rows(app, model) for model in tables}


def desk_state(rows) -> dict:
    """The desk's tables, through the rows fixture."""
    return {model.__tablename__: rows(model) for model in DESK_TABLES}


def set_columns(app, model, where, **values) -> None:
    """Write columns directly, bypassing the API (e.g. move a timestamp into the past). `where`
    is a condition, or an id; updated_at keeps its value unless it is named."""
    if isinstance(where, int):
        where = model.id == where
    if "updated_at" in model.__table__.c and "updated_at" not in values:
        values["updated_at"] = model.updated_at
    with session(app) as own:
        own.execute(update(model).where(where).values(**values))
        own.commit()


def history_of(app, ticket_id: int) -> list[dict]:
    """A ticket's history rows, in the order they were written."""
    return [row for row in read_rows(app, TicketHistory) if row["ticket_id"] == ticket_id]


def history_in_db(rows, ticket_id: int) -> list[tuple]:
    """A ticket's history rows as (action, field, old, new, user_id), oldest first."""
    return [
        (row["action"], row["field"], row["old"], row["new"], row["user_id"])
        for row in rows(TicketHistory)
        if row["ticket_id"] == ticket_id
    ]


def add_replies(app, ticket_id: int, author_ids: list[int], internal: bool = False) -> None:
    """One reply per author through the model's own action (history and counts kept), in one
    transaction: fast enough for hundreds."""
    with session(app) as own:
        ticket = own.get(Ticket, ticket_id)
        authors = {u.id: u for u in own.scalars(select(User).where(User.id.in_(author_ids)))}
        for n, author_id in enumerate(author_ids):
            ticket.add_reply(f"Reply number {n}", internal, authors[author_id].actor)
        own.commit()


def as_utc(value: datetime) -> datetime:
    """A database timestamp as aware UTC (SQLite hands back naive UTC values)."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def stamp(value: datetime) -> str:
    """A datetime as the API writes it."""
    return as_utc(value).isoformat(" ", "seconds")[:19]  # strftime leaves year 1 unpadded


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def without(row: dict, *keys: str) -> dict:
    return {key: value for key, value in row.items() if key not in keys}


def explain(app, statement: str, parameters) -> dict:
    """PostgreSQL's plan of a statement as it was run (its SQL and parameters, captured)."""
    with app.app_context():
        raw = db.engine.raw_connection()
        try:
            cursor = raw.cursor()
            cursor.execute("EXPLAIN (FORMAT JSON) " + statement, parameters)
            (plan,) = cursor.fetchone()
        finally:
            raw.close()
    return plan[0]["Plan"] if isinstance(plan, list) else json.loads(plan)[0]["Plan"]


def plan_nodes(plan: dict):
    """A plan's nodes, the plan's own first."""
    yield plan
    for child in plan.get("Plans", []):
        yield from plan_nodes(child)
