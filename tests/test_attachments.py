"""Attachments, stored in a directory (ATTACHMENT_DIR): POST /api/v1/tickets/{id}/attachments
takes one or more files in multipart parts of any field name (at most 20, each at most
ATTACHMENT_MAX_BYTES, sniffed from their bytes and checked against the allow list and the
name's extension) and stores each ISP's bytes once, under ATTACHMENT_DIR/<isp>/<sha[:2]>/<sha>;
GET lists them, GET /api/v1/attachments/{id} sends the bytes as a download, DELETE (admins)
removes one and the stored bytes with the last attachment that has them. A reply takes them
with attachment_ids. Any refusal stores nothing: no row, no blob, no file.

Every test here runs on an app of its own storing under the test's tmp_path (never the
instance folder), on the shared database."""

import hashlib
import io
import struct
import tracemalloc
from pathlib import Path

import pytest
from support.client import assert_error, assert_success, call, get, reply
from support.database import TIMESTAMP, history_in_db
from support.files import png
from support.urls import ticket_url

from tickets_service.models import Attachment, AttachmentBlob, Ticket, TicketReply

ATTACHMENTS = "/api/v1/attachments"
ATTACHMENT_KEYS = {
    "id",
    "name",
    "size",
    "content_type",
    "sha256",
    "created_at",
    "reply_id",
    "by_subscriber",
}
REF_KEYS = {"id", "name", "size", "content_type"}
BOUNDARY = "attachments-test-boundary-7MA4YWxkTrZu0gW"
MIB = 1024 * 1024
# What the server reads of a refused upload's rest, so that its client gets the 413.
DRAINED = 1 * MIB


# --- Files -------------------------------------------------------------------------------------


JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00" + b"\xff\xd9"
PDF = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog >>\nendobj\ntrailer\n<<>>\n%%EOF\n"
GIF = (
    b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff!\xf9\x04\x01\x00\x00\x00\x00"
    b",\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;"
)
WEBP = b"RIFF" + struct.pack("<I", 30) + b"WEBPVP8L" + b"\x00" * 30
HEIC = b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + b"\x00" * 20
TEXT = b"Router log\n12:00 link down\n12:05 link up\n"
CSV = b"date,download_mbps\n2024-05-01,94.2\n2024-05-02,12.7\n"
HTML = b"<html><body><script>alert(document.cookie)</script></body></html>"
SVG = b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'
DOCTYPE = b"<!doctype html>\n<p>looks like a note</p>"
XML = b'<?xml version="1.0"?>\n<note>hello</note>'
ZIP = b"PK\x03\x04\x14\x00\x00\x00\x08\x00" + b"\x00" * 40
EXE = b"MZ\x90\x00\x03\x00\x00\x00\x04\x00" + b"\x00" * 40
ELF = b"\x7fELF\x02\x01\x01\x00" + b"\x00" * 40


def sha(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


def text(n: int) -> bytes:
    """A small text file of its own bytes."""
    return f"note number {n}\n".encode()


# --- Requests ----------------------------------------------------------------------------------


def multipart(files, fields=()) -> tuple[bytes, str]:
    """A multipart/form-data body: each file (name, bytes) in a part named "files", or (field,
    name, bytes) in a part of that name; each field (name, value) as a plain form field."""
    body = b""
    for name, value in fields:
        body += f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode()
        body += value.encode() + b"\r\n"
    for item in files:
        field, filename, content = item if len(item) == 3 else ("files", *item)
        filename = filename.replace("\\", "\\\\").replace('"', '\\"')  # a quoted-string
        body += (
            f"--{BOUNDARY}\r\n"
            f'Content-Disposition: form-data; name="{field}"; filename="{filename}"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        body += content + b"\r\n"
    body += f"--{BOUNDARY}--\r\n".encode()
    return body, f"multipart/form-data; boundary={BOUNDARY}"


def upload(client, account, ticket_id: int, *files):
    body, content_type = multipart(files)
    return client.post(
        ticket_url(ticket_id, "/attachments"),
        data=body,
        content_type=content_type,
        headers=account.headers,
    )


def attached(client, account, ticket_id: int, *files) -> list[dict]:
    """Upload files that must be taken; the answer's data."""
    response = upload(client, account, ticket_id, *files)
    return assert_success(response, 201, "Files attached")["data"]


def listed(client, account, ticket_id: int) -> list[dict]:
    return assert_success(get(client, account, ticket_url(ticket_id, "/attachments")), 200)["data"]


def download(client, account, attachment_id: int):
    return client.get(f"{ATTACHMENTS}/{attachment_id}", headers=account.headers)


def delete(client, account, attachment_id: int):
    return client.delete(f"{ATTACHMENTS}/{attachment_id}", headers=account.headers)


def etag(client, account, ticket_id: int) -> str:
    response = get(client, account, ticket_url(ticket_id))
    assert_success(response, 200)
    return response.headers["ETag"]


def fetched_replies(client, account, ticket_id: int) -> list[dict]:
    return assert_success(get(client, account, ticket_url(ticket_id)), 200)["data"]["replies"]


# --- The store -------------------------------------------------------------------------------


def files_under(root: Path) -> list[str]:
    """Every file under `root` (temporary ones too), relative to it, sorted."""
    if not root.exists():
        return []
    return sorted(str(path.relative_to(root)) for path in root.rglob("*") if path.is_file())


def object_path(isp_id: int, content: bytes) -> str:
    digest = sha(content)
    return f"{isp_id}/{digest[:2]}/{digest}"


@pytest.fixture
def storage_dir(tmp_path) -> Path:
    return tmp_path / "deep" / "store" / "attachments"


@pytest.fixture
def client(app, make_app, storage_dir):
    """The test client of an app that stores attachments under storage_dir."""
    return make_app(ATTACHMENT_DIR=str(storage_dir)).test_client()


@pytest.fixture
def assert_stores_nothing(assert_refused, rows, storage_dir, tmp_path):
    """assert_stores_nothing(request, status, field=None): the refusal of assert_refused, and no
    attachment or blob row, and no file written anywhere under the test's tmp_path."""

    def check(request, status: int, field: str | None = None):
        before = files_under(tmp_path)
        response = assert_refused(request, status, field)
        assert rows(Attachment) == []
        assert rows(AttachmentBlob) == []
        assert files_under(storage_dir) == []
        assert files_under(tmp_path) == before
        return response

    return check


# --- Uploading ---------------------------------------------------------------------------------


def test_one_file_is_attached_with_its_row_its_blob_and_its_file(
    client, staff, make_ticket, rows, storage_dir
):
    ticket_id = make_ticket(staff)
    content = png()

    [item] = attached(client, staff, ticket_id, ("router.png", content))

    assert set(item) == ATTACHMENT_KEYS
    assert TIMESTAMP.match(item["created_at"])
    [row] = rows(Attachment)
    assert item == {
        "id": row["id"],
        "name": "router.png",
        "size": len(content),
        "content_type": "image/png",
        "sha256": sha(content),
        "created_at": item["created_at"],
        "reply_id": None,
        "by_subscriber": False,
    }
    assert row["isp_id"] == 1
    assert row["ticket_id"] == ticket_id
    assert (row["name"], row["size"], row["sha256"]) == ("router.png", len(content), sha(content))
    assert (row["content_type"], row["reply_id"], row["by_subscriber"]) == (
        "image/png",
        None,
        False,
    )
    assert (row["uploaded_by_id"], row["key_id"]) == (staff.id, None)
    [blob] = rows(AttachmentBlob)
    assert (blob["isp_id"], blob["sha256"], blob["size"]) == (1, sha(content), len(content))
    assert files_under(storage_dir) == [object_path(1, content)]
    assert (storage_dir / object_path(1, content)).read_bytes() == content


def test_several_files_in_parts_of_any_field_name_are_attached_in_order(
    client, staff, make_ticket, rows, storage_dir
):
    ticket_id = make_ticket(staff)
    files = [
        ("photo", "modem.png", png(1)),
        ("files", "bill.pdf", PDF),
        ("files", "speed.csv", CSV),
        ("x-whatever[]", "log.txt", TEXT),
        ("", "wall.jpg", JPEG),
    ]

    data = attached(client, staff, ticket_id, *files)

    assert [(item["name"], item["content_type"], item["size"]) for item in data] == [
        ("modem.png", "image/png", len(png(1))),
        ("bill.pdf", "application/pdf", len(PDF)),
        ("speed.csv", "text/csv", len(CSV)),
        ("log.txt", "text/plain", len(TEXT)),
        ("wall.jpg", "image/jpeg", len(JPEG)),
    ]
    stored = rows(Attachment)
    assert [row["id"] for row in stored] == [item["id"] for item in data]
    assert [row["sha256"] for row in stored] == [sha(content) for _, _, content in files]
    assert {row["ticket_id"] for row in stored} == {ticket_id}
    assert sorted(blob["sha256"] for blob in rows(AttachmentBlob)) == sorted(
        sha(content) for _, _, content in files
    )
    assert files_under(storage_dir) == sorted(object_path(1, c) for _, _, c in files)
    for _, _, content in files:
        assert (storage_dir / object_path(1, content)).read_bytes() == content


ALLOWED = {
    "png": ("a.png", png(), "image/png"),
    "jpeg-as-.jpeg": ("a.jpeg", JPEG, "image/jpeg"),
    "jpeg-as-.JPG": ("a.JPG", JPEG, "image/jpeg"),
    "gif": ("a.gif", GIF, "image/gif"),
    "webp": ("a.webp", WEBP, "image/webp"),
    "heic": ("a.heic", HEIC, "image/heic"),
    "pdf": ("a.pdf", PDF, "application/pdf"),
    "text-as-.txt": ("a.txt", TEXT, "text/plain"),
    "text-as-.log": ("a.log", TEXT, "text/plain"),
    "text-without-extension": ("README", TEXT, "text/plain"),
    "utf-8-text": ("a.txt", "Câble coupé à 12:00 — ça revient\n".encode(), "text/plain"),
    "csv": ("a.csv", CSV, "text/csv"),
    "png-without-extension": ("screenshot", png(), "image/png"),
}


@pytest.mark.parametrize(("name", "content", "content_type"), ALLOWED.values(), ids=ALLOWED)
def test_each_allowed_type_is_sniffed_from_its_bytes(
    client, staff, make_ticket, rows, storage_dir, name, content, content_type
):
    ticket_id = make_ticket(staff)

    [item] = attached(client, staff, ticket_id, (name, content))

    assert (item["name"], item["content_type"], item["size"]) == (name, content_type, len(content))
    [row] = rows(Attachment)
    assert row["content_type"] == content_type
    assert files_under(storage_dir) == [object_path(1, content)]


def test_an_upload_is_recorded_in_the_history_and_makes_a_new_version(
    client, staff, make_ticket, rows, fetch
):
    ticket_id = make_ticket(staff)
    before_tag, before_version = etag(client, staff, ticket_id), fetch(Ticket, ticket_id)["version"]
    before = history_in_db(rows, ticket_id)

    attached(client, staff, ticket_id, ("a.png", png()), ("b.txt", TEXT))

    added = history_in_db(rows, ticket_id)[len(before) :]
    assert added == [("attached", None, None, ["a.png", "b.txt"], staff.id)]
    assert fetch(Ticket, ticket_id)["version"] > before_version
    assert etag(client, staff, ticket_id) != before_tag


def test_twenty_files_at_once_are_taken(client, staff, make_ticket, rows, storage_dir):
    ticket_id = make_ticket(staff)
    files = [(f"note-{n}.txt", text(n)) for n in range(20)]

    data = attached(client, staff, ticket_id, *files)

    assert [item["name"] for item in data] == [name for name, _ in files]
    assert len(rows(Attachment)) == 20
    assert len(rows(AttachmentBlob)) == 20
    assert len(files_under(storage_dir)) == 20


# --- Refusals ----------------------------------------------------------------------------------


def refused_files(*files, fields=()):
    """A case: the multipart body of these files."""
    return lambda: multipart(files, fields)


def raw(body: bytes, content_type: str):
    return lambda: (body, content_type)


REFUSED = {
    "json-not-multipart": (raw(b'{"files": ["a.png"]}', "application/json"), None),
    "urlencoded-not-multipart": (raw(b"files=a.png", "application/x-www-form-urlencoded"), None),
    "text-plain-body": (raw(TEXT, "text/plain"), None),
    "multipart-mixed": (
        raw(multipart([("a.png", png())])[0], "multipart/mixed; boundary=" + BOUNDARY),
        None,
    ),
    "no-body-at-all": (raw(b"", "multipart/form-data; boundary=" + BOUNDARY), None),
    "no-part": (refused_files(), None),
    "only-a-form-field": (refused_files(fields=[("message", "hello")]), None),
    "only-an-empty-file-input": (refused_files(("", b"")), None),
    "an-empty-file": (refused_files(("empty.txt", b"")), "empty.txt"),
    "html-named-png": (refused_files(("cat.png", HTML)), "cat.png"),
    "html-named-txt": (refused_files(("page.txt", HTML)), "page.txt"),
    "svg-named-txt": (refused_files(("logo.txt", SVG)), "logo.txt"),
    "svg-named-svg": (refused_files(("logo.svg", SVG)), "logo.svg"),
    "doctype-html-named-txt": (refused_files(("note.txt", DOCTYPE)), "note.txt"),
    "indented-html-named-txt": (refused_files(("note.txt", b"  \n\t<HTML>x")), "note.txt"),
    "xml-named-txt": (refused_files(("data.txt", XML)), "data.txt"),
    "zip": (refused_files(("logs.zip", ZIP)), "logs.zip"),
    "zip-named-txt": (refused_files(("logs.txt", ZIP)), "logs.txt"),
    "windows-executable": (refused_files(("setup.exe", EXE)), "setup.exe"),
    "elf-executable-named-txt": (refused_files(("run.txt", ELF)), "run.txt"),
    "binary-bytes-named-txt": (refused_files(("dump.txt", b"abc\x00\x01\x02def")), "dump.txt"),
    "not-utf-8-named-txt": (refused_files(("latin.txt", b"caf\xe9 cr\xe8me " * 20)), "latin.txt"),
    "png-named-pdf": (refused_files(("scan.pdf", png())), "scan.pdf"),
    "pdf-named-png": (refused_files(("scan.png", PDF)), "scan.png"),
    "text-named-png": (refused_files(("photo.png", TEXT)), "photo.png"),
    "text-named-html": (refused_files(("note.html", TEXT)), "note.html"),
    "jpeg-named-gif": (refused_files(("a.gif", JPEG)), "a.gif"),
    "21-files": (refused_files(*[(f"n{n}.txt", text(n)) for n in range(21)]), None),
    "good-files-then-one-bad": (
        refused_files(("ok.png", png()), ("ok.txt", TEXT), ("bad.png", HTML)),
        "bad.png",
    ),
}


@pytest.mark.parametrize(("make_body", "named"), REFUSED.values(), ids=REFUSED)
def test_a_bad_upload_is_422_on_files_and_stores_nothing(
    client, staff, make_ticket, assert_stores_nothing, make_body, named
):
    ticket_id = make_ticket(staff)
    body, content_type = make_body()

    def request():
        url = ticket_url(ticket_id, "/attachments")
        return client.post(url, data=body, content_type=content_type, headers=staff.headers)

    response = assert_stores_nothing(request, 422, "files")

    if named is not None:  # the problem names the file
        assert any(problem.startswith(f"{named}:") for problem in response.json["errors"]["files"])


# Markup the allow list's checks let through as text/plain: a byte-order mark before it, or a
# DOCTYPE naming SVG. The contract refuses HTML/SVG/XML-looking text whatever its name.
MARKUP_TAKEN_FOR_TEXT = {
    "bom-then-html": ("page.txt", b"\xef\xbb\xbf<html><script>alert(1)</script></html>"),
    "bom-then-xml": ("data.txt", b'\xef\xbb\xbf<?xml version="1.0"?>\n<note>hello</note>'),
    "bom-then-svg": ("logo.txt", b"\xef\xbb\xbf" + SVG),
    "a-tag-of-any-name": ("note.txt", b"<img src=x onerror=alert(1)>"),
    "namespaced-svg": ("logo.txt", b'<svg:svg xmlns:svg="http://www.w3.org/2000/svg"/>'),
    "doctype-svg": (
        "logo.txt",
        b'<!DOCTYPE svg PUBLIC "-//W3C//DTD SVG 1.1//EN" '
        b'"http://www.w3.org/Graphics/SVG/1.1/DTD/svg11.dtd">\n' + SVG,
    ),
}


@pytest.mark.parametrize(
    ("name", "content"), MARKUP_TAKEN_FOR_TEXT.values(), ids=MARKUP_TAKEN_FOR_TEXT
)
def test_markup_behind_a_byte_order_mark_or_an_svg_doctype_is_refused(
    client, staff, make_ticket, assert_stores_nothing, name, content
):
    ticket_id = make_ticket(staff)

    assert_stores_nothing(lambda: upload(client, staff, ticket_id, (name, content)), 422, "files")


def test_an_empty_file_input_beside_files_is_left_out(
    client, staff, make_ticket, rows, storage_dir
):
    ticket_id = make_ticket(staff)

    data = attached(client, staff, ticket_id, ("photo", "", b""), ("a.png", png()))

    assert [item["name"] for item in data] == ["a.png"]
    assert [row["name"] for row in rows(Attachment)] == ["a.png"]
    assert files_under(storage_dir) == [object_path(1, png())]


def test_a_multipart_body_without_a_boundary_is_refused_and_stores_nothing(
    client, staff, make_ticket, rows, storage_dir
):
    ticket_id = make_ticket(staff)
    body, _ = multipart([("a.png", png())])

    response = client.post(
        ticket_url(ticket_id, "/attachments"),
        data=body,
        content_type="multipart/form-data",
        headers=staff.headers,
    )

    # Multipart, but unreadable: the client's 400 (the contract names no status for it).
    assert assert_error(response, 400)["message"] == "The multipart body is malformed."
    assert rows(Attachment) == []
    assert rows(AttachmentBlob) == []
    assert files_under(storage_dir) == []


# --- Size ------------------------------------------------------------------------------------


FILLER = (b"0123456789 the router's log, line after line, nothing to see here\n" * 1100)[
    : 64 * 1024
]


class GeneratedBody(io.RawIOBase):
    """A multipart body of files of given sizes, made as it is read (never whole in memory),
    counting the bytes read."""

    def __init__(self, files: list[tuple[str, bytes, int]], declared=None, fields=()):
        """files: (name, first bytes, total size): the rest of each file is FILLER; fields:
        (name, size), form fields of FILLER before them. The test client takes the length from
        where seeking to the end lands: `declared`, if given."""
        super().__init__()
        self.segments: list[bytes | int] = []
        for name, size in fields:
            self.segments += [self.field_head(name), size, b"\r\n"]
        for name, first, size in files:
            head = (
                f"--{BOUNDARY}\r\n"
                f'Content-Disposition: form-data; name="files"; filename="{name}"\r\n'
                "Content-Type: application/octet-stream\r\n\r\n"
            ).encode()
            self.segments += [head, first, size - len(first), b"\r\n"]
        self.segments.append(f"--{BOUNDARY}--\r\n".encode())
        self.length = sum(s if isinstance(s, int) else len(s) for s in self.segments)
        self.declared = self.length if declared is None else declared
        self.consumed = self.position = 0

    @staticmethod
    def field_head(name: str) -> bytes:
        return f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode()

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        """Only the test client's measuring: to the end, and back to where reading stands."""
        self.position = self.declared + offset if whence == io.SEEK_END else offset
        assert self.position in (self.consumed, self.declared)
        return self.position

    def readinto(self, buffer) -> int:
        view = memoryview(buffer).cast("B")
        written = 0
        while written < len(view) and self.segments:
            segment = self.segments[0]
            room = len(view) - written
            if isinstance(segment, int):  # that many filler bytes
                take = min(room, segment, len(FILLER))
                view[written : written + take] = FILLER[:take]
                rest = segment - take
            else:
                take = min(room, len(segment))
                view[written : written + take] = segment[:take]
                rest = segment[take:]
            if rest:
                self.segments[0] = rest
            else:
                self.segments.pop(0)
            written += take
        self.consumed += written
        self.position = self.consumed
        return written


def upload_generated(client, account, ticket_id: int, body: GeneratedBody):
    return client.post(
        ticket_url(ticket_id, "/attachments"),
        input_stream=body,
        content_type=f"multipart/form-data; boundary={BOUNDARY}",
        headers=account.headers,
    )


@pytest.fixture
def small_limit_client(app, make_app, storage_dir):
    """A client of an app that takes files of at most 1000 bytes."""
    return make_app(ATTACHMENT_DIR=str(storage_dir), ATTACHMENT_MAX_BYTES=1000).test_client()


def test_a_file_of_exactly_the_limit_is_taken(
    small_limit_client, staff, make_ticket, rows, storage_dir
):
    ticket_id = make_ticket(staff)
    content = (TEXT * 100)[:1000]

    [item] = attached(small_limit_client, staff, ticket_id, ("a.txt", content))

    assert item["size"] == 1000
    assert [row["size"] for row in rows(Attachment)] == [1000]
    assert files_under(storage_dir) == [object_path(1, content)]


@pytest.mark.parametrize("before", [0, 2], ids=["alone", "after-two-good-files"])
def test_a_file_over_the_limit_is_413_and_stores_nothing(
    small_limit_client, staff, make_ticket, assert_stores_nothing, before
):
    ticket_id = make_ticket(staff)
    files = [(f"ok{n}.txt", text(n)) for n in range(before)] + [("big.txt", (TEXT * 100)[:1001])]

    response = assert_stores_nothing(
        lambda: upload(small_limit_client, staff, ticket_id, *files), 413
    )

    assert "1000" in response.json["message"]


def test_parsing_stops_at_the_limit_and_the_rest_is_never_read(
    small_limit_client, staff, make_ticket, assert_stores_nothing
):
    ticket_id = make_ticket(staff)
    body = GeneratedBody([("huge.txt", b"start\n", 8 * MIB)])

    assert_stores_nothing(lambda: upload_generated(small_limit_client, staff, ticket_id, body), 413)

    # Read: the limit's worth, then a last MiB drained so that the client gets its 413.
    assert body.consumed <= DRAINED + 64 * 1024 < body.length


def upload_chunked(client, account, ticket_id: int, body: GeneratedBody):
    """The body as a chunked request sends it: no Content-Length, the server reads to its end."""
    return client.post(
        ticket_url(ticket_id, "/attachments"),
        input_stream=body,
        content_type=f"multipart/form-data; boundary={BOUNDARY}",
        headers=account.headers,
        environ_overrides={"CONTENT_LENGTH": "", "wsgi.input_terminated": True},
    )


def test_a_chunked_upload_without_a_length_is_taken(
    small_limit_client, staff, make_ticket, rows, storage_dir
):
    ticket_id = make_ticket(staff)
    body = GeneratedBody([("a.txt", b"start\n", 1000)])

    response = upload_chunked(small_limit_client, staff, ticket_id, body)

    [item] = assert_success(response, 201, "Files attached")["data"]
    assert item["size"] == 1000
    assert [row["size"] for row in rows(Attachment)] == [1000]
    assert files_under(storage_dir) == [f"1/{item['sha256'][:2]}/{item['sha256']}"]


def test_a_chunked_upload_over_the_limit_is_413_and_its_rest_is_never_read(
    small_limit_client, staff, make_ticket, assert_stores_nothing
):
    ticket_id = make_ticket(staff)
    body = GeneratedBody([("huge.txt", b"start\n", 8 * MIB)])

    assert_stores_nothing(lambda: upload_chunked(small_limit_client, staff, ticket_id, body), 413)

    assert body.consumed <= DRAINED + 64 * 1024 < body.length


def test_a_declared_length_beyond_the_whole_limit_is_413_before_anything_is_read(
    small_limit_client, staff, make_ticket, assert_stores_nothing
):
    ticket_id = make_ticket(staff)
    whole_limit = 20 * (1000 + 16 * 1024) + 256 * 1024
    # A valid 500-byte file: only the length it claims makes it too large.
    body = GeneratedBody([("a.txt", b"start\n", 500)], declared=whole_limit + 1)

    assert_stores_nothing(lambda: upload_generated(small_limit_client, staff, ticket_id, body), 413)

    # Not parsed: the only reading is the drain after the answer, at most its MiB.
    assert body.consumed <= DRAINED


@pytest.mark.parametrize(("extra", "status"), [(0, 201), (1, 413)], ids=["at", "one-byte-over"])
def test_the_whole_body_limit_is_twenty_files_and_their_headers(
    small_limit_client, staff, make_ticket, rows, storage_dir, extra, status
):
    whole_limit = 20 * (1000 + 16 * 1024) + 256 * 1024
    ticket_id = make_ticket(staff)
    files = [("a.txt", b"start\n", 500)]
    # Padded to the limit (or one byte past it) by three form fields of 200 KiB or so.
    padding = whole_limit + extra - GeneratedBody(files).length
    content = padding - 3 * (len(GeneratedBody.field_head("pad0")) + 2)
    sizes = [content // 3, content // 3, content - 2 * (content // 3)]
    body = GeneratedBody(files, fields=[(f"pad{n}", size) for n, size in enumerate(sizes)])
    assert body.length == whole_limit + extra

    response = upload_generated(small_limit_client, staff, ticket_id, body)

    if status == 201:
        assert_success(response, 201, "Files attached")
        assert [row["size"] for row in rows(Attachment)] == [500]
        assert len(files_under(storage_dir)) == 1
    else:
        assert_error(response, 413)
        assert rows(Attachment) == []
        assert files_under(storage_dir) == []
        assert body.consumed <= DRAINED


def test_memory_stays_flat_while_fifty_files_of_two_mib_stream_through(
    app, make_app, staff, make_ticket, rows, storage_dir
):
    """Each file goes to a spooled temporary file (at most 256 KiB of it in memory): the peak
    of Python's traced memory during an upload stays far below the file's 2 MiB."""
    client = make_app(ATTACHMENT_DIR=str(storage_dir), ATTACHMENT_MAX_BYTES=10 * MIB).test_client()
    ticket_id = make_ticket(staff)
    size = 2 * MIB

    def one(n: int) -> None:
        body = GeneratedBody([(f"trace-{n}.log", f"trace number {n}\n".encode(), size)])
        [item] = assert_success(upload_generated(client, staff, ticket_id, body), 201)["data"]
        assert (item["size"], item["content_type"]) == (size, "text/plain")
        assert body.consumed == body.length

    one(0)  # warm up: caches, lazy imports, the pool's connection
    tracemalloc.start()
    try:
        baseline = tracemalloc.get_traced_memory()[0]
        peaks = []
        for n in range(1, 51):
            tracemalloc.reset_peak()
            before = tracemalloc.get_traced_memory()[0]
            one(n)
            peaks.append(tracemalloc.get_traced_memory()[1] - before)
        grown = tracemalloc.get_traced_memory()[0] - baseline
    finally:
        tracemalloc.stop()

    assert max(peaks) < 1.5 * MIB, [round(peak / MIB, 2) for peak in peaks]
    assert grown < 1 * MIB  # nothing of the files kept once their requests ended
    assert len(rows(Attachment)) == 51
    assert len(files_under(storage_dir)) == 51


# --- Names -----------------------------------------------------------------------------------


NAMES = {
    "path": ("../../etc/passwd", TEXT, "passwd"),
    "windows-path": ("..\\..\\x.txt", TEXT, "x.txt"),
    "absolute-windows-path": ("C:\\Users\\ann\\router.png", png(), "router.png"),
    "absolute-path": ("/var/www/index.txt", TEXT, "index.txt"),
    "control-characters": ("be\x01ll\x07\x1b\x7f.txt", TEXT, "bell.txt"),
    "tab": ("my\tnotes.txt", TEXT, "mynotes.txt"),
    "unsafe-characters": ("in<v>o:i*c?e|;.txt", TEXT, "in_v_o_i_c_e__.txt"),
    "leading-dots-and-spaces": (" . ..hidden.txt", TEXT, "hidden.txt"),
    "trailing-dots-and-spaces": ("notes.txt. . ", TEXT, "notes.txt"),
    "300-characters": ("a" * 296 + ".txt", TEXT, "a" * 196 + ".txt"),
    "300-characters-no-extension": ("b" * 300, TEXT, "b" * 200),
    "only-dots": ("...", TEXT, "file"),
    "only-controls": ("\x01\x02\x03", TEXT, "file"),
    "path-to-nothing": ("../..", TEXT, "file"),
    "unicode-kept-in-nfc": ("cafe\u0301 re\u0301sume\u0301.pdf", PDF, "café résumé.pdf"),
    "kept-punctuation": ("scan (1) [a]+b,c=d@e.png", png(), "scan (1) [a]+b,c=d@e.png"),
    "empty-name-with-bytes": ("", TEXT, "file"),
    "quote-in-name": ('say "hi".txt', TEXT, "say _hi_.txt"),
}


@pytest.mark.parametrize(("sent", "content", "kept"), NAMES.values(), ids=NAMES)
def test_a_files_name_is_cleaned_and_never_chooses_where_it_is_stored(
    client, staff, make_ticket, rows, storage_dir, tmp_path, sent, content, kept
):
    ticket_id = make_ticket(staff)

    [item] = attached(client, staff, ticket_id, (sent, content))

    assert item["name"] == kept
    assert len(kept) <= 200
    assert [row["name"] for row in rows(Attachment)] == [kept]
    assert files_under(tmp_path) == [
        str(storage_dir.relative_to(tmp_path) / object_path(1, content))
    ]


def test_a_path_in_the_name_writes_nothing_outside_the_store(
    client, staff, make_ticket, rows, storage_dir, tmp_path
):
    ticket_id = make_ticket(staff)
    passwd = Path("/etc/passwd")
    before = passwd.read_bytes() if passwd.exists() else None
    files = [
        ("../../etc/passwd", TEXT),
        ("../../../escaped.txt", text(1)),
        ("../x/../y.txt", text(2)),
    ]

    data = attached(client, staff, ticket_id, *files)

    assert [item["name"] for item in data] == ["passwd", "escaped.txt", "y.txt"]
    prefix = storage_dir.relative_to(tmp_path)
    assert files_under(tmp_path) == sorted(
        str(prefix / object_path(1, content)) for _, content in files
    )
    assert not any(name in files_under(tmp_path) for name in ("passwd", "escaped.txt", "y.txt"))
    assert (passwd.read_bytes() if passwd.exists() else None) == before
    assert len(rows(Attachment)) == 3


# --- Listing and downloading -----------------------------------------------------------------


def test_the_list_shows_the_tickets_attachments_oldest_first(client, staff, make_ticket, rows):
    ticket_id, other_id = make_ticket(staff), make_ticket(staff)
    first = attached(client, staff, ticket_id, ("b.png", png(1)), ("a.txt", TEXT))
    attached(client, staff, other_id, ("elsewhere.txt", text(9)))
    second = attached(client, staff, ticket_id, ("c.pdf", PDF))

    data = listed(client, staff, ticket_id)

    assert data == first + second
    assert [item["name"] for item in data] == ["b.png", "a.txt", "c.pdf"]
    assert all(set(item) == ATTACHMENT_KEYS for item in data)
    assert len(rows(Attachment)) == 4


def test_the_list_of_a_ticket_without_attachments_is_empty(client, staff, make_ticket, rows):
    ticket_id = make_ticket(staff)

    assert listed(client, staff, ticket_id) == []
    assert rows(Attachment) == []


@pytest.mark.parametrize(
    ("name", "content", "content_type"),
    [("router.png", png(), "image/png"), ("bill.pdf", PDF, "application/pdf")],
    ids=["png", "pdf"],
)
def test_a_download_sends_the_bytes_as_an_attachment_with_safe_headers(
    client, staff, admin, make_ticket, rows, name, content, content_type
):
    ticket_id = make_ticket(staff)
    [item] = attached(client, staff, ticket_id, (name, content))

    response = download(client, admin, item["id"])

    assert response.status_code == 200
    assert response.data == content
    assert response.headers["Content-Type"] == content_type
    assert response.headers["Content-Disposition"] == (
        f"attachment; filename=\"{name}\"; filename*=UTF-8''{name}"
    )
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Content-Security-Policy"] == "default-src 'none'; sandbox"
    assert response.headers["Content-Length"] == str(len(content))
    assert len(rows(Attachment)) == 1


def test_a_text_download_is_plain_text_never_html(client, staff, make_ticket):
    ticket_id = make_ticket(staff)
    [item] = attached(client, staff, ticket_id, ("trace.log", TEXT))

    response = download(client, staff, item["id"])

    assert response.status_code == 200
    assert response.mimetype == "text/plain"
    assert response.data == TEXT
    assert response.headers["Content-Disposition"].startswith('attachment; filename="trace.log"')
    assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_a_download_of_a_non_ascii_name_gives_both_forms_of_the_name(client, staff, make_ticket):
    ticket_id = make_ticket(staff)
    [item] = attached(client, staff, ticket_id, ("café résumé.pdf", PDF))

    response = download(client, staff, item["id"])

    assert response.status_code == 200
    assert response.headers["Content-Disposition"] == (
        'attachment; filename="caf? r?sum?.pdf"; '
        "filename*=UTF-8''caf%C3%A9%20r%C3%A9sum%C3%A9.pdf"
    )
    assert response.data == PDF


def test_an_unknown_attachment_or_ticket_is_404(
    client, staff, admin, make_ticket, rows, storage_dir
):
    ticket_id = make_ticket(staff)
    [item] = attached(client, staff, ticket_id, ("a.png", png()))

    for unknown in (item["id"] + 1000, 0, 2**63):
        assert_error(download(client, staff, unknown), 404)
        assert_error(delete(client, admin, unknown), 404)
    assert_error(upload(client, staff, ticket_id + 1000, ("b.png", png(1))), 404)
    assert [row["id"] for row in rows(Attachment)] == [item["id"]]
    assert files_under(storage_dir) == [object_path(1, png())]


# --- Deleting --------------------------------------------------------------------------------


def test_an_admin_deletes_an_attachment_with_its_blob_and_its_file(
    client, staff, admin, make_ticket, rows, storage_dir
):
    ticket_id = make_ticket(staff)
    [item] = attached(client, staff, ticket_id, ("router.png", png()))

    response = delete(client, admin, item["id"])

    assert response.get_json() == {"success": True, "message": "Attachment deleted"}
    assert_success(response, 200, "Attachment deleted")
    assert rows(Attachment) == []
    assert rows(AttachmentBlob) == []
    assert files_under(storage_dir) == []
    assert history_in_db(rows, ticket_id)[-1] == (
        "attachment_deleted",
        None,
        "router.png",
        None,
        admin.id,
    )
    assert listed(client, staff, ticket_id) == []
    assert_error(download(client, staff, item["id"]), 404)
    assert_error(delete(client, admin, item["id"]), 404)


def test_staff_may_not_delete_an_attachment(
    client, staff, make_ticket, rows, storage_dir, assert_refused
):
    ticket_id = make_ticket(staff)
    [item] = attached(client, staff, ticket_id, ("router.png", png()))

    assert_refused(lambda: delete(client, staff, item["id"]), 403)

    assert [row["id"] for row in rows(Attachment)] == [item["id"]]
    assert len(rows(AttachmentBlob)) == 1
    assert files_under(storage_dir) == [object_path(1, png())]


def test_the_same_bytes_twice_are_two_attachments_over_one_blob_and_one_file(
    client, staff, admin, make_ticket, rows, storage_dir
):
    ticket_id, other_ticket = make_ticket(staff), make_ticket(staff)
    content = png(5)
    [first] = attached(client, staff, ticket_id, ("one.png", content))
    [second] = attached(client, staff, other_ticket, ("two.png", content))

    assert first["sha256"] == second["sha256"] == sha(content)
    assert [row["name"] for row in rows(Attachment)] == ["one.png", "two.png"]
    assert [(blob["isp_id"], blob["sha256"]) for blob in rows(AttachmentBlob)] == [
        (1, sha(content))
    ]
    assert files_under(storage_dir) == [object_path(1, content)]

    # The first goes: the bytes stay for the second.
    assert_success(delete(client, admin, first["id"]), 200, "Attachment deleted")
    assert [row["id"] for row in rows(Attachment)] == [second["id"]]
    assert len(rows(AttachmentBlob)) == 1
    assert files_under(storage_dir) == [object_path(1, content)]
    assert download(client, staff, second["id"]).data == content

    # The last goes: the blob and the file with it.
    assert_success(delete(client, admin, second["id"]), 200, "Attachment deleted")
    assert rows(Attachment) == []
    assert rows(AttachmentBlob) == []
    assert files_under(storage_dir) == []


def test_the_same_bytes_twice_in_one_request_are_stored_once(
    client, staff, make_ticket, rows, storage_dir
):
    ticket_id = make_ticket(staff)

    data = attached(client, staff, ticket_id, ("a.txt", TEXT), ("b.txt", TEXT))

    assert [item["sha256"] for item in data] == [sha(TEXT)] * 2
    assert len(rows(Attachment)) == 2
    assert len(rows(AttachmentBlob)) == 1
    assert files_under(storage_dir) == [object_path(1, TEXT)]


def test_another_isps_identical_bytes_are_stored_on_their_own(
    client, staff, other_staff, admin, other_admin, make_ticket, rows, storage_dir
):
    ours, theirs = make_ticket(staff), make_ticket(other_staff)
    content = png(7)
    [mine] = attached(client, staff, ours, ("ours.png", content))
    [other] = attached(client, other_staff, theirs, ("theirs.png", content))

    assert [(row["isp_id"], row["ticket_id"]) for row in rows(Attachment)] == [
        (1, ours),
        (2, theirs),
    ]
    assert [(blob["isp_id"], blob["sha256"]) for blob in rows(AttachmentBlob)] == [
        (1, sha(content)),
        (2, sha(content)),
    ]
    assert files_under(storage_dir) == [object_path(1, content), object_path(2, content)]

    assert_success(delete(client, other_admin, other["id"]), 200, "Attachment deleted")

    assert [row["id"] for row in rows(Attachment)] == [mine["id"]]
    assert [blob["isp_id"] for blob in rows(AttachmentBlob)] == [1]
    assert files_under(storage_dir) == [object_path(1, content)]
    assert download(client, admin, mine["id"]).data == content


def test_deleting_an_attachment_on_a_reply_takes_it_off_the_reply(
    client, staff, admin, make_ticket, rows, fetch
):
    ticket_id = make_ticket(staff)
    data = attached(client, staff, ticket_id, ("a.png", png()), ("b.txt", TEXT))
    assert_success(reply(client, staff, ticket_id, attachment_ids=[i["id"] for i in data]), 201)
    [reply_row] = rows(TicketReply)

    assert_success(delete(client, admin, data[0]["id"]), 200, "Attachment deleted")

    kept = {key: data[1][key] for key in REF_KEYS}
    assert fetch(TicketReply, reply_row["id"])["attachments"] == [kept]
    [shown] = fetched_replies(client, staff, ticket_id)
    assert shown["attachments"] == [kept]
    assert [(row["id"], row["reply_id"]) for row in rows(Attachment)] == [
        (data[1]["id"], reply_row["id"])
    ]
    assert history_in_db(rows, ticket_id)[-1][:3] == ("attachment_deleted", None, "a.png")


# --- Reach -----------------------------------------------------------------------------------


def test_another_isp_reaches_no_attachment_here_and_changes_nothing(
    client, staff, other_admin, other_staff, make_ticket, rows, storage_dir, assert_refused
):
    ticket_id = make_ticket(staff)
    [item] = attached(client, staff, ticket_id, ("a.png", png()))

    for outsider in (other_admin, other_staff):
        assert_refused(lambda o=outsider: upload(client, o, ticket_id, ("b.txt", TEXT)), 404)
        assert_refused(
            lambda o=outsider: get(client, o, ticket_url(ticket_id, "/attachments")), 404
        )
        assert_refused(lambda o=outsider: download(client, o, item["id"]), 404)
    assert_refused(lambda: delete(client, other_admin, item["id"]), 404)

    assert [row["id"] for row in rows(Attachment)] == [item["id"]]
    assert len(rows(AttachmentBlob)) == 1
    assert files_under(storage_dir) == [object_path(1, png())]


def test_staff_of_another_branch_reach_no_attachment_of_branch_1(
    client, staff, staff_branch2, make_ticket, rows, storage_dir, assert_refused
):
    ticket_id = make_ticket(staff)
    [item] = attached(client, staff, ticket_id, ("a.png", png()))

    refused = assert_refused(lambda: upload(client, staff_branch2, ticket_id, ("b.txt", TEXT)), 404)
    assert refused.json["message"] == "Ticket not found."
    assert_refused(lambda: get(client, staff_branch2, ticket_url(ticket_id, "/attachments")), 404)
    refused = assert_refused(lambda: download(client, staff_branch2, item["id"]), 404)
    assert refused.json["message"] == "Attachment not found."
    # Deleting is an admin's: staff are refused whatever the id, so nothing is told.
    gone = item["id"] + 1000
    assert assert_refused(lambda: delete(client, staff_branch2, item["id"]), 403).json == (
        assert_refused(lambda: delete(client, staff_branch2, gone), 403).json
    )

    assert [row["id"] for row in rows(Attachment)] == [item["id"]]
    assert files_under(storage_dir) == [object_path(1, png())]


def test_a_deleted_tickets_attachments_are_404(
    client, staff, admin, make_ticket, rows, storage_dir, assert_refused
):
    ticket_id = make_ticket(staff)
    [item] = attached(client, staff, ticket_id, ("a.png", png()))
    assert_success(call(client, admin, "DELETE", ticket_url(ticket_id)), 200)

    for caller in (staff, admin):
        assert_refused(lambda c=caller: upload(client, c, ticket_id, ("b.txt", TEXT)), 404)
        assert_refused(lambda c=caller: get(client, c, ticket_url(ticket_id, "/attachments")), 404)
        assert_refused(lambda c=caller: download(client, c, item["id"]), 404)
    assert_refused(lambda: delete(client, admin, item["id"]), 404)

    assert [row["id"] for row in rows(Attachment)] == [item["id"]]
    assert len(rows(AttachmentBlob)) == 1
    assert files_under(storage_dir) == [object_path(1, png())]


# --- API keys --------------------------------------------------------------------------------


def test_a_read_key_lists_and_downloads_but_may_not_upload(
    client, staff, admin, make_key, make_ticket, rows, assert_refused, storage_dir
):
    ticket_id = make_ticket(staff)
    [item] = attached(client, staff, ticket_id, ("a.png", png()))
    key = make_key(admin, scopes=["tickets:read"])

    assert listed(client, key, ticket_id) == [item]
    response = download(client, key, item["id"])
    assert (response.status_code, response.data) == (200, png())
    refused = assert_refused(lambda: upload(client, key, ticket_id, ("b.txt", TEXT)), 403)
    assert "tickets:write" in refused.json["message"]

    assert [row["id"] for row in rows(Attachment)] == [item["id"]]
    assert files_under(storage_dir) == [object_path(1, png())]


def test_a_branch_key_reaches_no_attachment_of_another_branch(
    client, staff, staff_branch2, admin, make_key, make_ticket, rows, storage_dir, assert_refused
):
    ticket_id = make_ticket(staff)
    [item] = attached(client, staff, ticket_id, ("a.png", png()))
    # A key of branch 2 (which staff_branch2 makes exist).
    key = make_key(admin, scopes=["tickets:read", "tickets:write"], branch_id=2)

    assert_refused(lambda: upload(client, key, ticket_id, ("b.txt", TEXT)), 404)
    assert_refused(lambda: get(client, key, ticket_url(ticket_id, "/attachments")), 404)
    assert_refused(lambda: download(client, key, item["id"]), 404)

    assert [row["id"] for row in rows(Attachment)] == [item["id"]]
    assert files_under(storage_dir) == [object_path(1, png())]


def test_a_write_key_uploads_in_its_admins_name(
    client, staff, admin, make_key, make_ticket, rows, storage_dir
):
    ticket_id = make_ticket(staff)
    key = make_key(admin, scopes=["tickets:write"])
    before = history_in_db(rows, ticket_id)

    [item] = attached(client, key, ticket_id, ("a.png", png()))

    [row] = rows(Attachment)
    assert (row["id"], row["uploaded_by_id"], row["key_id"]) == (item["id"], admin.id, key.id)
    assert row["by_subscriber"] is False
    assert files_under(storage_dir) == [object_path(1, png())]
    added = history_in_db(rows, ticket_id)[len(before) :]
    assert added == [("attached", None, None, ["a.png"], admin.id)]


# --- Replies take attachments ----------------------------------------------------------------


def test_a_reply_takes_the_tickets_attachments(client, staff, admin, make_ticket, rows, fetch):
    ticket_id = make_ticket(staff)
    data = attached(client, staff, ticket_id, ("a.png", png()), ("b.pdf", PDF), ("c.txt", TEXT))
    taken = [data[2]["id"], data[0]["id"]]

    response = reply(client, staff, ticket_id, "Here is what we saw.", attachment_ids=taken)

    assert_success(response, 201, "Reply added successfully")
    [reply_row] = rows(TicketReply)
    refs = [{key: item[key] for key in REF_KEYS} for item in (data[0], data[2])]
    assert fetch(TicketReply, reply_row["id"])["attachments"] == refs
    assert [(row["id"], row["reply_id"]) for row in rows(Attachment)] == [
        (data[0]["id"], reply_row["id"]),
        (data[1]["id"], None),
        (data[2]["id"], reply_row["id"]),
    ]
    [shown] = fetched_replies(client, admin, ticket_id)
    assert (shown["id"], shown["author"], shown["user_id"]) == (reply_row["id"], "staff", staff.id)
    assert shown["message"] == "Here is what we saw."
    assert shown["attachments"] == refs
    replies = assert_success(get(client, admin, ticket_url(ticket_id, "/replies")), 200)["data"]
    assert [(r["author"], r["attachments"]) for r in replies] == [("staff", refs)]
    assert [item["reply_id"] for item in listed(client, staff, ticket_id)] == [
        reply_row["id"],
        None,
        reply_row["id"],
    ]


def test_a_reply_without_attachment_ids_lists_none(client, staff, make_ticket, rows):
    ticket_id = make_ticket(staff)
    attached(client, staff, ticket_id, ("a.png", png()))

    assert_success(reply(client, staff, ticket_id), 201, "Reply added successfully")

    [shown] = fetched_replies(client, staff, ticket_id)
    assert (shown["author"], shown["attachments"]) == ("staff", [])
    assert [row["reply_id"] for row in rows(Attachment)] == [None]


def test_a_reply_takes_twenty_attachments(client, staff, make_ticket, rows):
    ticket_id = make_ticket(staff)
    data = attached(client, staff, ticket_id, *[(f"n{n}.txt", text(n)) for n in range(20)])

    response = reply(client, staff, ticket_id, attachment_ids=[item["id"] for item in data])

    assert_success(response, 201, "Reply added successfully")
    [reply_row] = rows(TicketReply)
    assert {row["reply_id"] for row in rows(Attachment)} == {reply_row["id"]}
    assert len(fetched_replies(client, staff, ticket_id)[0]["attachments"]) == 20


@pytest.fixture
def candidates(client, staff, other_staff, make_ticket, make_subscriber):
    """A ticket with one attachment waiting for a reply, and attachments no reply of it may
    take: another ticket's, one already on a reply, the subscriber's, another ISP's."""
    ticket_id = make_ticket(staff, subscriber_id=make_subscriber())
    [waiting, on_reply] = attached(client, staff, ticket_id, ("w.png", png(1)), ("r.txt", TEXT))
    assert_success(reply(client, staff, ticket_id, attachment_ids=[on_reply["id"]]), 201)
    [elsewhere] = attached(client, staff, make_ticket(staff), ("e.png", png(2)))
    [foreign] = attached(client, other_staff, make_ticket(other_staff), ("f.png", png(3)))
    link = call(client, staff, "POST", ticket_url(ticket_id, "/subscriber-link"), {})
    token = assert_success(link, 201, "Subscriber link created")["data"]["token"]
    body, content_type = multipart([("from-home.png", png(4))])
    response = client.post(
        f"/api/v1/public/tickets/{token}/attachments", data=body, content_type=content_type
    )
    [subscribers] = assert_success(response, 201, "Files attached")["data"]
    extra = attached(client, staff, ticket_id, *[(f"x{n}.txt", text(n)) for n in range(20)])
    return {
        "ticket": ticket_id,
        "waiting": waiting["id"],
        "on_reply": on_reply["id"],
        "elsewhere": elsewhere["id"],
        "foreign": foreign["id"],
        "subscribers": subscribers["id"],
        "twenty_more": [item["id"] for item in extra],
    }


UNUSABLE_IDS = {
    "unknown": lambda c: [c["waiting"], 999_999],
    "another-tickets": lambda c: [c["elsewhere"]],
    "another-isps": lambda c: [c["foreign"]],
    "already-on-a-reply": lambda c: [c["on_reply"]],
    "the-subscribers-upload": lambda c: [c["waiting"], c["subscribers"]],
    "a-duplicate": lambda c: [c["waiting"], c["waiting"]],
    "21-ids": lambda c: [c["waiting"], *c["twenty_more"]],
}


@pytest.mark.parametrize("ids_of", UNUSABLE_IDS.values(), ids=UNUSABLE_IDS)
def test_a_reply_with_attachment_ids_it_may_not_take_is_422_and_stores_no_reply(
    client, staff, candidates, rows, assert_refused, ids_of
):
    ticket_id = candidates["ticket"]
    replies_before = rows(TicketReply)
    attachment_ids = ids_of(candidates)

    assert_refused(
        lambda: reply(client, staff, ticket_id, attachment_ids=attachment_ids),
        422,
        "attachment_ids",
    )

    assert rows(TicketReply) == replies_before
    waiting = {row["id"]: row["reply_id"] for row in rows(Attachment)}
    assert waiting[candidates["waiting"]] is None
    assert waiting[candidates["subscribers"]] is None


def test_an_attachment_on_a_reply_cannot_be_taken_by_another_reply(
    client, staff, admin, make_ticket, rows, assert_refused
):
    ticket_id = make_ticket(staff)
    [item] = attached(client, staff, ticket_id, ("a.png", png()))
    assert_success(reply(client, staff, ticket_id, attachment_ids=[item["id"]]), 201)
    [first] = rows(TicketReply)

    assert_refused(
        lambda: reply(client, admin, ticket_id, attachment_ids=[item["id"]]), 422, "attachment_ids"
    )

    assert [row["id"] for row in rows(TicketReply)] == [first["id"]]
    assert [row["reply_id"] for row in rows(Attachment)] == [first["id"]]


def test_a_deleted_attachment_cannot_be_taken_by_a_reply(
    client, staff, admin, make_ticket, rows, assert_refused
):
    ticket_id = make_ticket(staff)
    [item] = attached(client, staff, ticket_id, ("a.png", png()))
    assert_success(delete(client, admin, item["id"]), 200, "Attachment deleted")

    assert_refused(
        lambda: reply(client, staff, ticket_id, attachment_ids=[item["id"]]), 422, "attachment_ids"
    )

    assert rows(TicketReply) == []
    assert rows(Attachment) == []
