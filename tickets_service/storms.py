"""Storms: when nobody declared an outage, the tickets say it. N new tickets (the ISP's
storm_tickets) within M minutes (storm_minutes) from subscribers served below one network
object, with no open incident covering them, make a suggestion to open one there.

Each new ticket of a subscriber the network serves is one StormHit per object on its way up
(the network is at most 32 deep), so a create counts the recent hits of its own chain on an
index: bounded work, never a scan of the branch's tickets.
"""

from datetime import timedelta

from flask import abort
from sqlalchemy import delete, func, insert, or_, select
from sqlalchemy.orm import aliased, joinedload

from . import desk, incidents
from .extensions import db
from .idempotency import idempotent
from .models import (
    DEFAULT_TYPE,
    MAX_NETWORK_DEPTH,
    Actor,
    HistoryAction,
    IncidentSuggestion,
    NetworkObject,
    StormHit,
    SuggestionStatus,
    Ticket,
    TicketPriority,
    as_json_value,
    as_utc,
    utcnow,
)
from .openapi import Blueprint
from .queries import page_meta
from .responses import Page
from .schemas import (
    CreatedOut,
    PageMeta,
    SuggestionOut,
    accept_in,
    reply_list_args,
    ticket_scope_args,
)
from .scope import current_scope
from .settings import settings_of
from .tokens import token_required
from .transport import reject_impossible_ids

bp = Blueprint(
    "storms",
    __name__,
    description="Storms of tickets below one network object, suggested as incidents (admins).",
    key_scopes=("tickets:read", "incidents:write"),
)
bp.url_value_preprocessor(reject_impossible_ids("Suggestion not found."))
SUGGESTION = "/<id:suggestion_id>"
DEFAULT_MESSAGE = "We know of a problem affecting your service and are working on it."


# A hit counts while its ticket is live and under no incident: one that an incident has
# gathered since (at its opening, by hand, or from a suggestion) is explained already. A join
# on the tickets' key, for the chain's recent hits only.
_uncovered = (
    (Ticket.id == StormHit.ticket_id) & Ticket.parent_id.is_(None) & Ticket.deleted_at.is_(None)
)


def note(ticket: Ticket, served_paths: list[str], by: Actor) -> None:
    """Count a new ticket (no incident covers its subscriber) towards a storm at every object
    above what serves its subscriber, and suggest an incident at the lowest one where the
    storm is on, unless one is suggested there already (it grows) or was dismissed lately."""
    depth_of = {}
    for path in served_paths:
        for depth, part in enumerate(path.strip("/").split("/"), start=1):
            depth_of[int(part)] = depth
    if not depth_of:
        return
    settings = settings_of(ticket.isp_id)
    now = utcnow()
    since = now - timedelta(minutes=settings.storm_minutes)
    chain = sorted(depth_of)
    db.session.flush()  # the ticket's id
    db.session.execute(delete(StormHit).where(StormHit.object_id.in_(chain), StormHit.at < since))
    db.session.execute(
        insert(StormHit),
        [
            {"object_id": object_id, "ticket_id": ticket.id, "isp_id": ticket.isp_id, "at": now}
            for object_id in chain
        ],
    )
    stormy = db.session.scalars(
        select(StormHit.object_id)
        .join(Ticket, _uncovered)
        .where(StormHit.object_id.in_(chain), StormHit.at >= since)
        .group_by(StormHit.object_id)
        .having(func.count() >= settings.storm_tickets)
    ).all()
    if not stormy:
        return
    lowest = max(stormy, key=depth_of.__getitem__)
    # Creates in the same storm take their turn here, so the storm gets one suggestion.
    obj = db.session.scalar(
        select(NetworkObject).where(NetworkObject.id == lowest).with_for_update()
    )
    below = aliased(NetworkObject)
    known = db.session.scalars(
        select(IncidentSuggestion)
        .join(below, below.id == IncidentSuggestion.object_id)
        .where(
            IncidentSuggestion.isp_id == ticket.isp_id,
            # One at this object, above it on this ticket's way up, or below it (the storm
            # has spread since: it moves up to this object).
            or_(below.id.in_(chain), below.path.like(obj.path + "%")),
            or_(
                IncidentSuggestion.status == SuggestionStatus.OPEN,
                (IncidentSuggestion.object_id == lowest)
                & (IncidentSuggestion.status == SuggestionStatus.DISMISSED)
                & (IncidentSuggestion.quiet_until > now),
            ),
        )
        .order_by(IncidentSuggestion.id)
        .with_for_update(of=IncidentSuggestion)
    ).all()
    if any(found.status == SuggestionStatus.DISMISSED for found in known):
        return
    hits = db.session.execute(
        select(StormHit.ticket_id, StormHit.at)
        .join(Ticket, _uncovered)
        .where(StormHit.object_id == lowest, StormHit.at >= since)
        .order_by(StormHit.at, StormHit.ticket_id)
    ).all()
    if known:
        suggestion = known[0]
        if depth_of.get(suggestion.object_id, MAX_NETWORK_DEPTH + 1) > depth_of[lowest]:
            suggestion.object_id = lowest  # it was below: the storm now covers this object
        seen = set(suggestion.ticket_ids)
        added = [row.ticket_id for row in hits if row.ticket_id not in seen]
        if ticket.id not in seen and ticket.id not in added:
            added.append(ticket.id)
        suggestion.ticket_ids = [*suggestion.ticket_ids, *added]
        suggestion.last_at = now
        return
    suggestion = IncidentSuggestion(
        isp_id=ticket.isp_id,
        object_id=lowest,
        ticket_ids=[row.ticket_id for row in hits],
        first_at=hits[0].at,
        last_at=now,
        status=SuggestionStatus.OPEN,
    )
    db.session.add(suggestion)
    db.session.flush()
    ticket.record(
        HistoryAction.INCIDENT_SUGGESTED,
        by.as_system(),
        new={
            "suggestion_id": suggestion.id,
            "object": {"kind": obj.kind, "external_id": obj.external_id, "name": obj.name},
            "ticket_ids": suggestion.ticket_ids,
            "first_at": as_json_value(suggestion.first_at),
            "last_at": as_json_value(now),
            "count": suggestion.count,
        },
    )


# --- The suggestions endpoints ------------------------------------------------------------------


def get_suggestion_or_404(suggestion_id: int) -> IncidentSuggestion:
    """An open suggestion of the caller's ISP (admins only)."""
    scope = current_scope()
    scope.require_admin()
    suggestion = db.session.scalar(
        select(IncidentSuggestion)
        .where(
            IncidentSuggestion.id == suggestion_id,
            IncidentSuggestion.isp_id == scope.isp_id,
            IncidentSuggestion.status == SuggestionStatus.OPEN,
        )
        .options(joinedload(IncidentSuggestion.object, innerjoin=True))
        .with_for_update(of=IncidentSuggestion)
    )
    if suggestion is None:
        abort(404, "Suggestion not found.")
    return suggestion


@bp.get("")
@token_required
@bp.arguments(reply_list_args, location="query")
@bp.response(200, SuggestionOut(many=True), meta=PageMeta)
@bp.errors(403)
def list_suggestions(args):
    """The ISP's open suggestions, newest first, a page at a time (admins)."""
    scope = current_scope()
    scope.require_admin()
    page, per_page = args["page"], args["per_page"]
    mine = (
        IncidentSuggestion.isp_id == scope.isp_id,
        IncidentSuggestion.status == SuggestionStatus.OPEN,
    )
    found = db.session.scalars(
        select(IncidentSuggestion)
        .where(*mine)
        .options(joinedload(IncidentSuggestion.object))
        .order_by(IncidentSuggestion.id.desc())
        .limit(per_page)
        .offset((page - 1) * per_page)
    ).all()
    total = db.session.scalar(select(func.count()).select_from(IncidentSuggestion).where(*mine))
    return Page(found, page_meta(page, per_page, total))


@bp.post(f"{SUGGESTION}/accept")
@token_required
@bp.arguments(ticket_scope_args, location="query")
@bp.arguments(accept_in)
@idempotent(recheck=lambda _answer, suggestion_id: current_scope().require_admin())
@bp.response(201, CreatedOut, message="Incident opened successfully")
@bp.errors(403, 404)
def accept_suggestion(_scope, data, suggestion_id: int):
    """Open the incident a suggestion proposes, at its object, with its tickets as children."""
    suggestion = get_suggestion_or_404(suggestion_id)
    scope = current_scope()
    obj = suggestion.object
    if obj.retired_at is not None:
        abort(409, "The suggested object has been retired.")
    first = db.session.scalar(
        select(Ticket.branch_id).where(Ticket.id.in_(suggestion.ticket_ids)).order_by(Ticket.id)
    )
    title = data.get("title") or f"Outage at {obj.kind} {obj.name}"
    incident = incidents.open_on(
        scope,
        [obj],
        branch_id=first if first is not None else scope.branch_id,
        starts_at=as_utc(suggestion.first_at),
        children=suggestion.ticket_ids,
        title=title,
        description=f"{suggestion.count} tickets below {obj.kind} {obj.external_id} "
        f"({obj.name}) from {as_json_value(suggestion.first_at)} UTC on.",
        **_fault(scope.isp_id),
        public_message=data.get("public_message") or DEFAULT_MESSAGE,
    )
    suggestion.status = SuggestionStatus.ACCEPTED
    suggestion.incident_id = incident.id
    db.session.commit()
    return incident, 201


def _fault(isp_id: int) -> dict:
    """The type and priority of an incident the service opens: a fault, at the fault type's
    default priority (other, high, where the ISP has no active fault type)."""
    fault = desk.type_of(isp_id, "fault")
    if fault is None or not fault.active:
        return {"type": DEFAULT_TYPE, "priority": int(TicketPriority.HIGH)}
    return {"type": fault.key, "priority": fault.default_priority}


@bp.delete(SUGGESTION)
@token_required
@bp.arguments(ticket_scope_args, location="query")
@bp.response(200, message="Suggestion dismissed")
@bp.errors(403, 404)
def dismiss_suggestion(_scope, suggestion_id: int):
    """Dismiss a suggestion: its object is not suggested again for storm_minutes."""
    suggestion = get_suggestion_or_404(suggestion_id)
    minutes = settings_of(suggestion.isp_id).storm_minutes
    suggestion.status = SuggestionStatus.DISMISSED
    suggestion.quiet_until = utcnow() + timedelta(minutes=minutes)
    db.session.commit()
