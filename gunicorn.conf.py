"""Gunicorn settings, read from the environment the way PaaS hosts set it."""

import multiprocessing
import os

# A PaaS hands out PORT and expects us on every interface; locally, stay on loopback.
_port = os.environ.get("PORT")
bind = os.environ.get("GUNICORN_BIND") or (f"0.0.0.0:{_port}" if _port else "127.0.0.1:8000")
workers = int(os.environ.get("WEB_CONCURRENCY") or multiprocessing.cpu_count() * 2 + 1)
# A request that takes longer than this is stuck, not slow: the worker is replaced.
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "30"))
graceful_timeout = 20
keepalive = 5
# Our own JSON request log goes to stdout; gunicorn's access log would repeat it.
accesslog = None
errorlog = "-"
# No control socket: the home folder may be read-only or shared on a PaaS dyno.
control_socket_disable = True
