"""The network blueprint: the ISP's sites, nodes, devices, links and services, synced from its
platform by kind and external id, hung from their uplinks as one tree per ISP.

Everything at or below an object is one range of its materialised path (models.NetworkObject):
the subscribers an outage affects, the tickets under a node, a subtree that moves.
"""

from flask import abort
from marshmallow import ValidationError
from sqlalchemy import String, and_, func, insert, literal, or_, select, update
from sqlalchemy.orm import aliased, joinedload

from . import queries
from .extensions import db
from .fields import external_id_field
from .models import (
    MAX_NETWORK_DEPTH,
    NETWORK_KINDS,
    HistoryAction,
    NetworkObject,
    Subscriber,
    SubscriberNetwork,
    TicketLink,
    utcnow,
)
from .openapi import Blueprint
from .queries import UNKNOWN, parse_ref
from .responses import Page
from .schemas import (
    CreatedOut,
    NetworkObjectDetailOut,
    NetworkObjectOut,
    PageMeta,
    network_list_args,
    network_object_in,
    ticket_scope_args,
)
from .scope import Scope, current_scope
from .tokens import token_required

bp = Blueprint(
    "network",
    __name__,
    description="The ISP's network: sites, nodes, devices, links and services, as a tree.",
    key_scopes=("network:read", "network:write"),
)
OBJECT = "/<kind>/<external_id>"
EXTERNAL_ID = external_id_field()
NOT_FOUND = "Network object not found."


# --- Naming objects ---------------------------------------------------------------------------


def named(kind: str, external_id: str) -> tuple[str, str]:
    """A path's kind and external id, checked (422 for a kind that does not exist)."""
    if kind not in NETWORK_KINDS:
        raise ValidationError({"kind": [f"Must be one of: {', '.join(NETWORK_KINDS)}."]})
    try:
        return kind, EXTERNAL_ID.deserialize(external_id)
    except ValidationError as err:
        raise ValidationError({"external_id": err.messages}) from None


def live_objects(isp_id: int, refs, field: str) -> list[NetworkObject]:
    """The live objects of the ISP these (kind, external_id) name, in their order; 422 on
    `field` when one is unknown, retired or another ISP's (the same answer for each)."""
    refs = [(ref["kind"], ref["external_id"]) if isinstance(ref, dict) else ref for ref in refs]
    if not refs:
        return []
    found = db.session.scalars(
        select(NetworkObject).where(
            NetworkObject.isp_id == isp_id,
            NetworkObject.retired_at.is_(None),
            or_(
                *(
                    and_(NetworkObject.kind == kind, NetworkObject.external_id == external_id)
                    for kind, external_id in refs
                )
            ),
        )
    ).all()
    by_ref = {(obj.kind, obj.external_id): obj for obj in found}
    missing = [
        f"{kind}:{external_id}" for kind, external_id in refs if (kind, external_id) not in by_ref
    ]
    if missing:
        raise ValidationError({field: [f"{UNKNOWN} ({', '.join(missing)})"]})
    return [by_ref[ref] for ref in refs]


def at_or_below(path: str):
    """The objects at or below the one with this path (one range of the path index)."""
    return NetworkObject.path.like(path + "%")


def serve(subscriber: Subscriber, refs: list) -> list[NetworkObject]:
    """Make these objects (of the subscriber's ISP) the ones that serve the subscriber."""
    objects = live_objects(subscriber.isp_id, refs, "network")
    db.session.flush()  # the subscriber's id
    db.session.execute(
        SubscriberNetwork.__table__.delete().where(SubscriberNetwork.subscriber_id == subscriber.id)
    )
    db.session.add_all(
        SubscriberNetwork(subscriber_id=subscriber.id, object_id=obj.id, isp_id=subscriber.isp_id)
        for obj in objects
    )
    return objects


def link_ticket(ticket, object_ids: list[int]) -> None:
    """Link a new ticket to these objects, in this order."""
    if not object_ids:
        return
    db.session.flush()  # the ticket's id
    db.session.execute(
        insert(TicketLink),
        [
            {"ticket_id": ticket.id, "object_id": object_id, "isp_id": ticket.isp_id, "position": n}
            for n, object_id in enumerate(object_ids)
        ],
    )


def relink_ticket(ticket, objects: list[NetworkObject], by) -> bool:
    """Make these the ticket's links, recording the change (old -> new, as kind:external_id)
    in its history; False when they already are."""
    current = db.session.execute(
        select(NetworkObject.id, NetworkObject.kind, NetworkObject.external_id)
        .join(TicketLink, TicketLink.object_id == NetworkObject.id)
        .where(TicketLink.ticket_id == ticket.id)
        .order_by(TicketLink.position)
    ).all()
    if [row.id for row in current] == [obj.id for obj in objects]:
        return False
    db.session.execute(TicketLink.__table__.delete().where(TicketLink.ticket_id == ticket.id))
    link_ticket(ticket, [obj.id for obj in objects])
    old = [f"{row.kind}:{row.external_id}" for row in current]
    new = [f"{obj.kind}:{obj.external_id}" for obj in objects]
    ticket.updated_at = utcnow()  # a new version of the ticket
    ticket.record(HistoryAction.UPDATED, by, "links", old, new)
    return True


# --- The API ------------------------------------------------------------------------------------


def get_object_or_404(scope: Scope, kind: str, external_id: str, *, lock=False) -> NetworkObject:
    """A live object of the caller's ISP; another ISP's, a retired or an unknown one is 404."""
    kind, external_id = named(kind, external_id)
    query = select(NetworkObject).where(
        NetworkObject.isp_id == scope.isp_id,
        NetworkObject.kind == kind,
        NetworkObject.external_id == external_id,
        NetworkObject.retired_at.is_(None),
    )
    # Locked for a change (which shows nothing), or with its parent to show.
    query = query.with_for_update() if lock else query.options(joinedload(NetworkObject.parent))
    obj = db.session.scalar(query)
    if obj is None:
        abort(404, NOT_FOUND)
    return obj


@bp.get("")
@token_required
@bp.arguments(network_list_args, location="query")
@bp.response(200, NetworkObjectOut(many=True), meta=PageMeta)
@bp.errors(403)
def list_objects(args):
    """The ISP's live network objects by name, filtered by kind, parent (kind:external_id)
    or text (q: in the name or the external id), a page at a time."""
    scope = current_scope()
    conditions = [NetworkObject.isp_id == scope.isp_id, NetworkObject.retired_at.is_(None)]
    if "kind" in args:
        conditions.append(NetworkObject.kind == args["kind"])
    if "parent" in args:
        [parent] = live_objects(scope.isp_id, [parse_ref(args["parent"], "parent")], "parent")
        conditions.append(NetworkObject.parent_id == parent.id)
    if "q" in args:
        pattern = f"%{queries.escape_like(args['q'].lower())}%"
        conditions.append(
            or_(
                func.lower(NetworkObject.name).like(pattern, escape="\\"),
                func.lower(NetworkObject.external_id).like(pattern, escape="\\"),
            )
        )
    page, per_page = args["page"], args["per_page"]
    objects = db.session.scalars(
        select(NetworkObject)
        .where(*conditions)
        .options(joinedload(NetworkObject.parent))
        .order_by(NetworkObject.name, NetworkObject.id)
        .limit(per_page)
        .offset((page - 1) * per_page)
    ).all()
    total = db.session.scalar(select(func.count()).select_from(NetworkObject).where(*conditions))
    return Page(objects, queries.page_meta(page, per_page, total))


@bp.get(OBJECT)
@token_required
@bp.arguments(ticket_scope_args, location="query")
@bp.response(200, NetworkObjectDetailOut)
@bp.errors(403, 404)
def get_object(_scope, kind: str, external_id: str):
    """One network object, with how many live children it has and how many subscribers
    (within your reach) are served at it or below it."""
    scope = current_scope()
    obj = get_object_or_404(scope, kind, external_id)
    children = db.session.scalar(
        select(func.count())
        .select_from(NetworkObject)
        .where(NetworkObject.parent_id == obj.id, NetworkObject.retired_at.is_(None))
    )
    below = aliased(NetworkObject)
    subscribers = db.session.scalar(
        select(func.count(func.distinct(SubscriberNetwork.subscriber_id)))
        .join(below, below.id == SubscriberNetwork.object_id)
        .join(Subscriber, Subscriber.id == SubscriberNetwork.subscriber_id)
        .where(
            below.isp_id == scope.isp_id,
            below.path.like(obj.path + "%"),
            below.retired_at.is_(None),
            scope.subscribers(),
        )
    )
    obj.children_count, obj.subscribers_count = children, subscribers
    return obj


@bp.put(OBJECT)
@token_required
@bp.arguments(ticket_scope_args, location="query")
@bp.arguments(network_object_in)
@bp.response(200, CreatedOut, message="Network object synced successfully", also=(201,))
@bp.errors(403, 409)
def sync_object(_scope, data, kind: str, external_id: str):
    """Create (201) or update (200) the object the ISP platform knows by this kind and
    external id; the same call again changes nothing. A parent must be a live object of the
    ISP; a move under the object itself or anything below it is 409, and no object may sit
    deeper than 32 levels (a root is at 1)."""
    scope = current_scope()
    scope.require_admin()
    kind, external_id = named(kind, external_id)
    obj = db.session.scalar(
        select(NetworkObject)
        .where(
            NetworkObject.isp_id == scope.isp_id,
            NetworkObject.kind == kind,
            NetworkObject.external_id == external_id,
        )
        .with_for_update()
    )
    created = obj is None or obj.retired_at is not None
    if obj is None:
        # Its path is a placeholder until it has its id (_hang).
        obj = NetworkObject(
            isp_id=scope.isp_id, kind=kind, external_id=external_id, path="/", depth=1
        )
        db.session.add(obj)
    for name in ("name", "branch_id", "attributes"):
        if name in data and getattr(obj, name) != data[name]:
            setattr(obj, name, data[name])
    if "parent" in data:
        parent = data["parent"] and live_objects(scope.isp_id, [data["parent"]], "parent")[0]
        _hang(obj, parent)
    elif obj.id is None:
        _hang(obj, None)
    if obj.retired_at is not None:
        obj.retired_at = None
    db.session.commit()
    return (obj, 201) if created else obj


def _hang(obj: NetworkObject, parent: NetworkObject | None) -> None:
    """Hang the object (and everything below it) from `parent` (None: a root)."""
    new = obj.path == "/"  # the placeholder of a new object (flushed or not)
    if not new and obj.parent_id == (parent and parent.id):
        return
    if parent is not None:
        # Lock the chain the object joins, then read it again: a concurrent move of one of
        # its links waits, or is waited for, and the cycle check sees where it ended up.
        chain = [int(part) for part in parent.path.strip("/").split("/")]
        db.session.execute(
            select(NetworkObject.id)
            .where(NetworkObject.id.in_(chain))
            .order_by(NetworkObject.id)
            .with_for_update()
        )
        db.session.refresh(parent)
        if not new and parent.path.startswith(obj.path):
            abort(409, "The network is a tree: an object cannot hang below itself.")
    depth = parent.depth + 1 if parent is not None else 1
    height = 0
    if not new:
        deepest = db.session.scalar(
            select(func.max(NetworkObject.depth)).where(
                NetworkObject.isp_id == obj.isp_id, at_or_below(obj.path)
            )
        )
        height = deepest - obj.depth
    if depth + height > MAX_NETWORK_DEPTH:
        message = f"The network is at most {MAX_NETWORK_DEPTH} levels deep (a root is at 1)."
        raise ValidationError({"parent": [message]})
    if obj.id is None:
        db.session.flush()
    old_path, old_depth = obj.path, obj.depth
    obj.parent_id = parent.id if parent is not None else None
    new_path = (parent.path if parent is not None else "/") + f"{obj.id}/"
    if not new and old_path != new_path:
        # Everything below moves with it (the object's own row is written by the session).
        db.session.execute(
            update(NetworkObject)
            .where(
                NetworkObject.isp_id == obj.isp_id,
                at_or_below(old_path),
                NetworkObject.id != obj.id,
            )
            .values(
                path=literal(new_path, String).concat(
                    func.substr(NetworkObject.path, len(old_path) + 1)
                ),
                depth=NetworkObject.depth + (depth - old_depth),
            )
            .execution_options(synchronize_session=False)
        )
    obj.path, obj.depth = new_path, depth


@bp.delete(OBJECT)
@token_required
@bp.arguments(ticket_scope_args, location="query")
@bp.response(200, message="Network object retired successfully")
@bp.errors(403, 404, 409)
def retire_object(_scope, kind: str, external_id: str):
    """Retire an object: gone from the network, while the tickets and subscribers that name
    it keep their links; 409 while it has live children."""
    scope = current_scope()
    scope.require_admin()
    obj = get_object_or_404(scope, kind, external_id, lock=True)
    children = db.session.scalar(
        select(func.count())
        .select_from(NetworkObject)
        .where(NetworkObject.parent_id == obj.id, NetworkObject.retired_at.is_(None))
    )
    if children:
        abort(409, "The object has live children: move or retire them first.")
    obj.retired_at = utcnow()
    db.session.commit()
