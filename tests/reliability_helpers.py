"""What the reliability tests share: URLs, one way to call the API (with extra headers), a way
to fire requests at the same instant from threads, read-backs of every table a write touches,
and direct column writes that stand in for the passing of time."""

import hashlib
import hmac
import json
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
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
from tickets_service.webhooks.worker import run as run_worker

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


# --- Webhooks: a receiver, the documented signature check, the worker ---------------------------


def verify_signature(secret: str, headers, body: bytes) -> bool:
    """What a receiver does with a delivery: HMAC-SHA256 of "<timestamp>.<body>" with the
    endpoint's secret, compared in constant time with X-Tickets-Signature ("sha256=<hex>")."""
    timestamp = headers["X-Tickets-Timestamp"]
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return hmac.compare_digest("sha256=" + mac.hexdigest(), headers["X-Tickets-Signature"])


@dataclass(frozen=True)
class Received:
    method: str
    path: str
    headers: dict
    body: bytes

    @property
    def json(self) -> dict:
        return json.loads(self.body)

    @property
    def delivery_id(self) -> str:
        return self.headers["X-Tickets-Delivery"]


class Slow:
    """A planned answer: sleep this long (past the worker's timeout), then 200."""

    def __init__(self, seconds: float):
        self.seconds = seconds


class Trickle:
    """A planned answer: 200, its status line sent a byte every `interval` seconds (each read
    is quick, the whole answer is not)."""

    def __init__(self, lines: int, interval: float):
        self.lines, self.interval = lines, interval


class Redirect:
    """A planned answer: 302 to another path of the receiver."""

    def __init__(self, path: str):
        self.path = path


class Receiver:
    """A webhook receiver on 127.0.0.1, in threads: records every request it gets and answers
    with the next planned answer (a status code, Slow, Trickle or Redirect), then 200."""

    def __init__(self):
        self.received: list[Received] = []
        self.plan: list = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep the test output clean
                pass

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                with receiver._lock:
                    receiver.received.append(
                        Received(self.command, self.path, dict(self.headers.items()), body)
                    )
                    answer = receiver.plan.pop(0) if receiver.plan else 200
                if isinstance(answer, Trickle):
                    status = b"HTTP/1.1 200 OK\r\n"
                    for n in range(answer.lines):
                        self.wfile.write(status[n : n + 1])
                        self.wfile.flush()
                        time.sleep(answer.interval)
                    self.wfile.write(status[answer.lines :])
                    self.wfile.write(b"Content-Length: 0\r\nConnection: close\r\n\r\n")
                    self.wfile.flush()
                    self.close_connection = True
                    return
                if isinstance(answer, Slow):
                    time.sleep(answer.seconds)
                    answer = 200
                if isinstance(answer, Redirect):
                    self.send_response(302)
                    self.send_header("Location", receiver.url(answer.path))
                else:
                    self.send_response(answer)
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_GET = do_PUT = do_POST

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def url(self, path: str = "/hook") -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}{path}"

    def at(self, path: str) -> list[Received]:
        with self._lock:
            return [request for request in self.received if request.path == path]

    def start(self) -> "Receiver":
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def work(app) -> int:
    """One worker pass (`webhooks work --once`): dispatch and deliver until nothing is due;
    the number of delivery attempts made."""
    with app.app_context():
        try:
            return run_worker(once=True)
        finally:
            db.session.remove()
