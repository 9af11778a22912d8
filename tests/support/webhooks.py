"""Webhooks from the receiving end: one receiver on 127.0.0.1 that records what it gets and
answers as planned, endpoints that never answer, the documented signature check, and one pass
of the worker."""

import contextlib
import hashlib
import hmac
import json
import random
import socket
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import NamedTuple

from tickets_service.webhooks.worker import run as run_worker

from .database import session


def work(app) -> int:
    """One worker pass (`webhooks work --once`): dispatch and deliver until nothing is due;
    the number of delivery attempts made."""
    with session(app):
        return run_worker(once=True)


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


@dataclass(frozen=True)
class Accepted:
    """A delivery the receiver took (answered 2xx, or was about to when the sender gave up)."""

    path: str
    delivery_id: str
    event: str
    body: dict


class Slow(NamedTuple):
    """A planned answer: sleep this long (past the worker's timeout), then 200."""

    seconds: float


class Trickle(NamedTuple):
    """A planned answer: 200, its status line sent a byte every `interval` seconds (each read
    is quick, the whole answer is not)."""

    lines: int
    interval: float


class Redirect(NamedTuple):
    """A planned answer: 302 to another path of the receiver."""

    path: str


@dataclass
class Receiver:
    """A webhook receiver on 127.0.0.1, in threads. It records every request (`received`) and
    answers it with the next planned answer (a status code, Slow, Trickle or Redirect) while
    `plan` has one; otherwise with what its settings say: `fail_first` fails the first one or
    two tries of every delivery id with 500, `slow_share` of the requests sleep 0.3-1.5 s, every
    request waits until `hold_until` (a time.monotonic() value), and with `secrets` (path ->
    the endpoint's secret) each signature is checked and a bad one recorded in `problems`.
    What it took is in `accepted`; what happened, counted in `stats`."""

    fail_first: bool = False
    slow_share: float = 0.0
    seed: int = 0
    secrets: dict = field(default_factory=dict)
    hold_until: float = 0.0
    plan: list = field(default_factory=list)
    received: list = field(default_factory=list)
    accepted: list = field(default_factory=list)
    problems: list = field(default_factory=list)
    stats: Counter = field(default_factory=Counter)
    tries: Counter = field(default_factory=Counter)

    def __post_init__(self):
        self._lock = threading.Lock()
        self._random = random.Random(self.seed)
        self._failures: dict = {}
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep the test output clean
                pass

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                headers = dict(self.headers.items())
                with receiver._lock:
                    receiver.received.append(Received(self.command, self.path, headers, body))
                    planned = receiver.plan.pop(0) if receiver.plan else None
                if planned is None:
                    status = receiver.take(self.path, headers, body)
                else:
                    status = receiver.planned(self, planned)
                if status is None:
                    return
                try:
                    self.send_response(status)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                except OSError:  # the sender gave up (its timeout): it will try again
                    receiver.count("answer_lost")

            do_GET = do_PUT = do_POST

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def base(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def url(self, path: str = "/hook") -> str:
        return self.base + path

    def at(self, path: str) -> list[Received]:
        with self._lock:
            return [request for request in self.received if request.path == path]

    def start(self) -> "Receiver":
        self.thread.start()
        return self

    def stop(self) -> None:
        if self.thread.is_alive():
            self.server.shutdown()
            self.thread.join(timeout=5)
        self.server.server_close()

    def count(self, name: str) -> None:
        with self._lock:
            self.stats[name] += 1

    def planned(self, handler, answer) -> int | None:
        """Answer as planned (None: already answered)."""
        if isinstance(answer, Trickle):
            status = b"HTTP/1.1 200 OK\r\n"
            for n in range(answer.lines):
                handler.wfile.write(status[n : n + 1])
                handler.wfile.flush()
                time.sleep(answer.interval)
            handler.wfile.write(status[answer.lines :])
            handler.wfile.write(b"Content-Length: 0\r\nConnection: close\r\n\r\n")
            handler.wfile.flush()
            handler.close_connection = True
            return None
        if isinstance(answer, Slow):
            time.sleep(answer.seconds)
            return 200
        if isinstance(answer, Redirect):
            handler.send_response(302)
            handler.send_header("Location", self.url(answer.path))
            handler.send_header("Content-Length", "0")
            handler.end_headers()
            return None
        return answer

    def take(self, path: str, headers: dict, body: bytes) -> int:
        """Decide the answer to one POST by the receiver's settings (sleeping first when this
        one is slow)."""
        held = self.hold_until - time.monotonic()
        if held > 0:
            self.count("held")
            time.sleep(held)
        headers = {name.lower(): value for name, value in headers.items()}
        delivery_id = headers.get("x-tickets-delivery", "")
        with self._lock:
            self.stats["requests"] += 1
            self.tries[delivery_id] += 1
            if delivery_id not in self._failures:
                self._failures[delivery_id] = self._random.choice((1, 2)) if self.fail_first else 0
            fail = self.tries[delivery_id] <= self._failures[delivery_id]
            slow = self.slow_share and self._random.random() < self.slow_share
            delay = self._random.uniform(0.3, 1.5) if slow else 0
        if delay:
            self.count("slow")
            time.sleep(delay)
        problem = self.check(path, headers, body) if self.secrets else None
        if problem:
            with self._lock:
                self.problems.append(f"{problem} (delivery {delivery_id or '?'} to {path})")
            return 400
        if fail:
            self.count("failed_on_purpose")
            return 500
        with self._lock:
            self.accepted.append(
                Accepted(path, delivery_id, headers.get("x-tickets-event", ""), json.loads(body))
            )
        return 200

    def check(self, path: str, headers: dict, body: bytes) -> str | None:
        """What is wrong with this delivery (unknown path, signature, headers vs body)."""
        secret = self.secrets.get(path)
        if secret is None:
            return "unknown path"
        timestamp = headers.get("x-tickets-timestamp", "")
        signature = headers.get("x-tickets-signature", "")
        mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
        if not hmac.compare_digest(signature, "sha256=" + mac.hexdigest()):
            return "bad signature"
        if not timestamp.isdigit() or abs(time.time() - int(timestamp)) > 300:
            return f"stale timestamp {timestamp!r}"
        try:
            payload = json.loads(body)
        except ValueError:
            return "body is not JSON"
        if payload.get("delivery_id") != headers.get("x-tickets-delivery"):
            return "X-Tickets-Delivery differs from the body's delivery_id"
        if payload.get("event") != headers.get("x-tickets-event"):
            return "X-Tickets-Event differs from the body's event"
        return None


class Silent:
    """Endpoints that take the connection and the request, then never answer: it holds each
    connection until stopped, and counts how many it held at once, in all and per path."""

    def __init__(self):
        self.server = socket.create_server(("127.0.0.1", 0), backlog=128)
        self.held: list[socket.socket] = []
        self.now: dict[str, int] = {}
        self.peak: dict[str, int] = {}
        self.peak_total = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.getsockname()[1]}{path}"

    def _accept(self):
        self.server.settimeout(0.1)
        while not self._stop.is_set():
            try:
                conn, _ = self.server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=self._hold, args=(conn,), daemon=True).start()

    def _hold(self, conn: socket.socket):
        conn.settimeout(5)
        head = b""
        try:
            while b"\r\n\r\n" not in head:
                chunk = conn.recv(4096)
                if not chunk:
                    return
                head += chunk
        except OSError:
            return
        path = head.split(b" ")[1].decode()
        with self._lock:
            self.held.append(conn)
            self.now[path] = self.now.get(path, 0) + 1
            self.peak[path] = max(self.peak.get(path, 0), self.now[path])
            self.peak_total = max(self.peak_total, sum(self.now.values()))
        conn.settimeout(None)
        with contextlib.suppress(OSError):
            conn.recv(1)  # until the sender gives up and closes
        with self._lock:
            self.now[path] -= 1

    def stop(self):
        self._stop.set()
        self.server.close()
        for conn in self.held:
            conn.close()
