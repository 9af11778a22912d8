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

import hashlib
import hmac
import ipaddress
import json
import logging
import random
import re
import socket
import ssl
import threading
import time
import uuid
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import UTC, timedelta
from urllib.parse import urlsplit

import click
from flask import current_app
from flask.cli import AppGroup
from sqlalchemy import func, or_, select
from sqlalchemy.exc import OperationalError

from .extensions import db, discard_transaction
from .models import (
    DeliveryStatus,
    HistoryAction,
    Ticket,
    TicketHistory,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
    as_json_value,
    utcnow,
)

log = logging.getLogger(__name__)

EVENTS = {
    HistoryAction.CREATED: "ticket.created",
    HistoryAction.UPDATED: "ticket.updated",
    HistoryAction.STATUS_CHANGED: "ticket.status_changed",
    HistoryAction.ASSIGNED: "ticket.assigned",
    HistoryAction.REPLIED: "ticket.replied",
    HistoryAction.NOTED: "ticket.replied",  # with internal: true
    HistoryAction.DELETED: "ticket.deleted",
    HistoryAction.RESTORED: "ticket.restored",
}
EVENT_TYPES = sorted(set(EVENTS.values()))
# Seconds before each retry (the first try is at once): about 8 tries over a day.
RETRY_DELAYS = (10, 45, 180, 900, 3600, 14400, 57600)
MAX_TRIES = len(RETRY_DELAYS) + 1
JITTER = 0.2

webhooks_cli = AppGroup("webhooks", help="Deliver ticket events to the ISPs' webhooks.")


# --- Where events may go --------------------------------------------------------------------

_HOSTNAME = re.compile(
    r"(?=.{1,253}$)[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*"
)


# A host and its port: a name or IPv4 address, or an IPv6 address in brackets.
_AUTHORITY = re.compile(r"(\[[^\[\]]+\]|[^\[\]:]+)(:[0-9]{1,5})?")


class UnsafeDestination(ValueError):
    """A webhook URL the service must not (or cannot) call."""


@dataclass(frozen=True)
class Destination:
    """Where a webhook URL points: scheme, host, port, path, and the address checked."""

    scheme: str
    host: str
    port: int
    target: str
    address: str | None  # None when the host did not resolve (in time) at registration


def resolve(host: str, timeout: float) -> list:
    """The addresses a host name (or literal) stands for, looked up within `timeout` seconds:
    none when it does not resolve in time. The system resolver has no timeout of its own, so
    it runs in a thread of its own that is left behind when it overruns."""
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    found: list = []

    def look_up() -> None:
        try:
            infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
        except (OSError, UnicodeError):
            return
        found.extend(ipaddress.ip_address(info[4][0].split("%")[0]) for info in infos)

    lookup = threading.Thread(target=look_up, name=f"resolve {host}", daemon=True)
    lookup.start()
    lookup.join(max(timeout, 0))
    return [] if lookup.is_alive() else list(found)


# IPv6 forms that carry an IPv4 address to a translator or a tunnel, and where it sits.
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")  # ::a.b.c.d (deprecated, RFC 4291)
_SIIT = ipaddress.ip_network("::ffff:0:0:0/96")  # ::ffff:0:a.b.c.d (RFC 2765)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")  # the well-known prefix (RFC 6052)
_LOCAL_NAT64 = ipaddress.ip_network("64:ff9b:1::/48")  # local use (RFC 8215)
# RFC 6052's places for the IPv4 bits after a prefix of 48, 56, 64 or 96 bits (bits 64-71,
# the "u" octet, are never part of it): what a local-use translator might take.
_RFC6052_SPANS = {
    48: ((48, 64), (72, 88)),
    56: ((56, 64), (72, 96)),
    64: ((72, 104),),
    96: ((96, 128),),
}


def _bits(value: int, start: int, end: int) -> tuple[int, int]:
    """Bits start..end (0 = the most significant of 128) of an IPv6 address, and how many."""
    return (value >> (128 - end)) & ((1 << (end - start)) - 1), end - start


def _rfc6052(value: int, prefix: int) -> ipaddress.IPv4Address:
    number = 0
    for start, end in _RFC6052_SPANS[prefix]:
        bits, width = _bits(value, start, end)
        number = (number << width) | bits
    return ipaddress.IPv4Address(number)


def carried_ipv4(address) -> list:
    """The IPv4 addresses an IPv6 address reaches through a translator or a tunnel, or []
    when it is a plain IPv6 address: IPv4-mapped and -compatible, SIIT, NAT64 (well-known and
    local-use, every RFC 6052 layout), 6to4, and Teredo (its server and its client)."""
    if address.version != 6:
        return []
    value = int(address)
    if address.ipv4_mapped is not None:
        return [address.ipv4_mapped]
    if address in _IPV4_COMPATIBLE or address in _SIIT or address in _NAT64:
        return [ipaddress.IPv4Address(value & 0xFFFF_FFFF)]
    if address in _LOCAL_NAT64:
        if not _bits(value, 48, 96)[0]:  # zeros between prefix and address: the /96 layout
            return [_rfc6052(value, 96)]
        return [_rfc6052(value, prefix) for prefix in _RFC6052_SPANS]
    if address.sixtofour is not None:
        return [address.sixtofour]
    if address.teredo is not None:
        return list(address.teredo)
    return []


def is_internal(address) -> bool:
    """Private, loopback, link-local or otherwise not on the public internet (100.64/10 too).
    An IPv6 address that carries an IPv4 one is judged by the IPv4 address it reaches (:: and
    ::1, which the IPv4-compatible form also covers, are judged as themselves)."""
    if address.is_loopback or address.is_unspecified:
        return True
    judged = carried_ipv4(address) or [address]
    return any(a.is_private or a.is_loopback or a.is_link_local or not a.is_global for a in judged)


def _unreachable(address) -> bool:
    """Addresses no webhook can be delivered to, wherever the service runs (an address whose
    carried IPv4 one is ambiguous, a local-use NAT64 layout, is left to is_internal)."""
    carried = carried_ipv4(address)
    judged = [address, *carried] if len(carried) == 1 else [address]
    return any(a.is_multicast or a.is_unspecified for a in judged)


def check_destination(url: str, allow_private: bool, timeout: float) -> Destination:
    """https to a public host; http, or an internal host (private, loopback, link-local,
    carrier-grade NAT...), only when allow_private (tests, on-premises). Anything else, or a
    URL that cannot be called or does not parse, raises UnsafeDestination. Returns the address
    to connect to, so the check and the connection see the same host (no DNS rebinding in
    between); the name is looked up within `timeout` seconds."""
    try:
        parts = urlsplit(url)
        host, port = parts.hostname, parts.port
    except ValueError as err:  # "[::1", "[abc]", "]", a port that is no number...
        message = "The port must be a number from 1 to 65535." if "Port" in str(err) else None
        raise UnsafeDestination(message or "The URL does not parse.") from None
    if port == 0:
        raise UnsafeDestination("The port must be a number from 1 to 65535.")
    if parts.scheme not in {"https", "http"} or not host:
        raise UnsafeDestination("Use an https:// URL with a host.")
    if "%" in host:
        raise UnsafeDestination("The URL does not parse.")  # a zone id: this host's own links
    if parts.username or parts.password:
        raise UnsafeDestination("Put no credentials in the URL; verify the signature instead.")
    authority = parts.netloc.rpartition("@")[2]
    if not _AUTHORITY.fullmatch(authority):
        raise UnsafeDestination("The URL does not parse.")  # stray brackets, an empty port
    literal = authority.startswith("[") or _is_address(host)
    if literal and not _is_address(host):
        raise UnsafeDestination("The URL does not parse.")  # brackets around no IPv6 address
    if not literal and not _HOSTNAME.fullmatch(host):
        raise UnsafeDestination("The host is not a valid host name.")
    if any(c in parts.path + parts.query for c in " \t\r\n"):
        raise UnsafeDestination("Encode spaces and control characters in the URL.")
    addresses = resolve(host, timeout)
    if any(_unreachable(a) for a in addresses):
        raise UnsafeDestination("This address cannot receive webhooks.")
    internal = [a for a in addresses if is_internal(a)]
    if internal and not allow_private:
        raise UnsafeDestination("Private, loopback and link-local hosts are not allowed.")
    if parts.scheme == "http" and not (
        allow_private and internal and len(internal) == len(addresses)
    ):
        raise UnsafeDestination("Use https:// (http only to a private host on-premises).")
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    default = 443 if parts.scheme == "https" else 80
    return Destination(
        parts.scheme, host, port or default, target, str(addresses[0]) if addresses else None
    )


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


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
        event = EVENTS[entry.action]
        for endpoint in endpoints:
            # An endpoint hears of what happens in its ISP after it was registered.
            if (
                endpoint.isp_id == entry.isp_id
                and event in endpoint.events
                and _utc(endpoint.created_at) <= _utc(entry.created_at)
            ):
                db.session.add(new_delivery(endpoint.id, entry.id, event, now))
    db.session.execute(
        TicketHistory.__table__.update()
        .where(TicketHistory.id.in_([entry.id for entry in entries]))
        .values(dispatched_at=now)
    )
    db.session.commit()
    return len(entries)


def _utc(moment):
    """SQLite hands timestamps back without their zone: they are UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def new_delivery(
    endpoint_id: int, history_id: int, event: str, now, redelivery: bool = False
) -> WebhookDelivery:
    return WebhookDelivery(
        delivery_id=str(uuid.uuid4()),
        endpoint_id=endpoint_id,
        history_id=history_id,
        event=event,
        status=DeliveryStatus.PENDING,
        attempts=0,
        next_attempt_at=now,
        redelivery=redelivery,
    )


# --- Taking work: deliveries under a lease, endpoints in turn, within limits -----------------

# An endpoint's circuit opens after WEBHOOK_CIRCUIT_FAILURES failed attempts in a row with no
# success for CIRCUIT_WINDOW; it then rests a minute, doubling with each failure beyond, at
# most an hour.
CIRCUIT_WINDOW = timedelta(minutes=5)
CIRCUIT_PAUSE = timedelta(minutes=1)
CIRCUIT_LONGEST_PAUSE = timedelta(hours=1)
# A lease outlives the attempt it covers by this much (a worker that dies frees it then).
LEASE_MARGIN = timedelta(seconds=30)


@dataclass(frozen=True)
class Claim:
    """One attempt to make: everything it needs, read when the delivery was taken."""

    endpoint_id: int
    url: str
    secret: str
    delivery_pk: int
    delivery_id: str
    event: str
    attempts: int
    body: bytes


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
    ranked = (
        select(WebhookDelivery.id, order.label("turn"))
        .where(
            WebhookDelivery.endpoint_id.in_(endpoint_ids),
            WebhookDelivery.status == DeliveryStatus.PENDING,
            WebhookDelivery.next_attempt_at <= now,
            _free(now),
        )
        .subquery()
    )
    rows = db.session.execute(
        select(
            WebhookDelivery.endpoint_id,
            WebhookDelivery.id.label("delivery_pk"),
            WebhookDelivery.delivery_id,
            WebhookDelivery.event,
            WebhookDelivery.attempts,
            WebhookEndpoint.url,
            WebhookEndpoint.secret,
            WebhookEndpoint.isp_id,
            TicketHistory.ticket_id,
            TicketHistory.action,
            TicketHistory.field,
            TicketHistory.old,
            TicketHistory.new,
            TicketHistory.user_id,
            TicketHistory.created_at,
        )
        .join(ranked, ranked.c.id == WebhookDelivery.id)
        .join(WebhookEndpoint, WebhookEndpoint.id == WebhookDelivery.endpoint_id)
        .join(TicketHistory, TicketHistory.id == WebhookDelivery.history_id)
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


# --- Delivery -------------------------------------------------------------------------------


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The X-Tickets-Signature value: HMAC-SHA256 of "<timestamp>.<body>"."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def payload(delivery_id: str, event: str, entry, isp_id: int) -> bytes:
    """The signed body: the event, and what its history entry (or a row with its columns)
    says."""
    data = {"field": entry.field, "old": entry.old, "new": entry.new, "user_id": entry.user_id}
    if event == "ticket.replied":
        data = {"user_id": entry.user_id, "internal": entry.action == HistoryAction.NOTED}
    body = {
        "delivery_id": delivery_id,
        "event": event,
        "occurred_at": as_json_value(entry.created_at),
        "isp_id": isp_id,
        "ticket_id": entry.ticket_id,
        "data": data,
    }
    return json.dumps(body, separators=(",", ":")).encode()


def attempt(work: Claim) -> int | None:
    """Make one attempt (no transaction open meanwhile) and record it; the status code."""
    status_code = post(work)
    record(work, status_code)
    return status_code


def post(work: Claim) -> int | None:
    """POST the event; the receiver's status code, or None (no answer in time, or a host it
    must not call). WEBHOOK_TIMEOUT bounds the whole attempt, the host's lookup included, and
    only the status line is read: a redirect is an answer like any other, never followed."""
    config = current_app.config
    deadline = time.monotonic() + config["WEBHOOK_TIMEOUT"]
    try:
        destination = check_destination(
            work.url, config["WEBHOOK_ALLOW_PRIVATE"], timeout=config["WEBHOOK_TIMEOUT"]
        )
    except UnsafeDestination:
        return None  # the host now resolves somewhere it must not: never call it
    if destination.address is None:
        return None  # the host does not resolve (in time)
    timestamp = str(int(time.time()))
    headers = {
        "Host": destination.host
        if destination.port in (80, 443)
        else f"{destination.host}:{destination.port}",
        "Content-Type": "application/json",
        "Content-Length": str(len(work.body)),
        "User-Agent": "tickets-service-webhooks",
        "Connection": "close",
        "X-Tickets-Event": work.event,
        "X-Tickets-Delivery": work.delivery_id,
        "X-Tickets-Timestamp": timestamp,
        "X-Tickets-Signature": sign(work.secret, timestamp, work.body),
    }
    head = f"POST {destination.target} HTTP/1.1\r\n"
    head += "".join(f"{name}: {value}\r\n" for name, value in headers.items()) + "\r\n"
    try:
        return _exchange(destination, head.encode("latin-1") + work.body, deadline)
    except (OSError, ValueError):
        return None


def _exchange(destination: Destination, request: bytes, deadline: float) -> int | None:
    """Send the request to the checked address and read the status line, by `deadline` (a
    receiver that trickles its answer does not hold the thread longer)."""

    def remaining() -> float:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("webhook attempt timed out")
        return left

    with socket.create_connection(
        (destination.address, destination.port), timeout=remaining()
    ) as raw:
        sock = raw
        if destination.scheme == "https":
            context = ssl.create_default_context()
            sock = context.wrap_socket(raw, server_hostname=destination.host)
        sock.settimeout(remaining())
        sock.sendall(request)
        received = b""
        while b"\r\n" not in received and len(received) < 1024:
            sock.settimeout(remaining())
            chunk = sock.recv(1024)
            if not chunk:
                break
            received += chunk
    match = re.match(rb"HTTP/1\.[01] ([1-5][0-9]{2}) ", received)
    return int(match[1]) if match else None


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
    if beyond < 0 or (succeeded_at is not None and _utc(succeeded_at) > now - CIRCUIT_WINDOW):
        return
    pause = min(CIRCUIT_PAUSE * 2 ** min(beyond, 10), CIRCUIT_LONGEST_PAUSE)
    db.session.execute(
        endpoints.update().where(endpoints.c.id == endpoint_id).values(paused_until=now + pause)
    )
    if paused_until is None or _utc(paused_until) <= now:
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
