"""Tenant scope: who may act, and on what. Every view reaches data through these helpers."""

from flask import abort
from flask_jwt_extended import current_user
from marshmallow import ValidationError
from sqlalchemy import ColumnElement, Select, and_, bindparam, or_, select

from .models import Role, Subscriber, Ticket, User

SCOPE_FIELDS = ("isp_id", "branch_id", "user_id")


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


def named_branch(*scopes: dict) -> int:
    """The branch a create names in its query string or its body (each already checked
    against the token as it loaded), else the caller's own; 422 when the two disagree."""
    named = {scope["branch_id"] for scope in scopes if "branch_id" in scope}
    if len(named) > 1:
        message = "The query string and the body name different branches."
        raise ValidationError({"branch_id": [message]})
    return named.pop() if named else current_user.branch_id


def ticket_scope(*, deleted: bool | None = False) -> ColumnElement[bool]:
    """The tickets the caller may see: its ISP, for staff only its branch, and live ones
    (with `deleted` the deleted ones, with None both). Every ticket query, ORM or Core,
    filters on it.

    The caller's ISP and branch are bound parameters, given by scope_params() when the
    statement runs: a statement built on this clause serves every caller of the same role, so
    the hot queries are built once (queries.py).
    """
    clause = Ticket.isp_id == bindparam("scope_isp_id")
    if deleted is not None:
        state = Ticket.deleted_at.is_not(None) if deleted else Ticket.deleted_at.is_(None)
        clause = and_(clause, state)
    if not current_user.is_admin:
        clause = and_(clause, Ticket.branch_id == bindparam("scope_branch_id"))
    return clause


def scope_params() -> dict:
    """The values of ticket_scope's parameters for the caller."""
    return {"scope_isp_id": current_user.isp_id, "scope_branch_id": current_user.branch_id}


def without_scope(data: dict) -> dict:
    """A body's fields less the scope it named (already checked against the token)."""
    return {name: value for name, value in data.items() if name not in SCOPE_FIELDS}


def scoped_tickets(*, deleted: bool | None = False) -> Select:
    """The ticket rows within the caller's reach (run it with scope_params())."""
    return select(Ticket).where(ticket_scope(deleted=deleted))


def user_scope() -> ColumnElement[bool]:
    """The users the caller may see: its whole ISP for admins; for staff, the users who can
    be assigned its branch's tickets (that branch's active staff and the ISP's active admins)."""
    user = current_user
    clause = User.isp_id == user.isp_id
    if not user.is_admin:
        clause = and_(clause, assignable_to(user.branch_id), User.is_active)
    return clause


def assignable_to(branch_id: int) -> ColumnElement[bool]:
    """Users who reach a branch: its staff and every admin (of the ISP the caller filters)."""
    return or_(User.role == Role.ADMIN, User.branch_id == branch_id)


def subscriber_scope() -> ColumnElement[bool]:
    """The subscribers the caller may see: its ISP, for staff only its branch."""
    user = current_user
    clause = Subscriber.isp_id == user.isp_id
    if not user.is_admin:
        clause = and_(clause, Subscriber.branch_id == user.branch_id)
    return clause
