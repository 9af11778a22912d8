"""The tickets blueprint: the seven endpoints of the spec, as thin views."""

from flask import Blueprint, abort
from flask_jwt_extended import current_user, jwt_required
from marshmallow import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import joinedload, selectinload
from werkzeug.routing import BaseConverter

from .auth import check_scope, require_admin, scoped_tickets
from .extensions import db
from .models import MAX_ID, Subscriber, Ticket, TicketReply
from .responses import success
from .schemas import (
    created_out,
    load_args,
    load_body,
    page_meta,
    reply_in,
    ticket_in,
    ticket_list_args,
    ticket_out,
    ticket_scope_args,
    ticket_status_in,
    ticket_summaries_out,
    ticket_update,
)


class TicketIdConverter(BaseConverter):
    """ASCII digits only (werkzeug's int also takes other scripts' digits, like fullwidth one).

    At most 19 digits, so int() never meets Python's digit limit; the range is checked in
    reject_impossible_ids.
    """

    regex = r"[0-9]{1,19}"
    part_isolating = True

    def to_python(self, value: str) -> int:
        return int(value)

    def to_url(self, value: int) -> str:
        return str(value)


bp = Blueprint("tickets", __name__)
TICKET_ID = "<ticket_id:ticket_id>"


@bp.record_once
def register_converter(state) -> None:
    state.app.url_map.converters["ticket_id"] = TicketIdConverter


@bp.url_value_preprocessor
def reject_impossible_ids(_endpoint, values) -> None:
    """An id outside the INTEGER column is 404 on every method and never reaches SQL.

    (A range in the route converter would make werkzeug answer 405 for PUT and DELETE.)
    """
    if values and "ticket_id" in values and not 1 <= values["ticket_id"] <= MAX_ID:
        abort(404, "Ticket not found.")


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
@jwt_required()
def list_tickets():
    """Fetch All Tickets of one branch, newest first, a page at a time."""
    args = load_args(ticket_list_args)
    check_scope(args)
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
    return success(ticket_summaries_out.dump(page.items), meta=page_meta.dump(page))


@bp.get(f"/{TICKET_ID}")
@jwt_required()
def get_ticket(ticket_id: int):
    """Fetch Ticket, with its replies oldest first."""
    check_scope(load_args(ticket_scope_args))
    ticket = get_ticket_or_404(
        ticket_id,
        joinedload(Ticket.subscriber),
        selectinload(Ticket.replies).joinedload(TicketReply.author),
    )
    return success(ticket_out.dump(ticket))


@bp.post("")
@jwt_required()
def create_ticket():
    """Create Ticket in the caller's ISP; the branch defaults to the caller's."""
    check_scope(load_args(ticket_scope_args))
    data = load_body(ticket_in)
    check_scope(data)
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
    return success(created_out.dump(ticket), "Ticket created successfully", 201)


@bp.put(f"/{TICKET_ID}")
@jwt_required()
def update_ticket(ticket_id: int):
    """Update Ticket: title, description, priority or subscriber (null unlinks)."""
    check_scope(load_args(ticket_scope_args))
    changes = load_body(ticket_update)
    check_scope(changes)
    ticket = get_ticket_or_404(ticket_id)
    if changes.get("subscriber_id") is not None:
        check_subscriber(changes["subscriber_id"], ticket.isp_id, ticket.branch_id)
    for name in ("title", "description", "priority", "subscriber_id"):
        if name in changes:
            setattr(ticket, name, changes[name])
    db.session.commit()
    return success(message="Ticket updated successfully")


@bp.delete(f"/{TICKET_ID}")
@jwt_required()
def delete_ticket(ticket_id: int):
    """Delete Ticket (admins only): hidden everywhere, kept in the database."""
    check_scope(load_args(ticket_scope_args))
    # Out of reach is 404 before the role check, as on every other per-ticket endpoint.
    ticket = get_ticket_or_404(ticket_id)
    require_admin()
    ticket.soft_delete()
    db.session.commit()
    return success(message="Ticket deleted successfully")


@bp.post(f"/{TICKET_ID}/reply")
@jwt_required()
def reply_to_ticket(ticket_id: int):
    """Reply to Ticket as the caller."""
    check_scope(load_args(ticket_scope_args))
    data = load_body(reply_in)
    check_scope(data)
    ticket = get_ticket_or_404(ticket_id)
    db.session.add(
        TicketReply(ticket_id=ticket.id, user_id=current_user.id, message=data["message"])
    )
    ticket.touch()
    db.session.commit()
    return success(message="Reply added successfully", status=201)


@bp.put(f"/{TICKET_ID}/status")
@jwt_required()
def change_status(ticket_id: int):
    """Change Ticket Status."""
    check_scope(load_args(ticket_scope_args))
    data = load_body(ticket_status_in)
    check_scope(data)
    ticket = get_ticket_or_404(ticket_id)
    ticket.status = data["status"]
    db.session.commit()
    return success(message="Ticket status updated successfully")
