"""What the load test under faults runs besides its clients: real processes (gunicorn
instances and webhook workers, the workers kept alive the way a PaaS would), a webhook receiver
that fails and dawdles on purpose and checks every signature, and the database "restart".

Every wait is bounded; every process, thread, socket and file is closed again.
"""

import hashlib
import hmac
import json
import random
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import requests
from sqlalchemy import create_engine, text

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def tail(path: Path, lines: int = 30) -> str:
    """The end of a log, to explain a process that died."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


# --- Processes ------------------------------------------------------------------------------


@dataclass
class Process:
    name: str
    argv: list
    log_path: Path
    popen: subprocess.Popen
    log: object


class Processes:
    """Subprocesses started from the project root, each logging to its own file."""

    def __init__(self, logs: Path, env: dict):
        self.logs, self.env = logs, env
        self.running: list[Process] = []
        self._started = Counter()

    def start(self, name: str, argv: list, **env) -> Process:
        self._started[name] += 1
        log_path = self.logs / f"{name}-{self._started[name]}.log"
        log = open(log_path, "wb")  # noqa: SIM115 - closed in stop()
        popen = subprocess.Popen(
            argv, cwd=ROOT, env={**self.env, **env}, stdout=log, stderr=subprocess.STDOUT
        )
        process = Process(name, argv, log_path, popen, log)
        self.running.append(process)
        return process

    @staticmethod
    def stop(process: Process) -> None:
        if process.popen.poll() is None:
            process.popen.terminate()
            try:
                process.popen.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.popen.kill()
                process.popen.wait(timeout=5)
        process.log.close()

    def stop_all(self) -> None:
        for process in reversed(self.running):
            self.stop(process)
        self.running.clear()


def start_gunicorn(processes: Processes, name: str, workers: int, threads: int) -> tuple:
    """A gunicorn instance of the app on a free loopback port: (its base URL, the process)."""
    port = free_port()
    argv = [str(BIN / "gunicorn"), "--config", "gunicorn.conf.py", "--bind", f"127.0.0.1:{port}"]
    argv += ["--workers", str(workers), "--threads", str(threads), "wsgi:app"]
    return f"http://127.0.0.1:{port}", processes.start(name, argv)


def wait_until_up(base: str, process: Process, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.popen.poll() is not None:
            raise RuntimeError(f"{process.name} exited:\n{tail(process.log_path)}")
        try:
            requests.get(base + "/readyz", timeout=1).close()
            return
        except requests.RequestException:
            time.sleep(0.1)
    raise RuntimeError(f"{process.name} at {base} did not answer within {seconds}s")


class WorkerSupervisor:
    """Runs `count` webhook workers and, like a PaaS (or systemd) would, starts a new one when
    one exits; every exit is recorded with the end of its log."""

    def __init__(self, processes: Processes, count: int, idle: float = 0.2):
        self.processes, self.count = processes, count
        self.argv = [str(BIN / "flask"), "--app", "wsgi", "webhooks", "work", "--idle", str(idle)]
        self.workers: list[Process] = []
        self.exits: list[dict] = []
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="worker-supervisor", daemon=True)

    def start(self) -> None:
        for n in range(self.count):
            self.workers.append(self._start(f"worker{n}"))
        self._thread.start()

    def _start(self, name: str) -> Process:
        # Their connections carry the name (libpq reads PGAPPNAME), so we can see them.
        return self.processes.start(name, self.argv, PGAPPNAME=f"webhook-{name}")

    def wait_until_connected(self, engine, seconds: float = 60) -> None:
        """Wait until every worker has reached the database (they start slowly on a busy
        machine, and the load should not run without them)."""
        query = text(
            "SELECT count(DISTINCT application_name) FROM pg_stat_activity"
            " WHERE datname = current_database() AND application_name LIKE 'webhook-worker%'"
        )
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            with engine.connect() as connection:
                if connection.execute(query).scalar_one() >= self.count:
                    return
            for worker in self.workers:
                if worker.popen.poll() is not None:
                    raise RuntimeError(f"{worker.name} exited:\n{tail(worker.log_path)}")
            time.sleep(0.1)
        raise RuntimeError(f"the webhook workers did not connect within {seconds}s")

    def _watch(self) -> None:
        while not self._stopping.wait(0.2):
            for index, worker in enumerate(self.workers):
                code = worker.popen.poll()
                if code is None:
                    continue
                worker.log.flush()
                self.exits.append(
                    {
                        "worker": worker.log_path.name,
                        "returncode": code,
                        "at": time.monotonic(),
                        "log": tail(worker.log_path, 200),
                    }
                )
                self.workers[index] = self._start(worker.name)

    def stop(self) -> None:
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        for worker in self.workers:
            self.processes.stop(worker)


# --- The database "restart" -----------------------------------------------------------------


def terminate_other_connections(url: str) -> int:
    """Kill every other session on the database, as a server restart or failover would."""
    engine = create_engine(url)
    try:
        with engine.begin() as connection:
            return connection.execute(
                text(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            ).scalar_one()
    finally:
        engine.dispose()


# --- The webhook receiver -------------------------------------------------------------------


@dataclass
class Accepted:
    """A delivery the receiver took (answered 2xx, or was about to when the sender gave up)."""

    path: str
    delivery_id: str
    event: str
    body: dict


@dataclass
class Receiver:
    """An HTTP receiver on 127.0.0.1 (one path per ISP, each with that endpoint's secret).

    It fails the first 1 or 2 tries of every delivery id with 500, sleeps 0.3-1.5 s on about
    `slow_share` of the requests, checks every signature, and records what it accepted. Until
    `hold_until` (a time.monotonic() value) it keeps every request waiting, so that the
    senders are in the middle of a delivery when that matters.
    """

    slow_share: float = 0.1
    seed: int = 0
    secrets: dict = field(default_factory=dict)  # path -> secret
    accepted: list = field(default_factory=list)
    problems: list = field(default_factory=list)
    tries: Counter = field(default_factory=Counter)
    planned_failures: dict = field(default_factory=dict)
    stats: Counter = field(default_factory=Counter)
    hold_until: float = 0.0

    def __post_init__(self):
        self._lock = threading.Lock()
        self._random = random.Random(self.seed)
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                status = receiver.take(self.path, dict(self.headers.items()), body)
                try:
                    self.send_response(status)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                except OSError:  # the sender gave up (its timeout): it will try again
                    receiver.count("answer_lost")

            def log_message(self, *_args):
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> "Receiver":
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join(timeout=5)
        self._server.server_close()

    def count(self, name: str) -> None:
        with self._lock:
            self.stats[name] += 1

    def take(self, path: str, headers: dict, body: bytes) -> int:
        """Decide the answer to one POST (sleeping first when this one is slow)."""
        held = self.hold_until - time.monotonic()
        if held > 0:
            self.count("held")
            time.sleep(held)
        headers = {name.lower(): value for name, value in headers.items()}
        delivery_id = headers.get("x-tickets-delivery", "")
        with self._lock:
            self.stats["requests"] += 1
            self.tries[delivery_id] += 1
            attempt = self.tries[delivery_id]
            if delivery_id not in self.planned_failures:
                self.planned_failures[delivery_id] = self._random.choice((1, 2))
            fail = attempt <= self.planned_failures[delivery_id]
            delay = self._random.uniform(0.3, 1.5) if self._random.random() < self.slow_share else 0
        if delay:
            self.count("slow")
            time.sleep(delay)
        problem = self.check(path, headers, body)
        if problem:
            with self._lock:
                self.problems.append(f"{problem} (delivery {delivery_id or '?'} to {path})")
            return 400
        if fail:
            self.count("failed_on_purpose")
            return 500
        payload = json.loads(body)
        with self._lock:
            self.accepted.append(Accepted(path, delivery_id, headers["x-tickets-event"], payload))
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
