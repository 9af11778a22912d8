"""Attachments: files on a ticket, uploaded by staff (or a key) or by the subscriber through
their link, taken by a reply (attachment_ids), listed, streamed back and deleted by admins.

An upload streams: the multipart parser writes each file through a `Received` straight to a
spooled temporary file (memory holds at most SPOOL bytes of it), hashing it on the way and
keeping its first bytes for sniffing; a file over ATTACHMENT_MAX_BYTES stops the parse at
the limit (413). The type is sniffed from the bytes, never taken from the client, and must be
on the allow list and agree with the name's extension. The bytes are stored once per ISP and
SHA-256 (storage.py), whatever the name; the row keeps the clean name.
"""

import hashlib
import logging
import re
import tempfile
import unicodedata
from dataclasses import dataclass
from urllib.parse import quote

import filetype
from flask import Response, abort, current_app, g, request
from marshmallow import ValidationError
from sqlalchemy import func, select
from werkzeug.exceptions import BadRequest, RequestEntityTooLarge
from werkzeug.formparser import FormDataParser

from . import storage
from .extensions import db, insert
from .models import Actor, Attachment, AttachmentBlob, HistoryAction, Ticket, TicketReply, utcnow
from .openapi import Blueprint
from .schemas import AttachmentOut, AttachmentRefOut, ticket_scope_args
from .scope import current_scope
from .tokens import token_required
from .transport import reject_impossible_ids, streams_body

log = logging.getLogger(__name__)

bp = Blueprint(
    "attachments",
    __name__,
    description="Files attached to tickets (admins delete).",
    key_scopes=("tickets:read", "tickets:write"),
)
_no_ticket = reject_impossible_ids("Ticket not found.")
_no_attachment = reject_impossible_ids("Attachment not found.")


@bp.url_value_preprocessor
def _possible_ids(endpoint, values) -> None:
    """An impossible id is 404 before SQL: the ticket's, or the attachment's."""
    (_no_ticket if values and "ticket_id" in values else _no_attachment)(endpoint, values)


# At most this many files in one upload, and on one reply (the subscriber's link: fewer).
MAX_FILES = 20
# What a spooled upload keeps in memory before it moves to a temporary file.
SPOOL = 256 * 1024
# The bytes sniffing reads.
HEAD = 8 * 1024

# The allow list: each type and the extensions a name of it may end in.
EXTENSIONS = {
    "image/png": ("png",),
    "image/jpeg": ("jpg", "jpeg", "jpe"),
    "image/gif": ("gif",),
    "image/webp": ("webp",),
    "image/heic": ("heic", "heif"),
    "application/pdf": ("pdf",),
    "text/plain": ("txt", "log", "text"),
    "text/csv": ("csv",),
}
TYPE_OF_EXTENSION = {ext: kind for kind, exts in EXTENSIONS.items() for ext in exts}
# Text that opens with a tag (after any byte-order mark and white space) is markup a browser
# could render (HTML, SVG, XML, a doctype, a comment): never stored, whatever the name says.
_MARKUP = re.compile(rb"^(?:\xef\xbb\xbf)?\s*<")
# Bytes no text file has (C0 controls other than tab, newlines, form feed and escape).
_BINARY = re.compile(rb"[\x00-\x08\x0b\x0e-\x1a\x1c-\x1f]")
_UNSAFE_NAME = re.compile(r"[^\w.\- ()+,=@\[\]]")


@dataclass
class Upload:
    """A received file, checked: its clean name, sniffed type, size and digest, and the
    spooled bytes to store."""

    name: str
    content_type: str
    size: int
    sha256: str
    file: tempfile.SpooledTemporaryFile


class Received:
    """The file object the multipart parser writes one file into: spooled, hashed, its head
    kept, and refused (413) the moment it passes the limit, so the rest is never read."""

    def __init__(self, limit: int):
        self.limit = limit
        self.size = 0
        self.digest = hashlib.sha256()
        self.head = b""
        self.file = tempfile.SpooledTemporaryFile(max_size=SPOOL)  # noqa: SIM115 (closed by its owner)

    def write(self, data: bytes) -> int:
        self.size += len(data)
        if self.size > self.limit:
            self.file.close()
            raise RequestEntityTooLarge(
                f"A file is larger than the limit of {self.limit} bytes (ATTACHMENT_MAX_BYTES)."
            )
        if len(self.head) < HEAD:
            self.head += data[: HEAD - len(self.head)]
        self.digest.update(data)
        return self.file.write(data)

    def seek(self, *args) -> int:
        return self.file.seek(*args)

    def read(self, *args) -> bytes:
        return self.file.read(*args)

    def close(self) -> None:
        self.file.close()


def receive(max_files: int, *, files_required: bool = True) -> tuple[dict, list[Upload]]:
    """The request's form fields and its files, checked (422 naming `files`), or 413 at the
    first byte past a limit. Nothing is stored yet."""
    if request.mimetype != "multipart/form-data":
        raise ValidationError({"files": ["Send the files as multipart/form-data."]})
    limit = current_app.config["ATTACHMENT_MAX_BYTES"]
    # The whole body: the files and their parts' headers, and a little for form fields.
    request.max_content_length = max_files * (limit + 16 * 1024) + 256 * 1024
    received = 0

    def stream_factory(*_args, **_kwargs):
        nonlocal received
        if received >= max_files:
            raise ValidationError({"files": [f"At most {max_files} files at a time."]})
        received += 1
        part = Received(limit)
        g.setdefault("received", []).append(part)  # closed when the request ends
        return part

    parser = FormDataParser(
        stream_factory,
        max_form_memory_size=256 * 1024,
        max_form_parts=max_files + 10,
        silent=False,
    )
    try:
        _stream, form, files = parser.parse(
            request.stream, request.mimetype, request.content_length, request.mimetype_params
        )
    except ValueError:
        raise BadRequest("The multipart body is malformed.") from None
    uploads, problems = [], []
    for _name, storage_file in files.items(multi=True):
        part = storage_file.stream  # the Received the parser wrote it into
        upload, problem = _checked(storage_file.filename or "", part)
        if problem:
            problems.append(problem)
        elif upload is not None:
            uploads.append(upload)
    if problems:
        raise ValidationError({"files": problems})
    if not uploads and files_required:
        raise ValidationError({"files": ["Send at least one file."]})
    return form.to_dict(), uploads


def close_received(_error=None) -> None:
    """The request's spooled uploads go (their temporary files with them)."""
    for part in g.pop("received", ()):
        part.close()


def _checked(filename: str, part: Received) -> tuple[Upload | None, str | None]:
    """The upload a part makes, or why it is refused; (None, None) for an empty file input
    (a form's file field left blank)."""
    if not filename and part.size == 0:
        return None, None
    name = clean_name(filename)
    if part.size == 0:
        return None, f"{name}: the file is empty."
    kind = sniff(part.head)
    if kind is None:
        return None, f"{name}: this type of file is not allowed (images, PDF, text, CSV)."
    extension = name.rsplit(".", 1)[1].lower() if "." in name else ""
    if extension:
        named = TYPE_OF_EXTENSION.get(extension)
        if kind == "text/plain" and named == "text/csv":
            kind = named
        if named != kind:
            return None, f"{name}: the name says .{extension} but the file is {kind}."
    part.seek(0)
    return Upload(name, kind, part.size, part.digest.hexdigest(), part.file), None


def sniff(head: bytes) -> str | None:
    """The allowed type the first bytes show, or None (anything else, and markup)."""
    guessed = filetype.guess_mime(head)
    if guessed is not None:
        guessed = "image/heic" if guessed == "image/heif" else guessed
        return guessed if guessed in EXTENSIONS else None
    if _MARKUP.match(head) or _BINARY.search(head):
        return None
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as err:
        if err.start < len(head) - 3:  # not merely a character cut at the head's end
            return None
    return "text/plain"


def clean_name(filename: str) -> str:
    """A name safe to show and to send back: its last path part, no controls, no leading
    dots, only word characters and a little punctuation, at most 200 characters."""
    name = unicodedata.normalize("NFC", filename).replace("\\", "/").rsplit("/", 1)[-1]
    name = _UNSAFE_NAME.sub("_", "".join(c for c in name if unicodedata.category(c)[0] != "C"))
    name = name.strip(" .") or "file"
    if len(name) > 200:
        stem, dot, extension = name.rpartition(".")
        name = (stem[: 199 - len(extension)] + dot + extension) if dot else name[:200]
    return name


# --- Storing ---------------------------------------------------------------------------


def store(ticket: Ticket, uploads: list[Upload], by: Actor) -> list[Attachment]:
    """Keep the files on the ticket (each blob once per ISP) and record that they came."""
    rows = []
    for upload in uploads:
        _keep_blob(ticket.isp_id, upload)
        row = Attachment(
            isp_id=ticket.isp_id,
            ticket_id=ticket.id,
            name=upload.name,
            size=upload.size,
            content_type=upload.content_type,
            sha256=upload.sha256,
            uploaded_by_id=by.user_id,
            key_id=by.key_id,
            by_subscriber=by.subscriber is not None,
        )
        db.session.add(row)
        rows.append(row)
    ticket.record(HistoryAction.ATTACHED, by, None, None, [upload.name for upload in uploads])
    ticket.updated_at = utcnow()  # a change to the ticket: a new version
    db.session.flush()
    return rows


def _keep_blob(isp_id: int, upload: Upload) -> None:
    """The blob's row, locked until the commit (a delete of the same bytes waits), and its
    bytes in the store: written unless already there."""
    name = storage.object_name(isp_id, upload.sha256)
    key = {"isp_id": isp_id, "sha256": upload.sha256}
    while True:
        made = db.session.execute(
            insert(AttachmentBlob)
            .values(**key, size=upload.size)
            .on_conflict_do_nothing()
            .returning(AttachmentBlob.sha256)
        ).first()
        if made is None:
            found = db.session.execute(
                select(AttachmentBlob.sha256).filter_by(**key).with_for_update()
            ).first()
            if found is None:  # deleted meanwhile: make it again
                continue
            if storage.store().exists(name):
                return
        storage.store().put(name, upload.file)
        return


def bind(ticket: Ticket, reply: TicketReply, ids: list[int], *, by_subscriber: bool) -> None:
    """The reply takes these attachments of the ticket, none of them on a reply yet; the
    subscriber's reply only theirs, staff only staff's (422 on attachment_ids otherwise)."""
    if not ids:
        return
    if len(set(ids)) != len(ids):  # (at most MAX_FILES: the schemas say so)
        raise ValidationError({"attachment_ids": ["Name each attachment once."]})
    rows = db.session.scalars(
        select(Attachment)
        .where(
            Attachment.id.in_(ids),
            Attachment.ticket_id == ticket.id,
            Attachment.reply_id.is_(None),
            Attachment.by_subscriber.is_(by_subscriber),
        )
        .order_by(Attachment.id)
        .with_for_update()
    ).all()
    if len(rows) != len(ids):
        missing = sorted(set(ids) - {row.id for row in rows})
        raise ValidationError(
            {
                "attachment_ids": [
                    f"No attachment {missing[0]} of this ticket waiting for a reply; upload it "
                    "first (an attachment goes on one reply only)."
                ]
            }
        )
    db.session.flush()  # the reply's id
    for row in rows:
        row.reply_id = reply.id
    reply.attachments = AttachmentRefOut(many=True).dump(rows)


def stream(row: Attachment) -> Response:
    """The attachment's bytes as a download: never shown inline, never sniffed into HTML."""
    name = storage.object_name(row.isp_id, row.sha256)
    chunks = storage.store().read(name)
    if chunks is None:  # its bytes are gone from the store (restored from an old backup?)
        log.error("attachment %s: no object %s in the store", row.id, name)
        abort(404, "Attachment not found.")
    response = Response(chunks, mimetype=row.content_type, direct_passthrough=True)
    ascii_name = row.name.encode("ascii", "replace").decode().replace('"', "_")
    response.headers["Content-Disposition"] = (
        f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(row.name)}"
    )
    response.headers["Content-Length"] = str(row.size)
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Content-Security-Policy"] = "default-src 'none'; sandbox"
    response.headers["Cache-Control"] = "private, no-store"
    return response


# --- The staff's routes -----------------------------------------------------------------

TICKET_FILES = "/tickets/<id:ticket_id>/attachments"
ONE = "/attachments/<id:attachment_id>"
MULTIPART = {
    "required": True,
    "content": {
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "properties": {
                    "files": {
                        "type": "array",
                        "items": {"type": "string", "format": "binary"},
                        "description": "One or more files, in parts of any name.",
                    }
                },
            }
        }
    },
}


def _attachment_or_404(attachment_id: int, *, lock: bool = False) -> Attachment:
    """An attachment of a live ticket within the caller's reach; any other is 404."""
    scope = current_scope()
    query = (
        select(Attachment)
        .join(Ticket, Ticket.id == Attachment.ticket_id)
        .where(Attachment.id == attachment_id, Attachment.isp_id == scope.isp_id, scope.tickets())
    )
    row = db.session.scalar(query.with_for_update(of=Attachment) if lock else query, scope.params())
    if row is None:
        abort(404, "Attachment not found.")
    return row


@bp.post(TICKET_FILES)
@streams_body
@token_required
@bp.arguments(ticket_scope_args, location="query")
@bp.doc(requestBody=MULTIPART)
@bp.response(201, AttachmentOut(many=True), message="Files attached")
@bp.errors(403, 404, 413, 422)
def upload(_scope, ticket_id: int):
    """Attach files to Ticket (multipart/form-data, at most 20, each at most
    ATTACHMENT_MAX_BYTES): images, PDF, plain text and logs, CSV, sniffed from their bytes. A
    reply takes them with `attachment_ids`."""
    from .tickets import get_ticket_or_404, visible_ticket_or_404

    scope = current_scope()
    # The ticket is locked once the files are in, not while a slow client sends them.
    visible_ticket_or_404(scope, ticket_id)
    db.session.rollback()
    _form, uploads = receive(MAX_FILES)
    rows = store(get_ticket_or_404(scope, ticket_id), uploads, scope.actor)
    db.session.commit()
    return rows


@bp.get(TICKET_FILES)
@token_required
@bp.arguments(ticket_scope_args, location="query")
@bp.response(200, AttachmentOut(many=True))
@bp.errors(403, 404)
def list_attachments(_scope, ticket_id: int):
    """Ticket's attachments, oldest first: on a reply (reply_id) or waiting for one."""
    from .tickets import visible_ticket_or_404

    visible_ticket_or_404(current_scope(), ticket_id)
    return db.session.scalars(
        select(Attachment).where(Attachment.ticket_id == ticket_id).order_by(Attachment.id)
    ).all()


# The answer of a download: the bytes, under the type sniffed when they were stored.
DOWNLOAD = {
    "responses": {
        "200": {
            "description": "The file, as a download (Content-Disposition: attachment).",
            "content": {
                kind: {"schema": {"type": "string", "format": "binary"}} for kind in EXTENSIONS
            },
        }
    }
}


@bp.get(ONE)
@token_required
@bp.arguments(ticket_scope_args, location="query")
@bp.doc(**DOWNLOAD)
@bp.errors(403, 404)
def download(_scope, attachment_id: int):
    """Download Attachment: its bytes under the type sniffed when it was stored."""
    row = _attachment_or_404(attachment_id)
    db.session.commit()  # nothing to keep open while the bytes stream
    return stream(row)


@bp.delete(ONE)
@token_required
@bp.arguments(ticket_scope_args, location="query")
@bp.response(200, message="Attachment deleted")
@bp.errors(403, 404)
def delete_attachment(_scope, attachment_id: int):
    """Delete Attachment (admins): its row, its place on a reply, and its bytes once no other
    attachment of the ISP has them."""
    scope = current_scope()
    scope.require_admin()
    row = _attachment_or_404(attachment_id, lock=True)
    ticket = db.session.get(Ticket, row.ticket_id, with_for_update=True)
    key = {"isp_id": row.isp_id, "sha256": row.sha256}
    db.session.execute(select(AttachmentBlob.sha256).filter_by(**key).with_for_update())
    if row.reply_id is not None:
        reply = db.session.get(TicketReply, row.reply_id)
        reply.attachments = [ref for ref in reply.attachments if ref["id"] != row.id]
    db.session.delete(row)
    ticket.record(HistoryAction.ATTACHMENT_DELETED, scope.actor, None, row.name, None)
    db.session.flush()
    others = db.session.scalar(select(func.count()).select_from(Attachment).filter_by(**key))
    if not others:
        db.session.execute(AttachmentBlob.__table__.delete().filter_by(**key))
        storage.store().delete(storage.object_name(row.isp_id, row.sha256))
    db.session.commit()
    return None
