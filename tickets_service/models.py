"""Database models: users, subscribers, tickets and their replies."""

import enum
from datetime import UTC, datetime
from typing import Any, NamedTuple

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
    event,
    false,
    inspect,
    or_,
    select,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship
from werkzeug.security import check_password_hash, generate_password_hash

from .extensions import db

# The one timestamp format of the API, in and out (always UTC).
TIMESTAMP = "%Y-%m-%d %H:%M:%S"

# Ids are 32-bit INTEGER columns; anything outside this range never reaches SQL.
MAX_ID = 2**31 - 1


# The latest moment a timestamp holds (both databases store up to it).
LAST_MOMENT = datetime.max.replace(tzinfo=UTC)


def as_utc(moment: datetime) -> datetime:
    """A timestamp read back from the database, aware: SQLite hands them back without their
    zone, and they are UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def utcnow() -> datetime:
    """Current time in UTC (a callable, so each row gets its own timestamp)."""
    return datetime.now(UTC)


class TicketStatus(enum.IntEnum):
    OPEN = 0
    IN_PROGRESS = 1
    RESOLVED = 2
    CLOSED = 3
    # Beyond the spec's four: the desk asked the subscriber and waits; the SLA clock stops.
    WAITING = 4


# Open means not yet resolved or closed: what the desk still has to work on.
OPEN_STATUSES = (TicketStatus.OPEN, TicketStatus.IN_PROGRESS, TicketStatus.WAITING)


class TicketKind(enum.StrEnum):
    TICKET = "ticket"
    INCIDENT = "incident"


class TicketPriority(enum.IntEnum):
    LOW = 1
    MEDIUM = 2
    HIGH = 3


class Role(enum.StrEnum):
    ADMIN = "admin"
    STAFF = "staff"


def _in_check(column: str, values) -> str:
    return f"{column} IN ({', '.join(str(int(v)) for v in values)})"


# What text search reads: a ticket's title and description.
SEARCH_DOCUMENT = "title || ' ' || description"


def compared_by_autogenerate(_object, name, type_, _reflected, _compare_to) -> bool:
    """Alembic's include_object: expression indexes (the search index) cannot be compared
    by autogenerate, so their migration alone describes them."""
    return not (type_ == "index" and name == "ix_tickets_live_search")


def _partial_index(name: str, *columns: str, where: str) -> Index:
    """An index over the rows `where` holds, on both databases."""
    return Index(name, *columns, postgresql_where=text(where), sqlite_where=text(where))


def _live_index(name: str, *columns: str) -> Index:
    """An index over tickets that are not deleted (what every query of the API reads)."""
    return _partial_index(name, *columns, where="deleted_at IS NULL")


class Actor(NamedTuple):
    """Who a desk action is recorded as: a user, or an API key (key_id) acting for the admin
    who created it (user_id: the person accountable for the key; the API shows the key)."""

    user_id: int
    key_id: int | None = None
    # The service itself, on behalf of user_id (shown as SYSTEM_NAME, with no user).
    system: bool = False
    # The ticket's subscriber, by name, through their link (user_id is then the ticket's
    # creator, kept for the record; the API shows the subscriber and no user).
    subscriber: str | None = None

    def as_system(self) -> "Actor":
        """The service acting because of what this actor did."""
        return self._replace(key_id=None, system=True)


# The name the service's own replies and history entries show.
SYSTEM_NAME = "Network operations"


class User(db.Model):
    __tablename__ = "users"
    __table_args__ = (CheckConstraint("role IN ('admin', 'staff')", name="role"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    isp_id: Mapped[int] = mapped_column(Integer, index=True)
    branch_id: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(255))
    email: Mapped[str] = mapped_column(String(255), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16))
    is_active: Mapped[bool] = mapped_column(default=True)
    # Every token carries the version it was issued under; a change that must end the user's
    # sessions (password, role, ISP, branch, deactivation) bumps it (see _end_sessions).
    token_version: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow
    )

    def set_password(self, password: str) -> None:
        """Store a salted hash of the password (werkzeug's scrypt), never the password."""
        self.password_hash = generate_password_hash(password)

    def check_password(self, password: str) -> bool:
        """True when the password matches the stored hash."""
        return check_password_hash(self.password_hash, password)

    @property
    def is_admin(self) -> bool:
        return self.role == Role.ADMIN

    @property
    def actor(self) -> Actor:
        return Actor(self.id)


@event.listens_for(User, "before_update")
def _end_sessions(_mapper, _connection, user: User) -> None:
    """A new password, role, ISP or branch, or a deactivation, revokes every token the user
    holds: they were issued under the old version. Reactivation keeps the new version, so old
    tokens stay dead."""
    state = inspect(user)
    changed = any(
        state.attrs[name].history.has_changes()
        for name in ("password_hash", "role", "isp_id", "branch_id")
    )
    deactivated = state.attrs.is_active.history.has_changes() and not user.is_active
    if changed or deactivated:
        user.token_version = (user.token_version or 0) + 1


class Subscriber(db.Model):
    __tablename__ = "subscribers"
    __table_args__ = (
        Index("ix_subscribers_isp_id_branch_id", "isp_id", "branch_id"),
        # The ISP platform's own id for the subscriber, unique within the ISP.
        UniqueConstraint("isp_id", "external_id", name="uq_subscribers_isp_id_external_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    isp_id: Mapped[int] = mapped_column(Integer)
    branch_id: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(255))
    phone: Mapped[str | None] = mapped_column(String(32))
    email: Mapped[str | None] = mapped_column(String(255))
    external_id: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow
    )

    # The network objects that serve it (written as SubscriberNetwork rows).
    network: Mapped[list["NetworkObject"]] = relationship(
        secondary="subscriber_network",
        order_by="(NetworkObject.kind, NetworkObject.external_id)",
        lazy="raise",
        viewonly=True,
    )


class Ticket(db.Model):
    __tablename__ = "tickets"
    __table_args__ = (
        CheckConstraint(_in_check("status", TicketStatus), name="status"),
        CheckConstraint(_in_check("priority", TicketPriority), name="priority"),
        # The list always filters by ISP and branch; each filter and sort of the list gets an
        # index that starts with them, so no filter scans the branch. Partial (live tickets
        # only): smaller, and a count is an index-only scan.
        _live_index("ix_tickets_live_scope_created", "isp_id", "branch_id", "created_at", "id"),
        _live_index(
            "ix_tickets_live_scope_status", "isp_id", "branch_id", "status", "created_at", "id"
        ),
        _live_index(
            "ix_tickets_live_scope_priority", "isp_id", "branch_id", "priority", "created_at", "id"
        ),
        _live_index(
            "ix_tickets_live_scope_assignee",
            *("isp_id", "branch_id", "assignee_id", "created_at", "id"),
        ),
        _live_index(
            "ix_tickets_live_scope_subscriber",
            *("isp_id", "branch_id", "subscriber_id", "created_at", "id"),
        ),
        _live_index("ix_tickets_live_scope_updated", "isp_id", "branch_id", "updated_at", "id"),
        _live_index("ix_tickets_live_scope_due", "isp_id", "branch_id", "due_at", "id"),
        _live_index("ix_tickets_live_scope_status_id", "isp_id", "branch_id", "status", "id"),
        _live_index(
            "ix_tickets_live_scope_type", "isp_id", "branch_id", "type", "created_at", "id"
        ),
        _live_index("ix_tickets_live_scope_priority_id", "isp_id", "branch_id", "priority", "id"),
        # Text search (PostgreSQL): full-text over title and description, live tickets only.
        Index(
            "ix_tickets_live_search",
            text(f"to_tsvector('simple', {SEARCH_DOCUMENT})"),
            postgresql_using="gin",
            postgresql_where=text("deleted_at IS NULL"),
        ).ddl_if(dialect="postgresql"),
        # A branch's incidents (the list's kind filter), and an incident's children.
        _partial_index(
            "ix_tickets_live_scope_incidents",
            *("isp_id", "branch_id", "created_at", "id"),
            where="kind = 'incident' AND deleted_at IS NULL",
        ),
        _partial_index("ix_tickets_parent_id", "parent_id", "id", where="parent_id IS NOT NULL"),
        # The sweep (desk.py): the SLA events that fall due, and the resolved tickets to close.
        _partial_index("ix_tickets_sla_next", "sla_next_at", where="sla_next_at IS NOT NULL"),
        _partial_index(
            "ix_tickets_resolved", "resolved_at", where="status = 2 AND deleted_at IS NULL"
        ),
        # Admins list the deleted tickets of a branch.
        _partial_index(
            "ix_tickets_deleted_scope",
            "isp_id",
            "branch_id",
            "deleted_at",
            where="deleted_at IS NOT NULL",
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    isp_id: Mapped[int] = mapped_column(Integer)
    branch_id: Mapped[int] = mapped_column(Integer)
    subscriber_id: Mapped[int | None] = mapped_column(
        ForeignKey("subscribers.id", ondelete="SET NULL"), index=True
    )
    # A ticket, or an incident: an outage of network objects that other tickets hang under.
    kind: Mapped[str] = mapped_column(
        String(16), default=TicketKind.TICKET, server_default=TicketKind.TICKET.value
    )
    # The incident this ticket is a child of.
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id"))
    created_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    # Created through an API key (created_by_id is then the key's creator).
    created_by_key_id: Mapped[int | None] = mapped_column(ForeignKey("api_keys.id"))
    assignee_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    title: Mapped[str] = mapped_column(String(255))
    description: Mapped[str] = mapped_column(Text)
    priority: Mapped[int] = mapped_column(SmallInteger)
    status: Mapped[int] = mapped_column(SmallInteger, default=TicketStatus.OPEN)
    # The SLA clock: the first public reply, the last moves into Resolved and Closed, a deadline.
    first_response_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    closed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    due_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Its type's key (the ISP's catalogue, TicketType), and its tags (TicketTag keeps them
    # for the filters and counts; the ticket shows them from here).
    type: Mapped[str] = mapped_column(String(40), default="other", server_default="other")
    tags: Mapped[list] = mapped_column(JSON, default=list, server_default="[]")
    # The SLA (sla.py): the policy's deadlines, unless due_at was set by hand (due_at_manual).
    response_due_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    due_at_manual: Mapped[bool] = mapped_column(default=False, server_default=false())
    # Waiting on the subscriber since then (status 4): the clock stops until it leaves 4.
    waiting_since: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Time counted by the SLA's calendar spent waiting, which the policy's deadlines add.
    waited_seconds: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # The 80% points of the two deadlines, the SLA events sent (SlaEvent bits), and the next
    # moment the sweep has an event to send for the ticket (None: nothing to come).
    response_warn_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    due_warn_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    sla_sent: Mapped[int] = mapped_column(SmallInteger, default=0, server_default="0")
    sla_next_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Kept with every reply, so Fetch Ticket never counts them.
    reply_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # Bumped by every change to the ticket, replies included: its ETag.
    version: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow
    )
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __mapper_args__ = {"version_id_col": version}

    # lazy="raise": every view states what it loads, so no list can fall into N+1 queries.
    subscriber: Mapped["Subscriber | None"] = relationship(lazy="raise")
    created_by: Mapped["User"] = relationship(lazy="raise", foreign_keys=[created_by_id])
    assignee: Mapped["User | None"] = relationship(lazy="raise", foreign_keys=[assignee_id])

    history: Mapped[list["TicketHistory"]] = relationship(lazy="raise", back_populates="ticket")
    replies: Mapped[list["TicketReply"]] = relationship(lazy="raise", back_populates="ticket")

    # --- Desk actions: each changes the ticket and records the change in its history ---

    @classmethod
    def open(cls, by: Actor, **values) -> "Ticket":
        """A new ticket created by `by`. The database starts its history (`created`, and
        `assigned` when it has an assignee) and counts it: see migrations 0006 and 0009."""
        ticket = cls(
            created_by_id=by.user_id,
            created_by_key_id=by.key_id,
            status=TicketStatus.OPEN,
            reply_count=0,
            sla_sent=0,
            waited_seconds=0,
            **values,
        )
        db.session.add(ticket)
        return ticket

    def edit(self, changes: dict, by: Actor) -> None:
        """Apply field changes; each one that changes something is recorded, old -> new. A
        new type, priority or due time sets the SLA's deadlines again (sla.replan)."""
        changed = set()
        for field, new in changes.items():
            old = getattr(self, field)
            if _same(old, new):
                continue
            setattr(self, field, new)
            changed.add(field)
            if field == "tags":
                self.retag(old or [], new)
            action = HistoryAction.ASSIGNED if field == "assignee_id" else HistoryAction.UPDATED
            self.record(action, by, field, old, new)
        if "due_at" in changes:  # sent, even as it was: by hand from now on (null: not)
            self.due_at_manual = changes["due_at"] is not None
        if changed & {"type", "priority"} or "due_at" in changes:
            from .sla import replan

            replan(self, by)

    def retag(self, old: list[str], new: list[str]) -> None:
        """Keep the ticket's TicketTag rows in step with its tags."""
        gone = set(old) - set(new)
        if gone and self.id is not None:
            db.session.execute(
                TicketTag.__table__.delete().where(
                    TicketTag.ticket_id == self.id, TicketTag.tag.in_(sorted(gone))
                )
            )
        for tag in new:
            if tag not in old:
                db.session.add(TicketTag(ticket=self, tag=tag, isp_id=self.isp_id))

    def change_status(self, status: int, by: Actor) -> None:
        """Move to `status`, keeping the SLA clock: resolved_at / closed_at mark the last move
        into Resolved / Closed, and reopening clears both."""
        if status == self.status:
            return
        old, self.status = self.status, status
        now = utcnow()
        if status == TicketStatus.RESOLVED:
            self.resolved_at = now
        elif status == TicketStatus.CLOSED:
            self.closed_at = now
        else:
            self.resolved_at = self.closed_at = None
        self.record(HistoryAction.STATUS_CHANGED, by, "status", old, status)
        # Waiting on the subscriber stops the SLA clock; leaving it moves the deadlines on.
        if old == TicketStatus.WAITING:
            from .sla import resume

            resume(self, now, by)
        if status == TicketStatus.WAITING:
            self.waiting_since = now
        self.plan_sla_events()

    def add_reply(self, message: str, internal: bool, by: Actor) -> "TicketReply":
        """A public reply or an internal note; the first public reply starts the SLA clock."""
        now = utcnow()
        reply = TicketReply(
            ticket=self,
            user_id=by.user_id,
            key_id=by.key_id,
            system=by.system,
            author_name=by.subscriber,
            message=message,
            internal=internal,
            attachments=[],
        )
        reply.created_at = now
        db.session.add(reply)
        self.reply_count = (self.reply_count or 0) + 1  # the ticket is locked by its writer
        # The service's own messages never answer the subscriber for a person, and the
        # subscriber's never answer themselves.
        answers = not (internal or by.system or by.subscriber)
        if answers and self.first_response_at is None:
            self.first_response_at = now
            self.plan_sla_events()
        self.updated_at = now
        self.record(HistoryAction.NOTED if internal else HistoryAction.REPLIED, by)
        return reply

    def heard_from_subscriber(self, by: Actor) -> None:
        """The subscriber wrote: a resolved ticket opens again, and a wait on them ends (the
        SLA clock runs again). A closed ticket is the caller's to refuse."""
        if self.status == TicketStatus.RESOLVED:
            self.change_status(TicketStatus.OPEN, by)
        elif self.status == TicketStatus.WAITING:
            self.change_status(TicketStatus.IN_PROGRESS, by)

    def plan_sla_events(self) -> None:
        """When the sweep next has an SLA event to send for the ticket (sla_next_at): the
        earliest warning or breach not sent yet of a deadline still running. None while it
        waits on the subscriber, once it is resolved or closed, or with nothing to come."""
        moments = []
        if self.status in (TicketStatus.OPEN, TicketStatus.IN_PROGRESS):
            if self.first_response_at is None:
                moments += _unsent(self, SlaEvent.RESPONSE_WARNED, self.response_warn_at)
                moments += _unsent(self, SlaEvent.RESPONSE_BREACHED, self.response_due_at)
            moments += _unsent(self, SlaEvent.RESOLUTION_WARNED, self.due_warn_at)
            moments += _unsent(self, SlaEvent.RESOLUTION_BREACHED, self.due_at)
        self.sla_next_at = min(moments, default=None)

    def delete(self, by: Actor) -> None:
        """Hide the ticket everywhere while keeping its row, replies and history."""
        self.deleted_at = utcnow()
        self.sla_next_at = None  # a deleted ticket has no SLA events to come
        self.record(HistoryAction.DELETED, by)

    def restore(self, by: Actor) -> None:
        """Bring a deleted ticket back, as it was."""
        self.deleted_at = None
        self.plan_sla_events()
        self.record(HistoryAction.RESTORED, by)

    def record(self, action: str, by: Actor, field=None, old=None, new=None) -> None:
        """One history entry for this ticket, in the transaction of the change."""
        entry = TicketHistory(
            ticket=self,
            user_id=by.user_id,
            key_id=by.key_id,
            system=by.system,
            author_name=by.subscriber,
            action=action,
            field=field,
            old=as_json_value(old),
            new=as_json_value(new),
        )
        db.session.add(entry)


class SlaEvent(enum.IntFlag):
    """The SLA events sent for a ticket's current deadlines (Ticket.sla_sent)."""

    RESPONSE_WARNED = 1
    RESPONSE_BREACHED = 2
    RESOLUTION_WARNED = 4
    RESOLUTION_BREACHED = 8


def _unsent(ticket: "Ticket", event: SlaEvent, moment: datetime | None) -> list[datetime]:
    return [as_utc(moment)] if moment is not None and not ticket.sla_sent & event else []


def as_json_value(value):
    """A history value as JSON: timestamps in the API's format, codes as integers."""
    if isinstance(value, datetime):  # SQLite hands them back without their zone: UTC
        moment = value.replace(tzinfo=value.tzinfo or UTC).astimezone(UTC)
        # TIMESTAMP's text; strftime would write the year 1 as "1", not "0001".
        return moment.isoformat(" ", "seconds")[:19]
    if isinstance(value, enum.IntEnum):
        return int(value)
    return value


def _same(old, new) -> bool:
    """Equal as the API shows them."""
    return as_json_value(old) == as_json_value(new)


@event.listens_for(Subscriber, "after_update")
def _subscriber_renamed(_mapper, connection, subscriber: Subscriber) -> None:
    """Fetch Ticket shows the subscriber's name: a rename is a new version of its tickets."""
    if inspect(subscriber).attrs.name.history.has_changes():
        _new_versions(connection, Ticket.subscriber_id == subscriber.id)


@event.listens_for(User, "after_update")
def _user_renamed(_mapper, connection, user: User) -> None:
    """Fetch Ticket shows the assignee's and the reply authors' names: likewise."""
    if inspect(user).attrs.name.history.has_changes():
        replied = select(TicketReply.ticket_id).where(TicketReply.user_id == user.id)
        _new_versions(connection, or_(Ticket.assignee_id == user.id, Ticket.id.in_(replied)))


def _new_versions(connection, condition) -> None:
    tickets = Ticket.__table__
    connection.execute(tickets.update().where(condition).values(version=tickets.c.version + 1))


class TicketReply(db.Model):
    __tablename__ = "ticket_replies"
    __table_args__ = (
        Index("ix_ticket_replies_ticket_id_created", "ticket_id", "created_at", "id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    # Written through an API key (user_id is then the key's creator).
    key_id: Mapped[int | None] = mapped_column(ForeignKey("api_keys.id"))
    message: Mapped[str] = mapped_column(Text)
    # Written by the service itself (an incident's message to its children): shown as
    # SYSTEM_NAME with no user (user_id is then who caused it).
    system: Mapped[bool] = mapped_column(default=False, server_default=false())
    # An internal note: seen by staff, never a response to the subscriber.
    internal: Mapped[bool] = mapped_column(default=False, server_default=false())
    # Written by the subscriber (their name then; user_id is the ticket's creator).
    author_name: Mapped[str | None] = mapped_column(String(255))
    # Its attachments as AttachmentRefOut shows them, kept with it so reading a reply never
    # joins them (written when the reply is, rewritten when an admin deletes one).
    attachments: Mapped[list] = mapped_column(JSON, default=list, server_default="[]")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    ticket: Mapped["Ticket"] = relationship(lazy="raise", back_populates="replies")


class HistoryAction(enum.StrEnum):
    CREATED = "created"
    UPDATED = "updated"
    STATUS_CHANGED = "status_changed"
    ASSIGNED = "assigned"
    REPLIED = "replied"
    NOTED = "noted"
    DELETED = "deleted"
    RESTORED = "restored"
    # A ticket put under an incident, or taken from under it (new: the incident's id / old).
    LINKED = "linked"
    UNLINKED = "unlinked"
    # An incident's events (new: what it says of the incident, or of one subscriber's outage).
    INCIDENT_OPENED = "incident_opened"
    INCIDENT_UPDATED = "incident_updated"
    INCIDENT_RESOLVED = "incident_resolved"
    OUTAGE = "outage"
    # The ticket that made a storm of tickets below one object (new: the suggestion).
    INCIDENT_SUGGESTED = "incident_suggested"
    # The sweep's SLA events (field: the deadline, response_due_at or due_at; new: its time).
    SLA_WARNING = "sla_warning"
    SLA_BREACHED = "sla_breached"
    # The subscriber's link made (new: its expiry) or every link revoked; files attached
    # (new: their names) or one deleted (old: its name).
    LINK_CREATED = "link_created"
    LINK_REVOKED = "link_revoked"
    ATTACHED = "attached"
    ATTACHMENT_DELETED = "attachment_deleted"


class TicketHistory(db.Model):
    """One change to a ticket, written in the transaction of the change; never edited."""

    __tablename__ = "ticket_history"
    __table_args__ = (
        CheckConstraint(
            "action IN ({})".format(", ".join(f"'{a.value}'" for a in HistoryAction)), name="action"
        ),
        Index("ix_ticket_history_ticket_id_id", "ticket_id", "id"),
        _partial_index("ix_ticket_history_undispatched", "id", where="dispatched_at IS NULL"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    key_id: Mapped[int | None] = mapped_column(ForeignKey("api_keys.id"))  # as on replies
    system: Mapped[bool] = mapped_column(default=False, server_default=false())  # as on replies
    author_name: Mapped[str | None] = mapped_column(String(255))  # as on replies
    action: Mapped[str] = mapped_column(String(32))
    field: Mapped[str | None] = mapped_column(String(64))
    old: Mapped[Any] = mapped_column(JSON, nullable=True)
    new: Mapped[Any] = mapped_column(JSON, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # The history is also the outbox of the webhooks: an entry is an event until the worker
    # has fanned it out to the ISP's endpoints (never shown by the API).
    dispatched_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    ticket: Mapped["Ticket"] = relationship(lazy="raise", back_populates="history")


class TicketCount(db.Model):
    """How many live tickets a branch has of each status, priority, assignment and type.

    Kept by the database itself, in the transaction of every write that moves a ticket between
    these keys (triggers, migrations 0006 and 0011), so list totals and stats never count rows.
    """

    __tablename__ = "ticket_counts"

    isp_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    branch_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    status: Mapped[int] = mapped_column(SmallInteger, primary_key=True, autoincrement=False)
    priority: Mapped[int] = mapped_column(SmallInteger, primary_key=True, autoincrement=False)
    assigned: Mapped[bool] = mapped_column(primary_key=True, autoincrement=False)
    type: Mapped[str] = mapped_column(String(40), primary_key=True)
    tickets: Mapped[int] = mapped_column(Integer, default=0)


class WebhookEndpoint(db.Model):
    """Where an ISP wants its ticket events POSTed, signed with the endpoint's secret."""

    __tablename__ = "webhook_endpoints"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    isp_id: Mapped[int] = mapped_column(Integer, index=True)
    url: Mapped[str] = mapped_column(String(2048))
    events: Mapped[list] = mapped_column(JSON)
    secret: Mapped[str] = mapped_column(String(128))
    created_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # The worker's bookkeeping, never shown: its attempts have failed `failures` times in a
    # row since it last answered 2xx (succeeded_at), and after enough of them, with no success
    # for a while, it is left alone until paused_until (its circuit is open).
    failures: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    succeeded_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    paused_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class DeliveryStatus(enum.StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"


class WebhookDelivery(db.Model):
    """One event on its way to one endpoint; its delivery_id stays the same on every retry."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        # Each endpoint's next due delivery (the worker takes endpoints in turn).
        _partial_index(
            "ix_webhook_deliveries_endpoint_due",
            "endpoint_id",
            "next_attempt_at",
            where="status = 'pending'",
        ),
        # An ISP's recent redeliveries (limited per hour).
        _partial_index(
            "ix_webhook_deliveries_redelivered", "endpoint_id", "created_at", where="redelivery"
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    delivery_id: Mapped[str] = mapped_column(String(36), unique=True)
    endpoint_id: Mapped[int] = mapped_column(
        ForeignKey("webhook_endpoints.id", ondelete="CASCADE"), index=True
    )
    history_id: Mapped[int] = mapped_column(ForeignKey("ticket_history.id", ondelete="CASCADE"))
    event: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16), default=DeliveryStatus.PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # Asked for by an admin (POST /deliveries/{id}/redeliver), not made by the fan-out.
    redelivery: Mapped[bool] = mapped_column(default=False, server_default=false())
    # A worker is making an attempt at it until then (a worker that dies frees it then).
    leased_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class WebhookAttempt(db.Model):
    """One try at a delivery: the receiver's status code (None: no answer in time)."""

    __tablename__ = "webhook_attempts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    delivery_id: Mapped[int] = mapped_column(
        ForeignKey("webhook_deliveries.id", ondelete="CASCADE"), index=True
    )
    status_code: Mapped[int | None] = mapped_column(SmallInteger)
    attempted_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    next_attempt_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class IdempotencyKey(db.Model):
    """A POST made with an Idempotency-Key, and (once it finished) the answer to replay."""

    __tablename__ = "idempotency_keys"
    __table_args__ = (Index("ix_idempotency_keys_user_id_created", "user_id", "created_at"),)

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int | None] = mapped_column(SmallInteger)
    body: Mapped[str | None] = mapped_column(Text)
    etag: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class LoginAttempt(db.Model):
    """Login attempts counted in one fixed window of one limit (key: a hash of the limit and
    the email and/or address it counts)."""

    __tablename__ = "login_attempts"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    window_start: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    window_end: Mapped[int] = mapped_column(BigInteger, index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=1)
    capacity: Mapped[int] = mapped_column(Integer)  # the limit: no attempt is counted beyond


class RevokedToken(db.Model):
    """A token logged out before it expired; kept until it would have expired anyway."""

    __tablename__ = "revoked_tokens"

    jti: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    revoked_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


# What the audit trail records (audit.py): the actions, and the kinds of object they act on.
AUDIT_ACTIONS = (
    *("created", "updated", "deleted", "revoked", "redelivered"),
    *("login", "login_failed", "logout", "used_from_new_address"),
)
AUDIT_OBJECT_TYPES = ("user", "api_key", "subscriber", "webhook")


class AuditEntry(db.Model):
    """One change outside ticket history (users, subscribers, webhooks), or a sign-in event:
    who did it, to what, from where, old and new values (secrets redacted). Written in the
    transaction of its change; the API never edits or deletes one, `flask audit prune` ages
    them out."""

    __tablename__ = "audit_entries"
    __table_args__ = (
        CheckConstraint("actor_type IN ('user', 'key', 'system')", name="actor_type"),
        # An ISP's entries newest first (the list pages by id), and the prune by age.
        Index("ix_audit_entries_isp_id_id", "isp_id", "id"),
        # One object's entries (the audit's object filter; a key's addresses seen before).
        Index("ix_audit_entries_object", "object_type", "object_id"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
    # None for what belongs to no ISP (a failed login for an unknown email).
    isp_id: Mapped[int | None] = mapped_column(Integer)
    actor_type: Mapped[str] = mapped_column(String(8))
    actor_id: Mapped[int | None] = mapped_column(Integer)
    actor_name: Mapped[str] = mapped_column(String(255))
    action: Mapped[str] = mapped_column(String(32))
    object_type: Mapped[str] = mapped_column(String(32))
    object_id: Mapped[int | None] = mapped_column(Integer)
    ip: Mapped[str | None] = mapped_column(String(45))
    request_id: Mapped[str | None] = mapped_column(String(128))
    changes: Mapped[dict | None] = mapped_column(JSON)


# What an API key may be granted; each route needs one of them (openapi.Blueprint's
# key_scopes), and no scope lets a key manage users or keys.
KEY_SCOPES = (
    *("tickets:read", "tickets:write", "subscribers:read", "subscribers:write", "users:read"),
    *("webhooks:manage", "network:read", "network:write", "incidents:write", "inbound:write"),
)


class ApiKey(db.Model):
    """A credential for a program, made by an ISP's admin: `tsk_<prefix>_<secret>`, of which
    only the prefix (to find it) and a SHA-256 of the secret (to check it) are kept."""

    __tablename__ = "api_keys"
    __table_args__ = (Index("ix_api_keys_isp_id_id", "isp_id", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    isp_id: Mapped[int] = mapped_column(Integer)
    # Set: the key acts as staff of this branch; None: across its ISP, as an admin would.
    branch_id: Mapped[int | None] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(255))
    prefix: Mapped[str] = mapped_column(String(16), unique=True)
    secret_hash: Mapped[str] = mapped_column(String(64))
    scopes: Mapped[list] = mapped_column(JSON)
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    rate_limit: Mapped[int | None] = mapped_column(Integer)  # requests a minute; None: default
    created_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # Written at most once a minute (tokens.py), and the address it last came from.
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_used_ip: Mapped[str | None] = mapped_column(String(45))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    @property
    def created_by(self) -> int:
        """The admin who made it (as the API names them)."""
        return self.created_by_id


# --- The network behind the tickets -----------------------------------------------------------

NETWORK_KINDS = ("site", "node", "device", "link", "service")
# The most network objects a ticket links, or a subscriber is served by.
MAX_LINKS = 20
# The deepest an object may sit (a root is at depth 1).
MAX_NETWORK_DEPTH = 32


class NetworkObject(db.Model):
    """A piece of an ISP's network as its platform knows it (kind and external id), hung from
    its uplink (parent): each ISP's network is a tree.

    `path` is the materialised path of ids from the root down to the object ("/3/17/52/"),
    so everything at or below an object is one range of an index (path LIKE '/3/17/%'); a move
    rewrites the paths of the subtree it moves. Retired objects keep their row (links to them
    stay) and come back when synced again."""

    __tablename__ = "network_objects"
    __table_args__ = (
        CheckConstraint(
            "kind IN ({})".format(", ".join(f"'{kind}'" for kind in NETWORK_KINDS)), name="kind"
        ),
        UniqueConstraint(
            "isp_id", "kind", "external_id", name="uq_network_objects_isp_id_kind_external_id"
        ),
        # Everything at or below an object, read from the index alone (PostgreSQL).
        Index(
            "ix_network_objects_isp_id_path",
            "isp_id",
            "path",
            postgresql_ops={"path": "text_pattern_ops"},
            postgresql_include=["id", "retired_at"],
        ),
        Index("ix_network_objects_parent_id", "parent_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    isp_id: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(16))
    external_id: Mapped[str] = mapped_column(String(255))
    name: Mapped[str] = mapped_column(String(255))
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("network_objects.id"))
    branch_id: Mapped[int | None] = mapped_column(Integer)
    attributes: Mapped[dict | None] = mapped_column(JSON)
    path: Mapped[str] = mapped_column(String(512))
    depth: Mapped[int] = mapped_column(SmallInteger)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow
    )
    retired_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    parent: Mapped["NetworkObject | None"] = relationship(lazy="raise", remote_side=[id])


class SubscriberNetwork(db.Model):
    """A network object that serves a subscriber (usually its service or its CPE)."""

    __tablename__ = "subscriber_network"
    __table_args__ = (Index("ix_subscriber_network_object_id", "object_id", "subscriber_id"),)

    subscriber_id: Mapped[int] = mapped_column(
        ForeignKey("subscribers.id", ondelete="CASCADE"), primary_key=True
    )
    object_id: Mapped[int] = mapped_column(ForeignKey("network_objects.id"), primary_key=True)
    isp_id: Mapped[int] = mapped_column(Integer)


class TicketLink(db.Model):
    """A network object a ticket is about (for an incident: one that failed)."""

    __tablename__ = "ticket_links"
    __table_args__ = (Index("ix_ticket_links_object_id", "object_id", "ticket_id"),)

    ticket_id: Mapped[int] = mapped_column(
        ForeignKey("tickets.id", ondelete="CASCADE"), primary_key=True
    )
    object_id: Mapped[int] = mapped_column(ForeignKey("network_objects.id"), primary_key=True)
    isp_id: Mapped[int] = mapped_column(Integer)
    # The order the links were given in (the API shows them in it).
    position: Mapped[int] = mapped_column(SmallInteger)


class Incident(db.Model):
    """What an incident (a ticket of kind incident) has beyond a ticket's fields."""

    __tablename__ = "incidents"
    __table_args__ = (Index("ix_incidents_isp_id", "isp_id"),)

    ticket_id: Mapped[int] = mapped_column(
        ForeignKey("tickets.id", ondelete="CASCADE"), primary_key=True
    )
    isp_id: Mapped[int] = mapped_column(Integer)
    starts_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expected_end_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    planned: Mapped[bool] = mapped_column(default=False, server_default=false())
    public_message: Mapped[str] = mapped_column(Text)
    # When service came back (the resolve, or the time its status change gave).
    restored_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class AffectedSubscriber(db.Model):
    """A subscriber an incident affects, and the interval it was affected (until is set when
    the incident is resolved, or when a change of its links leaves the subscriber out)."""

    __tablename__ = "incident_subscribers"
    __table_args__ = (
        Index("ix_incident_subscribers_subscriber_id", "subscriber_id", "incident_id"),
    )

    incident_id: Mapped[int] = mapped_column(
        ForeignKey("tickets.id", ondelete="CASCADE"), primary_key=True
    )
    subscriber_id: Mapped[int] = mapped_column(
        ForeignKey("subscribers.id", ondelete="CASCADE"), primary_key=True
    )
    isp_id: Mapped[int] = mapped_column(Integer)
    affected_from: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    affected_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class IspSettings(db.Model):
    """An ISP's own settings (GET / PUT /api/v1/settings); an ISP without a row has the
    defaults."""

    __tablename__ = "isp_settings"

    isp_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    # A storm: storm_tickets tickets within storm_minutes below one network object.
    storm_tickets: Mapped[int] = mapped_column(SmallInteger, default=5, server_default="5")
    storm_minutes: Mapped[int] = mapped_column(SmallInteger, default=15, server_default="15")
    # The zone the SLA's business hours are in (IANA), and the days off of every calendar.
    time_zone: Mapped[str] = mapped_column(String(64), default="UTC", server_default="UTC")
    holidays: Mapped[list] = mapped_column(JSON, default=list, server_default="[]")
    # Resolved tickets close this many days after they were resolved (0: at the next sweep).
    auto_close_days: Mapped[int] = mapped_column(SmallInteger, default=7, server_default="7")
    # The name the subscriber sees on every staff reply (never a person's).
    staff_display_name: Mapped[str] = mapped_column(
        String(100), default="Support", server_default="Support"
    )
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow
    )


class StormHit(db.Model):
    """A new ticket of a subscriber served below an object, counted towards a storm there:
    one row per object on the way up from what serves the subscriber (at most the depth of
    the network per object), so a storm is found by counting one object's recent rows."""

    __tablename__ = "storm_hits"
    __table_args__ = (Index("ix_storm_hits_object_id_at", "object_id", "at"),)

    object_id: Mapped[int] = mapped_column(
        ForeignKey("network_objects.id", ondelete="CASCADE"), primary_key=True
    )
    ticket_id: Mapped[int] = mapped_column(
        ForeignKey("tickets.id", ondelete="CASCADE"), primary_key=True
    )
    isp_id: Mapped[int] = mapped_column(Integer)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class SuggestionStatus(enum.StrEnum):
    OPEN = "open"
    ACCEPTED = "accepted"
    DISMISSED = "dismissed"


class IncidentSuggestion(db.Model):
    """A storm the service noticed: tickets below one object that no incident covers."""

    __tablename__ = "incident_suggestions"
    __table_args__ = (
        Index("ix_incident_suggestions_isp_id_status", "isp_id", "status", "id"),
        Index("ix_incident_suggestions_object_id", "object_id", "status"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    isp_id: Mapped[int] = mapped_column(Integer)
    object_id: Mapped[int] = mapped_column(ForeignKey("network_objects.id"))
    ticket_ids: Mapped[list] = mapped_column(JSON)
    first_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    last_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    status: Mapped[str] = mapped_column(String(16), default=SuggestionStatus.OPEN)
    # Dismissed: the object is not suggested again until then.
    quiet_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    incident_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    object: Mapped["NetworkObject"] = relationship(lazy="raise")

    @property
    def count(self) -> int:
        return len(self.ticket_ids)


# --- Desk rules: ticket types, SLA policies, tags, canned replies ------------------------------

# What a new ISP's catalogue holds: key, name, default priority. `other` is the type of a
# ticket made without one, so it cannot be deactivated.
DEFAULT_TYPES = (
    ("fault", "Fault", TicketPriority.HIGH),
    ("installation", "Installation", TicketPriority.MEDIUM),
    ("relocation", "Relocation", TicketPriority.MEDIUM),
    ("billing", "Billing", TicketPriority.LOW),
    ("other", "Other", TicketPriority.MEDIUM),
)
DEFAULT_TYPE = "other"


class TicketType(db.Model):
    """A kind of job in an ISP's catalogue; tickets name it by its key, which never changes."""

    __tablename__ = "ticket_types"
    __table_args__ = (
        UniqueConstraint("isp_id", "key", name="uq_ticket_types_isp_id_key"),
        CheckConstraint(_in_check("default_priority", TicketPriority), name="default_priority"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    isp_id: Mapped[int] = mapped_column(Integer)
    key: Mapped[str] = mapped_column(String(40))
    name: Mapped[str] = mapped_column(String(255))
    default_priority: Mapped[int] = mapped_column(SmallInteger)
    default_assignee_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow
    )


class SlaPolicy(db.Model):
    """The deadlines of one type and priority of an ISP's tickets: the first response and the
    resolution, counted round the clock or within business hours (sla.Calendar)."""

    __tablename__ = "sla_policies"
    __table_args__ = (
        CheckConstraint(_in_check("priority", TicketPriority), name="priority"),
        CheckConstraint("first_response_minutes >= 0 AND resolve_minutes >= 0", name="minutes"),
    )

    isp_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    type: Mapped[str] = mapped_column(String(40), primary_key=True)
    priority: Mapped[int] = mapped_column(SmallInteger, primary_key=True, autoincrement=False)
    first_response_minutes: Mapped[int] = mapped_column(Integer)
    resolve_minutes: Mapped[int] = mapped_column(Integer)
    # {"mon": [["08:00", "18:00"]], ...} in the ISP's time zone; None: round the clock.
    business_hours: Mapped[dict | None] = mapped_column(JSON)
    # Days off of this policy's calendar, besides the ISP's (IspSettings.holidays).
    holidays: Mapped[list] = mapped_column(JSON, default=list, server_default="[]")
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow
    )


class TicketTag(db.Model):
    """A tag a ticket carries, one row each: the list's tag filters and the ISP's tag counts
    read these."""

    __tablename__ = "ticket_tags"
    __table_args__ = (Index("ix_ticket_tags_isp_id_tag", "isp_id", "tag", "ticket_id"),)

    ticket_id: Mapped[int] = mapped_column(
        ForeignKey("tickets.id", ondelete="CASCADE"), primary_key=True
    )
    tag: Mapped[str] = mapped_column(String(40), primary_key=True)
    isp_id: Mapped[int] = mapped_column(Integer)

    ticket: Mapped["Ticket"] = relationship(lazy="raise")


class CannedScope(enum.StrEnum):
    ISP = "isp"
    BRANCH = "branch"
    PERSONAL = "personal"


class CannedReply(db.Model):
    """A saved answer: a sandboxed template (canned.py) rendered into a reply's message. An
    ISP's for everyone, a branch's for its staff (and the admins), or one person's."""

    __tablename__ = "canned_replies"
    __table_args__ = (
        CheckConstraint("scope IN ('isp', 'branch', 'personal')", name="scope"),
        Index("ix_canned_replies_isp_id_id", "isp_id", "id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    isp_id: Mapped[int] = mapped_column(Integer)
    scope: Mapped[str] = mapped_column(String(16))
    branch_id: Mapped[int | None] = mapped_column(Integer)  # a branch's
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))  # a person's
    title: Mapped[str] = mapped_column(String(255))
    body: Mapped[str] = mapped_column(Text)
    tags: Mapped[list] = mapped_column(JSON, default=list, server_default="[]")
    created_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow
    )

    @property
    def created_by(self) -> int:
        """Who wrote it (as the API names them)."""
        return self.created_by_id


class SubscriberLink(db.Model):
    """A link that lets a ticket's subscriber read its public conversation and reply, without
    a login. Only the token's SHA-256 is kept; revoking deletes the row, so a revoked token is
    exactly as unknown as one never made."""

    __tablename__ = "subscriber_links"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    isp_id: Mapped[int] = mapped_column(Integer)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    created_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    key_id: Mapped[int | None] = mapped_column(ForeignKey("api_keys.id"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class AttachmentBlob(db.Model):
    """A file's bytes as stored once per ISP, whatever its names (content-addressed by
    SHA-256). Its row is the lock that keeps a store and a delete of the same bytes apart."""

    __tablename__ = "attachment_blobs"

    isp_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    size: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Attachment(db.Model):
    """A file attached to a ticket: uploaded by staff or the subscriber, on its own until a
    reply takes it (reply_id)."""

    __tablename__ = "attachments"
    __table_args__ = (
        Index("ix_attachments_ticket_id_id", "ticket_id", "id"),
        Index("ix_attachments_isp_id_sha256", "isp_id", "sha256"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    isp_id: Mapped[int] = mapped_column(Integer)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"))
    reply_id: Mapped[int | None] = mapped_column(
        ForeignKey("ticket_replies.id", ondelete="SET NULL"), index=True
    )
    name: Mapped[str] = mapped_column(String(255))
    size: Mapped[int] = mapped_column(BigInteger)
    content_type: Mapped[str] = mapped_column(String(100))
    sha256: Mapped[str] = mapped_column(String(64))
    # Who uploaded it: a user (or a key's creator, with key_id), or the subscriber.
    uploaded_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    key_id: Mapped[int | None] = mapped_column(ForeignKey("api_keys.id"))
    by_subscriber: Mapped[bool] = mapped_column(default=False, server_default=false())
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
