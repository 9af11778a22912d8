"""Issue 3, point 8: two gunicorn instances on one database share everything that matters.

Starts real gunicorn processes on loopback ports; every wait is bounded.
"""

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from conftest import JWT_SECRET, PASSWORD

ROOT = Path(__file__).resolve().parent.parent
GUNICORN = Path(sys.executable).parent / "gunicorn"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def call(base, method, path, body=None, token=None):
    """One HTTP request; returns (status, parsed JSON body)."""
    headers = {"Accept": "application/json"}
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(base + path, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def wait_until_up(base: str, process: subprocess.Popen, seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"gunicorn exited with {process.returncode}")
        try:
            with urllib.request.urlopen(base + "/healthz", timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"gunicorn at {base} did not answer within {seconds}s")


@pytest.fixture(scope="module")
def instances(app, db_url, tmp_path_factory):
    """Two gunicorn instances (one worker each) on the test database; yields their base URLs."""
    env = {
        **os.environ,
        "DATABASE_URL": db_url,
        "JWT_SECRET_KEY": JWT_SECRET,
        "WEB_CONCURRENCY": "1",
        "FLASK_DEBUG": "",
        "PORT": "",
    }
    logs = tmp_path_factory.mktemp("gunicorn")
    processes, bases = [], []
    try:
        for n in range(2):
            port = free_port()
            log = open(logs / f"gunicorn-{n}.log", "wb")  # noqa: SIM115 - closed below
            process = subprocess.Popen(
                [
                    str(GUNICORN),
                    "--config",
                    "gunicorn.conf.py",
                    "--bind",
                    f"127.0.0.1:{port}",
                    "wsgi:app",
                ],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            processes.append((process, log))
            bases.append(f"http://127.0.0.1:{port}")
        for (process, _log), base in zip(processes, bases, strict=True):
            wait_until_up(base, process)
        yield bases
    finally:
        for process, log in processes:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)
            log.close()


def test_token_and_tickets_work_across_instances(instances, admin, make_subscriber):
    first, second = instances
    subscriber_id = make_subscriber(name="John Doe")

    status, body = call(
        first, "POST", "/api/v1/auth/login", {"email": admin.email, "password": PASSWORD}
    )
    assert status == 200
    token = body["data"]["access_token"]

    status, body = call(second, "GET", "/api/v1/auth/me", token=token)
    assert (status, body["data"]["id"]) == (200, admin.id)

    status, body = call(
        first,
        "POST",
        "/api/v1/tickets",
        {
            "title": "Connection Issue",
            "description": "Cannot connect",
            "priority": 2,
            "subscriber_id": subscriber_id,
        },
        token=token,
    )
    assert status == 201
    ticket_id = body["data"]["id"]

    status, body = call(second, "GET", f"/api/v1/tickets/{ticket_id}", token=token)
    assert (status, body["data"]["subscriber_name"]) == (200, "John Doe")

    status, body = call(
        second, "POST", f"/api/v1/tickets/{ticket_id}/reply", {"message": "On it."}, token=token
    )
    assert (status, body["message"]) == (201, "Reply added successfully")

    status, body = call(
        second, "PUT", f"/api/v1/tickets/{ticket_id}/status", {"status": 1}, token=token
    )
    assert (status, body["message"]) == (200, "Ticket status updated successfully")

    status, body = call(first, "GET", f"/api/v1/tickets/{ticket_id}", token=token)
    assert status == 200
    assert body["data"]["status"] == 1
    assert [reply["message"] for reply in body["data"]["replies"]] == ["On it."]


@pytest.mark.parametrize("authenticated", [False, True])
def test_oversized_body_gets_the_413_envelope_over_real_http(instances, admin, authenticated):
    """The body is read before any early answer, so the client sees our 413, not a reset."""
    headers = {"Content-Type": "application/json", **(admin.headers if authenticated else {})}
    request = urllib.request.Request(
        instances[0] + "/api/v1/tickets", data=b"x" * (10 * 1024 * 1024), headers=headers
    )
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request, timeout=30)
    assert caught.value.code == 413
    assert json.loads(caught.value.read()) == {
        "success": False,
        "message": "Request body too large.",
    }


def test_small_body_with_an_early_401_is_answered_cleanly(instances):
    status, body = call(instances[1], "POST", "/api/v1/tickets", {"title": "x" * 500_000})
    assert status == 401
    assert body["success"] is False
