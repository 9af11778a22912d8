"""The users blueprint: who can be assigned tickets, and (admins) managing the ISP's staff."""

from flask import abort
from sqlalchemy import select

from . import audit
from .extensions import db
from .idempotency import idempotent
from .models import Role, User
from .openapi import Blueprint
from .queries import page_of
from .schemas import (
    CreatedOut,
    PageMeta,
    UserAccountOut,
    ticket_scope_args,
    user_create_in,
    user_list_args,
    user_update_in,
)
from .scope import Scope, assignable_to, current_scope
from .tokens import STALE_TOKEN, token_required
from .transport import reject_impossible_ids

bp = Blueprint(
    "users",
    __name__,
    description="The people who use the API.",
    key_scopes=("users:read", None),  # only a person manages users
)
bp.url_value_preprocessor(reject_impossible_ids("User not found."))
USER = "/<id:user_id>"
# A user's fields the audit trail follows (the password's values are never written).
AUDITED_FIELDS = ("name", "email", "role", "branch_id", "is_active", "password_hash")


def get_user_or_404(scope: Scope, user_id: int, *, lock: bool = False) -> User:
    """A user the scope sees; anyone else is 404."""
    query = select(User).where(scope.users(), User.id == user_id)
    user = db.session.scalar(query.with_for_update() if lock else query)
    if user is None:
        abort(404, "User not found.")
    return user


def check_email_free(email: str) -> None:
    if db.session.scalar(select(User.id).where(User.email == email)) is not None:
        abort(409, "A user with this email already exists.")


@bp.get("")
@token_required
@bp.arguments(user_list_args, location="query")
@bp.response(200, UserAccountOut(many=True), meta=PageMeta)
@bp.errors(403)
def list_users(args):
    """Admins: every user of the ISP, active or not. Staff: who can be assigned their branch's
    tickets (its active staff and the ISP's active admins). branch_id narrows the list to one
    branch's assignables."""
    scope = current_scope()
    conditions = [scope.users()]
    if "branch_id" in args:
        conditions.append(assignable_to(args["branch_id"]))
    if "branch_id" in args or not scope.is_admin:
        conditions.append(User.is_active)  # who can be assigned: active users only
    if "role" in args:
        conditions.append(User.role == args["role"])
    return page_of(User, args, *conditions, order_by=(User.name, User.id))


@bp.get(USER)
@token_required
@bp.arguments(ticket_scope_args, location="query")
@bp.response(200, UserAccountOut)
@bp.errors(403, 404)
def get_user(_scope, user_id: int):
    """One user the caller may see."""
    return get_user_or_404(current_scope(), user_id)


@bp.post("")
@token_required
@bp.arguments(ticket_scope_args, location="query")
@bp.arguments(user_create_in)
@idempotent(recheck=lambda _answer: current_scope().require_admin())
@bp.response(201, CreatedOut, message="User created successfully")
@bp.errors(403, 409)
def create_user(scope, data):
    """Create a user of the admin's ISP (admins), in the branch of it its query or body names
    (the admin's own by default)."""
    return add_user(current_scope(), data, scope)


def add_user(scope: Scope, data: dict, *claims: dict) -> User:
    """A new user of the scope's ISP, in the branch the data (or `claims`) name; the action
    behind POST /users and `flask users create`."""
    scope.require_admin()
    email = data["email"].lower()
    check_email_free(email)
    user = User(
        isp_id=scope.isp_id,
        branch_id=scope.named_branch(*claims, data),
        name=data["name"],
        email=email,
        role=data["role"],
    )
    user.set_password(data["password"])
    db.session.add(user)
    db.session.flush()
    audit.record(scope, "created", user, audit.created(user, AUDITED_FIELDS))
    db.session.commit()
    return user


@bp.put(USER)
@token_required
@bp.arguments(ticket_scope_args, location="query")
@bp.arguments(user_update_in)
@bp.response(200, message="User updated successfully")
@bp.errors(403, 404, 409)
def update_user(_scope, data, user_id: int):
    """Update a user (admins): name, role, branch, is_active, password. An admin cannot
    deactivate or demote themselves, nor the ISP's last active admin (409)."""
    change_user(current_scope(), user_id, data)


def change_user(scope: Scope, user_id: int, data: dict) -> User:
    """The action behind PUT /users/{id} and `flask users set-password|deactivate`."""
    # A change that may take an admin away locks the ISP's active admins first, in id order,
    # and only then the user: two admins demoting each other wait in turn, never deadlock.
    demoting = data.get("role", Role.ADMIN) != Role.ADMIN or data.get("is_active") is False
    admins = _active_admins_locked(scope) if demoting and scope.is_admin else None
    user = get_user_or_404(scope, user_id, lock=True)
    scope.require_admin()
    if admins is not None and scope.principal_id is not None and scope.principal_id not in admins:
        abort(401, STALE_TOKEN)  # the caller was demoted or deactivated while this waited
    if user.is_admin and user.is_active and demoting:
        if user.id == scope.principal_id:
            abort(409, "You cannot deactivate or demote yourself.")
        if len(admins) <= 1:
            abort(409, "This is the ISP's last active admin.")
    for name in ("name", "role", "branch_id", "is_active"):
        if name in data:
            setattr(user, name, data[name])
    if "password" in data:
        user.set_password(data["password"])
    changes = audit.changed(user, AUDITED_FIELDS)
    if changes:
        audit.record(scope, "updated", user, changes)
    db.session.commit()
    return user


def _active_admins_locked(scope: Scope) -> set[int]:
    """The ISP's active admins, their rows locked in id order until the change commits, so two
    admins demoting each other cannot leave the ISP without one."""
    admins = db.session.scalars(
        select(User.id)
        .where(User.isp_id == scope.isp_id, User.role == Role.ADMIN, User.is_active)
        .order_by(User.id)
        .with_for_update()
    )
    return set(admins)
