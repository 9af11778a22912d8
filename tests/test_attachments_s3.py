"""Attachments in an S3-compatible store (ATTACHMENT_S3_URL=s3://bucket/prefix): the core flow
of test_attachments.py against a real S3 API over HTTP, moto's server run as a subprocess
(boto3 is never mocked; it reads AWS_ENDPOINT_URL and the credentials from the environment when
the app makes its client). Objects are keyed <prefix>/<isp_id>/<sha[:2]>/<sha256>, whatever
the file's name: one per ISP and bytes, deleted with the last attachment that has them."""

import hashlib
import os
import socket
import subprocess
import sys
import time
import uuid

import pytest
from support.client import assert_error, assert_success
from support.files import png
from support.urls import ticket_url

from tickets_service.models import Attachment, AttachmentBlob

boto3 = pytest.importorskip("boto3", reason="boto3 is not installed: no S3 client")

ATTACHMENTS = "/api/v1/attachments"
PREFIX = "some/prefix"
BOUNDARY = "attachments-s3-test-boundary-Zq81Hh"
TEXT = b"Router log\n12:00 link down\n12:05 link up\n"
HTML = b"<html><body><script>alert(document.cookie)</script></body></html>"
MIB = 1024 * 1024


def sha(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


def key_of(isp_id: int, content: bytes, prefix: str = PREFIX) -> str:
    digest = sha(content)
    name = f"{isp_id}/{digest[:2]}/{digest}"
    return f"{prefix}/{name}" if prefix else name


# --- The S3 server -----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def s3_endpoint(tmp_path_factory):
    """moto's S3 server on a free port, for this module; stopped at its end."""
    try:
        import moto.server  # noqa: F401 (only to know it is there)
    except ImportError as err:
        pytest.skip(f"moto[server] is not importable ({err}): no S3 server to test against")
    port = free_port()
    log = tmp_path_factory.mktemp("moto") / "server.log"
    with open(log, "wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                pytest.skip(f"moto's server did not start: {log.read_text()[-500:]}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(f"moto's server is not listening after 30 s: {log.read_text()}")
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture
def bucket(s3_endpoint, monkeypatch):
    """A new empty bucket, and the environment boto3 takes its settings from (set before any
    app of the test is made)."""
    for name, value in {
        "AWS_ENDPOINT_URL": s3_endpoint,
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    name = f"attachments-{uuid.uuid4().hex[:12]}"
    boto3.client("s3").create_bucket(Bucket=name)
    return name


@pytest.fixture
def s3(bucket):
    """The test's own S3 client (the app has its own)."""
    assert os.environ["AWS_ENDPOINT_URL"].startswith("http://127.0.0.1:")
    return boto3.client("s3")


def object_keys(s3, bucket: str) -> list[str]:
    """Every key in the bucket, sorted."""
    answer = s3.list_objects_v2(Bucket=bucket)
    return sorted(item["Key"] for item in answer.get("Contents", []))


def object_bytes(s3, bucket: str, key: str) -> bytes:
    return s3.get_object(Bucket=bucket, Key=key)["Body"].read()


@pytest.fixture
def client(app, make_app, bucket):
    """The test client of an app storing attachments in the bucket, under PREFIX."""
    return make_app(ATTACHMENT_S3_URL=f"s3://{bucket}/{PREFIX}").test_client()


# --- Requests ----------------------------------------------------------------------------------


def upload(client, account, ticket_id: int, *files):
    """POST the files (name, bytes) as multipart/form-data parts named "files"."""
    body = b""
    for filename, content in files:
        body += (
            (
                f"--{BOUNDARY}\r\n"
                f'Content-Disposition: form-data; name="files"; filename="{filename}"\r\n'
                "Content-Type: application/octet-stream\r\n\r\n"
            ).encode()
            + content
            + b"\r\n"
        )
    body += f"--{BOUNDARY}--\r\n".encode()
    return client.post(
        ticket_url(ticket_id, "/attachments"),
        data=body,
        content_type=f"multipart/form-data; boundary={BOUNDARY}",
        headers=account.headers,
    )


def attached(client, account, ticket_id: int, *files) -> list[dict]:
    return assert_success(upload(client, account, ticket_id, *files), 201, "Files attached")["data"]


def download(client, account, attachment_id: int):
    return client.get(f"{ATTACHMENTS}/{attachment_id}", headers=account.headers)


def delete(client, account, attachment_id: int):
    return client.delete(f"{ATTACHMENTS}/{attachment_id}", headers=account.headers)


# --- The flow ----------------------------------------------------------------------------------


def test_each_file_is_one_object_under_the_prefix_named_by_isp_and_digest(
    client, staff, make_ticket, rows, s3, bucket
):
    ticket_id = make_ticket(staff)
    files = [("../../router.png", png(1)), ("trace.log", TEXT)]

    data = attached(client, staff, ticket_id, *files)

    assert [(item["name"], item["sha256"]) for item in data] == [
        ("router.png", sha(png(1))),
        ("trace.log", sha(TEXT)),
    ]
    assert object_keys(s3, bucket) == sorted(key_of(1, content) for _, content in files)
    for _, content in files:
        assert object_bytes(s3, bucket, key_of(1, content)) == content
    assert [(row["name"], row["sha256"]) for row in rows(Attachment)] == [
        ("router.png", sha(png(1))),
        ("trace.log", sha(TEXT)),
    ]
    assert sorted((blob["isp_id"], blob["sha256"]) for blob in rows(AttachmentBlob)) == sorted(
        (1, sha(content)) for _, content in files
    )


def test_a_download_streams_the_object_back_with_safe_headers(
    client, staff, admin, make_ticket, rows, s3, bucket
):
    ticket_id = make_ticket(staff)
    [item] = attached(client, staff, ticket_id, ("router.png", png()))

    response = download(client, admin, item["id"])

    assert response.status_code == 200
    assert response.data == png() == object_bytes(s3, bucket, key_of(1, png()))
    assert response.headers["Content-Type"] == "image/png"
    assert response.headers["Content-Disposition"] == (
        "attachment; filename=\"router.png\"; filename*=UTF-8''router.png"
    )
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Content-Security-Policy"] == "default-src 'none'; sandbox"
    assert response.headers["Content-Length"] == str(len(png()))
    assert len(rows(Attachment)) == 1


def test_a_file_larger_than_a_multipart_part_round_trips(
    client, staff, make_ticket, rows, s3, bucket
):
    """boto3 uploads in parts past 8 MiB: a 9 MiB file still makes one whole object."""
    ticket_id = make_ticket(staff)
    content = b"".join(f"line {n:07d} of a long trace\n".encode() for n in range(9 * MIB // 28))

    [item] = attached(client, staff, ticket_id, ("big.log", content))

    assert item["size"] == len(content) > 8 * MIB
    assert object_keys(s3, bucket) == [key_of(1, content)]
    assert object_bytes(s3, bucket, key_of(1, content)) == content
    assert download(client, staff, item["id"]).data == content
    assert [row["size"] for row in rows(Attachment)] == [len(content)]


def test_the_same_bytes_twice_are_one_object_deleted_with_the_last_attachment(
    client, staff, admin, make_ticket, rows, s3, bucket
):
    ticket_id, other_ticket = make_ticket(staff), make_ticket(staff)
    content = png(5)
    [first] = attached(client, staff, ticket_id, ("one.png", content))
    [second] = attached(client, staff, other_ticket, ("two.png", content))

    assert [row["name"] for row in rows(Attachment)] == ["one.png", "two.png"]
    assert [(blob["isp_id"], blob["sha256"]) for blob in rows(AttachmentBlob)] == [
        (1, sha(content))
    ]
    assert object_keys(s3, bucket) == [key_of(1, content)]

    assert_success(delete(client, admin, first["id"]), 200, "Attachment deleted")
    assert [row["id"] for row in rows(Attachment)] == [second["id"]]
    assert len(rows(AttachmentBlob)) == 1
    assert object_keys(s3, bucket) == [key_of(1, content)]
    assert download(client, staff, second["id"]).data == content

    assert_success(delete(client, admin, second["id"]), 200, "Attachment deleted")
    assert rows(Attachment) == []
    assert rows(AttachmentBlob) == []
    assert object_keys(s3, bucket) == []
    assert_error(download(client, staff, second["id"]), 404)


def test_another_isps_identical_bytes_are_an_object_of_their_own(
    client, staff, other_staff, admin, other_admin, make_ticket, rows, s3, bucket
):
    ours, theirs = make_ticket(staff), make_ticket(other_staff)
    content = png(7)
    [mine] = attached(client, staff, ours, ("ours.png", content))
    [other] = attached(client, other_staff, theirs, ("theirs.png", content))

    assert [blob["isp_id"] for blob in rows(AttachmentBlob)] == [1, 2]
    assert object_keys(s3, bucket) == [key_of(1, content), key_of(2, content)]

    assert_error(delete(client, admin, other["id"]), 404)  # not ISP 1's to delete
    assert_success(delete(client, other_admin, other["id"]), 200, "Attachment deleted")

    assert [row["id"] for row in rows(Attachment)] == [mine["id"]]
    assert [blob["isp_id"] for blob in rows(AttachmentBlob)] == [1]
    assert object_keys(s3, bucket) == [key_of(1, content)]
    assert download(client, admin, mine["id"]).data == content


def test_a_refused_upload_writes_no_object(
    client, make_app, bucket, staff, make_ticket, assert_refused, rows, s3
):
    ticket_id = make_ticket(staff)
    small = make_app(ATTACHMENT_S3_URL=f"s3://{bucket}/{PREFIX}", ATTACHMENT_MAX_BYTES=1000)

    assert_refused(
        lambda: upload(client, staff, ticket_id, ("ok.png", png()), ("x.png", HTML)), 422
    )
    too_big = (TEXT * 100)[:1001]
    assert_refused(lambda: upload(small.test_client(), staff, ticket_id, ("big.txt", too_big)), 413)

    assert rows(Attachment) == []
    assert rows(AttachmentBlob) == []
    assert object_keys(s3, bucket) == []


def test_a_bucket_without_a_prefix_keys_objects_from_its_root(
    make_app, bucket, staff, admin, make_ticket, rows, s3
):
    client = make_app(ATTACHMENT_S3_URL=f"s3://{bucket}").test_client()
    ticket_id = make_ticket(staff)

    [item] = attached(client, staff, ticket_id, ("a.txt", TEXT))

    assert object_keys(s3, bucket) == [key_of(1, TEXT, prefix="")]
    assert download(client, staff, item["id"]).data == TEXT
    assert_success(delete(client, admin, item["id"]), 200, "Attachment deleted")
    assert object_keys(s3, bucket) == []
    assert rows(Attachment) == []
