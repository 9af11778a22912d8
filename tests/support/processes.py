"""Real processes for the tests that need them: gunicorn instances (as the Procfile runs them)
and webhook workers kept alive the way a PaaS would, each logging to its own file, raw HTTP
exchanges, and the database "restart". Every wait is bounded; every process, thread and file
is closed again."""

import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import requests
from sqlalchemy import create_engine, text

from .client import JWT_SECRET

ROOT = Path(__file__).resolve().parent.parent.parent
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


class Background:
    """A daemon thread running self._run() from `with` (or __enter__) until self._stop is set."""

    def __init__(self):
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *_exc):
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(10)


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


def service_env(db_url: str, **settings) -> dict:
    """This process's environment with the service's settings for a test instance (rate
    limits off unless `settings` turn them on: tests call far faster than people)."""
    service = {"DATABASE_URL": db_url, "JWT_SECRET_KEY": JWT_SECRET, "FLASK_DEBUG": "", "PORT": ""}
    service["RATE_LIMITS"] = "off"
    return {**os.environ, **service, "GUNICORN_BIND": "", **settings}


def start_gunicorn(processes: Processes, name: str, workers: int, threads: int = 1, **env) -> tuple:
    """A gunicorn instance of the app, as the Procfile runs it (its config file), on a free
    loopback port: (its base URL, the process)."""
    port = free_port()
    argv = [str(BIN / "gunicorn"), "--config", "gunicorn.conf.py", "--bind", f"127.0.0.1:{port}"]
    argv += ["--workers", str(workers), "--threads", str(threads), "wsgi:app"]
    return f"http://127.0.0.1:{port}", processes.start(name, argv, **env)


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


def serve(processes: Processes, count: int = 1, workers: int = 1, threads: int = 1) -> list:
    """`count` gunicorn instances (web0, web1...), once each answers /readyz: their base URLs."""
    instances = [start_gunicorn(processes, f"web{n}", workers, threads) for n in range(count)]
    for base, process in instances:
        wait_until_up(base, process)
    return [base for base, _process in instances]


@contextmanager
def gunicorns(logs: Path, env: dict, count: int = 1, workers: int = 1):
    """serve() for a `with` block, with its own logs folder; every instance stops after it."""
    processes = Processes(logs, env)
    try:
        yield serve(processes, count, workers)
    finally:
        processes.stop_all()


class WorkerSupervisor(Background):
    """Runs `count` webhook workers and, like a PaaS (or systemd) would, starts a new one when
    one exits; every exit is recorded with the end of its log."""

    def __init__(self, processes: Processes, count: int, idle: float = 0.2):
        super().__init__()
        self.processes, self.count = processes, count
        self.argv = [str(BIN / "flask"), "--app", "wsgi", "webhooks", "work", "--idle", str(idle)]
        self.workers: list[Process] = []
        self.exits: list[dict] = []

    def start(self) -> None:
        self.workers += [self._start(f"worker{n}") for n in range(self.count)]
        self.__enter__()

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

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            for index, worker in enumerate(self.workers):
                code = worker.popen.poll()
                if code is None:
                    continue
                worker.log.flush()
                log = tail(worker.log_path, 200)
                self.exits.append({"worker": worker.log_path.name, "returncode": code, "log": log})
                self.workers[index] = self._start(worker.name)

    def stop(self) -> None:
        self.__exit__()
        for worker in self.workers:
            self.processes.stop(worker)


# --- Raw HTTP -------------------------------------------------------------------------------


def address(base: str) -> tuple[str, int]:
    host, port = base.removeprefix("http://").split(":")
    return host, int(port)


def read_all(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection."""
    answer = b""
    while chunk := sock.recv(65536):
        answer += chunk
    return answer


def exchange(base: str, request: bytes) -> bytes:
    """Send bytes as they are (no client would send these) and read the answer to its end."""
    with socket.create_connection(address(base), timeout=10) as sock:
        sock.sendall(request)
        return read_all(sock)


def parse(answer: bytes) -> tuple[int, dict, object]:
    """A raw HTTP answer: (status, headers, JSON body)."""
    head, _, body = answer.partition(b"\r\n\r\n")
    status, *lines = head.decode("latin-1").split("\r\n")
    return int(status.split()[1]), dict(line.split(": ", 1) for line in lines), json.loads(body)


# --- The database "restart" -----------------------------------------------------------------


def terminate_other_connections(url: str) -> int:
    """Kill every other session on the database, as a server restart or failover would."""
    engine = create_engine(url)
    query = "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
    query += " WHERE datname = current_database() AND pid <> pg_backend_pid()"
    try:
        with engine.begin() as connection:
            return connection.execute(text(query)).scalar_one()
    finally:
        engine.dispose()
