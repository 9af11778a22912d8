"""The subscribers blueprint: staff read the subscribers of their reach, admins write them, and
the ISP platform keeps them in sync by its own external ids."""

from datetime import timedelta

from flask import abort
from marshmallow import ValidationError
from sqlalchemy import func, or_, select
from sqlalchemy.orm import selectinload
from sqlalchemy.orm.attributes import set_committed_value

from . import audit, incidents
from .extensions import db
from .fields import external_id_field
from .idempotency import idempotent
from .models import Subscriber, utcnow
from .network import serve
from .openapi import Blueprint
from .queries import escape_like, page_of
from .schemas import (
    CreatedOut,
    OutagesOut,
    PageMeta,
    SubscriberOut,
    outage_args,
    subscriber_create_in,
    subscriber_list_args,
    subscriber_sync_in,
    subscriber_update_in,
    ticket_scope_args,
)
from .scope import Scope, current_scope, without_scope
from .tokens import token_required
from .transport import reject_impossible_ids

bp = Blueprint(
    "subscribers",
    __name__,
    description="The subscribers tickets are about.",
    key_scopes=("subscribers:read", "subscribers:write"),
)
bp.url_value_preprocessor(reject_impossible_ids("Subscriber not found."))
SUBSCRIBER = "/<id:subscriber_id>"
EXTERNAL_ID = external_id_field()
# A subscriber's fields the audit trail follows.
AUDITED_FIELDS = ("name", "phone", "email", "external_id", "branch_id")


def get_subscriber_or_404(scope: Scope, subscriber_id: int) -> Subscriber:
    """A subscriber within the scope's reach; another ISP's or branch's is 404."""
    subscriber = db.session.scalar(
        select(Subscriber)
        .where(scope.subscribers(), Subscriber.id == subscriber_id)
        .options(selectinload(Subscriber.network))
    )
    if subscriber is None:
        abort(404, "Subscriber not found.")
    return subscriber


def check_external_id_free(
    scope: Scope, external_id: str | None, subscriber_id: int | None = None
) -> None:
    """409 when another subscriber of the ISP already has this external id."""
    if external_id is None:
        return
    taken = db.session.scalar(
        select(Subscriber.id).where(
            Subscriber.isp_id == scope.isp_id,
            Subscriber.external_id == external_id,
            Subscriber.id != (subscriber_id or 0),
        )
    )
    if taken is not None:
        abort(409, "Another subscriber of this ISP has this external_id.")


@bp.get("")
@token_required
@bp.arguments(subscriber_list_args, location="query")
@bp.response(200, SubscriberOut(many=True), meta=PageMeta)
@bp.errors(403)
def list_subscribers(args):
    """The subscribers of one branch (the caller's by default), by name; `q` searches name,
    phone and email."""
    scope = current_scope()
    conditions = [
        scope.subscribers(),
        Subscriber.branch_id == args.get("branch_id", scope.branch_id),
    ]
    if "q" in args:
        pattern = f"%{escape_like(args['q'].lower())}%"
        conditions.append(
            or_(
                *(
                    func.lower(column).like(pattern, escape="\\")
                    for column in (Subscriber.name, Subscriber.phone, Subscriber.email)
                )
            )
        )
    return page_of(
        Subscriber,
        args,
        *conditions,
        order_by=(Subscriber.name, Subscriber.id),
        options=(selectinload(Subscriber.network),),
    )


@bp.get(SUBSCRIBER)
@token_required
@bp.arguments(ticket_scope_args, location="query")
@bp.response(200, SubscriberOut)
@bp.errors(403, 404)
def get_subscriber(_scope, subscriber_id: int):
    """One subscriber within the caller's reach."""
    return get_subscriber_or_404(current_scope(), subscriber_id)


@bp.post("")
@token_required
@bp.arguments(ticket_scope_args, location="query")
@bp.arguments(subscriber_create_in)
@idempotent(recheck=lambda _answer: current_scope().require_admin())
@bp.response(201, CreatedOut, message="Subscriber created successfully")
@bp.errors(403, 409)
def create_subscriber(scope, data):
    """Create a subscriber (admins) in the branch of the ISP its query or body names, the
    admin's own by default."""
    return add_subscriber(current_scope(), data, scope)


@bp.get(f"{SUBSCRIBER}/outages")
@token_required
@bp.arguments(outage_args, location="query")
@bp.response(200, OutagesOut)
@bp.errors(403, 404)
def subscriber_outages(args, subscriber_id: int):
    """The incidents that took a subscriber's service in a period (from, to: the last 30 days
    by default), each cut to the period, and the minutes out in it (overlaps counted once)."""
    subscriber = get_subscriber_or_404(current_scope(), subscriber_id)
    end = args.get("to") or utcnow()
    start = args.get("from_") or end - timedelta(days=30)
    if start >= end:
        raise ValidationError({"to": ["Must be later than from."]})
    return incidents.outages_of(subscriber.id, start, end)


def add_subscriber(scope: Scope, data: dict, *claims: dict) -> Subscriber:
    """A new subscriber of the scope's ISP, in the branch the data (or `claims`) name; the
    action behind POST /subscribers and `flask subscribers create`."""
    scope.require_admin()
    check_external_id_free(scope, data.get("external_id"))
    subscriber = Subscriber(
        isp_id=scope.isp_id,
        branch_id=scope.named_branch(*claims, data),
        **fields_of(data),
    )
    db.session.add(subscriber)
    _served_by(subscriber, data, scope)
    db.session.flush()
    audit.record(scope, "created", subscriber, audit.created(subscriber, AUDITED_FIELDS))
    db.session.commit()
    return subscriber


@bp.put(SUBSCRIBER)
@token_required
@bp.arguments(ticket_scope_args, location="query")
@bp.arguments(subscriber_update_in)
@bp.response(200, message="Subscriber updated successfully")
@bp.errors(403, 404, 409)
def update_subscriber(_scope, data, subscriber_id: int):
    """Update a subscriber (admins); branch_id moves it, and its tickets keep their link."""
    scope = current_scope()
    subscriber = get_subscriber_or_404(scope, subscriber_id)
    scope.require_admin()
    check_external_id_free(scope, data.get("external_id"), subscriber.id)
    for name, value in fields_of(data).items():
        setattr(subscriber, name, value)
    _served_by(subscriber, data, scope)
    if "branch_id" in data:
        subscriber.branch_id = data["branch_id"]
    _record_changes(scope, subscriber)
    db.session.commit()


@bp.put("/by-external-id/<external_id>")
@token_required
@bp.arguments(ticket_scope_args, location="query")
@bp.arguments(subscriber_sync_in)
@bp.response(200, CreatedOut, message="Subscriber synced successfully", also=(201,))
@bp.errors(403, 409)
def sync_subscriber(scope, data, external_id: str):
    """Create (201) or update (200) the subscriber the ISP platform knows by this external id
    (at most 255 characters, no slash); fields left out stay as they are, and the same call
    again changes nothing."""
    within = current_scope()
    within.require_admin()
    branch_id = within.named_branch(scope, data)
    try:
        external_id = EXTERNAL_ID.deserialize(external_id)
    except ValidationError as err:
        raise ValidationError({"external_id": err.messages}) from None
    subscriber = db.session.scalar(
        select(Subscriber).where(
            Subscriber.isp_id == within.isp_id, Subscriber.external_id == external_id
        )
    )
    created = subscriber is None
    if created:
        subscriber = Subscriber(
            isp_id=within.isp_id,
            branch_id=branch_id,
            external_id=external_id,
        )
        db.session.add(subscriber)
    for name, value in fields_of(data).items():
        if getattr(subscriber, name) != value:
            setattr(subscriber, name, value)
    _served_by(subscriber, data, within)
    if "branch_id" in data and subscriber.branch_id != data["branch_id"]:
        subscriber.branch_id = data["branch_id"]
    if created:
        db.session.flush()
        audit.record(within, "created", subscriber, audit.created(subscriber, AUDITED_FIELDS))
    else:
        _record_changes(within, subscriber)
    db.session.commit()
    return (subscriber, 201) if created else subscriber


def fields_of(data: dict) -> dict:
    """A body's subscriber columns (less its scope and the network that serves it)."""
    return {name: value for name, value in without_scope(data).items() if name != "network"}


def _served_by(subscriber: Subscriber, data: dict, scope: Scope) -> None:
    """The network objects the body names, if it names them, serve the subscriber now."""
    if "network" in data:
        objects = serve(subscriber, data["network"])
        incidents.reaffect(subscriber.id, subscriber.isp_id, scope.actor)
        set_committed_value(subscriber, "network", sorted(objects, key=_by_kind))
    elif subscriber.id is None:
        set_committed_value(subscriber, "network", [])


def _by_kind(obj) -> tuple:
    return obj.kind, obj.external_id


def _record_changes(scope: Scope, subscriber: Subscriber) -> None:
    """An audit entry for what an update changed, if anything."""
    changes = audit.changed(subscriber, AUDITED_FIELDS)
    if changes:
        audit.record(scope, "updated", subscriber, changes)
