"""Incidents: an outage of network objects, as a ticket of kind incident that the tickets of
every subscriber served at or below the failed objects hang under.

Opening one works out its affected subscribers from the network, and takes their open tickets
as its children; while it is open, their new tickets join it at create and are told its public
message. A public reply to it reaches every open child, and resolving or closing it moves them
all. Each write here is a few set-based statements, whatever the number of children.
"""

import csv
import io
from datetime import datetime

from flask import Response, abort, request
from marshmallow import ValidationError
from sqlalchemy import (
    DateTime,
    Integer,
    and_,
    case,
    func,
    insert,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy.orm import aliased

from . import network, queries
from .extensions import db
from .idempotency import idempotent
from .models import (
    DEFAULT_TYPE,
    OPEN_STATUSES,
    Actor,
    AffectedSubscriber,
    HistoryAction,
    Incident,
    NetworkObject,
    Subscriber,
    SubscriberNetwork,
    Ticket,
    TicketHistory,
    TicketKind,
    TicketLink,
    TicketReply,
    TicketStatus,
    as_json_value,
    as_utc,
    utcnow,
)
from .openapi import Blueprint
from .responses import Page
from .schemas import (
    AffectedOut,
    CreatedOut,
    ImpactOut,
    IncidentOut,
    PageMeta,
    incident_in,
    incident_update_in,
    reply_list_args,
    ticket_scope_args,
)
from .scope import Scope, current_scope, without_scope
from .tokens import token_required
from .transport import reject_impossible_ids

bp = Blueprint(
    "incidents",
    __name__,
    description="Outages of network objects, and the tickets they gather.",
    key_scopes=("tickets:read", "incidents:write"),
)
bp.url_value_preprocessor(reject_impossible_ids("Incident not found."))
INCIDENT = "/<id:incident_id>"


# --- Who an incident affects ------------------------------------------------------------------


def _open(column=Ticket.status):
    return or_(*(column == int(status) for status in OPEN_STATUSES))


def served_below(isp_id: int, incident_id: int):
    """The subscribers served at or below any live object the incident links."""
    links = (
        select(NetworkObject.path)
        .join(TicketLink, TicketLink.object_id == NetworkObject.id)
        .where(TicketLink.ticket_id == incident_id)
    )
    paths = db.session.scalars(links).all()
    if not paths:
        return select(SubscriberNetwork.subscriber_id).where(literal(False))
    objects = select(NetworkObject.id).where(
        NetworkObject.isp_id == isp_id,
        NetworkObject.retired_at.is_(None),
        or_(*(network.at_or_below(path) for path in paths)),
    )
    # The objects are the ISP's, and so are the subscribers they serve (serve() writes them
    # only so): no filter of subscriber_network's own isp_id, which its index does not hold.
    return (
        select(SubscriberNetwork.subscriber_id)
        .where(SubscriberNetwork.object_id.in_(objects))
        .distinct()
    )


def refresh_affected(incident: Ticket, since: datetime) -> None:
    """Bring the incident's affected subscribers in line with its links: those served below
    them now are affected (from `since`, or again), the others no longer (until now)."""
    now = utcnow()
    served = served_below(incident.isp_id, incident.id)
    mine = AffectedSubscriber.incident_id == incident.id
    db.session.execute(
        update(AffectedSubscriber)
        .where(mine, AffectedSubscriber.affected_until.is_(None))
        .where(AffectedSubscriber.subscriber_id.not_in(served))
        .values(affected_until=now)
    )
    db.session.execute(
        update(AffectedSubscriber)
        .where(mine, AffectedSubscriber.affected_until.is_not(None))
        .where(AffectedSubscriber.subscriber_id.in_(served))
        .values(affected_until=None)
    )
    known = select(AffectedSubscriber.subscriber_id).where(mine)
    new = served.where(SubscriberNetwork.subscriber_id.not_in(known))
    db.session.execute(
        insert(AffectedSubscriber).from_select(
            ["incident_id", "subscriber_id", "isp_id", "affected_from"],
            select(
                literal(incident.id, Integer),
                new.subquery().c.subscriber_id,
                literal(incident.isp_id, Integer),
                literal(since, DateTime(timezone=True)),
            ),
        )
    )


def attach_children(incident: Ticket, by: Actor, also=None) -> int:
    """Every open ticket of an affected subscriber (or that `also` holds for) that hangs under
    no incident becomes the incident's child, with a `linked` entry in its history; how many
    did."""
    affected = select(AffectedSubscriber.subscriber_id).where(
        AffectedSubscriber.incident_id == incident.id, AffectedSubscriber.affected_until.is_(None)
    )
    now = utcnow()
    ids = db.session.scalars(
        update(Ticket)
        .where(
            Ticket.isp_id == incident.isp_id,
            Ticket.kind == TicketKind.TICKET,
            Ticket.parent_id.is_(None),
            Ticket.deleted_at.is_(None),
            _open(),
            Ticket.subscriber_id.in_(affected)
            if also is None
            else or_(Ticket.subscriber_id.in_(affected), also),
        )
        .values(parent_id=incident.id, version=Ticket.version + 1, updated_at=now)
        .returning(Ticket.id)
        .execution_options(synchronize_session=False)
    ).all()
    _history(ids, by, HistoryAction.LINKED, now, "parent_id", None, incident.id)
    return len(ids)


def _history(ids, by: Actor, action, now, field=None, old=None, new=None) -> None:
    """One history entry for each of these tickets (their version already bumped)."""
    if ids:
        db.session.execute(
            insert(TicketHistory),
            [
                {
                    "ticket_id": ticket_id,
                    "user_id": by.user_id,
                    "key_id": by.key_id,
                    "system": by.system,
                    "action": action,
                    "field": field,
                    "old": as_json_value(old),
                    "new": as_json_value(new),
                    "created_at": now,
                }
                for ticket_id in ids
            ],
        )


def _counts(incident_id: int) -> dict:
    """How many subscribers it affects now, and how many children it has."""
    affected = db.session.scalar(
        select(func.count()).where(
            AffectedSubscriber.incident_id == incident_id,
            AffectedSubscriber.affected_until.is_(None),
        )
    )
    children = db.session.scalar(
        select(func.count())
        .select_from(Ticket)
        .where(Ticket.parent_id == incident_id, Ticket.deleted_at.is_(None))
    )
    return {"affected_subscribers": affected, "children": children}


def announce(incident: Ticket, action: HistoryAction, by: Actor, **extra) -> None:
    """The incident's event (a history entry the webhook worker sends), with its counts."""
    db.session.flush()
    incident.record(action, by, new={"incident_id": incident.id, **_counts(incident.id), **extra})


# --- What the tickets views call ----------------------------------------------------------------


def covering(subscriber_id, now):
    """The open incident a new ticket of this subscriber joins (correlated, for the create's
    own statement): one that affects it, is open, has started and, if planned, has not ended.

    It starts from the subscriber's own rows (a handful) and looks each incident up by its key
    in scalar subqueries, which the planner cannot turn into joins: as joins, a planner without
    statistics started from the open tickets, and read thousands of them on every create."""
    affected = AffectedSubscriber.incident_id
    status = (
        select(Ticket.status)
        .where(Ticket.id == affected, Ticket.deleted_at.is_(None))
        .scalar_subquery()
    )
    started = (
        select(
            and_(
                Incident.starts_at <= now,
                or_(
                    Incident.planned.is_(False),
                    Incident.expected_end_at.is_(None),
                    Incident.expected_end_at > now,
                ),
            )
        )
        .where(Incident.ticket_id == affected)
        .scalar_subquery()
    )
    return (
        select(affected)
        .where(
            AffectedSubscriber.subscriber_id == subscriber_id,
            AffectedSubscriber.affected_until.is_(None),
            _open(status),  # no IN list: the statement is compiled once (tickets.py)
            started.is_(True),
        )
        .order_by(affected)
        .limit(1)
        .scalar_subquery()
    )


def join_at_create(ticket: Ticket, incident_id: int, by: Actor) -> None:
    """A new ticket of an affected subscriber joins the incident, and is told its message."""
    message = db.session.scalar(
        select(Incident.public_message).where(Incident.ticket_id == incident_id)
    )
    ticket.parent_id = incident_id
    ticket.record(HistoryAction.LINKED, by, "parent_id", None, incident_id)
    ticket.add_reply(message, False, by.as_system())


def copy_reply(incident: Ticket, message: str, by: Actor) -> None:
    """A public reply to an incident, copied to each of its open children (one reply and one
    history entry each)."""
    now = utcnow()
    ids = db.session.scalars(
        update(Ticket)
        .where(Ticket.parent_id == incident.id, Ticket.deleted_at.is_(None), _open())
        .values(
            reply_count=Ticket.reply_count + 1,
            first_response_at=func.coalesce(Ticket.first_response_at, now),
            version=Ticket.version + 1,
            updated_at=now,
        )
        .returning(Ticket.id)
        .execution_options(synchronize_session=False)
    ).all()
    if ids:
        db.session.execute(
            insert(TicketReply),
            [
                {
                    "ticket_id": ticket_id,
                    "user_id": by.user_id,
                    "key_id": by.key_id,
                    "system": by.system,
                    "message": message,
                    "internal": False,
                    "created_at": now,
                }
                for ticket_id in ids
            ],
        )
    _history(ids, by, HistoryAction.REPLIED, now)


def status_changed(incident: Ticket, old: int, restored_at, by: Actor) -> None:
    """After an incident's status change: resolving or closing it moves its open children
    the same way; resolving it ends every affected subscriber's outage at `restored_at` and
    sends each of them as an event; reopening it keeps its children as they are."""
    status, now = incident.status, utcnow()
    info = db.session.get(Incident, incident.id)
    if status in (TicketStatus.RESOLVED, TicketStatus.CLOSED):
        stamp = {"resolved_at": now} if status == TicketStatus.RESOLVED else {"closed_at": now}
        for before in OPEN_STATUSES:
            ids = db.session.scalars(
                update(Ticket)
                .where(
                    Ticket.parent_id == incident.id,
                    Ticket.deleted_at.is_(None),
                    Ticket.status == int(before),
                )
                .values(status=status, version=Ticket.version + 1, updated_at=now, **stamp)
                .returning(Ticket.id)
                .execution_options(synchronize_session=False)
            ).all()
            _history(ids, by, HistoryAction.STATUS_CHANGED, now, "status", before, status)
    if old in OPEN_STATUSES and status not in OPEN_STATUSES:
        # Resolved, or closed straight away: either way service is back.
        _restore(incident, info, restored_at or now, by)
    elif status in OPEN_STATUSES and old not in OPEN_STATUSES and info.restored_at is not None:
        # Reopened: the outage goes on for those it ended for.
        db.session.execute(
            update(AffectedSubscriber)
            .where(
                AffectedSubscriber.incident_id == incident.id,
                AffectedSubscriber.affected_until == info.restored_at,
            )
            .values(affected_until=None)
        )
        info.restored_at = None


def _restore(incident: Ticket, info: Incident, restored_at: datetime, by: Actor) -> None:
    """Service is back at `restored_at`: every outage of the incident ends then (an interval
    can never end before it began), and each is an event for billing."""
    info.restored_at = restored_at
    db.session.execute(
        update(AffectedSubscriber)
        .where(
            AffectedSubscriber.incident_id == incident.id,
            AffectedSubscriber.affected_until.is_(None),
        )
        .values(
            affected_until=case(
                (AffectedSubscriber.affected_from > restored_at, AffectedSubscriber.affected_from),
                else_=literal(restored_at, DateTime(timezone=True)),
            )
        )
    )
    rows = db.session.execute(impact_rows(incident.id, None)).all()
    outages = [
        {
            "incident_id": incident.id,
            "subscriber": row.subscriber_id,
            "external_id": row.external_id,
            "minutes": outage_minutes(row.affected_from, row.affected_until),
            "from": as_json_value(row.affected_from),
            "to": as_json_value(row.affected_until),
        }
        for row in rows
    ]
    if outages:
        # One multi-row INSERT (not an ORM object each): thousands of subscribers are common.
        now = utcnow()
        db.session.execute(
            insert(TicketHistory),
            [
                {
                    "ticket_id": incident.id,
                    "user_id": by.user_id,
                    "key_id": by.key_id,
                    "system": by.system,
                    "action": HistoryAction.OUTAGE,
                    "field": None,
                    "old": None,
                    "new": outage,
                    "created_at": now,
                }
                for outage in outages
            ],
        )
    total = sum(outage["minutes"] for outage in outages)
    announce(
        incident,
        HistoryAction.INCIDENT_RESOLVED,
        by,
        restored_at=as_json_value(restored_at),
        outage_minutes=total,
        subscribers_out=len(rows),
    )


def outage_minutes(start: datetime, end: datetime | None) -> int:
    """Whole minutes between two moments (until now while still out), never negative."""
    end = as_utc(end) if end is not None else utcnow()
    return max(0, int((end - as_utc(start)).total_seconds() // 60))


def impact_rows(incident_id: int, scope: Scope | None):
    """The query of each subscriber the incident affected (within the scope's reach), and
    when, by subscriber id."""
    query = (
        select(
            AffectedSubscriber.subscriber_id,
            Subscriber.external_id,
            Subscriber.name,
            Subscriber.branch_id,
            AffectedSubscriber.affected_from,
            AffectedSubscriber.affected_until,
        )
        .join(Subscriber, Subscriber.id == AffectedSubscriber.subscriber_id)
        .where(AffectedSubscriber.incident_id == incident_id)
        .order_by(AffectedSubscriber.subscriber_id)
    )
    if scope is not None:
        query = query.where(scope.subscribers())
    return query


def links_changed(incident: Ticket, by: Actor) -> None:
    """An incident's links changed: who it affects is worked out again, the open tickets of
    those it now affects join it, and that is an incident.updated event."""
    rework_affected(incident, by)
    announce(incident, HistoryAction.INCIDENT_UPDATED, by)


def rework_affected(incident: Ticket, by: Actor) -> None:
    """Who an open incident affects, worked out again from its links (now in the session);
    the open tickets of those it now affects join it once it has started."""
    info = db.session.get(Incident, incident.id)
    db.session.flush()
    # Once resolved or closed, its outage is over: who it affected stays as it was.
    if incident.status in OPEN_STATUSES:
        refresh_affected(incident, max(as_utc(info.starts_at), utcnow()))
        if as_utc(info.starts_at) <= utcnow():
            attach_children(incident, by)


def reaffect(subscriber_id: int, isp_id: int, by: Actor) -> None:
    """A subscriber's network changed: the open incidents whose links are at or above what
    serves it now affect it (from now, or from their start), the others no longer do, and its
    open tickets join an incident that now affects it."""
    now = utcnow()
    link, served = aliased(NetworkObject), aliased(NetworkObject)
    covering = set(
        db.session.scalars(
            select(TicketLink.ticket_id)
            .join(link, link.id == TicketLink.object_id)
            .join(Ticket, Ticket.id == TicketLink.ticket_id)
            .join(SubscriberNetwork, SubscriberNetwork.subscriber_id == subscriber_id)
            .join(served, served.id == SubscriberNetwork.object_id)
            .where(
                Ticket.isp_id == isp_id,
                Ticket.kind == TicketKind.INCIDENT,
                Ticket.deleted_at.is_(None),
                _open(),
                served.retired_at.is_(None),
                served.path.like(link.path + "%"),
            )
            .distinct()
        )
    )
    open_incidents = select(Ticket.id).where(
        Ticket.kind == TicketKind.INCIDENT, Ticket.deleted_at.is_(None), _open()
    )
    rows = db.session.scalars(
        select(AffectedSubscriber).where(
            AffectedSubscriber.subscriber_id == subscriber_id,
            AffectedSubscriber.incident_id.in_(open_incidents),
        )
    ).all()
    known = {row.incident_id: row for row in rows}
    for row in rows:
        if row.incident_id not in covering and row.affected_until is None:
            row.affected_until = now
        elif row.incident_id in covering and row.affected_until is not None:
            row.affected_until = None
    for incident_id in covering - known.keys():
        starts_at = as_utc(db.session.get(Incident, incident_id).starts_at)
        db.session.add(
            AffectedSubscriber(
                incident_id=incident_id,
                subscriber_id=subscriber_id,
                isp_id=isp_id,
                affected_from=max(starts_at, now),
            )
        )
    db.session.flush()
    for incident_id in sorted(covering):
        incident = db.session.get(Ticket, incident_id)
        if as_utc(db.session.get(Incident, incident_id).starts_at) <= now:
            attach_children(incident, by)


def check_restored_at(ticket: Ticket, old: int, status: int, restored_at: datetime) -> None:
    """restored_at belongs to the status change that resolves an incident, and lies between
    its start and now (422 otherwise)."""
    if ticket.kind != TicketKind.INCIDENT or status != TicketStatus.RESOLVED:
        message = "Only the status change that resolves an incident takes restored_at."
        raise ValidationError({"restored_at": [message]})
    if old not in OPEN_STATUSES:
        raise ValidationError({"restored_at": ["The incident is not open."]})
    starts_at = as_utc(db.session.get(Incident, ticket.id).starts_at)
    if restored_at > utcnow() or restored_at < starts_at:
        raise ValidationError({"restored_at": ["Must lie between starts_at and now."]})


def check_parent(scope: Scope, ticket: Ticket, incident_id: int) -> Ticket:
    """The incident a ticket may be put under: an incident within the caller's reach, not the
    ticket itself, and the ticket not an incident (422 otherwise)."""
    if ticket.kind == TicketKind.INCIDENT:
        raise ValidationError({"incident_id": ["An incident cannot hang under an incident."]})
    incident = db.session.scalar(
        select(Ticket).where(
            scope.tickets(), Ticket.id == incident_id, Ticket.kind == TicketKind.INCIDENT
        ),
        scope.params(),
    )
    if incident is None:
        raise ValidationError({"incident_id": ["No incident with this id within your reach."]})
    return incident


# --- The incidents endpoints --------------------------------------------------------------------


def get_incident_or_404(scope: Scope, incident_id: int) -> tuple[Ticket, Incident]:
    """A live incident within the caller's reach (another ISP's or branch's is 404)."""
    ticket = db.session.scalar(
        select(Ticket).where(
            scope.tickets(), Ticket.id == incident_id, Ticket.kind == TicketKind.INCIDENT
        ),
        scope.params(),
    )
    if ticket is None:
        abort(404, "Incident not found.")
    return ticket, db.session.get(Incident, incident_id)


@bp.post("")
@token_required
@bp.arguments(ticket_scope_args, location="query")
@bp.arguments(incident_in)
@idempotent(recheck=lambda _answer: current_scope().require_admin())
@bp.response(201, CreatedOut, message="Incident opened successfully")
@bp.errors(403)
def open_incident(scope, data):
    """Open an incident (admins, or an API key with incidents:write): the objects that failed,
    when, and what affected subscribers are told. Their open tickets become its children."""
    within = current_scope()
    within.require_admin()
    now = utcnow()
    starts_at = data.get("starts_at") or now
    if data["planned"] and starts_at <= now:
        raise ValidationError({"starts_at": ["Planned maintenance starts in the future."]})
    objects = network.live_objects(within.isp_id, data["links"], "links")
    values = without_scope(data)
    incident = open_on(
        within,
        objects,
        branch_id=within.named_branch(scope, data),
        starts_at=starts_at,
        **{name: values[name] for name in ("title", "description", "priority", "public_message")},
        expected_end_at=values.get("expected_end_at"),
        planned=values["planned"],
    )
    db.session.commit()
    return incident, 201


def open_on(
    scope: Scope,
    objects: list[NetworkObject],
    *,
    branch_id: int,
    starts_at: datetime,
    planned: bool = False,
    expected_end_at: datetime | None = None,
    children=(),
    **values,
) -> Ticket:
    """A new incident of these failed objects: its affected subscribers worked out, their
    open tickets (and `children`, tickets of a storm) gathered, and its incident.opened
    event. The caller commits."""
    now = utcnow()
    incident = Ticket.open(
        scope.actor,
        isp_id=scope.isp_id,
        branch_id=branch_id,
        kind=TicketKind.INCIDENT,
        **{name: values[name] for name in ("title", "description", "priority")},
        type=values.get("type", DEFAULT_TYPE),
    )
    db.session.flush()
    db.session.add(
        Incident(
            ticket_id=incident.id,
            isp_id=scope.isp_id,
            starts_at=starts_at,
            expected_end_at=expected_end_at,
            planned=planned,
            public_message=values["public_message"],
        )
    )
    network.link_ticket(incident, [obj.id for obj in objects])
    refresh_affected(incident, starts_at)
    if starts_at <= now:
        attach_children(incident, scope.actor, Ticket.id.in_(children) if children else None)
    announce(
        incident,
        HistoryAction.INCIDENT_OPENED,
        scope.actor,
        planned=planned,
        starts_at=as_json_value(starts_at),
        expected_end_at=as_json_value(expected_end_at),
    )
    return incident


@bp.get(INCIDENT)
@token_required
@bp.arguments(ticket_scope_args, location="query")
@bp.response(200, IncidentOut)
@bp.errors(403, 404)
def get_incident(_scope, incident_id: int):
    """What an incident has beyond a ticket's fields: its times, its message, its links, and
    how many subscribers it affects and tickets it gathers."""
    ticket, info = get_incident_or_404(current_scope(), incident_id)
    links = db.session.execute(
        select(NetworkObject.kind, NetworkObject.external_id)
        .join(TicketLink, TicketLink.object_id == NetworkObject.id)
        .where(TicketLink.ticket_id == incident_id)
        .order_by(TicketLink.position)
    ).all()
    counts = _counts(incident_id)
    return {
        "id": ticket.id,
        "title": ticket.title,
        "status": ticket.status,
        "priority": ticket.priority,
        "branch_id": ticket.branch_id,
        "starts_at": info.starts_at,
        "expected_end_at": info.expected_end_at,
        "planned": info.planned,
        "public_message": info.public_message,
        "restored_at": info.restored_at,
        "links": [row._asdict() for row in links],
        "affected_count": counts["affected_subscribers"],
        "children_count": counts["children"],
    }


@bp.put(INCIDENT)
@token_required
@bp.arguments(ticket_scope_args, location="query")
@bp.arguments(incident_update_in)
@bp.response(200, message="Incident updated successfully")
@bp.errors(403, 404)
def update_incident(_scope, data, incident_id: int):
    """Change an incident's expected end, public message or failing objects (links: who it
    affects is worked out again while it is open), as one incident.updated event."""
    scope = current_scope()
    ticket, info = get_incident_or_404(scope, incident_id)
    scope.require_admin()
    data = without_scope(data)
    refs = data.pop("links", None)
    ends = data.get("expected_end_at", info.expected_end_at)
    if ends is not None and as_utc(ends) < as_utc(info.starts_at):
        raise ValidationError({"expected_end_at": ["Must not be before starts_at."]})
    objects = network.live_objects(ticket.isp_id, refs, "links") if refs is not None else None
    changed = False
    for name, value in data.items():
        if as_json_value(getattr(info, name)) != as_json_value(value):
            setattr(info, name, value)
            changed = True
    if objects is not None and network.relink_ticket(ticket, objects, scope.actor):
        rework_affected(ticket, scope.actor)
        changed = True
    if changed:
        ticket.updated_at = utcnow()
        announce(
            ticket,
            HistoryAction.INCIDENT_UPDATED,
            scope.actor,
            expected_end_at=as_json_value(info.expected_end_at),
        )
    db.session.commit()


@bp.get(f"{INCIDENT}/affected")
@token_required
@bp.arguments(reply_list_args, location="query")
@bp.response(200, AffectedOut(many=True), meta=PageMeta)
@bp.errors(403, 404)
def affected_subscribers(args, incident_id: int):
    """The subscribers the incident affects or affected (staff: their branch's), each with
    when and for how many minutes, a page at a time."""
    scope = current_scope()
    get_incident_or_404(scope, incident_id)
    page, per_page = args["page"], args["per_page"]
    query = impact_rows(incident_id, scope)
    rows = db.session.execute(query.limit(per_page).offset((page - 1) * per_page))
    total = db.session.scalar(select(func.count()).select_from(query.order_by(None).subquery()))
    return Page([_impact(row) for row in rows], queries.page_meta(page, per_page, total))


@bp.get(f"{INCIDENT}/impact")
@token_required
@bp.arguments(reply_list_args, location="query")
@bp.response(200, ImpactOut(many=True), meta=PageMeta)
@bp.alt_response(
    200,
    schema={"type": "string"},
    content_type="text/csv",
    description="With Accept: text/csv: every row.",
)
@bp.errors(403, 404)
def incident_impact(args, incident_id: int):
    """Each affected subscriber's outage: from when to when, and how many minutes (staff:
    their branch's), a page at a time; with `Accept: text/csv`, every row as CSV."""
    scope = current_scope()
    get_incident_or_404(scope, incident_id)
    query = impact_rows(incident_id, scope)
    if request.accept_mimetypes.best_match(["application/json", "text/csv"]) == "text/csv":
        return _as_csv(incident_id, db.session.execute(query))
    page, per_page = args["page"], args["per_page"]
    rows = db.session.execute(query.limit(per_page).offset((page - 1) * per_page))
    total = db.session.scalar(select(func.count()).select_from(query.order_by(None).subquery()))
    return Page([_impact(row) for row in rows], queries.page_meta(page, per_page, total))


CSV_FIELDS = ("subscriber_id", "external_id", "name", "from_", "to", "minutes")


def _as_csv(incident_id: int, rows) -> Response:
    """The rows as CSV (RFC 4180), times in the API's format; a cell that a spreadsheet would
    run as a formula is quoted with a leading apostrophe."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow([name.rstrip("_") for name in CSV_FIELDS])
    for row in rows:
        item = _impact(row)
        writer.writerow(
            [
                _cell(as_json_value(item[name])) if item[name] is not None else ""
                for name in CSV_FIELDS
            ]
        )
    headers = {"Content-Disposition": f'attachment; filename="incident-{incident_id}-impact.csv"'}
    return Response(out.getvalue(), 200, headers, mimetype="text/csv")


def _cell(value):
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def outages_of(subscriber_id: int, start: datetime, end: datetime) -> dict:
    """A subscriber's outages that overlap [start, end), each cut to the period, and the
    minutes out of service in it, where overlapping outages count once."""
    rows = db.session.execute(
        select(
            AffectedSubscriber.incident_id,
            Ticket.title,
            AffectedSubscriber.affected_from,
            AffectedSubscriber.affected_until,
        )
        .join(Ticket, Ticket.id == AffectedSubscriber.incident_id)
        .where(
            AffectedSubscriber.subscriber_id == subscriber_id,
            Ticket.deleted_at.is_(None),
            AffectedSubscriber.affected_from < end,
            or_(
                AffectedSubscriber.affected_until.is_(None),
                AffectedSubscriber.affected_until > start,
            ),
        )
        .order_by(AffectedSubscriber.affected_from, AffectedSubscriber.incident_id)
    ).all()
    now = utcnow()
    outages, spans = [], []
    for row in rows:
        begins = max(as_utc(row.affected_from), start)
        until = as_utc(row.affected_until) if row.affected_until is not None else None
        ends = min(until or now, end)
        outages.append(
            {
                "incident_id": row.incident_id,
                "title": row.title,
                "from_": begins,
                "to": until if until is None or until <= end else end,
                "minutes": outage_minutes(begins, ends) if ends > begins else 0,
            }
        )
        if ends > begins:
            spans.append((begins, ends))
    return {"outages": outages, "total_minutes": _union_minutes(spans)}


def _union_minutes(spans: list) -> int:
    """Whole minutes covered by these intervals, each moment counted once."""
    total, current = 0.0, None
    for begins, ends in sorted(spans):
        if current is not None and begins <= current[1]:
            current = (current[0], max(current[1], ends))
            continue
        if current is not None:
            total += (current[1] - current[0]).total_seconds()
        current = (begins, ends)
    if current is not None:
        total += (current[1] - current[0]).total_seconds()
    return int(total // 60)


def _impact(row) -> dict:
    return {
        "subscriber_id": row.subscriber_id,
        "external_id": row.external_id,
        "name": row.name,
        "branch_id": row.branch_id,
        "from_": row.affected_from,
        "to": row.affected_until,
        "minutes": outage_minutes(row.affected_from, row.affected_until),
    }
