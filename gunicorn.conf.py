"""Gunicorn settings, read from the environment the way PaaS hosts set it."""

import math
import os
from pathlib import Path

from gunicorn import util

from tickets_service.config import ConfigError, check_secrets, from_environment, integer
from tickets_service.serving import write_error_as_envelope


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
workers = _setting("WEB_CONCURRENCY", usable_cpus() * 2 + 1)
# Threaded workers that read each request in full before a thread serves it, so slow clients
# cost a socket, not a worker (tickets_service/serving.py). Each thread serves one request at
# a time on its own database connection (DB_POOL_SIZE follows WEB_THREADS).
worker_class = "tickets_service.serving.BufferingWorker"
threads = _setting("WEB_THREADS", 1)
# A worker whose main loop has not reported for this long is stuck and replaced (a request's
# own time is bounded by DB_STATEMENT_TIMEOUT_MS and the read and send timeouts).
timeout = _setting("GUNICORN_TIMEOUT", 30)
graceful_timeout = 20
keepalive = 5
# Our own JSON request log goes to stdout; gunicorn's access log would repeat it.
accesslog = None
errorlog = "-"
# No control socket: the home folder may be read-only or shared on a PaaS dyno.
control_socket_disable = True


def on_starting(server) -> None:
    """Before the workers fork. A setting the app would refuse stops gunicorn here, with its
    one-line reason, rather than in every worker as it boots, again and again. The workers
    inherit the envelope for gunicorn's own errors."""
    try:
        check_secrets(from_environment())
    except ConfigError as err:
        raise SystemExit(f"tickets-service: configuration error: {err}") from None
    util.write_error = write_error_as_envelope
