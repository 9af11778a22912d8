"""Tenant scope: who may act, and on what. Every view reaches data through these helpers."""

from flask import abort
from flask_jwt_extended import current_user
from sqlalchemy import Select, select

from .models import Ticket, User


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
