"""Login, the JWT loaders, and the two rules every view obeys: who may act, and on what."""

from datetime import UTC, datetime
from functools import cache

from flask import Blueprint, abort, current_app, g, request
from flask_jwt_extended import create_access_token, current_user, get_jwt, jwt_required
from sqlalchemy import Select, delete, select
from werkzeug.security import check_password_hash, generate_password_hash

from .extensions import db, jwt, limiter
from .models import MAX_ID, RevokedToken, Ticket, User, utcnow
from .responses import error, success
from .schemas import load_body, login_in, token_out, user_out

bp = Blueprint("auth", __name__)

INVALID_CREDENTIALS = "Invalid email or password."
TOO_MANY_ATTEMPTS = "Too many failed login attempts; retry after the Retry-After delay."
# Claims every genuine token carries; a token without one of them is refused.
REQUIRED_CLAIMS = {"sub", "jti", "iat", "exp", "role", "isp_id", "branch_id"}


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
def login():
    """Exchange an email and password for an access token."""
    credentials = load_body(login_in)
    user = db.session.scalar(select(User).where(User.email == credentials["email"].lower()))
    if user is None:
        check_password_hash(_decoy_hash(), credentials["password"])
        abort(401, INVALID_CREDENTIALS)
    if not user.check_password(credentials["password"]) or not user.is_active:
        abort(401, INVALID_CREDENTIALS)
    g.user_id = user.id
    return success(token_out.dump(issue_token(user)))


@bp.post("/logout")
@jwt_required()
def logout():
    """Revoke the presented token on every instance; expired revocations are pruned."""
    claims = get_jwt()
    now = utcnow()
    db.session.execute(delete(RevokedToken).where(RevokedToken.expires_at < now))
    db.session.add(
        RevokedToken(
            jti=claims["jti"],
            user_id=current_user.id,
            expires_at=datetime.fromtimestamp(claims["exp"], UTC),
        )
    )
    db.session.commit()
    return success(message="Logged out successfully")


@bp.get("/me")
@jwt_required()
def me():
    """The user the presented token belongs to."""
    return success(user_out.dump(current_user))


def issue_token(user: User) -> dict:
    """An access token whose claims mirror the user's row at the time of issue."""
    claims = {"role": user.role, "isp_id": user.isp_id, "branch_id": user.branch_id}
    return {
        "access_token": create_access_token(identity=str(user.id), additional_claims=claims),
        "token_type": "Bearer",
        "expires_in": current_app.config["JWT_ACCESS_TOKEN_EXPIRES"],
        "user": user,
    }


# --- JWT loaders: every failure is our envelope and a 401 -----------------------------------


@jwt.user_lookup_loader
def load_user(_header: dict, claims: dict) -> User | None:
    """The token's active user, or None when the user is gone or its row disagrees."""
    subject = claims.get("sub")
    if not isinstance(subject, str) or not subject.isdigit() or not 1 <= int(subject) <= MAX_ID:
        return None
    user = db.session.get(User, int(subject))
    if user is None or not user.is_active:
        return None
    # A role or ISP change since the token was issued invalidates it.
    if (claims.get("role"), claims.get("isp_id"), claims.get("branch_id")) != (
        user.role,
        user.isp_id,
        user.branch_id,
    ):
        return None
    g.user_id = user.id  # for the request log
    return user


@jwt.token_verification_loader
def has_required_claims(_header: dict, claims: dict) -> bool:
    """Refuse tokens that lack a claim we issue (a forged or foreign token)."""
    return (
        claims.keys() >= REQUIRED_CLAIMS
        and isinstance(claims["jti"], str)
        and 0 < len(claims["jti"]) <= 64
    )


@jwt.token_in_blocklist_loader
def is_revoked(_header: dict, claims: dict) -> bool:
    """True when the token was logged out (checked in the database, so on every instance)."""
    jti = claims.get("jti")
    if not isinstance(jti, str) or len(jti) > 64:
        return False  # no usable jti: has_required_claims refuses the token
    return db.session.get(RevokedToken, jti) is not None


@jwt.unauthorized_loader
def _missing_token(_reason: str):
    return error("Missing or malformed Authorization header; send 'Bearer <token>'.", 401)


@jwt.invalid_token_loader
def _invalid_token(_reason: str):
    return error("Invalid token.", 401)


@jwt.expired_token_loader
def _expired_token(_header: dict, _claims: dict):
    return error("Token has expired.", 401)


@jwt.revoked_token_loader
def _revoked_token(_header: dict, _claims: dict):
    return error("Token has been revoked.", 401)


@jwt.user_lookup_error_loader
def _unknown_user(_header: dict, _claims: dict):
    return error("Token no longer matches an active user.", 401)


@jwt.needs_fresh_token_loader
def _needs_fresh_token(_header: dict, _claims: dict):
    return error("A fresh token is required.", 401)


@jwt.token_verification_failed_loader
def _failed_verification(_header: dict, _claims: dict):
    return error("Invalid token.", 401)


# --- Roles and tenant scope -----------------------------------------------------------------


def require_admin() -> None:
    """403 unless the caller is an admin."""
    if not current_user.is_admin:
        abort(403, "Only admins may do this.")


def can_reach_branch(user: User, branch_id: int) -> bool:
    """Admins reach every branch of their ISP; staff only their own."""
    return user.is_admin or branch_id == user.branch_id


def check_scope(scope: dict) -> None:
    """403 unless every isp_id, branch_id and user_id the client sent agrees with its token."""
    user = current_user
    if "isp_id" in scope and scope["isp_id"] != user.isp_id:
        abort(403, "isp_id does not match your account.")
    if "branch_id" in scope and not can_reach_branch(user, scope["branch_id"]):
        abort(403, "branch_id is outside your reach.")
    if "user_id" in scope and scope["user_id"] != user.id:
        abort(403, "user_id does not match your account.")


def scoped_tickets() -> Select:
    """Live tickets the caller may see: its ISP, and for staff only its branch."""
    user = current_user
    query = select(Ticket).where(Ticket.isp_id == user.isp_id, Ticket.deleted_at.is_(None))
    if not user.is_admin:
        query = query.where(Ticket.branch_id == user.branch_id)
    return query
