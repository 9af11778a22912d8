"""One tenant's slow webhook endpoints never delay another's events (tickets_service/webhooks/).

The probe's finding: five endpoints of one ISP that accept the connection and never answer
made another ISP's event take 19.8 s instead of 0.5 s (one worker walked one queue). Here the
worker runs as `webhooks work` runs it, against real sockets on 127.0.0.1: endpoints that
never answer, a receiver that does. Also: a whole attempt, the lookup of its host included,
takes at most WEBHOOK_TIMEOUT; an endpoint that keeps failing rests (its circuit opens); an ISP
has at most WEBHOOK_MAX_ENDPOINTS endpoints and WEBHOOK_REDELIVER_LIMIT redeliveries an hour.
"""

import socket
import threading
import time
from datetime import timedelta
from functools import partial

import pytest
from support.client import assert_success, call, create_ticket, in_parallel
from support.database import ON_POSTGRES, read_rows, set_columns
from support.urls import DELIVERIES, WEBHOOKS
from support.webhooks import Receiver, Silent, work

from tickets_service.models import DeliveryStatus, WebhookDelivery, WebhookEndpoint, utcnow
from tickets_service.webhooks import sending, worker


@pytest.fixture
def silent():
    server = Silent()
    yield server
    server.stop()


@pytest.fixture
def receiver():
    server = Receiver().start()
    yield server
    server.stop()


@pytest.fixture
def stalling_lookup(monkeypatch):
    """The system resolver hangs 5 s on stalls.example.net. (Slowed in-process: no DNS server
    here can be made to stall on demand.)"""
    real = socket.getaddrinfo

    def stalling(host, *args, **kwargs):
        if host == "stalls.example.net":
            time.sleep(5)
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", stalling)


def register(client, admin, url: str):
    body = {"url": url, "events": ["ticket.created"]}
    return assert_success(call(client, admin, "POST", WEBHOOKS, body), 201)["data"]


class Worker:
    """`webhooks work` in a thread, until stopped."""

    def __init__(self, app):
        self.app, self.stopping = app, threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        with self.app.app_context():
            worker.run(idle_seconds=0.05, should_stop=self.stopping.is_set)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *_exc):
        self.stopping.set()
        self.thread.join(30)


@pytest.mark.slow
def test_five_endpoints_that_never_answer_leave_another_isps_events_on_time(
    make_app, admin, other_admin, silent, receiver, record_property
):
    app = make_app(WEBHOOK_ALLOW_PRIVATE=True, WEBHOOK_TIMEOUT=2)
    client = app.test_client()
    for n in range(5):
        register(client, admin, silent.url(f"/never/{n}"))
    register(client, other_admin, receiver.url("/isp2"))
    for _ in range(6):  # 30 deliveries that will each take the whole timeout
        create_ticket(client, admin)

    with Worker(app):
        time.sleep(0.5)  # ISP 1's endpoints are taking every attempt they may
        sent = time.monotonic()
        theirs = create_ticket(client, other_admin)
        while not receiver.at("/isp2") and time.monotonic() - sent < 10:
            time.sleep(0.01)
        delay = time.monotonic() - sent
        time.sleep(2.5)  # a round of ISP 1's attempts times out, the next starts

    record_property("other_isps_event_delay_s", round(delay, 3))
    print(f"\nwebhook fairness: ISP 2's event arrived {delay:.3f} s after its ticket")
    assert [r.json["ticket_id"] for r in receiver.at("/isp2")] == [theirs]
    # Within one worker turn, never behind one of ISP 1's 2 s attempts (was 19.8 s).
    assert delay < 1.0
    config = app.config
    assert silent.peak_total <= config["WEBHOOK_ISP_CONCURRENCY"]
    assert max(silent.peak.values()) <= config["WEBHOOK_ENDPOINT_CONCURRENCY"]
    assert silent.peak_total >= 5  # each never-answering endpoint was tried meanwhile


def test_an_isp_never_has_more_attempts_in_flight_than_its_limit(make_app, admin, silent):
    """Taken together, the in-flight limits hold across every worker: the leases count."""
    app = make_app(
        WEBHOOK_ALLOW_PRIVATE=True, WEBHOOK_ENDPOINT_CONCURRENCY=2, WEBHOOK_ISP_CONCURRENCY=3
    )
    client = app.test_client()
    endpoints = [register(client, admin, silent.url(f"/e{n}"))["id"] for n in range(3)]
    for _ in range(4):
        create_ticket(client, admin)
    with app.app_context():
        assert worker.dispatch() == 4
        first = worker.claim(10)  # one worker
        second = worker.claim(10)  # and another, while the first's attempts run
    per_endpoint = [sum(c.endpoint_id == e for c in first + second) for e in endpoints]
    assert (len(first), len(second)) == (3, 0)
    assert max(per_endpoint) == 1  # they took turns: one each
    leased = [d for d in read_rows(app, WebhookDelivery) if d["leased_until"] is not None]
    assert sorted(d["id"] for d in leased) == sorted(c.delivery_pk for c in first)


def test_the_lookup_of_a_host_counts_in_the_attempts_timeout(make_app, stalling_lookup):
    """A resolver that hangs holds an attempt no longer than WEBHOOK_TIMEOUT."""
    app = make_app(WEBHOOK_TIMEOUT=1)
    work = sending.Claim(1, "https://stalls.example.net/hook", "s", 1, "d", "e", 0, b"{}")
    with app.app_context():
        started = time.monotonic()
        assert sending.post(work) is None
        assert time.monotonic() - started < 1.5


def test_registering_a_host_whose_lookup_hangs_is_answered_within_the_timeout(
    make_app, admin, stalling_lookup
):
    client = make_app(WEBHOOK_TIMEOUT=1).test_client()
    started = time.monotonic()
    register(client, admin, "https://stalls.example.net/hook")  # checked again at delivery
    assert time.monotonic() - started < 1.5


# --- The circuit ------------------------------------------------------------------------------


def circuit_app(make_app, admin, receiver, failures: int):
    """An app whose circuit opens after `failures`, attempts one after the other, and four
    tickets whose events are due to the receiver; the app and the endpoint."""
    app = make_app(
        WEBHOOK_ALLOW_PRIVATE=True,
        WEBHOOK_CIRCUIT_FAILURES=failures,
        WEBHOOK_ENDPOINT_CONCURRENCY=1,
    )
    client = app.test_client()
    endpoint = register(client, admin, receiver.url())
    for _ in range(4):
        create_ticket(client, admin)
    return app, endpoint


def test_an_endpoint_that_keeps_failing_rests_then_is_tried_again(make_app, admin, receiver, rows):
    receiver.plan = [500] * 3
    app, endpoint = circuit_app(make_app, admin, receiver, failures=3)
    assert work(app) == 3  # the third failure opens the circuit
    (stored,) = rows(WebhookEndpoint)
    assert stored["failures"] == 3
    rest = stored["paused_until"] - utcnow().replace(tzinfo=stored["paused_until"].tzinfo)
    assert timedelta(seconds=55) <= rest <= timedelta(seconds=61)
    assert work(app) == 0  # resting: its due deliveries wait
    assert len(receiver.received) == 3

    set_columns(app, WebhookEndpoint, WebhookEndpoint.id == endpoint["id"], paused_until=None)
    assert work(app) == 1  # the one due now (the others: retries later)
    (stored,) = rows(WebhookEndpoint)
    assert (stored["failures"], stored["paused_until"]) == (0, None)
    assert stored["succeeded_at"] is not None


def test_an_endpoint_that_took_an_event_lately_does_not_rest(make_app, admin, receiver, rows):
    """Failures between successes are retried as usual: the circuit is for endpoints that
    take nothing."""
    receiver.plan = [200, 500, 500, 500]
    app, _endpoint = circuit_app(make_app, admin, receiver, failures=2)
    assert work(app) == 4
    (stored,) = rows(WebhookEndpoint)
    assert (stored["failures"], stored["paused_until"]) == (3, None)


# --- Limits -----------------------------------------------------------------------------------


def test_an_isp_registers_at_most_its_limit_of_endpoints(
    make_app, admin, other_admin, assert_refused
):
    client = make_app(WEBHOOK_MAX_ENDPOINTS=2).test_client()
    for n in range(2):
        register(client, admin, f"https://93.184.216.34/hook/{n}")
    body = {"url": "https://93.184.216.34/x", "events": ["ticket.created"]}

    refused = assert_refused(lambda: call(client, admin, "POST", WEBHOOKS, body), 409)

    assert "2 webhook endpoints" in refused.get_json()["message"]
    register(client, other_admin, "https://93.184.216.34/theirs")  # another ISP's own count


@pytest.mark.skipif(not ON_POSTGRES, reason="SQLite takes one writer at a time anyway")
def test_admins_registering_at_once_never_pass_the_limit(make_app, make_user, rows):
    app = make_app(WEBHOOK_MAX_ENDPOINTS=3)
    admins = [make_user(isp_id=1, role="admin") for _ in range(6)]
    body = {"url": "https://93.184.216.34/hook", "events": ["ticket.created"]}

    answers = in_parallel(
        [partial(call, app.test_client(), a, "POST", WEBHOOKS, body) for a in admins]
    )

    assert sorted(r.status_code for r in answers) == [201] * 3 + [409] * 3
    assert len(rows(WebhookEndpoint)) == 3


def test_an_isp_asks_for_at_most_its_limit_of_redeliveries_an_hour(
    make_app, admin, rows, assert_refused
):
    app = make_app(WEBHOOK_ALLOW_PRIVATE=True, WEBHOOK_REDELIVER_LIMIT=2)
    client = app.test_client()
    register(client, admin, "http://127.0.0.1:9/hook")
    create_ticket(client, admin)
    with app.app_context():
        worker.dispatch()
    (original,) = rows(WebhookDelivery)
    redeliver = f"{DELIVERIES}/{original['delivery_id']}/redeliver"
    for _ in range(2):
        assert_success(call(client, admin, "POST", redeliver), 201)

    refused = assert_refused(lambda: call(client, admin, "POST", redeliver), 429)

    assert 3500 <= int(refused.headers["Retry-After"]) <= 3600
    assert [d["redelivery"] for d in rows(WebhookDelivery)] == [False, True, True]
    hour_ago = utcnow() - timedelta(hours=1, seconds=1)  # the count has moved on
    set_columns(app, WebhookDelivery, WebhookDelivery.redelivery, created_at=hour_ago)
    assert_success(call(client, admin, "POST", redeliver), 201)
    assert len([d for d in rows(WebhookDelivery) if d["status"] == DeliveryStatus.PENDING]) == 4
