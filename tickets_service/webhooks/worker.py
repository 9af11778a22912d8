"""The webhook worker: fans ticket events out to the ISPs' endpoints and delivers them, signed,
fairly.

The outbox is the ticket history: every change writes its entry in the change's transaction,
and the worker claims entries not yet dispatched with FOR UPDATE SKIP LOCKED, so several
workers share the work and a worker killed mid-batch leaves its rows to the next (its open
transaction dies with it).

Deliveries go out from a pool of threads (WEBHOOK_CONCURRENCY per worker), so one endpoint's
slowness delays only its own deliveries:
- a delivery is taken under a lease (no other thread or worker tries it until the attempt is
  recorded or the lease ends); endpoints are served in turn, the most overdue first;
- an endpoint has at most WEBHOOK_ENDPOINT_CONCURRENCY attempts in flight and an ISP at most
  WEBHOOK_ISP_CONCURRENCY, counted across all workers, so an ISP's slow endpoints never take
  every thread;
- WEBHOOK_TIMEOUT bounds a whole attempt, the DNS lookup included;
- an endpoint whose attempts fail WEBHOOK_CIRCUIT_FAILURES times in a row, with no success
  for CIRCUIT_WINDOW, is left alone for a while, longer each time (its circuit opens); its
  deliveries wait, and the first attempt after the pause decides whether it closes again.
A delivery is retried with the same delivery id after a growing, jittered delay, and marked
failed after MAX_TRIES attempts. No transaction is open while a request is on the wire.
"""

import logging
import random
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from datetime import timedelta

import click
from flask import current_app
from flask.cli import AppGroup
from sqlalchemy import func, or_, select
from sqlalchemy.exc import OperationalError

from ..extensions import db, discard_transaction
from ..models import (
    DeliveryStatus,
    Ticket,
    TicketHistory,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
    as_utc,
    utcnow,
)
from .events import EVENTS, new_delivery, payload
from .sending import Claim, post

log = logging.getLogger(__name__)

# Seconds before each retry (the first try is at once): about 8 tries over a day.
RETRY_DELAYS = (10, 45, 180, 900, 3600, 14400, 57600)
MAX_TRIES = len(RETRY_DELAYS) + 1
JITTER = 0.2

webhooks_cli = AppGroup("webhooks", help="Deliver ticket events to the ISPs' webhooks.")


# --- Fan-out: history entries become deliveries ---------------------------------------------


def dispatch(batch: int = 100) -> int:
    """Turn up to `batch` undispatched history entries into deliveries for the endpoints of
    their ticket's ISP that want the event; returns how many entries were dispatched."""
    entries = db.session.execute(
        select(TicketHistory.id, TicketHistory.action, TicketHistory.created_at, Ticket.isp_id)
        .join(Ticket, Ticket.id == TicketHistory.ticket_id)
        .where(TicketHistory.dispatched_at.is_(None))
        .order_by(TicketHistory.id)
        .limit(batch)
        .with_for_update(of=TicketHistory, skip_locked=True)
    ).all()
    if not entries:
        db.session.rollback()
        return 0
    isps = {entry.isp_id for entry in entries}
    endpoints = db.session.execute(
        select(
            WebhookEndpoint.id,
            WebhookEndpoint.isp_id,
            WebhookEndpoint.events,
            WebhookEndpoint.created_at,
        ).where(WebhookEndpoint.isp_id.in_(isps))
    ).all()
    now = utcnow()
    for entry in entries:
        event = EVENTS.get(entry.action)  # an internal action, or one this worker predates
        for endpoint in endpoints if event else ():
            # An endpoint hears of what happens in its ISP after it was registered.
            if (
                endpoint.isp_id == entry.isp_id
                and event in endpoint.events
                and as_utc(endpoint.created_at) <= as_utc(entry.created_at)
            ):
                db.session.add(new_delivery(endpoint.id, entry.id, event, now))
    db.session.execute(
        TicketHistory.__table__.update()
        .where(TicketHistory.id.in_([entry.id for entry in entries]))
        .values(dispatched_at=now)
    )
    db.session.commit()
    return len(entries)


# --- Taking work: deliveries under a lease, endpoints in turn, within limits -----------------

# An endpoint's circuit opens after WEBHOOK_CIRCUIT_FAILURES failed attempts in a row with no
# success for CIRCUIT_WINDOW; it then rests a minute, doubling with each failure beyond, at
# most an hour.
CIRCUIT_WINDOW = timedelta(minutes=5)
CIRCUIT_PAUSE = timedelta(minutes=1)
CIRCUIT_LONGEST_PAUSE = timedelta(hours=1)
# A lease outlives the attempt it covers by this much (a worker that dies frees it then).
LEASE_MARGIN = timedelta(seconds=30)


def _free(now):
    """Deliveries no worker is making an attempt at."""
    return or_(WebhookDelivery.leased_until.is_(None), WebhookDelivery.leased_until <= now)


def claim(slots: int) -> list[Claim]:
    """Take up to `slots` due deliveries and lease them, in one short transaction. Endpoints
    with a delivery due (and not resting) take turns, the most overdue first, one delivery
    each per turn, while the endpoint and its ISP stay within their in-flight limits."""
    config = current_app.config
    now = utcnow()
    due = (
        select(func.min(WebhookDelivery.next_attempt_at))
        .where(
            WebhookDelivery.endpoint_id == WebhookEndpoint.id,
            WebhookDelivery.status == DeliveryStatus.PENDING,
            _free(now),
        )
        .scalar_subquery()
    )
    candidates = db.session.execute(
        select(WebhookEndpoint.id, WebhookEndpoint.isp_id)
        .where(
            or_(WebhookEndpoint.paused_until.is_(None), WebhookEndpoint.paused_until <= now),
            due <= now,
        )
        .order_by(due, WebhookEndpoint.id)
        .limit(slots * 4)
    ).all()
    if not candidates:
        db.session.rollback()
        return []
    # Locked while their deliveries are shared out (in id order: two workers queue, never
    # deadlock), so that no two workers lease past an endpoint's limit.
    db.session.execute(
        select(WebhookEndpoint.id)
        .where(WebhookEndpoint.id.in_([c.id for c in candidates]))
        .order_by(WebhookEndpoint.id)
        .with_for_update()
    ).all()
    by_endpoint, by_isp = _in_flight(candidates, now)
    per_endpoint, per_isp = (
        config["WEBHOOK_ENDPOINT_CONCURRENCY"],
        config["WEBHOOK_ISP_CONCURRENCY"],
    )
    waiting = _due_deliveries([c.id for c in candidates], now, per_endpoint)
    taken: list = []
    while len(taken) < slots:  # turns: one delivery per endpoint each
        before = len(taken)
        for endpoint in candidates:
            queue = waiting.get(endpoint.id)
            if len(taken) == slots or not queue:
                continue
            if by_endpoint.get(endpoint.id, 0) >= per_endpoint:
                continue
            if by_isp.get(endpoint.isp_id, 0) >= per_isp:
                continue
            by_endpoint[endpoint.id] = by_endpoint.get(endpoint.id, 0) + 1
            by_isp[endpoint.isp_id] = by_isp.get(endpoint.isp_id, 0) + 1
            taken.append(queue.pop(0))
        if len(taken) == before:
            break
    if taken:
        lease = timedelta(seconds=config["WEBHOOK_TIMEOUT"]) + LEASE_MARGIN
        db.session.execute(
            WebhookDelivery.__table__.update()
            .where(WebhookDelivery.id.in_([row.delivery_pk for row in taken]))
            .values(leased_until=now + lease)
        )
    db.session.commit()
    return [_claim_of(row) for row in taken]


def _in_flight(endpoints, now) -> tuple[dict, dict]:
    """Attempts in flight (leased deliveries), per endpoint and per ISP, of these endpoints'
    ISPs (all their endpoints: an ISP's limit counts every one of them)."""
    rows = db.session.execute(
        select(WebhookEndpoint.id, WebhookEndpoint.isp_id, func.count())
        .join(WebhookDelivery, WebhookDelivery.endpoint_id == WebhookEndpoint.id)
        .where(
            WebhookEndpoint.isp_id.in_({e.isp_id for e in endpoints}),
            WebhookDelivery.status == DeliveryStatus.PENDING,
            WebhookDelivery.leased_until > now,
        )
        .group_by(WebhookEndpoint.id, WebhookEndpoint.isp_id)
    ).all()
    by_endpoint, by_isp = {}, {}
    for endpoint_id, isp_id, count in rows:
        by_endpoint[endpoint_id] = count
        by_isp[isp_id] = by_isp.get(isp_id, 0) + count
    return by_endpoint, by_isp


def _due_deliveries(endpoint_ids: list[int], now, each: int) -> dict[int, list]:
    """Up to `each` due deliveries of each endpoint that no worker is trying, most overdue
    first, with what an attempt at them needs (one query)."""
    order = func.row_number().over(
        partition_by=WebhookDelivery.endpoint_id,
        order_by=(WebhookDelivery.next_attempt_at, WebhookDelivery.id),
    )
    # Ranked once, as a materialised CTE holding what the attempt needs of each delivery, then
    # joined by primary key: whatever the planner believes of the table's size (statistics of
    # a table just emptied and refilled say a row or two), it never ranks again per row, and a
    # claim never holds the endpoints' locks for seconds.
    ranked = (
        select(
            WebhookDelivery.endpoint_id,
            WebhookDelivery.id.label("delivery_pk"),
            WebhookDelivery.delivery_id,
            WebhookDelivery.event,
            WebhookDelivery.attempts,
            WebhookDelivery.history_id,
            order.label("turn"),
        )
        .where(
            WebhookDelivery.endpoint_id.in_(endpoint_ids),
            WebhookDelivery.status == DeliveryStatus.PENDING,
            WebhookDelivery.next_attempt_at <= now,
            _free(now),
        )
        .cte("ranked")
        .prefix_with("MATERIALIZED", dialect="postgresql")
    )
    rows = db.session.execute(
        select(
            ranked.c.endpoint_id,
            ranked.c.delivery_pk,
            ranked.c.delivery_id,
            ranked.c.event,
            ranked.c.attempts,
            WebhookEndpoint.url,
            WebhookEndpoint.secret,
            WebhookEndpoint.isp_id,
            TicketHistory.ticket_id,
            TicketHistory.action,
            TicketHistory.field,
            TicketHistory.old,
            TicketHistory.new,
            TicketHistory.user_id,
            TicketHistory.key_id,
            TicketHistory.system,
            TicketHistory.author_name,
            TicketHistory.created_at,
        )
        .select_from(ranked)
        .join(WebhookEndpoint, WebhookEndpoint.id == ranked.c.endpoint_id)
        .join(TicketHistory, TicketHistory.id == ranked.c.history_id)
        .where(ranked.c.turn <= each)
        .order_by(ranked.c.turn)
    ).all()
    waiting: dict[int, list] = {}
    for row in rows:
        waiting.setdefault(row.endpoint_id, []).append(row)
    return waiting


def _claim_of(row) -> Claim:
    """The attempt at a leased delivery, from its row of _due_deliveries."""
    return Claim(
        endpoint_id=row.endpoint_id,
        url=row.url,
        secret=row.secret,
        delivery_pk=row.delivery_pk,
        delivery_id=row.delivery_id,
        event=row.event,
        attempts=row.attempts,
        body=payload(row.delivery_id, row.event, row, row.isp_id),
    )


# --- Attempts ---------------------------------------------------------------------------


def attempt(work: Claim) -> int | None:
    """Make one attempt (no transaction open meanwhile) and record it; the status code."""
    status_code = post(work)
    record(work, status_code)
    return status_code


def record(work: Claim, status_code: int | None) -> None:
    """Record the attempt on its delivery and free it, then count it for its endpoint's
    circuit: two short transactions, so that the endpoint's row, which claim() locks to share
    out its deliveries, is held for one statement or two. A delivery that changed meanwhile
    (its endpoint deleted, or its lease ran out and another worker recorded an attempt) is
    left as it is."""
    delivery = db.session.get(WebhookDelivery, work.delivery_pk, with_for_update=True)
    if delivery is None or delivery.attempts != work.attempts:
        db.session.rollback()
        return
    record_attempt(delivery, status_code)
    delivery.leased_until = None
    db.session.commit()
    _count_for_circuit(work.endpoint_id, status_code)
    db.session.commit()


def _count_for_circuit(endpoint_id: int, status_code: int | None) -> None:
    """A success closes the circuit. WEBHOOK_CIRCUIT_FAILURES failures in a row, with no
    success for CIRCUIT_WINDOW, open it: for CIRCUIT_PAUSE, doubled with each failure
    beyond, at most CIRCUIT_LONGEST_PAUSE. (An endpoint that fails some attempts and takes
    others keeps getting its deliveries, retried as usual.)"""
    now = utcnow()
    endpoints = WebhookEndpoint.__table__
    if succeeded(status_code):
        db.session.execute(
            endpoints.update()
            .where(endpoints.c.id == endpoint_id)
            .values(failures=0, paused_until=None, succeeded_at=now)
        )
        return
    counted = db.session.execute(
        endpoints.update()
        .where(endpoints.c.id == endpoint_id)
        .values(failures=endpoints.c.failures + 1)
        .returning(endpoints.c.failures, endpoints.c.succeeded_at, endpoints.c.paused_until)
    ).first()
    if counted is None:  # deleted meanwhile
        return
    failures, succeeded_at, paused_until = counted
    beyond = failures - current_app.config["WEBHOOK_CIRCUIT_FAILURES"]
    if beyond < 0 or (succeeded_at is not None and as_utc(succeeded_at) > now - CIRCUIT_WINDOW):
        return
    pause = min(CIRCUIT_PAUSE * 2 ** min(beyond, 10), CIRCUIT_LONGEST_PAUSE)
    db.session.execute(
        endpoints.update().where(endpoints.c.id == endpoint_id).values(paused_until=now + pause)
    )
    if paused_until is None or as_utc(paused_until) <= now:
        log.warning(
            "webhooks: endpoint %s failed %s times in a row; resting it for %s s",
            endpoint_id,
            failures,
            int(pause.total_seconds()),
        )


def succeeded(status_code: int | None) -> bool:
    return status_code is not None and 200 <= status_code < 300


def record_attempt(delivery: WebhookDelivery, status_code: int | None) -> None:
    """Note the try; a 2xx is delivered, anything else is retried later or, after MAX_TRIES,
    failed."""
    now = utcnow()
    delivery.attempts += 1
    if succeeded(status_code):
        delivery.status, delivery.next_attempt_at = DeliveryStatus.DELIVERED, None
    elif delivery.attempts >= MAX_TRIES:
        delivery.status, delivery.next_attempt_at = DeliveryStatus.FAILED, None
    else:
        delay = RETRY_DELAYS[delivery.attempts - 1]
        delivery.next_attempt_at = now + timedelta(
            seconds=delay * random.uniform(1 - JITTER, 1 + JITTER)
        )
    db.session.add(
        WebhookAttempt(
            delivery_id=delivery.id,
            status_code=status_code,
            attempted_at=now,
            next_attempt_at=delivery.next_attempt_at,
        )
    )


# --- The worker -------------------------------------------------------------------------------


def run(once: bool = False, idle_seconds: float = 1.0, should_stop=lambda: False) -> int:
    """Dispatch and deliver until stopped (or, with `once`, until nothing is due or in
    flight); returns the number of delivery attempts made."""
    app = current_app._get_current_object()
    slots = app.config["WEBHOOK_CONCURRENCY"]
    attempts, unreachable = 0, False
    in_flight: set[Future] = set()
    with ThreadPoolExecutor(slots, thread_name_prefix="webhook") as pool:
        while not should_stop():
            try:
                dispatched = dispatch()
                taken = claim(slots - len(in_flight)) if len(in_flight) < slots else []
            except OperationalError as err:
                # The database restarted or is unreachable: what was claimed is unclaimed
                # with the dead transaction. Say so once, wait, then carry on.
                discard_transaction()
                if not unreachable:
                    log.warning("webhooks: database unavailable (%s); retrying", type(err).__name__)
                unreachable = True
                time.sleep(idle_seconds)
                continue
            if unreachable:
                log.warning("webhooks: database available again")
                unreachable = False
            in_flight |= {pool.submit(_attempt_in, app, work) for work in taken}
            busy = bool(dispatched or taken)
            if once and not busy and not in_flight:
                return attempts
            finished, in_flight = wait(
                in_flight, timeout=0 if busy else idle_seconds, return_when=FIRST_COMPLETED
            )
            for future in finished:
                future.result()  # a thread's failure (not its endpoint's) is the worker's
                attempts += 1
            if not busy and not in_flight and not finished:
                time.sleep(idle_seconds)
    return attempts


def _attempt_in(app, work: Claim) -> int | None:
    """attempt() in a thread of the pool, with its own session. Recording fails when the
    database is away: the attempt was made, its lease runs out and it is made again later
    (a receiver drops the duplicate by its delivery id)."""
    with app.app_context():
        try:
            return attempt(work)
        except OperationalError as err:
            discard_transaction()
            log.warning("webhooks: could not record an attempt (%s)", type(err).__name__)
            return None
        finally:
            db.session.remove()


@webhooks_cli.command("work")
@click.option("--once", is_flag=True, help="Stop when nothing is due instead of waiting.")
@click.option(
    "--idle",
    type=click.FloatRange(min=0),
    default=1.0,
    show_default=True,
    help="Seconds to wait when idle.",
)
def work(once: bool, idle: float) -> None:
    """Deliver webhooks: run as many of these workers as you like (Procfile: worker)."""
    import signal

    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
    attempts = run(once=once, idle_seconds=idle, should_stop=lambda: bool(stopping))
    click.echo(f"webhooks: {attempts} delivery attempts")
