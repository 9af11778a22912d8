"""Token verification: issuing access tokens, the JWT loaders that check every one, and the
API keys that programs present instead.

One query per request reads the caller and whether the token was revoked (or the key and
whether it still holds). Every failure is our envelope and a 401.
"""

import hashlib
import hmac
import re
from dataclasses import dataclass
from datetime import timedelta
from functools import wraps

from flask import abort, current_app, g, request
from flask_jwt_extended import create_access_token, jwt_required
from sqlalchemy import bindparam, or_, select, update

from . import ratelimits
from .extensions import db, first_statement, jwt
from .models import MAX_ID, ApiKey, RevokedToken, Role, User, as_utc, utcnow
from .queries import fetch_rows
from .responses import error
from .scope import Scope

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
    """The view needs a valid bearer token or API key (and the document says so: security and
    401); the request is charged to its caller's rate limits before the view runs (429), and
    a key must hold the scope the route needs (403)."""

    @wraps(view)
    def charged(*args, **kwargs):
        ratelimits.charge()
        return view(*args, **kwargs)

    by_token = jwt_required()(charged)

    @wraps(view)
    def guarded(*args, **kwargs):
        presented = _presented_key()
        if presented is None:
            return by_token(*args, **kwargs)
        g.scope = authenticate_key(presented)
        ratelimits.charge()
        _require_key_scope(g.scope)
        return view(*args, **kwargs)

    guarded._apidoc = {**getattr(view, "_apidoc", {}), "token": True}
    return guarded


# --- API keys -------------------------------------------------------------------------------

KEY_PREFIX = "tsk_"
# tsk_<prefix: 12 hex digits>_<secret: 32 random bytes, URL-safe base64>
KEY_SHAPE = re.compile(r"tsk_([0-9a-f]{12})_([A-Za-z0-9_-]{43})")
# last_used_at (and the address) are written at most this often per key.
LAST_USED_EVERY = timedelta(minutes=1)
INVALID_KEY = "Invalid API key."

# The one query that authenticates a key: it, and its creator's home branch.
_KEY = (
    select(
        ApiKey.id,
        ApiKey.isp_id,
        ApiKey.branch_id,
        ApiKey.name,
        ApiKey.scopes,
        ApiKey.secret_hash,
        ApiKey.expires_at,
        ApiKey.revoked_at,
        ApiKey.rate_limit,
        ApiKey.created_by_id,
        ApiKey.last_used_at,
        ApiKey.last_used_ip,
        User.branch_id.label("home_branch_id"),
    )
    .join(User, User.id == ApiKey.created_by_id)
    .where(ApiKey.prefix == bindparam("prefix"))
)


def secret_digest(secret: str) -> str:
    """What is kept of a key's secret: SHA-256 (the secret is 256 random bits, so a slow
    hash would add nothing but time to every request)."""
    return hashlib.sha256(secret.encode()).hexdigest()


def _presented_key() -> str | None:
    """The API key in the Authorization header, or None when it carries something else."""
    header = request.headers.get("Authorization", "")
    scheme, _, credential = header.partition(" ")
    if scheme.lower() != "bearer" or not credential.startswith(KEY_PREFIX):
        return None
    return credential.strip()


def authenticate_key(presented: str) -> Scope:
    """The scope of a live key (401 for an unknown, wrong, revoked or expired one), in one
    query; once a minute, or from a new address, the key's use is written down."""
    shape = KEY_SHAPE.fullmatch(presented)
    if shape is None:
        abort(401, INVALID_KEY)
    prefix, secret = shape.groups()
    rows = first_statement(lambda: fetch_rows(_KEY, {"prefix": prefix}))
    key = rows[0] if rows else None
    # Compared in constant time, and compared even for an unknown prefix.
    expected = key["secret_hash"] if key else "0" * 64
    if not hmac.compare_digest(secret_digest(secret), expected) or key is None:
        abort(401, INVALID_KEY)
    now = utcnow()
    if key["revoked_at"] is not None:
        abort(401, "API key has been revoked.")
    if key["expires_at"] is not None and as_utc(key["expires_at"]) <= now:
        abort(401, "API key has expired.")
    g.key_id = key["id"]  # for the request log
    scope = Scope(
        isp_id=key["isp_id"],
        branch_id=key["branch_id"] or key["home_branch_id"],
        role=Role.STAFF if key["branch_id"] is not None else Role.ADMIN,
        principal_id=None,
        principal_name=key["name"],
        key_id=key["id"],
        key_scopes=frozenset(key["scopes"]),
        acting_for=key["created_by_id"],
        rate_limit=key["rate_limit"],
    )
    _note_use(scope, key, now)
    return scope


def _note_use(scope: Scope, key: dict, now) -> None:
    """Write when the key was last used, at most once a minute, and from where; its first use
    from an address it has never come from is an audit entry. In a transaction of its own,
    before the request's: a request that fails still leaves the key's use recorded."""
    from . import audit  # audit's own view needs token_required, from here

    address = request.remote_addr
    last = key["last_used_at"]
    if last is not None and now - as_utc(last) < LAST_USED_EVERY and key["last_used_ip"] == address:
        return
    db.session.rollback()  # ends the read; the note is its own transaction
    noted = db.session.execute(
        update(ApiKey)
        .where(
            ApiKey.id == key["id"],
            or_(
                ApiKey.last_used_at.is_(None),
                ApiKey.last_used_at < now - LAST_USED_EVERY,
                ApiKey.last_used_ip.is_(None),
                ApiKey.last_used_ip != address,
            ),
        )
        .values(last_used_at=now, last_used_ip=address)
    )
    if noted.rowcount and address != key["last_used_ip"] and not audit.seen_from(scope, address):
        audit.record(scope, "used_from_new_address", key["id"], object_type="api_key")
    db.session.commit()


def _require_key_scope(scope: Scope) -> None:
    """403 unless the key holds the scope its route needs; routes only a person may use
    (users' writes, keys, the caller's own account) are 403 whatever the key holds."""
    blueprint = current_app.blueprints.get(request.blueprint)
    needed = blueprint.key_scope(request.method) if blueprint is not None else None
    if needed is None:
        abort(403, "Only a person may do this: API keys cannot.")
    if needed not in scope.key_scopes:
        abort(403, f"This API key lacks the scope {needed}.")


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
