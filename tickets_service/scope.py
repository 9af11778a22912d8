"""Tenant scope: who acts, and on what. A Scope is built once per request from its caller and
handed to every query builder; every view reaches data through it, and the CLI builds one of
its own to run the same actions under the same rules.

A user of one ISP never reads or changes another ISP's data, and a staff user only their
branch's: another ISP's or branch's object is 404 (its existence is not the caller's to know),
a claimed isp_id, branch_id or user_id that disagrees with the caller is 403.
"""

from dataclasses import dataclass

from flask import abort, g
from flask_jwt_extended import current_user
from marshmallow import ValidationError
from sqlalchemy import ColumnElement, and_, bindparam, or_

from .models import Actor, Role, Subscriber, Ticket, User, WebhookEndpoint

SCOPE_FIELDS = ("isp_id", "branch_id", "user_id")


@dataclass(frozen=True, slots=True)
class Scope:
    """The caller's reach: its ISP, its home branch, its role, and who it is (None for the
    system: an operator's command, and for an API key), by id and by name (for the audit
    trail). An API key (key_id) holds its scopes, acts for the admin who created it
    (acting_for) and may have its own rate limit."""

    isp_id: int
    branch_id: int
    role: str
    principal_id: int | None
    principal_name: str | None = None
    key_id: int | None = None
    key_scopes: frozenset = frozenset()
    acting_for: int | None = None
    rate_limit: int | None = None

    @classmethod
    def of(cls, caller) -> "Scope":
        return cls(caller.isp_id, caller.branch_id, caller.role, caller.id, caller.name)

    @classmethod
    def system(cls, isp_id: int, branch_id: int) -> "Scope":
        """An operator's command acting in an ISP: an admin's reach, and nobody's identity."""
        return cls(isp_id, branch_id, Role.ADMIN, None)

    @property
    def is_admin(self) -> bool:
        return self.role == Role.ADMIN

    @property
    def actor(self) -> Actor:
        """Who its desk actions are recorded as."""
        if self.key_id is None:
            return Actor(self.principal_id)
        return Actor(self.acting_for, self.key_id)

    @property
    def claimable_user_id(self) -> int | None:
        """The user_id a request may name: the caller's own; for a key, its creator's."""
        return self.acting_for if self.key_id is not None else self.principal_id

    @property
    def kind(self) -> str:
        """What a statement built for this scope depends on (never who, nor which ISP: those
        are bound parameters): cached statements are keyed on it."""
        return self.role

    # --- Checks -------------------------------------------------------------------------

    def require_admin(self) -> None:
        """403 unless the caller is an admin."""
        if not self.is_admin:
            abort(403, "Only admins may do this.")

    def reaches_branch(self, branch_id: int) -> bool:
        """Admins reach every branch of their ISP; staff only their own."""
        return self.is_admin or branch_id == self.branch_id

    def check(self, claimed: dict) -> None:
        """403 unless every isp_id, branch_id and user_id the client sent agrees with it."""
        if "isp_id" in claimed and claimed["isp_id"] != self.isp_id:
            abort(403, "isp_id does not match your account.")
        if "branch_id" in claimed and not self.reaches_branch(claimed["branch_id"]):
            abort(403, "branch_id is outside your reach.")
        if "user_id" in claimed and claimed["user_id"] != self.claimable_user_id:
            if self.key_id is not None:
                abort(403, "user_id must be the id of the admin who created this API key.")
            abort(403, "user_id does not match your account.")

    def named_branch(self, *claims: dict) -> int:
        """The branch a create names in its query string or its body (each checked already),
        else the caller's own; 422 when the two disagree."""
        named = branch_named(*claims)
        return self.branch_id if named is None else named

    # --- What it reaches ----------------------------------------------------------------

    def tickets(self, *, deleted: bool | None = False) -> ColumnElement[bool]:
        """The tickets it reaches (see tickets_within)."""
        return tickets_within(self.kind, deleted=deleted)

    def params(self) -> dict:
        """The values of tickets()' parameters."""
        return {"scope_isp_id": self.isp_id, "scope_branch_id": self.branch_id}

    def users(self) -> ColumnElement[bool]:
        """The users it sees: its whole ISP for admins; for staff, those who can be assigned
        its branch's tickets (that branch's active staff and the ISP's active admins)."""
        clause = User.isp_id == self.isp_id
        if not self.is_admin:
            clause = and_(clause, assignable_to(self.branch_id), User.is_active)
        return clause

    def subscribers(self) -> ColumnElement[bool]:
        """The subscribers it sees: its ISP, for staff only its branch."""
        clause = Subscriber.isp_id == self.isp_id
        if not self.is_admin:
            clause = and_(clause, Subscriber.branch_id == self.branch_id)
        return clause

    def webhooks(self) -> ColumnElement[bool]:
        """Its ISP's webhook endpoints (admins manage them; the views require it)."""
        return WebhookEndpoint.isp_id == self.isp_id


def tickets_within(kind: str, *, deleted: bool | None = False) -> ColumnElement[bool]:
    """The tickets a scope of this kind reaches: its ISP, for staff only its branch, and live
    ones (with `deleted` the deleted ones, with None both). The ISP and branch are bound
    parameters (Scope.params()), so a statement built on this clause serves every scope of the
    kind: the hot queries are built once per kind (queries.py)."""
    clause = Ticket.isp_id == bindparam("scope_isp_id")
    if deleted is not None:
        state = Ticket.deleted_at.is_not(None) if deleted else Ticket.deleted_at.is_(None)
        clause = and_(clause, state)
    if kind != Role.ADMIN:
        clause = and_(clause, Ticket.branch_id == bindparam("scope_branch_id"))
    return clause


def branch_named(*claims: dict) -> int | None:
    """The branch the query string and the body name, or None when neither names one; 422
    when they name different ones."""
    named = {claim["branch_id"] for claim in claims if "branch_id" in claim}
    if len(named) > 1:
        message = "The query string and the body name different branches."
        raise ValidationError({"branch_id": [message]})
    return named.pop() if named else None


def current_scope() -> Scope:
    """The scope of this request's caller, built once."""
    scope = g.get("scope")
    if scope is None:
        scope = g.scope = Scope.of(current_user)
    return scope


def assignable_to(branch_id: int) -> ColumnElement[bool]:
    """Users who reach a branch: its staff and every admin (of the ISP the caller filters)."""
    return or_(User.role == Role.ADMIN, User.branch_id == branch_id)


def without_scope(data: dict) -> dict:
    """A body's fields less the scope it named (already checked against the caller)."""
    return {name: value for name, value in data.items() if name not in SCOPE_FIELDS}
