"""The auth blueprint: login, the current user, logout."""

from datetime import UTC, datetime
from functools import cache

from flask import abort, g
from flask_jwt_extended import current_user, get_jwt
from sqlalchemy import delete, select
from werkzeug.security import check_password_hash, generate_password_hash

from . import audit
from .extensions import db, insert
from .login_limits import count_attempt, give_back
from .models import LAST_MOMENT, RevokedToken, User, utcnow
from .openapi import Blueprint
from .schemas import TokenOut, UserOut, login_in, no_args, ticket_scope_args
from .scope import current_scope
from .tokens import issue_token, token_required
from .transport import body_limit

bp = Blueprint("auth", __name__, description="Tokens: login, the current user, logout.")

INVALID_CREDENTIALS = "Invalid email or password."
UNKNOWN_EMAIL = "(unknown email)"
# An email and a password fit in far less: a larger login body is refused unread (413).
LOGIN_BODY_LIMIT = 4096
# The revocation is kept until the token expires, or the last moment a timestamp can hold.
LAST_EXPIRY = int(LAST_MOMENT.replace(microsecond=0).timestamp())  # a float would round up


@cache
def _decoy_hash() -> str:
    """A hash to check unknown emails against, so they cost as much time as known ones."""
    return generate_password_hash("decoy password, never matches")


@bp.post("/login")
@body_limit(LOGIN_BODY_LIMIT)
@bp.arguments(no_args, location="query")
@bp.arguments(login_in)
@bp.response(200, TokenOut)
@bp.errors(401, 429, 503)
def login(_args, credentials):
    """Exchange an email and password for an access token (failed logins are limited)."""
    counted = count_attempt(credentials["email"])
    user = db.session.scalar(select(User).where(User.email == credentials["email"].lower()))
    if user is None:
        check_password_hash(_decoy_hash(), credentials["password"])
        _refuse(None)
    if not user.check_password(credentials["password"]) or not user.is_active:
        _refuse(user)
    give_back(counted)
    audit.add_entry(user.isp_id, _as_actor(user), "login", "user", user.id)
    db.session.commit()
    g.user_id = user.id
    return issue_token(user)


def _as_actor(user: User | None) -> tuple:
    return ("user", user.id, user.name) if user else ("user", None, UNKNOWN_EMAIL)


def _refuse(user: User | None):
    """401, the failed login recorded in the audit trail (an unknown email's with no ISP)."""
    isp_id, user_id = (user.isp_id, user.id) if user else (None, None)
    audit.add_entry(isp_id, _as_actor(user), "login_failed", "user", user_id)
    db.session.commit()
    abort(401, INVALID_CREDENTIALS)


@bp.post("/logout")
@token_required
@bp.arguments(ticket_scope_args, location="query")
@bp.response(200, message="Logged out successfully")
@bp.errors(403)
def logout(_scope):
    """Revoke the presented token on every instance; expired revocations are pruned."""
    claims = get_jwt()
    db.session.execute(delete(RevokedToken).where(RevokedToken.expires_at < utcnow()))
    # A concurrent logout with the same token may have revoked it already: that is success.
    revocation = insert(RevokedToken).values(
        jti=claims["jti"],
        user_id=current_user.id,
        expires_at=datetime.fromtimestamp(min(claims["exp"], LAST_EXPIRY), UTC),
        revoked_at=utcnow(),
    )
    db.session.execute(revocation.on_conflict_do_nothing(index_elements=["jti"]))
    scope = current_scope()
    audit.record(scope, "logout", scope.principal_id, object_type="user")
    db.session.commit()


@bp.get("/me")
@token_required
@bp.arguments(ticket_scope_args, location="query")
@bp.response(200, UserOut)
@bp.errors(403)
def me(_scope):
    """The user the presented token belongs to."""
    return current_user
