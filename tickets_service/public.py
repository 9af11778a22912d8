"""The subscriber's side of a ticket: a link staff make (POST .../subscriber-link), and what
its token opens without a login: the public conversation, the subscriber's own replies and
files (/api/v1/public/tickets/{token}), and a small page for a phone (/t/{token}).

A token is 256 random bits; only its SHA-256 is kept. Every token, of any shape, costs the
same lookup by hash, and an unknown, revoked (deleted) or deleted ticket's token gets the same
404: nothing tells them apart. An expired one is 410. Reads and replies are limited per
token and per client address (PUBLIC_RATE_LIMIT_READS / _REPLIES).
"""

import base64
import hashlib
import secrets
from datetime import timedelta

from flask import Blueprint as FlaskBlueprint
from flask import abort, current_app, redirect, render_template, request
from markupsafe import Markup
from marshmallow import ValidationError
from sqlalchemy import select
from werkzeug.exceptions import Gone, HTTPException, TooManyRequests

from . import attachments, login_limits
from .extensions import db
from .models import (
    MAX_ID,
    Actor,
    Attachment,
    HistoryAction,
    IspSettings,
    Subscriber,
    SubscriberLink,
    Ticket,
    TicketReply,
    TicketStatus,
    as_utc,
    utcnow,
)
from .openapi import Blueprint
from .schemas import (
    AttachmentRefOut,
    PublicTicketOut,
    SubscriberLinkOut,
    no_args,
    public_reply_in,
    subscriber_link_in,
    ticket_scope_args,
)
from .scope import current_scope
from .tokens import token_required
from .transport import reject_impossible_ids, streams_body

links_bp = Blueprint(
    "subscriber_links",
    __name__,
    description="Links that show a ticket's public conversation to its subscriber.",
    key_scopes=("tickets:read", "tickets:write"),
)
links_bp.url_value_preprocessor(reject_impossible_ids("Ticket not found."))
public_bp = Blueprint(
    "public",
    __name__,
    description="What a subscriber's link opens, without a login: the token is the key.",
)
public_bp.url_value_preprocessor(reject_impossible_ids("Attachment not found."))
page_bp = FlaskBlueprint("page", __name__)

DEFAULT_LIFETIME = timedelta(days=30)
# The public conversation shows at most this many replies (the latest).
PUBLIC_REPLIES = 500
# Files the subscriber sends at a time.
PUBLIC_FILES = 5
UNKNOWN = "No such link."
EXPIRED = "This link has expired; ask your provider for a new one."
CLOSED = "This ticket is closed; write to your provider to open a new one."


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


# --- Staff: making and revoking links ---------------------------------------------------


@links_bp.post("/<id:ticket_id>/subscriber-link")
@token_required
@links_bp.arguments(ticket_scope_args, location="query")
@links_bp.arguments(subscriber_link_in)
@links_bp.response(201, SubscriberLinkOut, message="Subscriber link created")
@links_bp.errors(403, 404)
def create_link(_scope, data, ticket_id: int):
    """Make a link for Ticket's subscriber: the token is shown once, in this answer. It
    works until expires_at (default 30 days, at most a year ahead)."""
    from .tickets import get_ticket_or_404

    scope = current_scope()
    ticket = get_ticket_or_404(scope, ticket_id)
    now = utcnow()
    expires_at = data.get("expires_at") or now + DEFAULT_LIFETIME
    if expires_at <= now:
        raise ValidationError({"expires_at": ["Must be in the future."]})
    if expires_at > _a_year_after(now):
        raise ValidationError({"expires_at": ["Must be at most a year ahead."]})
    token = secrets.token_urlsafe(32)
    db.session.add(
        SubscriberLink(
            isp_id=ticket.isp_id,
            ticket_id=ticket.id,
            token_hash=token_hash(token),
            expires_at=expires_at,
            created_by_id=scope.actor.user_id,
            key_id=scope.key_id,
        )
    )
    ticket.record(HistoryAction.LINK_CREATED, scope.actor, None, None, expires_at)
    db.session.commit()
    return {"token": token, "path": f"/t/{token}", "expires_at": expires_at}


def _a_year_after(moment):
    try:
        return moment.replace(year=moment.year + 1)
    except ValueError:  # 29 February
        return moment.replace(year=moment.year + 1, day=28)


@links_bp.delete("/<id:ticket_id>/subscriber-link")
@token_required
@links_bp.arguments(ticket_scope_args, location="query")
@links_bp.response(200, message="Subscriber links revoked")
@links_bp.errors(403, 404)
def revoke_links(_scope, ticket_id: int):
    """Revoke every link of Ticket: their tokens are unknown from now on."""
    from .tickets import get_ticket_or_404

    scope = current_scope()
    ticket = get_ticket_or_404(scope, ticket_id)
    gone = db.session.execute(
        SubscriberLink.__table__.delete().where(SubscriberLink.ticket_id == ticket.id)
    ).rowcount
    ticket.record(HistoryAction.LINK_REVOKED, scope.actor, None, gone, None)
    db.session.commit()


# --- The token ----------------------------------------------------------------------------


def _charge(kind: str, token: str) -> None:
    """Count the request per token and per address (429 with Retry-After beyond)."""
    if not current_app.config["RATE_LIMITS"]:
        return
    setting = current_app.config[f"PUBLIC_RATE_LIMIT_{kind.upper()}"]
    address = request.remote_addr or "unknown"
    login_limits.count(
        [
            (f"public-{kind}:token:{token_hash(token)}", setting),
            (f"public-{kind}:{address}", setting),
        ],
        lambda retry_after: TooManyRequests(
            "Too many requests: retry after the Retry-After delay.", retry_after=retry_after
        ),
    )


def opened(token: str, kind: str | None = "reads", *, lock: bool = False) -> Ticket:
    """The live ticket a token opens (404 the same way for any token that opens none; 410
    once it expired), charged to the token's and the address's limits (`kind`; None: this
    request was charged already)."""
    if kind is not None:
        _charge(kind, token)
    query = (
        select(Ticket, SubscriberLink.expires_at)
        .join(SubscriberLink, SubscriberLink.ticket_id == Ticket.id)
        .where(SubscriberLink.token_hash == token_hash(token), Ticket.deleted_at.is_(None))
    )
    if lock:
        query = query.with_for_update(of=Ticket)
    found = db.session.execute(query).first()
    if found is None:
        abort(404, UNKNOWN)
    ticket, expires_at = found
    if as_utc(expires_at) <= utcnow():
        raise Gone(EXPIRED)
    return ticket


def conversation(ticket: Ticket) -> dict:
    """The ticket as its subscriber sees it: public replies only, staff under one name."""
    staff = db.session.scalar(
        select(IspSettings.staff_display_name).where(IspSettings.isp_id == ticket.isp_id)
    )
    replies = db.session.execute(
        select(
            TicketReply.id,
            TicketReply.message,
            TicketReply.author_name,
            TicketReply.created_at,
            TicketReply.attachments,
        )
        .where(TicketReply.ticket_id == ticket.id, TicketReply.internal.is_(False))
        .order_by(TicketReply.created_at.desc(), TicketReply.id.desc())
        .limit(PUBLIC_REPLIES)
    ).all()
    return {
        "id": ticket.id,
        "title": ticket.title,
        "description": ticket.description,
        "status": ticket.status,
        "created_at": ticket.created_at,
        "updated_at": ticket.updated_at,
        "replies": [
            {
                "id": reply.id,
                "message": reply.message,
                "author": "staff" if reply.author_name is None else "subscriber",
                "author_name": reply.author_name or staff or "Support",
                "created_at": reply.created_at,
                "attachments": reply.attachments,
            }
            for reply in reversed(replies)
        ],
    }


def _subscriber(ticket: Ticket) -> Actor:
    """The subscriber, by name, as the actor of what they do through their link."""
    name = None
    if ticket.subscriber_id is not None:
        name = db.session.scalar(
            select(Subscriber.name).where(Subscriber.id == ticket.subscriber_id)
        )
    return Actor(ticket.created_by_id, subscriber=name or "Subscriber")


def _open_for_writing(token: str, *, charge: bool = True) -> Ticket:
    """The ticket a write through the link goes to, locked; 409 once it is closed."""
    ticket = opened(token, "replies" if charge else None, lock=True)
    if ticket.status == TicketStatus.CLOSED:
        abort(409, CLOSED)
    return ticket


def _files(token: str, files_required: bool = True) -> tuple[dict, list]:
    """The files of a write through the link: its token checked first (unlocked), then the
    body read with nothing held, so a slow upload never keeps the ticket locked."""
    _open_for_writing(token)
    db.session.rollback()
    return attachments.receive(PUBLIC_FILES, files_required=files_required)


def reply(ticket: Ticket, message: str, attachment_ids: list[int]) -> TicketReply:
    """The subscriber's reply: it reopens a resolved ticket and ends a wait on them."""
    by = _subscriber(ticket)
    ticket.heard_from_subscriber(by)
    written = ticket.add_reply(message, False, by)
    attachments.bind(ticket, written, attachment_ids, by_subscriber=True)
    return written


def _public_attachment(ticket: Ticket, attachment_id: int) -> Attachment:
    """A file of the ticket's public conversation (on a public reply); any other is 404."""
    if not 1 <= attachment_id <= MAX_ID:
        abort(404, "Attachment not found.")
    row = db.session.scalar(
        select(Attachment)
        .join(TicketReply, TicketReply.id == Attachment.reply_id)
        .where(
            Attachment.id == attachment_id,
            Attachment.ticket_id == ticket.id,
            TicketReply.internal.is_(False),
        )
    )
    if row is None:
        abort(404, "Attachment not found.")
    return row


# --- The public API ----------------------------------------------------------------------

TOKEN = "/<token>"


@public_bp.get(TOKEN)
@public_bp.arguments(no_args, location="query")
@public_bp.response(200, PublicTicketOut)
@public_bp.errors(404, 410, 429, 503)
def public_ticket(_args, token: str):
    """Read Ticket through its link: its public conversation, never a note, the assignee or
    its history."""
    return conversation(opened(token))


@public_bp.post(f"{TOKEN}/attachments")
@streams_body
@public_bp.arguments(no_args, location="query")
@public_bp.doc(requestBody=attachments.MULTIPART)
@public_bp.response(201, AttachmentRefOut(many=True), message="Files attached")
@public_bp.errors(404, 409, 410, 413, 422, 429, 503)
def public_upload(_args, token: str):
    """Send files for a reply (at most 5 at a time): images, PDF, text, CSV. The reply takes
    them with attachment_ids."""
    _form, uploads = _files(token)
    ticket = _open_for_writing(token, charge=False)
    rows = attachments.store(ticket, uploads, _subscriber(ticket))
    db.session.commit()
    return rows


@public_bp.post(f"{TOKEN}/reply")
@public_bp.arguments(no_args, location="query")
@public_bp.arguments(public_reply_in)
@public_bp.response(201, message="Reply added successfully")
@public_bp.errors(404, 409, 410, 429, 503)
def public_reply(_args, data, token: str):
    """Reply as the subscriber. A resolved ticket opens again; a closed one is 409."""
    ticket = _open_for_writing(token)
    reply(ticket, data["message"], data.get("attachment_ids", []))
    db.session.commit()


@public_bp.get(f"{TOKEN}/attachments/<id:attachment_id>")
@public_bp.arguments(no_args, location="query")
@public_bp.doc(**attachments.DOWNLOAD)
@public_bp.errors(404, 410, 429, 503)
def public_download(_args, token: str, attachment_id: int):
    """Download a file of the public conversation."""
    row = _public_attachment(opened(token), attachment_id)
    db.session.commit()
    return attachments.stream(row)


# --- The page -----------------------------------------------------------------------------

# The page's only style, inline; the Content-Security-Policy allows exactly it.
STYLE = """
body{font:16px/1.5 system-ui,sans-serif;margin:0;padding:12px;color:#1b1b1b;background:#f6f6f4}
main{max-width:640px;margin:0 auto}
h1{font-size:1.3em;margin:.2em 0}
.status{display:inline-block;padding:2px 8px;border-radius:10px;background:#e3e8ef;font-size:.9em}
.msg{background:#fff;border-radius:8px;padding:10px 12px;margin:10px 0;overflow-wrap:anywhere}
.msg.subscriber{background:#e8f4ea}
.who{font-size:.85em;color:#555}
.text{white-space:pre-wrap}
textarea,input,button{font:inherit;width:100%;box-sizing:border-box;margin:6px 0}
textarea{min-height:6em;padding:8px}
button{padding:10px;border:0;border-radius:6px;background:#2456a6;color:#fff}
.error{color:#a11}
""".strip()
_STYLE_HASH = base64.b64encode(hashlib.sha256(STYLE.encode()).digest()).decode()
PAGE_POLICY = (
    f"default-src 'none'; style-src 'sha256-{_STYLE_HASH}'; img-src 'self' data:; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
STATUS_NAMES = {0: "Open", 1: "In progress", 2: "Resolved", 3: "Closed", 4: "Waiting for you"}


def _page(template: str, status: int = 200, **values):
    body = render_template(template, style=Markup(STYLE), statuses=STATUS_NAMES, **values)
    headers = {
        "Content-Security-Policy": PAGE_POLICY,
        "Referrer-Policy": "no-referrer",
        "X-Frame-Options": "DENY",
    }
    return body, status, headers


def _plain(error: HTTPException):
    """A refusal, for a person: the same plain page for any link that opens nothing."""
    message = error.description if error.code in (409, 410, 413, 429) else UNKNOWN
    body, status, headers = _page("public_message.html", error.code or 404, message=message)
    for name, value in error.get_headers():
        if name == "Retry-After":
            headers[name] = value
    return body, status, headers


@page_bp.get("/t/<token>")
def page(token: str):
    try:
        ticket = opened(token)
    except HTTPException as error:
        return _plain(error)
    return _page("public_ticket.html", ticket=conversation(ticket), token=token)


@page_bp.post("/t/<token>")
@streams_body
def page_reply(token: str):
    """The page's form: a message and an optional photo. Then back to the page (303)."""
    try:
        form, uploads = _files(token, files_required=False)
        ticket = _open_for_writing(token, charge=False)
        message = public_reply_in.load({"message": form.get("message", "")})["message"]
        ids = []
        if uploads:
            ids = [row.id for row in attachments.store(ticket, uploads, _subscriber(ticket))]
        reply(ticket, message, ids)
        db.session.commit()
    except ValidationError as invalid:
        db.session.rollback()
        problems = [p for messages in invalid.normalized_messages().values() for p in messages]
        try:
            shown = conversation(opened(token, None))  # charged already
        except HTTPException as error:
            return _plain(error)
        return _page("public_ticket.html", 422, ticket=shown, token=token, problems=problems)
    except HTTPException as error:
        db.session.rollback()
        return _plain(error)
    return redirect(f"/t/{token}#latest", 303)


@page_bp.get("/t/<token>/files/<id:attachment_id>")
def page_file(token: str, attachment_id: int):
    try:
        row = _public_attachment(opened(token), attachment_id)
    except HTTPException as error:
        return _plain(error)
    db.session.commit()
    return attachments.stream(row)
