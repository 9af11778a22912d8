"""Token verification: issuing access tokens and the JWT loaders that check every one.

Every failure is our envelope and a 401.
"""

from flask import current_app, g
from flask_jwt_extended import create_access_token, jwt_required

from .extensions import db, jwt
from .models import MAX_ID, RevokedToken, User
from .responses import error

# Claims every genuine token carries; a token without one of them is refused.
REQUIRED_CLAIMS = {"sub", "jti", "iat", "exp", "role", "isp_id", "branch_id"}


def token_required(view):
    """The view needs a valid bearer token (and the document says so: security and 401)."""
    guarded = jwt_required()(view)
    guarded._apidoc = {**getattr(view, "_apidoc", {}), "token": True}
    return guarded


def issue_token(user: User) -> dict:
    """An access token whose claims mirror the user's row at the time of issue."""
    claims = {"role": user.role, "isp_id": user.isp_id, "branch_id": user.branch_id}
    return {
        "access_token": create_access_token(identity=str(user.id), additional_claims=claims),
        "token_type": "Bearer",
        "expires_in": current_app.config["JWT_ACCESS_TOKEN_EXPIRES"],
        "user": user,
    }


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


@jwt.token_verification_failed_loader
def _failed_verification(_header: dict, _claims: dict):
    return error("Invalid token.", 401)
