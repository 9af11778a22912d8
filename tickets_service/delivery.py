"""The webhook worker: fans ticket events out to the ISPs' endpoints and delivers them, signed.

The outbox is the ticket history: every change writes its entry in the change's transaction,
and this worker claims entries not yet dispatched with FOR UPDATE SKIP LOCKED, so several
workers share the work and a worker killed mid-batch leaves its rows to the next (its open
transaction dies with it). Each delivery is tried, retried with the same delivery id after a
growing, jittered delay, and marked failed after MAX_TRIES.
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
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, timedelta
from urllib.parse import urlsplit

import click
from flask import current_app
from flask.cli import AppGroup
from sqlalchemy import select
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


class UnsafeDestination(ValueError):
    """A webhook URL the service must not (or cannot) call."""


@dataclass(frozen=True)
class Destination:
    """Where a webhook URL points: scheme, host, port, path, and the address checked."""

    scheme: str
    host: str
    port: int
    target: str
    address: str | None  # None when the host did not resolve at registration


def _resolve(host: str) -> list:
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError):
        return []
    return [ipaddress.ip_address(info[4][0].split("%")[0]) for info in infos]


def _internal(address) -> bool:
    """Private, loopback, link-local or otherwise not on the public internet (100.64/10 too),
    or an IPv6 address that carries such an IPv4 one to its host."""
    return any(
        a.is_loopback or a.is_private or a.is_link_local or not a.is_global
        for a in (address, *_carried(address))
    )


NAT64 = ipaddress.ip_network("64:ff9b::/96")  # the well-known prefix (RFC 6052)


def _carried(address) -> list:
    """The IPv4 address an IPv6 one reaches through a translator or tunnel: mapped (::ffff:),
    6to4 (2002::/16) and NAT64 (64:ff9b::/96)."""
    if address.version != 6:
        return []
    carried = [address.ipv4_mapped, address.sixtofour]
    if address in NAT64:
        carried.append(ipaddress.IPv4Address(int(address) & 0xFFFF_FFFF))
    return [a for a in carried if a is not None]


def check_destination(url: str, allow_private: bool) -> Destination:
    """https to a public host; http, or an internal host (private, loopback, link-local,
    carrier-grade NAT...), only when allow_private (tests, on-premises). Anything else, or a
    URL that cannot be called, raises UnsafeDestination. Returns the address to connect to,
    so the check and the connection see the same host (no DNS rebinding in between)."""
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        raise UnsafeDestination("The port must be a number from 1 to 65535.") from None
    if parts.scheme not in {"https", "http"} or not parts.hostname:
        raise UnsafeDestination("Use an https:// URL with a host.")
    if parts.username or parts.password:
        raise UnsafeDestination("Put no credentials in the URL; verify the signature instead.")
    host = parts.hostname
    literal = host.startswith("[") or _is_address(host)
    if not literal and not _HOSTNAME.fullmatch(host):
        raise UnsafeDestination("The host is not a valid host name.")
    if any(c in parts.path + parts.query for c in " \t\r\n"):
        raise UnsafeDestination("Encode spaces and control characters in the URL.")
    addresses = _resolve(host)
    if any(a.is_multicast or a.is_unspecified for a in addresses):
        raise UnsafeDestination("This address cannot receive webhooks.")
    internal = [a for a in addresses if _internal(a)]
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


def new_delivery(endpoint_id: int, history_id: int, event: str, now) -> WebhookDelivery:
    return WebhookDelivery(
        delivery_id=str(uuid.uuid4()),
        endpoint_id=endpoint_id,
        history_id=history_id,
        event=event,
        status=DeliveryStatus.PENDING,
        attempts=0,
        next_attempt_at=now,
    )


# --- Delivery -------------------------------------------------------------------------------


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The X-Tickets-Signature value: HMAC-SHA256 of "<timestamp>.<body>"."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def payload(delivery: WebhookDelivery, entry: TicketHistory, isp_id: int) -> bytes:
    data = {"field": entry.field, "old": entry.old, "new": entry.new, "user_id": entry.user_id}
    if delivery.event == "ticket.replied":
        data = {"user_id": entry.user_id, "internal": entry.action == HistoryAction.NOTED}
    body = {
        "delivery_id": delivery.delivery_id,
        "event": delivery.event,
        "occurred_at": as_json_value(entry.created_at),
        "isp_id": isp_id,
        "ticket_id": entry.ticket_id,
        "data": data,
    }
    return json.dumps(body, separators=(",", ":")).encode()


def deliver_one() -> bool:
    """Try the most overdue pending delivery once; False when none is due."""
    now = utcnow()
    delivery = db.session.scalar(
        select(WebhookDelivery)
        .where(
            WebhookDelivery.status == DeliveryStatus.PENDING,
            WebhookDelivery.next_attempt_at <= now,
        )
        .order_by(WebhookDelivery.next_attempt_at, WebhookDelivery.id)
        .limit(1)
        .with_for_update(skip_locked=True)
    )
    if delivery is None:
        db.session.rollback()
        return False
    endpoint = db.session.get(WebhookEndpoint, delivery.endpoint_id)
    entry = db.session.get(TicketHistory, delivery.history_id)
    isp_id = db.session.scalar(select(Ticket.isp_id).where(Ticket.id == entry.ticket_id))
    status_code = post(endpoint, delivery, payload(delivery, entry, isp_id))
    record_attempt(delivery, status_code)
    db.session.commit()
    return True


def post(endpoint: WebhookEndpoint, delivery: WebhookDelivery, body: bytes) -> int | None:
    """POST the event; the receiver's status code, or None (no answer in time, or a host it
    must not call). WEBHOOK_TIMEOUT bounds the whole attempt, and only the status line is
    read: a redirect is an answer like any other, never followed."""
    config = current_app.config
    try:
        destination = check_destination(endpoint.url, config["WEBHOOK_ALLOW_PRIVATE"])
    except UnsafeDestination:
        return None  # the host now resolves somewhere it must not: never call it
    if destination.address is None:
        return None  # the host does not resolve
    timestamp = str(int(time.time()))
    headers = {
        "Host": destination.host
        if destination.port in (80, 443)
        else f"{destination.host}:{destination.port}",
        "Content-Type": "application/json",
        "Content-Length": str(len(body)),
        "User-Agent": "tickets-service-webhooks",
        "Connection": "close",
        "X-Tickets-Event": delivery.event,
        "X-Tickets-Delivery": delivery.delivery_id,
        "X-Tickets-Timestamp": timestamp,
        "X-Tickets-Signature": sign(endpoint.secret, timestamp, body),
    }
    head = f"POST {destination.target} HTTP/1.1\r\n"
    head += "".join(f"{name}: {value}\r\n" for name, value in headers.items()) + "\r\n"
    try:
        return _exchange(destination, head.encode("latin-1") + body, config["WEBHOOK_TIMEOUT"])
    except (OSError, ValueError):
        return None


def _exchange(destination: Destination, request: bytes, timeout: float) -> int | None:
    """Send the request to the checked address and read the status line, within `timeout`
    seconds in all (a receiver that trickles its answer does not hold the worker longer)."""
    deadline = time.monotonic() + timeout

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


def record_attempt(delivery: WebhookDelivery, status_code: int | None) -> None:
    """Note the try; a 2xx is delivered, anything else is retried later or, after MAX_TRIES,
    failed."""
    now = utcnow()
    delivery.attempts += 1
    if status_code is not None and 200 <= status_code < 300:
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


def run(once: bool = False, idle_seconds: float = 1.0, should_stop=lambda: False) -> int:
    """Dispatch and deliver until stopped (or, with `once`, until nothing is due); returns the
    number of delivery attempts made."""
    attempts, unreachable = 0, False
    while not should_stop():
        try:
            dispatched = dispatch()
            delivered = deliver_one()
        except OperationalError as err:
            # The database restarted or is unreachable: what was claimed is unclaimed with the
            # dead transaction. Say so once, wait, then carry on (a fresh connection next time).
            discard_transaction()
            if not unreachable:
                log.warning("webhooks: database unavailable (%s); retrying", type(err).__name__)
            unreachable = True
            time.sleep(idle_seconds)
            continue
        if unreachable:
            log.warning("webhooks: database available again")
            unreachable = False
        attempts += delivered
        if not dispatched and not delivered:
            if once:
                return attempts
            time.sleep(idle_seconds)
    return attempts


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
