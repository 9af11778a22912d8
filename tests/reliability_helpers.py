"""What the reliability tests share: URLs, one way to call the API (with extra headers), a way
to fire requests at the same instant from threads, read-backs of every table a write touches,
and direct column writes that stand in for the passing of time."""

import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from sqlalchemy import inspect, select, update

from tickets_service.extensions import db
from tickets_service.models import (
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

from conftest import assert_success, scope_of

T = TypeVar("T")

TICKETS, SUBSCRIBERS, USERS = "/api/v1/tickets", "/api/v1/subscribers", "/api/v1/users"
WEBHOOKS, DELIVERIES = "/api/v1/webhooks", "/api/v1/deliveries"
LOGIN, LOGOUT, ME = "/api/v1/auth/login", "/api/v1/auth/logout", "/api/v1/auth/me"
ON_POSTGRES = os.environ.get("TEST_DATABASE_URL", "").startswith("postgres")

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
)


def ticket_url(ticket_id: int, suffix: str = "") -> str:
    return f"{TICKETS}/{ticket_id}{suffix}"


def call(client, account, method: str, url: str, body=None, headers=None, query=None):
    """One request as `account`, with a JSON body only when given and any extra headers."""
    extra = {} if body is None else {"json": body}
    return client.open(
        url,
        method=method,
        query_string=query,
        headers={**account.headers, **(headers or {})},
        **extra,
    )


def create_ticket(client, account, headers=None, **fields) -> int:
    """A ticket created through the API (its history starts with `created`)."""
    body = {**scope_of(account), "title": "Slow", "description": "Evenings", "priority": 1}
    response = call(client, account, "POST", TICKETS, {**body, **fields}, headers)
    return assert_success(response, 201, "Ticket created successfully")["data"]["id"]


def in_parallel(calls: list[Callable[[], T]], timeout: float = 60) -> list[T]:
    """Run each call in its own thread, all released at once; their results, in order.

    Each thread should make its own test client (one per request is cheapest): the Flask test
    client pushes a fresh app context, hence a fresh database session, for every request.
    """
    barrier = threading.Barrier(len(calls))

    def started_together(function: Callable[[], T]) -> T:
        barrier.wait(timeout=timeout)
        return function()

    with ThreadPoolExecutor(len(calls)) as pool:
        futures = [pool.submit(started_together, function) for function in calls]
        return [future.result(timeout=timeout) for future in futures]


def read_rows(app, model) -> list[dict]:
    """Every row of a table as a dict of its columns, ordered by the whole primary key."""
    mapper = inspect(model)
    with app.app_context():
        objects = db.session.scalars(select(model).order_by(*mapper.primary_key)).all()
        result = [{c.key: getattr(obj, c.key) for c in mapper.column_attrs} for obj in objects]
        db.session.remove()
    return result


def database_state(app) -> dict:
    """The content of every table an API write can touch."""
    return {model.__tablename__: read_rows(app, model) for model in WRITTEN_TABLES}


def set_columns(app, model, where, **values) -> None:
    """Write columns directly, bypassing the API and the ORM's hooks (e.g. move a timestamp)."""
    with app.app_context():
        db.session.execute(update(model).where(where).values(**values))
        db.session.commit()
        db.session.remove()


def history_of(app, ticket_id: int) -> list[dict]:
    """A ticket's history rows, in the order they were written."""
    return [row for row in read_rows(app, TicketHistory) if row["ticket_id"] == ticket_id]
