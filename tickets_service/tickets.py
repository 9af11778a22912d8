"""The tickets blueprint: the seven endpoints of the spec, as thin views."""

from flask import abort
from flask_jwt_extended import current_user
from marshmallow import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import joinedload, selectinload

from .extensions import db
from .models import Subscriber, Ticket, TicketReply
from .openapi import Blueprint
from .responses import Page
from .schemas import (
    CreatedOut,
    PageMeta,
    TicketOut,
    TicketSummaryOut,
    reply_in,
    ticket_in,
    ticket_list_args,
    ticket_scope_args,
    ticket_status_in,
    ticket_update_in,
)
from .scope import require_admin, scoped_tickets
from .tokens import token_required
from .transport import reject_impossible_ids

bp = Blueprint("tickets", __name__, description="Support tickets of the caller's ISP.")
bp.url_value_preprocessor(reject_impossible_ids("Ticket not found."))
TICKET = "/<id:ticket_id>"
# The optional isp_id / branch_id / user_id of every per-ticket endpoint (checked on load).
scope_query = bp.arguments(ticket_scope_args, location="query")


def get_ticket_or_404(ticket_id: int, *options) -> Ticket:
    """The live ticket with this id within the caller's reach.

    Another ISP's or branch's ticket is 404, not 403: its existence is not the caller's to know.
    """
    ticket = db.session.scalar(scoped_tickets().where(Ticket.id == ticket_id).options(*options))
    if ticket is None:
        abort(404, "Ticket not found.")
    return ticket


def check_subscriber(subscriber_id: int, isp_id: int, branch_id: int) -> None:
    """422 unless the subscriber belongs to the ticket's ISP and branch."""
    found = db.session.scalar(
        select(Subscriber.id).where(
            Subscriber.id == subscriber_id,
            Subscriber.isp_id == isp_id,
            Subscriber.branch_id == branch_id,
        )
    )
    if found is None:
        raise ValidationError(
            {"subscriber_id": ["No subscriber with this id in the ticket's ISP and branch."]}
        )


@bp.get("")
@token_required
@bp.arguments(ticket_list_args, location="query")
@bp.response(200, TicketSummaryOut(many=True), meta=PageMeta)
@bp.errors(403)
def list_tickets(args):
    """Fetch All Tickets of one branch, newest first, a page at a time."""
    query = (
        scoped_tickets()
        .where(Ticket.branch_id == args["branch_id"])
        .options(joinedload(Ticket.subscriber))
        .order_by(Ticket.created_at.desc(), Ticket.id.desc())
    )
    for name in ("status", "priority"):
        if name in args:
            query = query.where(getattr(Ticket, name) == args[name])
    page = db.paginate(query, page=args["page"], per_page=args["per_page"], error_out=False)
    meta = {"page": page.page, "per_page": page.per_page, "total": page.total, "pages": page.pages}
    return Page(page.items, meta)


@bp.get(TICKET)
@token_required
@scope_query
@bp.response(200, TicketOut)
@bp.errors(403, 404)
def get_ticket(_scope, ticket_id: int):
    """Fetch Ticket, with its replies oldest first."""
    return get_ticket_or_404(
        ticket_id,
        joinedload(Ticket.subscriber),
        selectinload(Ticket.replies).joinedload(TicketReply.author),
    )


@bp.post("")
@token_required
@scope_query
@bp.arguments(ticket_in)
@bp.response(201, CreatedOut, message="Ticket created successfully")
@bp.errors(403)
def create_ticket(_scope, data):
    """Create Ticket in the caller's ISP; the branch defaults to the caller's."""
    ticket = Ticket(
        isp_id=current_user.isp_id,
        branch_id=data.get("branch_id", current_user.branch_id),
        subscriber_id=data.get("subscriber_id"),
        created_by_id=current_user.id,
        title=data["title"],
        description=data["description"],
        priority=data["priority"],
    )
    if ticket.subscriber_id is not None:
        check_subscriber(ticket.subscriber_id, ticket.isp_id, ticket.branch_id)
    db.session.add(ticket)
    db.session.commit()
    return ticket


@bp.put(TICKET)
@token_required
@scope_query
@bp.arguments(ticket_update_in)
@bp.response(200, message="Ticket updated successfully")
@bp.errors(403, 404)
def update_ticket(_scope, changes, ticket_id: int):
    """Update Ticket: title, description, priority or subscriber (null unlinks)."""
    ticket = get_ticket_or_404(ticket_id)
    if changes.get("subscriber_id") is not None:
        check_subscriber(changes["subscriber_id"], ticket.isp_id, ticket.branch_id)
    for name in ("title", "description", "priority", "subscriber_id"):
        if name in changes:
            setattr(ticket, name, changes[name])
    db.session.commit()


@bp.delete(TICKET)
@token_required
@scope_query
@bp.response(200, message="Ticket deleted successfully")
@bp.errors(403, 404)
def delete_ticket(_scope, ticket_id: int):
    """Delete Ticket (admins only): hidden everywhere, kept in the database."""
    # Out of reach is 404 before the role check, as on every other per-ticket endpoint.
    ticket = get_ticket_or_404(ticket_id)
    require_admin()
    ticket.soft_delete()
    db.session.commit()


@bp.post(f"{TICKET}/reply")
@token_required
@scope_query
@bp.arguments(reply_in)
@bp.response(201, message="Reply added successfully")
@bp.errors(403, 404)
def reply_to_ticket(_scope, data, ticket_id: int):
    """Reply to Ticket as the caller."""
    ticket = get_ticket_or_404(ticket_id)
    db.session.add(
        TicketReply(ticket_id=ticket.id, user_id=current_user.id, message=data["message"])
    )
    ticket.touch()
    db.session.commit()


@bp.put(f"{TICKET}/status")
@token_required
@scope_query
@bp.arguments(ticket_status_in)
@bp.response(200, message="Ticket status updated successfully")
@bp.errors(403, 404)
def change_status(_scope, data, ticket_id: int):
    """Change Ticket Status."""
    ticket = get_ticket_or_404(ticket_id)
    ticket.status = data["status"]
    db.session.commit()
