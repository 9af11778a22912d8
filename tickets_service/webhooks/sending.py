"""Sending one delivery: signed, to the address its URL was checked to, within WEBHOOK_TIMEOUT
in all (the lookup of the host included), reading no more than the status line."""

import hashlib
import hmac
import re
import socket
import ssl
import time
from dataclasses import dataclass

from flask import current_app

from .destinations import Destination, UnsafeDestination, check_destination


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


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The X-Tickets-Signature value: HMAC-SHA256 of "<timestamp>.<body>"."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


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
