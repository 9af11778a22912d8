"""The webhooks blueprint: admins register where their ISP's ticket events go, and follow their
deliveries (the worker sends them)."""

import math
import re
import secrets
from datetime import UTC, timedelta

from flask import abort, current_app
from marshmallow import ValidationError
from sqlalchemy import delete, func, select
from werkzeug.exceptions import TooManyRequests

from .. import audit
from ..extensions import db, lock_until_commit
from ..idempotency import idempotent
from ..models import WebhookAttempt, WebhookDelivery, WebhookEndpoint, utcnow
from ..openapi import Blueprint
from ..queries import page_meta, page_of
from ..responses import Page
from ..schemas import (
    AttemptOut,
    PageMeta,
    RedeliveryOut,
    WebhookCreatedOut,
    WebhookOut,
    reply_list_args,
    ticket_scope_args,
    webhook_in,
)
from ..scope import Scope, current_scope
from ..tokens import token_required
from ..transport import reject_impossible_ids
from .destinations import UnsafeDestination, check_destination
from .events import new_delivery

bp = Blueprint(
    "webhooks",
    __name__,
    description="Signed ticket events for the ISP platform.",
    key_scopes=("webhooks:manage", "webhooks:manage"),
)
bp.url_value_preprocessor(reject_impossible_ids("Webhook not found."))
deliveries_bp = Blueprint(
    "deliveries",
    __name__,
    description="Webhook deliveries.",
    key_scopes=("webhooks:manage", "webhooks:manage"),
)
WEBHOOK = "/<id:webhook_id>"
# An endpoint's fields the audit trail follows (the secret's value is never written).
AUDITED_FIELDS = ("url", "events", "secret")
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def get_endpoint_or_404(scope: Scope, webhook_id: int) -> WebhookEndpoint:
    """One of the scope's ISP's endpoints; another ISP's is 404."""
    endpoint = db.session.scalar(
        select(WebhookEndpoint).where(scope.webhooks(), WebhookEndpoint.id == webhook_id)
    )
    if endpoint is None:
        abort(404, "Webhook not found.")
    return endpoint


def _may_see_secret(answer: dict) -> None:
    """A create is replayed, with the secret it showed, only to an admin, and only while the
    endpoint it made still exists (410 once it is deleted)."""
    scope = current_scope()
    scope.require_admin()
    found = db.session.scalar(
        select(WebhookEndpoint.id).where(scope.webhooks(), WebhookEndpoint.id == answer.get("id"))
    )
    if found is None:
        abort(410, "The webhook this key created has been deleted since; its secret is gone.")


@bp.post("")
@token_required
@bp.arguments(ticket_scope_args, location="query")
@bp.arguments(webhook_in)
@idempotent(recheck=_may_see_secret)
@bp.response(201, WebhookCreatedOut, message="Webhook created successfully")
@bp.errors(403, 409, 410)
def create_webhook(_scope, data):
    """Register an endpoint (admins) for some events, at most WEBHOOK_MAX_ENDPOINTS per ISP;
    the answer shows its signing secret, this once and never again."""
    scope = current_scope()
    scope.require_admin()
    config = current_app.config
    try:
        check_destination(
            data["url"], config["WEBHOOK_ALLOW_PRIVATE"], timeout=config["WEBHOOK_TIMEOUT"]
        )
    except UnsafeDestination as err:
        raise ValidationError({"url": [str(err)]}) from None
    # Two admins registering at once are counted one after the other: the limit holds.
    lock_until_commit("webhook endpoints of an ISP", scope.isp_id)
    registered = db.session.scalar(select(func.count()).where(scope.webhooks()))
    if registered >= config["WEBHOOK_MAX_ENDPOINTS"]:
        message = f"Your ISP has {registered} webhook endpoints, the most allowed."
        abort(409, message + " Delete one first.")
    endpoint = WebhookEndpoint(
        isp_id=scope.isp_id,
        url=data["url"],
        events=data["events"],
        secret="whsec_" + secrets.token_urlsafe(32),
        created_by_id=scope.actor.user_id,
    )
    db.session.add(endpoint)
    db.session.flush()
    audit.record(scope, "created", endpoint, audit.created(endpoint, AUDITED_FIELDS))
    db.session.commit()
    return endpoint


@bp.get("")
@token_required
@bp.arguments(reply_list_args, location="query")
@bp.response(200, WebhookOut(many=True), meta=PageMeta)
@bp.errors(403)
def list_webhooks(args):
    """The ISP's endpoints (admins), oldest first, without their secrets."""
    scope = current_scope()
    scope.require_admin()
    return page_of(WebhookEndpoint, args, scope.webhooks(), order_by=(WebhookEndpoint.id,))


@bp.delete(WEBHOOK)
@token_required
@bp.arguments(ticket_scope_args, location="query")
@bp.response(200, message="Webhook deleted successfully")
@bp.errors(403, 404)
def delete_webhook(_scope, webhook_id: int):
    """Stop sending to an endpoint (admins); its pending deliveries go with it."""
    scope = current_scope()
    scope.require_admin()
    endpoint = get_endpoint_or_404(scope, webhook_id)
    db.session.execute(delete(WebhookEndpoint).where(WebhookEndpoint.id == endpoint.id))
    audit.record(scope, "deleted", endpoint, audit.removed(endpoint, AUDITED_FIELDS))
    db.session.commit()


@bp.get(f"{WEBHOOK}/deliveries")
@token_required
@bp.arguments(reply_list_args, location="query")
@bp.response(200, AttemptOut(many=True), meta=PageMeta)
@bp.errors(403, 404)
def list_deliveries(args, webhook_id: int):
    """Every attempt to deliver to an endpoint (admins), newest first."""
    scope = current_scope()
    scope.require_admin()
    endpoint = get_endpoint_or_404(scope, webhook_id)
    condition = WebhookDelivery.endpoint_id == endpoint.id
    page, per_page = args["page"], args["per_page"]
    rows = db.session.execute(
        select(
            WebhookDelivery.delivery_id,
            WebhookDelivery.event,
            WebhookAttempt.status_code,
            WebhookAttempt.attempted_at,
            WebhookAttempt.next_attempt_at,
        )
        .join(WebhookDelivery, WebhookDelivery.id == WebhookAttempt.delivery_id)
        .where(condition)
        .order_by(WebhookAttempt.attempted_at.desc(), WebhookAttempt.id.desc())
        .limit(per_page)
        .offset((page - 1) * per_page)
    ).mappings()
    items = rows.all()
    total = db.session.scalar(
        select(func.count())
        .select_from(WebhookAttempt)
        .join(WebhookDelivery, WebhookDelivery.id == WebhookAttempt.delivery_id)
        .where(condition)
    )
    return Page(items, page_meta(page, per_page, total))


def _original_or_404(scope: Scope, delivery_id: str) -> WebhookDelivery:
    """A delivery of one of the scope's ISP's endpoints, by its (case-insensitive) id."""
    delivery_id = delivery_id.lower()  # a UUID's hex digits are case-insensitive
    if not _UUID.fullmatch(delivery_id):
        abort(404, "Delivery not found.")
    original = db.session.scalar(
        select(WebhookDelivery)
        .join(WebhookEndpoint, WebhookEndpoint.id == WebhookDelivery.endpoint_id)
        .where(
            WebhookDelivery.delivery_id == delivery_id,
            scope.webhooks(),
        )
    )
    if original is None:
        abort(404, "Delivery not found.")
    return original


def _may_redeliver(_answer: dict, delivery_id: str) -> None:
    scope = current_scope()
    scope.require_admin()
    _original_or_404(scope, delivery_id)


REDELIVERY_WINDOW = timedelta(hours=1)


@deliveries_bp.post("/<delivery_id>/redeliver")
@token_required
@deliveries_bp.arguments(ticket_scope_args, location="query")
@idempotent(recheck=_may_redeliver)
@deliveries_bp.response(201, RedeliveryOut, message="Delivery scheduled")
@deliveries_bp.errors(403, 404, 429)
def redeliver(_scope, delivery_id: str):
    """Send a delivery's event to its endpoint again (admins), as a new delivery with its own
    delivery id, so receivers that dropped the first as a duplicate take this one. An ISP may
    ask for WEBHOOK_REDELIVER_LIMIT redeliveries an hour (429 beyond, with Retry-After)."""
    scope = current_scope()
    scope.require_admin()
    original = _original_or_404(scope, delivery_id)
    now = utcnow()
    recent = db.session.scalars(
        select(WebhookDelivery.created_at)
        .join(WebhookEndpoint, WebhookEndpoint.id == WebhookDelivery.endpoint_id)
        .where(
            scope.webhooks(),
            WebhookDelivery.redelivery,
            WebhookDelivery.created_at > now - REDELIVERY_WINDOW,
        )
        .order_by(WebhookDelivery.created_at.desc())
        .limit(current_app.config["WEBHOOK_REDELIVER_LIMIT"])
    ).all()
    if len(recent) >= current_app.config["WEBHOOK_REDELIVER_LIMIT"]:
        oldest = recent[-1].replace(tzinfo=recent[-1].tzinfo or UTC)
        wait = math.ceil((oldest + REDELIVERY_WINDOW - now).total_seconds())
        raise TooManyRequests(
            "Too many redeliveries this hour; retry after the Retry-After delay.",
            retry_after=max(wait, 1),
        )
    again = new_delivery(
        original.endpoint_id, original.history_id, original.event, now, redelivery=True
    )
    db.session.add(again)
    changes = {"delivery_id": [delivery_id, again.delivery_id]}
    audit.record(scope, "redelivered", original.endpoint_id, changes, object_type="webhook")
    db.session.commit()
    return {"delivery_id": again.delivery_id}
