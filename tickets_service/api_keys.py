"""The api-keys blueprint: an ISP's admins make keys for their programs, see when each was last
used, and revoke them. Only a person manages keys: a key calling here is 403 (the blueprint
opens no scope to keys). Keys are checked on every request (tokens.authenticate_key)."""

import secrets

from flask import abort, current_app, request
from marshmallow import ValidationError
from sqlalchemy import exists, or_, select

from . import audit
from .extensions import db
from .idempotency import HEADER as IDEMPOTENCY_KEY
from .models import ApiKey, Subscriber, User, utcnow
from .openapi import Blueprint
from .queries import page_of
from .schemas import (
    ApiKeyCreatedOut,
    ApiKeyOut,
    PageMeta,
    api_key_in,
    reply_list_args,
    ticket_scope_args,
)
from .scope import Scope, branch_named, current_scope
from .tokens import secret_digest, token_required
from .transport import reject_impossible_ids

bp = Blueprint("api_keys", __name__, description="Keys for programs, made by the ISP's admins.")
bp.url_value_preprocessor(reject_impossible_ids("API key not found."))
KEY = "/<id:key_id>"
# A key's fields the audit trail follows.
AUDITED_FIELDS = ("name", "prefix", "scopes", "branch_id", "expires_at", "rate_limit")


def get_key_or_404(scope: Scope, key_id: int, *, lock: bool = False) -> ApiKey:
    """One of the scope's ISP's keys; another ISP's is 404."""
    query = select(ApiKey).where(ApiKey.isp_id == scope.isp_id, ApiKey.id == key_id)
    key = db.session.scalar(query.with_for_update() if lock else query)
    if key is None:
        abort(404, "API key not found.")
    return key


def check_branch(isp_id: int, branch_id: int) -> None:
    """422 unless the branch is one of the ISP's: one that has users or subscribers of it."""
    known = or_(
        exists().where(User.isp_id == isp_id, User.branch_id == branch_id),
        exists().where(Subscriber.isp_id == isp_id, Subscriber.branch_id == branch_id),
    )
    if not db.session.scalar(select(known)):
        raise ValidationError({"branch_id": ["No branch with this id in your ISP."]})


@bp.post("")
@token_required
@bp.arguments(ticket_scope_args, location="query")
@bp.arguments(api_key_in)
@bp.response(201, ApiKeyCreatedOut, message="API key created successfully")
@bp.errors(403)
def create_key(claims, data):
    """Make a key (admins) with some scopes, for the ISP or the one branch its query or body
    names; the answer shows the key itself, this once and never again (so it takes no
    Idempotency-Key: a replay would need the key stored)."""
    scope = current_scope()
    scope.require_admin()
    if request.headers.get(IDEMPOTENCY_KEY) is not None:
        message = "Not taken here: the answer holds the key, which is never stored. List the "
        message += "keys to see whether one was made; revoke any you do not hold."
        raise ValidationError({IDEMPOTENCY_KEY: [message]})
    branch_id = branch_named(claims, data)  # none: the whole ISP
    ceiling = current_app.config["RATE_LIMIT_PER_ISP"]
    if (data.get("rate_limit") or 0) > ceiling:
        raise ValidationError({"rate_limit": [f"At most the ISP's ceiling, {ceiling}."]})
    if data.get("expires_at") is not None and data["expires_at"] <= utcnow():
        raise ValidationError({"expires_at": ["Must be in the future."]})
    if branch_id is not None:
        check_branch(scope.isp_id, branch_id)
    secret = secrets.token_urlsafe(32)
    key = ApiKey(
        isp_id=scope.isp_id,
        branch_id=branch_id,
        name=data["name"],
        prefix=secrets.token_hex(6),
        secret_hash=secret_digest(secret),
        scopes=data["scopes"],
        expires_at=data.get("expires_at"),
        rate_limit=data.get("rate_limit"),
        created_by_id=scope.principal_id,
        created_at=utcnow(),
    )
    db.session.add(key)
    db.session.flush()
    audit.record(scope, "created", key, audit.created(key, AUDITED_FIELDS))
    db.session.commit()
    key.key = f"tsk_{key.prefix}_{secret}"  # for this answer only
    return key


@bp.get("")
@token_required
@bp.arguments(reply_list_args, location="query")
@bp.response(200, ApiKeyOut(many=True), meta=PageMeta)
@bp.errors(403)
def list_keys(args):
    """The ISP's keys (admins), newest first, revoked ones too; never a key or its hash."""
    scope = current_scope()
    scope.require_admin()
    return page_of(ApiKey, args, ApiKey.isp_id == scope.isp_id, order_by=(ApiKey.id.desc(),))


@bp.get(KEY)
@token_required
@bp.arguments(ticket_scope_args, location="query")
@bp.response(200, ApiKeyOut)
@bp.errors(403, 404)
def get_key(_scope, key_id: int):
    """One key of the ISP (admins): its scopes, and when it was last used."""
    scope = current_scope()
    scope.require_admin()
    return get_key_or_404(scope, key_id)


@bp.delete(KEY)
@token_required
@bp.arguments(ticket_scope_args, location="query")
@bp.response(200, message="API key revoked successfully")
@bp.errors(403, 404)
def revoke_key(_scope, key_id: int):
    """Revoke a key (admins): from the next request on, on every instance, it is refused. It
    stays listed; revoking it again changes nothing."""
    scope = current_scope()
    scope.require_admin()
    key = get_key_or_404(scope, key_id, lock=True)
    if key.revoked_at is None:
        key.revoked_at = utcnow()
        audit.record(scope, "revoked", key, {"revoked_at": [None, key.revoked_at]})
    db.session.commit()
