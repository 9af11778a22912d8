"""The auth blueprint: login, the current user, logout."""

from datetime import UTC, datetime
from functools import cache

from flask import abort, current_app, g, request
from flask_jwt_extended import current_user, get_jwt
from sqlalchemy import delete, select
from werkzeug.security import check_password_hash, generate_password_hash

from .extensions import db, insert, limiter
from .models import RevokedToken, User, utcnow
from .openapi import Blueprint
from .schemas import TokenOut, UserOut, login_in
from .tokens import issue_token, token_required

bp = Blueprint("auth", __name__, description="Tokens: login, the current user, logout.")

INVALID_CREDENTIALS = "Invalid email or password."
TOO_MANY_ATTEMPTS = "Too many failed login attempts; retry after the Retry-After delay."


@cache
def _decoy_hash() -> str:
    """A hash to check unknown emails against, so they cost as much time as known ones."""
    return generate_password_hash("decoy password, never matches")


def _login_failed(response) -> bool:
    """Only failed logins count against the limits, so a busy panel never locks itself out."""
    return response.status_code == 401


def _login_email() -> str:
    """Rate-limit key for the email an attempt names, whichever address it comes from."""
    body = request.get_json(force=True, silent=True)
    email = body.get("email") if isinstance(body, dict) else None
    return "email:" + (email.strip().lower() if isinstance(email, str) else "")


@bp.post("/login")
@limiter.limit(
    lambda: current_app.config["LOGIN_RATE_LIMIT_PER_ADDRESS"],
    deduct_when=_login_failed,
    error_message=TOO_MANY_ATTEMPTS,
    scope="login-address",
)
@limiter.limit(
    lambda: current_app.config["LOGIN_RATE_LIMIT_PER_EMAIL"],
    key_func=_login_email,
    deduct_when=_login_failed,
    error_message=TOO_MANY_ATTEMPTS,
    scope="login-email",
)
@bp.arguments(login_in)
@bp.response(200, TokenOut)
@bp.errors(401, 429, 503)
def login(credentials):
    """Exchange an email and password for an access token."""
    user = db.session.scalar(select(User).where(User.email == credentials["email"].lower()))
    if user is None:
        check_password_hash(_decoy_hash(), credentials["password"])
        abort(401, INVALID_CREDENTIALS)
    if not user.check_password(credentials["password"]) or not user.is_active:
        abort(401, INVALID_CREDENTIALS)
    g.user_id = user.id
    return issue_token(user)


@bp.post("/logout")
@token_required
@bp.response(200, message="Logged out successfully")
def logout():
    """Revoke the presented token on every instance; expired revocations are pruned."""
    claims = get_jwt()
    db.session.execute(delete(RevokedToken).where(RevokedToken.expires_at < utcnow()))
    # A concurrent logout with the same token may have revoked it already: that is success.
    revocation = insert(RevokedToken).values(
        jti=claims["jti"],
        user_id=current_user.id,
        expires_at=datetime.fromtimestamp(claims["exp"], UTC),
        revoked_at=utcnow(),
    )
    db.session.execute(revocation.on_conflict_do_nothing(index_elements=["jti"]))
    db.session.commit()


@bp.get("/me")
@token_required
@bp.response(200, UserOut)
def me():
    """The user the presented token belongs to."""
    return current_user
