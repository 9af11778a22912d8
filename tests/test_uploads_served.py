"""Uploads through gunicorn as the Procfile runs it (serving.py's worker): bodies far over
MAX_CONTENT_LENGTH reach the attachments routes, spooled to a temporary file as they arrive, so
a worker's memory stays flat; a file over ATTACHMENT_MAX_BYTES is refused when it passes the
limit, and a declared length beyond what the route takes at once, the rest never read."""

import hashlib
import os
import socket
import threading
import time
from pathlib import Path

import pytest
import requests
from support.client import create_ticket
from support.processes import address, gunicorns, service_env

from tickets_service.models import Attachment

pytestmark = pytest.mark.slow

MIB = 1024 * 1024
LIMIT = 10 * MIB  # ATTACHMENT_MAX_BYTES's default


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("served-attachments")


@pytest.fixture(scope="module")
def served(app, db_url, store, tmp_path_factory):
    """(base URL, the worker's pid) of one gunicorn worker, attachments under `store`."""
    logs = tmp_path_factory.mktemp("uploads")
    env = service_env(db_url, ATTACHMENT_DIR=str(store))
    with gunicorns(logs, env, workers=1) as [base]:
        yield base, worker_pid(base)


def worker_pid(base: str) -> int:
    """The pid of the gunicorn worker behind `base`: the child of the master this test
    process started."""
    port = base.rsplit(":", 1)[1].encode()
    parents = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                status = (entry / "status").read_text()
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            parent = int(status.split("\nPPid:\t")[1].split("\n")[0])
            parents[int(entry.name)] = (parent, port in cmdline)
    [master] = [pid for pid, (parent, ours) in parents.items() if ours and parent == os.getpid()]
    [worker] = [pid for pid, (parent, _ours) in parents.items() if parent == master]
    return worker


def rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


def assert_success(response: requests.Response, status: int) -> dict:
    assert response.status_code == status, response.text[:300]
    assert response.headers["Content-Type"] == "application/json"
    body = response.json()
    assert body["success"] is True
    return body


def png(size: int) -> bytes:
    head = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\1\0\0\0\1\x08\x06\0\0\0\x1f\x15\xc4\x89"
    return head + os.urandom(size - len(head))


def upload(base: str, account, ticket_id: int, *files, **options) -> requests.Response:
    return requests.post(
        f"{base}/api/v1/tickets/{ticket_id}/attachments",
        headers=account.headers,
        files=[("files", (name, content)) for name, content in files],
        timeout=60,
        **options,
    )


def test_a_file_of_the_limit_is_taken_through_gunicorn(served, client, staff, rows, store):
    base, _pid = served
    ticket_id = create_ticket(client, staff)
    content = png(LIMIT)

    body = assert_success(upload(base, staff, ticket_id, ("router.png", content)), 201)

    [row] = rows(Attachment)
    digest = hashlib.sha256(content).hexdigest()
    assert (body["data"][0]["id"], row["size"], row["sha256"]) == (row["id"], LIMIT, digest)
    assert (store / "1" / digest[:2] / digest).read_bytes() == content


def test_fifty_uploads_of_ten_mib_leave_the_workers_memory_flat(served, client, staff, rows):
    base, pid = served
    ticket_id = create_ticket(client, staff)
    assert_success(upload(base, staff, ticket_id, ("warm.png", png(LIMIT))), 201)
    before = rss(pid)
    samples: list[int] = []
    done = threading.Event()

    def sample():  # the worker's resident memory while the uploads go through it
        while not done.is_set():
            samples.append(rss(pid))
            time.sleep(0.002)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        for n in range(50):
            response = upload(base, staff, ticket_id, (f"photo-{n}.png", png(LIMIT)))
            assert response.status_code == 201, response.text
    finally:
        done.set()
        sampler.join()

    # 500 MiB went through, and the worker never held a file: a body read into memory takes
    # the whole 10 MiB at once while it is served. What moves is the spool's first MiB, the
    # parser's buffers, the allocator's and the database driver's own.
    assert len(samples) > 100
    assert max(samples) - before < 6 * MIB, (before, max(samples))
    assert len(rows(Attachment)) == 51


def raw_upload(base: str, account, ticket_id: int, declared: int, sent: bytes):
    """A multipart upload declaring `declared` bytes of body, of which `sent` goes out (as
    long as the server reads): the answer, and how much of the body the server took."""
    boundary = b"b0undary"
    head = (
        f"POST /api/v1/tickets/{ticket_id}/attachments HTTP/1.1\r\nHost: x\r\n"
        f"Authorization: {account.headers['Authorization']}\r\n"
        f"Content-Type: multipart/form-data; boundary={boundary.decode()}\r\n"
        f"Content-Length: {declared}\r\nConnection: close\r\n\r\n"
    ).encode()
    sock = socket.create_connection(address(base), timeout=30)
    sock.sendall(head)
    taken = 0
    sock.settimeout(0.5)
    try:
        for start in range(0, len(sent), 64 * 1024):
            chunk = sent[start : start + 64 * 1024]
            try:
                sock.sendall(chunk)
            except OSError:  # refused: the server stopped reading and closed
                break
            taken += len(chunk)
    finally:
        sock.settimeout(10)
        answer = b""
        try:
            while part := sock.recv(65536):
                answer += part
        except OSError:
            pass
        sock.close()
    return answer, taken


def test_a_file_over_the_limit_is_refused_as_it_passes_the_limit(served, client, staff, rows):
    base, _pid = served
    ticket_id = create_ticket(client, staff)
    part = (
        b'--b0undary\r\nContent-Disposition: form-data; name="files"; filename="big.png"\r\n'
        b"Content-Type: image/png\r\n\r\n"
    )
    body = part + png(3 * LIMIT)  # 30 MiB of file, declared in full

    answer, taken = raw_upload(base, staff, ticket_id, len(body) + 14, body)

    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert b'"success": false' in answer
    # Refused near the limit: most of the 30 MiB was never read (socket buffers aside).
    assert taken < LIMIT + 8 * MIB, taken
    assert rows(Attachment) == []


def test_a_declared_length_beyond_the_routes_limit_is_refused_before_its_body(
    served, client, staff, rows
):
    base, _pid = served
    ticket_id = create_ticket(client, staff)

    started = time.monotonic()
    answer, _taken = raw_upload(base, staff, ticket_id, 1024 * MIB, b"")

    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert time.monotonic() - started < 5
    assert rows(Attachment) == []


def test_a_chunked_upload_is_taken(served, client, staff, rows):
    base, _pid = served
    ticket_id = create_ticket(client, staff)
    content = png(3 * MIB)
    boundary = "chunky"
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="a.png"\r\n'
            "Content-Type: image/png\r\n\r\n"
        ).encode()
        + content
        + f"\r\n--{boundary}--\r\n".encode()
    )

    def pieces():
        for start in range(0, len(body), 256 * 1024):
            yield body[start : start + 256 * 1024]

    response = requests.post(
        f"{base}/api/v1/tickets/{ticket_id}/attachments",
        headers={**staff.headers, "Content-Type": f"multipart/form-data; boundary={boundary}"},
        data=pieces(),
        timeout=60,
    )

    assert_success(response, 201)
    [row] = rows(Attachment)
    assert row["sha256"] == hashlib.sha256(content).hexdigest()


def test_an_upload_then_an_ordinary_request_on_new_connections(served, client, staff):
    """The worker closes the connection after an upload; the next request is served."""
    base, _pid = served
    ticket_id = create_ticket(client, staff)
    with requests.Session() as session:
        first = session.post(
            f"{base}/api/v1/tickets/{ticket_id}/attachments",
            headers=staff.headers,
            files=[("files", ("a.txt", b"ping: 40% loss\n"))],
            timeout=30,
        )
        assert_success(first, 201)
        assert first.headers["Connection"] == "close"
        listed = session.get(
            f"{base}/api/v1/tickets/{ticket_id}/attachments", headers=staff.headers, timeout=30
        )
    assert [item["name"] for item in assert_success(listed, 200)["data"]] == ["a.txt"]


def test_the_subscribers_page_and_link_take_a_photo_through_gunicorn(
    served, client, staff, rows, make_subscriber
):
    base, _pid = served
    ticket_id = create_ticket(client, staff, subscriber_id=make_subscriber())
    link = client.post(
        f"/api/v1/tickets/{ticket_id}/subscriber-link", headers=staff.headers, json={}
    ).get_json()["data"]
    photo = png(2 * MIB)

    page = requests.post(
        f"{base}/t/{link['token']}",
        data={"message": "The lights, as asked."},
        files={"photo": ("lights.png", photo)},
        allow_redirects=False,
        timeout=30,
    )
    api = requests.post(
        f"{base}/api/v1/public/tickets/{link['token']}/attachments",
        files={"photo": ("again.png", photo[::-1][:1] + photo[1:])},
        timeout=30,
    )

    assert (page.status_code, page.headers["Location"]) == (303, f"/t/{link['token']}#latest")
    assert api.status_code == 422  # not a PNG any more: refused after the whole part came
    [row] = rows(Attachment)
    assert (row["name"], row["by_subscriber"], row["size"]) == ("lights.png", True, 2 * MIB)
