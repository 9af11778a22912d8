"""The tickets blueprint: the seven endpoints of the spec and the desk around them."""

from functools import cache

from flask import Response, abort, request
from marshmallow import ValidationError
from sqlalchemy import DateTime, Integer, and_, bindparam, select
from werkzeug.exceptions import PreconditionFailed
from werkzeug.http import quote_etag

from . import attachments, bulk, canned, desk, incidents, network, queries, sla, storms
from .extensions import db
from .idempotency import idempotent
from .models import (
    DEFAULT_TYPE,
    SYSTEM_NAME,
    HistoryAction,
    NetworkObject,
    Subscriber,
    SubscriberNetwork,
    Ticket,
    TicketKind,
    utcnow,
)
from .openapi import Blueprint
from .responses import Page
from .schemas import (
    BulkOut,
    CreatedOut,
    HistoryOut,
    PageMeta,
    ReplyOut,
    StatsOut,
    TicketOut,
    TicketPageMeta,
    TicketSummaryOut,
    bulk_in,
    parent_in,
    reply_in,
    reply_list_args,
    stats_args,
    ticket_in,
    ticket_list_args,
    ticket_scope_args,
    ticket_status_in,
    ticket_update_in,
)
from .scope import Scope, current_scope, without_scope
from .tokens import token_required
from .transport import reject_impossible_ids

bp = Blueprint(
    "tickets",
    __name__,
    description="Support tickets of the caller's ISP.",
    key_scopes=("tickets:read", "tickets:write"),
)
bp.url_value_preprocessor(reject_impossible_ids("Ticket not found."))
TICKET = "/<id:ticket_id>"
# The optional isp_id / branch_id / user_id of every per-ticket endpoint (checked on load).
scope_query = bp.arguments(ticket_scope_args, location="query")


class StaleVersion(PreconditionFailed):
    """412 with the ticket's current ETag, so the client can fetch it again."""

    def __init__(self, tag: str):
        super().__init__("The ticket has changed since you read it; fetch it again (ETag).")
        self.tag = tag

    def get_headers(self, *args, **kwargs):
        return [*super().get_headers(*args, **kwargs), ("ETag", self.tag)]


def etag(version: int) -> str:
    """A ticket version as a strong entity tag (unquoted; headers quote it)."""
    return f"v{version}"


def get_ticket_or_404(scope: Scope, ticket_id: int, *, deleted: bool | None = False) -> Ticket:
    """The ticket with this id within the scope's reach, locked for the change to come (live;
    with `deleted` a deleted one, with None either), and still the version the client read if
    it sent If-Match (412 otherwise).

    Another ISP's or branch's ticket is 404, not 403: its existence is not the caller's to know.
    """
    query = select(Ticket).where(scope.tickets(deleted=deleted), Ticket.id == ticket_id)
    ticket = db.session.scalar(query.with_for_update(), scope.params())
    if ticket is None:
        abort(404, "Ticket not found.")
    if request.if_match and not request.if_match.contains(etag(ticket.version)):
        raise StaleVersion(quote_etag(etag(ticket.version)))
    return ticket


def commit(ticket: Ticket) -> dict:
    """Commit the change and name the ticket's new version (the response's ETag)."""
    db.session.flush()
    headers = {"ETag": quote_etag(etag(ticket.version))}
    db.session.commit()
    return headers


def visible_ticket_or_404(
    scope: Scope, ticket_id: int, column=Ticket.id, *, deleted: bool | None = False
):
    """One column of a ticket within the scope's reach (404 as above), unlocked: a live one,
    or with `deleted` a deleted one, with None either."""
    query = select(column).where(scope.tickets(deleted=deleted), Ticket.id == ticket_id)
    value = db.session.scalar(query, scope.params())
    if value is None:
        abort(404, "Ticket not found.")
    return value


def check_subscriber(
    subscriber_id: int, isp_id: int, branch_id: int, desk_params: dict | None = None
) -> tuple[list[tuple[int, str]], int | None, tuple]:
    """422 unless the subscriber belongs to the ticket's ISP and branch; the live network
    objects that serve it (id and path) and the open incident that affects it, if one does
    (read in the same statement: a new ticket links them, and joins it). With `desk_params`
    (type and priority) the same statement reads what they bring (desk.desk_columns)."""
    params = {"subscriber_id": subscriber_id, "isp_id": isp_id, "branch_id": branch_id}
    statement = _subscriber_check(desk_params is not None)
    params = {**params, **(desk_params or {}), "now": utcnow()}
    found = queries.fetch_rows(statement, params, as_tuples=True)
    if not found:
        raise ValidationError(
            {"subscriber_id": ["No subscriber with this id in the ticket's ISP and branch."]}
        )
    served = [(row[1], row[2]) for row in found if row[1] is not None]
    return served, found[0][3], tuple(found[0][4:])


@cache
def _subscriber_check(with_desk: bool):
    """check_subscriber's statement, built once (Create Ticket's hot path)."""
    served = and_(
        NetworkObject.id == SubscriberNetwork.object_id, NetworkObject.retired_at.is_(None)
    )
    now = bindparam("now", type_=DateTime(timezone=True))
    return (
        select(
            Subscriber.id,
            NetworkObject.id,
            NetworkObject.path,
            incidents.covering(Subscriber.id, now),
            *(desk.desk_columns() if with_desk else ()),
        )
        .outerjoin(SubscriberNetwork, SubscriberNetwork.subscriber_id == Subscriber.id)
        .outerjoin(NetworkObject, served)
        .where(
            Subscriber.id == bindparam("subscriber_id", type_=Integer),
            Subscriber.isp_id == bindparam("isp_id", type_=Integer),
            Subscriber.branch_id == bindparam("branch_id", type_=Integer),
        )
        .order_by(NetworkObject.kind, NetworkObject.external_id)
    )


def check_assignee(assignee_id: int, isp_id: int, branch_id: int) -> None:
    """422 unless the assignee is an active user of the ticket's ISP who reaches its branch."""
    if desk.assignable_user(assignee_id, isp_id, branch_id) is None:
        raise ValidationError(
            {"assignee_id": ["No active user of the ticket's ISP who reaches its branch."]}
        )


def check_links(
    values: dict, isp_id: int, branch_id: int, linked: Ticket | None = None
) -> tuple[list[tuple[int, str]], int | None]:
    """The subscriber and assignee a write links must be the ticket's ISP and branch's to link
    (one the ticket already has, sent again as it was, is not checked again: a subscriber may
    have moved branch, an assignee left, since). What check_subscriber says of a newly
    linked subscriber."""
    served = [], None
    subscriber = values.get("subscriber_id")
    if subscriber is not None and subscriber != (linked and linked.subscriber_id):
        served = check_subscriber(subscriber, isp_id, branch_id)[:2]
    assignee = values.get("assignee_id")
    if assignee is not None and assignee != (linked and linked.assignee_id):
        check_assignee(assignee, isp_id, branch_id)
    return served


# --- The spec's endpoints -------------------------------------------------------------------


@bp.get("")
@token_required
@bp.arguments(ticket_list_args, location="query")
@bp.response(200, TicketSummaryOut(many=True), meta=TicketPageMeta)
@bp.errors(403)
def list_tickets(args):
    """Fetch All Tickets of one branch, filtered, sorted, a page at a time."""
    scope = current_scope()
    if "deleted" in args:
        scope.require_admin()
    return queries.ticket_page(scope, args)


@bp.get(TICKET)
@token_required
@scope_query
@bp.response(200, TicketOut)
@bp.errors(403, 404)
@bp.versioned("read")
def get_ticket(_scope, ticket_id: int):
    """Fetch Ticket, with its first 100 replies and notes, oldest first."""
    ticket = queries.ticket_detail(current_scope(), ticket_id)
    if ticket is None:
        abort(404, "Ticket not found.")
    tag = etag(ticket["version"])
    headers = {"ETag": quote_etag(tag)}
    if request.if_none_match.contains_weak(tag):  # If-None-Match compares weakly (RFC 9110)
        return Response(status=304, headers=headers)
    return ticket, headers


@bp.post("")
@token_required
@scope_query
@bp.arguments(ticket_in)
@idempotent
@bp.response(201, CreatedOut, message="Ticket created successfully")
@bp.errors(403)
@bp.versioned("created")
def create_ticket(scope, data):
    """Create Ticket in the caller's ISP, in the branch its query or body names (the caller's
    by default)."""
    within = current_scope()
    isp_id, branch_id = within.isp_id, within.named_branch(scope, data)
    values = without_scope(data)
    refs = values.pop("links", None)
    tags = values.pop("tags", [])
    values["type"] = values.get("type", DEFAULT_TYPE)
    desk_params = {"type": values["type"], "priority": values["priority"]}
    served, incident_id, found = [], None, None
    if values.get("subscriber_id") is not None:  # read with what the type brings
        served, incident_id, found = check_subscriber(
            values["subscriber_id"], isp_id, branch_id, desk_params
        )
    default_assignee, policy, calendar = desk.read_desk(isp_id, **desk_params, found=found)
    if values.get("assignee_id") is not None:
        check_assignee(values["assignee_id"], isp_id, branch_id)
    elif "assignee_id" not in values:  # the type's default, where they can take it
        values["assignee_id"] = desk.assignable_user(default_assignee, isp_id, branch_id)
    objects = [obj.id for obj in network.live_objects(isp_id, refs or [], "links")]
    ticket = Ticket.open(
        within.actor,
        isp_id=isp_id,
        branch_id=branch_id,
        created_at=utcnow(),
        due_at_manual=values.get("due_at") is not None,
        tags=tags,
        **values,
    )
    ticket.retag([], tags)
    sla.set_deadlines(ticket, policy, calendar)
    # Without links of its own, a subscriber's ticket is about what serves the subscriber.
    network.link_ticket(
        ticket, objects if refs is not None else [object_id for object_id, _ in served]
    )
    if incident_id is not None:
        incidents.join_at_create(ticket, incident_id, within.actor)
    else:
        storms.note(ticket, [path for _, path in served], within.actor)
    return ticket, commit(ticket)


@bp.put(TICKET)
@token_required
@scope_query
@bp.arguments(ticket_update_in)
@bp.response(200, message="Ticket updated successfully")
@bp.errors(403, 404)
@bp.versioned("write")
def update_ticket(_scope, changes, ticket_id: int):
    """Update Ticket: title, description, priority, subscriber, assignee, due time, type or
    tags (null unlinks, unassigns, or gives the due time back to the SLA policy)."""
    scope = current_scope()
    ticket = get_ticket_or_404(scope, ticket_id)
    changes = without_scope(changes)
    refs = changes.pop("links", None)
    check_links(changes, ticket.isp_id, ticket.branch_id, ticket)
    if changes.get("type", ticket.type) != ticket.type:
        desk.check_type(ticket.isp_id, changes["type"])
    if refs is not None:
        if not refs and ticket.kind == TicketKind.INCIDENT:
            raise ValidationError({"links": ["An incident links at least one network object."]})
        objects = network.live_objects(ticket.isp_id, refs, "links")
        if network.relink_ticket(ticket, objects, scope.actor) and ticket.kind == "incident":
            incidents.links_changed(ticket, scope.actor)
    ticket.edit(changes, scope.actor)
    return None, commit(ticket)


@bp.delete(TICKET)
@token_required
@scope_query
@bp.response(200, message="Ticket deleted successfully")
@bp.errors(403, 404)
@bp.versioned("write")
def delete_ticket(_scope, ticket_id: int):
    """Delete Ticket (admins only): hidden everywhere, kept in the database."""
    # Out of reach is 404 before the role check, as on every other per-ticket endpoint.
    scope = current_scope()
    ticket = get_ticket_or_404(scope, ticket_id)
    scope.require_admin()
    ticket.delete(scope.actor)
    return None, commit(ticket)


@bp.post(f"{TICKET}/reply")
@token_required
@scope_query
@bp.arguments(reply_in)
@idempotent(recheck=lambda _answer, ticket_id: visible_ticket_or_404(current_scope(), ticket_id))
@bp.response(201, message="Reply added successfully")
@bp.errors(403, 404)
@bp.versioned("write")
def reply_to_ticket(_scope, data, ticket_id: int):
    """Reply to Ticket as the caller; `internal: true` makes it a note for staff only. A
    canned reply (canned_reply_id, with its variables) may stand in for the message."""
    scope = current_scope()
    ticket = get_ticket_or_404(scope, ticket_id)
    message = data.get("message")
    if message is None:  # a canned reply, rendered for this ticket
        used = canned.usable(scope, data["canned_reply_id"])
        agent = scope.principal_name or SYSTEM_NAME
        message = canned.render(used, ticket, agent, data.get("variables", {}))
    reply = ticket.add_reply(message, data["internal"], scope.actor)
    attachments.bind(ticket, reply, data.get("attachment_ids", []), by_subscriber=False)
    if ticket.kind == TicketKind.INCIDENT and not data["internal"]:
        incidents.copy_reply(ticket, message, scope.actor)
    return None, commit(ticket)


@bp.put(f"{TICKET}/status")
@token_required
@scope_query
@bp.arguments(ticket_status_in)
@bp.response(200, message="Ticket status updated successfully")
@bp.errors(403, 404)
@bp.versioned("write")
def change_status(_scope, data, ticket_id: int):
    """Change Ticket Status (resolved_at / closed_at follow it). Resolving or closing an
    incident moves its open children too; resolving one may say when service came back
    (restored_at)."""
    scope = current_scope()
    ticket = get_ticket_or_404(scope, ticket_id)
    old, restored_at = ticket.status, data.get("restored_at")
    if restored_at is not None:
        incidents.check_restored_at(ticket, old, data["status"], restored_at)
    ticket.change_status(data["status"], scope.actor)
    if ticket.kind == TicketKind.INCIDENT and old != ticket.status:
        incidents.status_changed(ticket, old, restored_at, scope.actor)
    return None, commit(ticket)


@bp.put(f"{TICKET}/parent")
@token_required
@scope_query
@bp.arguments(parent_in)
@bp.response(200, message="Ticket linked to the incident")
@bp.errors(403, 404)
@bp.versioned("write")
def set_parent(_scope, data, ticket_id: int):
    """Put a ticket under an incident (taking it from under another, if it was)."""
    scope = current_scope()
    ticket = get_ticket_or_404(scope, ticket_id)
    incident = incidents.check_parent(scope, ticket, data["incident_id"])
    if ticket.parent_id != incident.id:
        if ticket.parent_id is not None:
            ticket.record(HistoryAction.UNLINKED, scope.actor, "parent_id", ticket.parent_id, None)
        ticket.record(HistoryAction.LINKED, scope.actor, "parent_id", None, incident.id)
        ticket.parent_id = incident.id
    return None, commit(ticket)


@bp.delete(f"{TICKET}/parent")
@token_required
@scope_query
@bp.response(200, message="Ticket unlinked from its incident")
@bp.errors(403, 404, 409)
@bp.versioned("write")
def remove_parent(_scope, ticket_id: int):
    """Take a ticket from under its incident (409 when it is under none)."""
    scope = current_scope()
    ticket = get_ticket_or_404(scope, ticket_id)
    if ticket.parent_id is None:
        abort(409, "The ticket is not under an incident.")
    ticket.record(HistoryAction.UNLINKED, scope.actor, "parent_id", ticket.parent_id, None)
    ticket.parent_id = None
    return None, commit(ticket)


@bp.post("/bulk")
@token_required
@bp.arguments(ticket_scope_args, location="query")
@bp.arguments(bulk_in)
@idempotent
@bp.response(200, BulkOut)
@bp.errors(403)
def bulk_change(_scope, data):
    """Change many tickets at once (ids, at most 1,000, or the list's filters, at most
    10,000 tickets): set status, priority or assignee, and reply. Each ticket changes in its
    own savepoint, with its history and events; one out of reach is 404 in the results and
    never touched."""
    scope = current_scope()
    ids = data.get("ids") or bulk.matching_ids(scope, data["filter_"])
    results = bulk.apply(scope, ids, data.get("set_", {}), data.get("reply"), check_links)
    db.session.commit()
    return {"results": results}


# --- The desk -------------------------------------------------------------------------------


@bp.get("/stats")
@token_required
@bp.arguments(stats_args, location="query")
@bp.response(200, StatsOut)
@bp.errors(403)
def ticket_stats(args):
    """Live tickets of one branch (the caller's by default) per status and priority, open
    unassigned ones and overdue ones."""
    scope = current_scope()
    return queries.branch_stats(scope, args.get("branch_id", scope.branch_id))


@bp.get(f"{TICKET}/replies")
@token_required
@bp.arguments(reply_list_args, location="query")
@bp.response(200, ReplyOut(many=True), meta=PageMeta)
@bp.errors(403, 404)
def list_replies(args, ticket_id: int):
    """Every reply and note of a ticket, oldest first, a page at a time."""
    total = visible_ticket_or_404(current_scope(), ticket_id, Ticket.reply_count)
    page, per_page = args["page"], args["per_page"]
    rows = queries.reply_rows(ticket_id, limit=per_page, offset=(page - 1) * per_page)
    return Page(rows, queries.page_meta(page, per_page, total))


@bp.get(f"{TICKET}/history")
@token_required
@bp.arguments(reply_list_args, location="query")
@bp.response(200, HistoryOut(many=True), meta=PageMeta)
@bp.errors(403, 404)
def ticket_history(args, ticket_id: int):
    """Every change to a ticket, who made it and when, oldest first, a page at a time."""
    visible_ticket_or_404(current_scope(), ticket_id)
    page, per_page = args["page"], args["per_page"]
    rows, total = queries.history_rows(ticket_id, limit=per_page, offset=(page - 1) * per_page)
    return Page(rows, queries.page_meta(page, per_page, total))


def _may_restore(_answer: dict, ticket_id: int) -> None:
    """A restore is replayed only to an admin who still reaches the ticket."""
    scope = current_scope()
    visible_ticket_or_404(scope, ticket_id, deleted=None)
    scope.require_admin()


@bp.post(f"{TICKET}/restore")
@token_required
@scope_query
@idempotent(recheck=_may_restore)
@bp.response(200, message="Ticket restored successfully")
@bp.errors(403, 404, 409)
@bp.versioned("write")
def restore_ticket(_scope, ticket_id: int):
    """Restore a deleted ticket (admins only); a ticket that is not deleted is 409."""
    scope = current_scope()
    ticket = get_ticket_or_404(scope, ticket_id, deleted=None)
    scope.require_admin()
    if ticket.deleted_at is None:
        abort(409, "Ticket is not deleted.")
    ticket.restore(scope.actor)
    return None, commit(ticket)
