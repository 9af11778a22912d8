"""Gunicorn settings, read from the environment the way PaaS hosts set it."""

import json
import math
import os
from pathlib import Path

from gunicorn import util

from tickets_service.config import ConfigError, check_secrets, from_environment, integer


def usable_cpus(cgroup: Path = Path("/sys/fs/cgroup")) -> int:
    """The CPUs this process may really use: its affinity, capped by a container's CPU quota
    (cgroup v2 cpu.max, or v1 cfs quota/period), not the host's count."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    try:
        quota, period = (cgroup / "cpu.max").read_text().split()[:2]
    except (OSError, ValueError):
        try:
            quota = (cgroup / "cpu" / "cpu.cfs_quota_us").read_text().strip()
            period = (cgroup / "cpu" / "cpu.cfs_period_us").read_text().strip()
        except OSError:
            return cpus
    if quota not in {"max", "-1"} and int(period) > 0:
        cpus = min(cpus, max(1, math.ceil(int(quota) / int(period))))
    return cpus


def _setting(name: str, default: int) -> int:
    """A number of at least 1 from the environment, read as the app reads its own; a bad one
    stops gunicorn at once, with one line that says which."""
    try:
        return integer(os.environ, name, default, minimum=1)
    except ConfigError as err:
        raise SystemExit(f"tickets-service: configuration error: {err}") from None


# A PaaS hands out PORT and expects us on every interface; locally, stay on loopback.
_port = os.environ.get("PORT")
bind = os.environ.get("GUNICORN_BIND") or (f"0.0.0.0:{_port}" if _port else "127.0.0.1:8000")
# Sync workers, one request at a time each (and one database connection: DB_POOL_SIZE).
workers = _setting("WEB_CONCURRENCY", usable_cpus() * 2 + 1)
# A request that takes longer than this is stuck, not slow: the worker is replaced.
timeout = _setting("GUNICORN_TIMEOUT", 30)
graceful_timeout = 20
keepalive = 5
# Our own JSON request log goes to stdout; gunicorn's access log would repeat it.
accesslog = None
errorlog = "-"
# No control socket: the home folder may be read-only or shared on a PaaS dyno.
control_socket_disable = True


def write_error_as_envelope(sock, status_int: int, reason: str, mesg: str) -> None:
    """Gunicorn's own answers (a request it cannot parse, a request line or headers over its
    limits) in the API's JSON envelope rather than an HTML page."""
    message = f"{reason}: {mesg}" if mesg else f"{reason}."
    body = json.dumps({"success": False, "message": message}).encode()
    head = (
        f"HTTP/1.1 {status_int} {reason}\r\n"
        "Connection: close\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    util.write_nonblock(sock, head.encode("latin-1") + body)


def on_starting(server) -> None:
    """Before the workers fork. A setting the app would refuse stops gunicorn here, with its
    one-line reason, rather than in every worker as it boots, again and again. The workers
    inherit the envelope for gunicorn's own errors."""
    try:
        check_secrets(from_environment())
    except ConfigError as err:
        raise SystemExit(f"tickets-service: configuration error: {err}") from None
    util.write_error = write_error_as_envelope
