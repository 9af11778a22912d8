"""Token verification: issuing access tokens and the JWT loaders that check every one.

One query per request reads the caller and whether the token was revoked. Every failure is our
envelope and a 401.
"""

from dataclasses import dataclass
from functools import wraps

from flask import current_app, g
from flask_jwt_extended import create_access_token, jwt_required
from sqlalchemy import bindparam, select

from . import ratelimits
from .extensions import first_statement, jwt
from .models import MAX_ID, RevokedToken, User
from .queries import fetch_rows
from .responses import error

# Claims every genuine token carries; a token without one of them is refused.
REQUIRED_CLAIMS = {"sub", "jti", "iat", "exp", "role", "isp_id", "branch_id", "ver"}


@dataclass(frozen=True, slots=True)
class Caller:
    """The user a request acts for: the columns the API needs, never the password hash."""

    id: int
    isp_id: int
    branch_id: int
    role: str
    name: str
    email: str
    token_version: int


# The one query that authenticates: the caller's columns and whether the token was revoked.
_AUTHENTICATE = select(
    User.id,
    User.isp_id,
    User.branch_id,
    User.role,
    User.name,
    User.email,
    User.token_version,
    select(RevokedToken.jti).where(RevokedToken.jti == bindparam("jti")).exists().label("revoked"),
).where(User.id == bindparam("user_id"), User.is_active)


def token_required(view):
    """The view needs a valid bearer token (and the document says so: security and 401);
    the request is charged to its caller's rate limits before the view runs (429)."""

    @wraps(view)
    def charged(*args, **kwargs):
        ratelimits.charge()
        return view(*args, **kwargs)

    guarded = jwt_required()(charged)
    guarded._apidoc = {**getattr(view, "_apidoc", {}), "token": True}
    return guarded


def issue_token(user: User) -> dict:
    """An access token whose claims mirror the user's row (and token version) at issue."""
    claims = {
        "role": user.role,
        "isp_id": user.isp_id,
        "branch_id": user.branch_id,
        "ver": user.token_version or 0,
    }
    return {
        "access_token": create_access_token(identity=str(user.id), additional_claims=claims),
        "token_type": "Bearer",
        "expires_in": current_app.config["JWT_ACCESS_TOKEN_EXPIRES"],
        "user": user,
    }


@jwt.token_in_blocklist_loader
def is_revoked(_header: dict, claims: dict) -> bool:
    """Read the caller and the token's revocation in one query (on every instance).

    The caller is kept for load_user, which runs next; a token whose subject is unusable
    revokes nothing here and is refused there.
    """
    g.token_caller = None
    subject, jti = claims.get("sub"), claims.get("jti")
    if not isinstance(subject, str) or not subject.isdigit() or not 1 <= int(subject) <= MAX_ID:
        return False
    if not isinstance(jti, str) or len(jti) > 64:
        return False  # no usable jti: has_required_claims refuses the token
    params = {"user_id": int(subject), "jti": jti}
    rows = first_statement(lambda: fetch_rows(_AUTHENTICATE, params))
    if not rows:
        return False
    *caller, revoked = rows[0].values()
    g.token_caller = Caller(*caller)
    return revoked


@jwt.token_verification_loader
def has_required_claims(_header: dict, claims: dict) -> bool:
    """Refuse tokens that lack a claim we issue (a forged or foreign token)."""
    return (
        claims.keys() >= REQUIRED_CLAIMS
        and isinstance(claims["jti"], str)
        and 0 < len(claims["jti"]) <= 64
    )


@jwt.user_lookup_loader
def load_user(_header: dict, claims: dict) -> Caller | None:
    """The token's active user, or None when the user is gone, inactive, or has changed in a
    way that ends its sessions since the token was issued."""
    caller = g.get("token_caller")
    if caller is None:
        return None
    issued_as = (claims["role"], claims["isp_id"], claims["branch_id"], claims["ver"])
    if issued_as != (caller.role, caller.isp_id, caller.branch_id, caller.token_version):
        return None
    g.user_id = caller.id  # for the request log
    return caller


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


STALE_TOKEN = "Token no longer matches an active user."


@jwt.user_lookup_error_loader
def _unknown_user(_header: dict, _claims: dict):
    return error(STALE_TOKEN, 401)


@jwt.token_verification_failed_loader
def _failed_verification(_header: dict, _claims: dict):
    return error("Invalid token.", 401)
