"""Round trips to PostgreSQL per request, counted on the wire: every message that makes the
server answer (a simple Query, or the Sync that ends an extended-protocol exchange), so
transaction control and pings count like any statement. The hot requests cost exactly:"""

import socket
import struct
import threading
from contextlib import contextmanager, suppress

import pytest
from support.client import assert_success, scope_of

from tickets_service.config import normalize_database_url

LIST_ROUND_TRIPS = 3  # the caller with its token's revocation, the page, the kept total
FETCH_ROUND_TRIPS = 2  # the caller, the ticket with its first replies (reads: autocommit)
CREATE_ROUND_TRIPS = 5  # BEGIN, the caller, the subscriber check, the INSERT, COMMIT

pytestmark = pytest.mark.postgres


class WireCounter:
    """A TCP relay in front of PostgreSQL that counts the client's answer-demanding messages."""

    ANSWERED = {ord("Q"), ord("S")}

    def __init__(self, upstream: tuple[str, int]):
        self.upstream = upstream
        self.count = 0
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.upstream)
            threading.Thread(target=self._pump, args=(server, client, False), daemon=True).start()
            threading.Thread(target=self._pump, args=(client, server, True), daemon=True).start()

    def _pump(self, source, target, counted: bool) -> None:
        buffer, started = b"", False
        try:
            while chunk := source.recv(65536):
                target.sendall(chunk)
                if not counted:
                    continue
                buffer += chunk
                if not started and len(buffer) >= 4:  # the startup message has no type byte
                    (length,) = struct.unpack("!i", buffer[:4])
                    if len(buffer) >= length:
                        buffer, started = buffer[length:], True
                while started and len(buffer) >= 5:
                    (length,) = struct.unpack("!i", buffer[1:5])
                    if len(buffer) < 1 + length:
                        break
                    if buffer[0] in self.ANSWERED:
                        with self._lock:
                            self.count += 1
                    buffer = buffer[1 + length :]
        except OSError:
            pass
        finally:
            for end in (source, target):
                with suppress(OSError):
                    end.shutdown(socket.SHUT_RDWR)

    @contextmanager
    def counting(self):
        with self._lock:
            start = self.count
        result = {}
        yield result
        with self._lock:
            result["round_trips"] = self.count - start

    def close(self) -> None:
        self._listener.close()


@pytest.fixture
def wire(db_url, make_app):
    """An app whose every connection to PostgreSQL goes through the counting relay."""
    if not db_url.startswith("postgres"):
        pytest.skip("needs TEST_DATABASE_URL pointing at PostgreSQL")
    from sqlalchemy.engine import make_url

    url = make_url(normalize_database_url(db_url))
    counter = WireCounter((url.host or "127.0.0.1", url.port or 5432))
    relayed = url.set(host="127.0.0.1", port=counter.port, query={"sslmode": "disable"})
    app = make_app(SQLALCHEMY_DATABASE_URI=relayed.render_as_string(hide_password=False))
    yield app.test_client(), counter
    counter.close()


def round_trips(counter, call, warm_up: int = 8) -> int:
    """Round trips of one call, once connections are open and statements prepared."""
    for _ in range(warm_up):
        call()
    with counter.counting() as seen:
        call()
    return seen["round_trips"]


def test_a_list_page_costs_three_round_trips(wire, admin, make_subscriber, make_ticket):
    client, counter = wire
    subscriber = make_subscriber()
    for _ in range(30):
        make_ticket(admin, subscriber_id=subscriber)

    def list_page():
        body = assert_success(
            client.get("/api/v1/tickets", query_string=scope_of(admin), headers=admin.headers), 200
        )
        assert body["meta"]["total"] == 30

    assert round_trips(counter, list_page) == LIST_ROUND_TRIPS


def test_fetch_ticket_costs_two_round_trips(wire, admin, make_ticket, make_reply):
    client, counter = wire
    ticket_id = make_ticket(admin)
    for _ in range(20):
        make_reply(ticket_id, admin)

    def fetch():
        body = assert_success(
            client.get(f"/api/v1/tickets/{ticket_id}", headers=admin.headers), 200
        )
        assert len(body["data"]["replies"]) == 20

    assert round_trips(counter, fetch) == FETCH_ROUND_TRIPS


def test_create_ticket_costs_five_round_trips(wire, admin, make_subscriber):
    client, counter = wire
    body = {
        "title": "Connection Issue",
        "description": "Cannot connect to internet",
        "priority": 2,
        "subscriber_id": make_subscriber(),
    }

    def create():
        assert_success(client.post("/api/v1/tickets", json=body, headers=admin.headers), 201)

    assert round_trips(counter, create) == CREATE_ROUND_TRIPS


def test_the_counter_sees_every_round_trip(wire, app):
    """Control: a transaction of two statements is four round trips (BEGIN, two, COMMIT)."""
    from sqlalchemy import text

    from tickets_service.extensions import db

    client, counter = wire
    with client.application.app_context():
        db.session.execute(text("SELECT 1"))  # open the connection first
        db.session.commit()
        with counter.counting() as seen:
            db.session.execute(text("SELECT 1"))
            db.session.execute(text("SELECT 2"))
            db.session.commit()
        db.session.remove()
    assert seen["round_trips"] == 4
