"""Database models: users, subscribers, tickets and their replies."""

import enum
from datetime import UTC, datetime

from sqlalchemy import (
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
    String,
    Text,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship
from werkzeug.security import check_password_hash, generate_password_hash

from .extensions import db

# Ids are 32-bit INTEGER columns; anything outside this range never reaches SQL.
MAX_ID = 2**31 - 1


def utcnow() -> datetime:
    """Current time in UTC (a callable, so each row gets its own timestamp)."""
    return datetime.now(UTC)


class TicketStatus(enum.IntEnum):
    OPEN = 0
    IN_PROGRESS = 1
    RESOLVED = 2
    CLOSED = 3


class TicketPriority(enum.IntEnum):
    LOW = 1
    MEDIUM = 2
    HIGH = 3


class Role(enum.StrEnum):
    ADMIN = "admin"
    STAFF = "staff"


def _in_check(column: str, values) -> str:
    return f"{column} IN ({', '.join(str(int(v)) for v in values)})"


def _live_index(name: str, *columns: str) -> Index:
    """An index over tickets that are not deleted (what every query of the API reads)."""
    live = text("deleted_at IS NULL")
    return Index(name, *columns, postgresql_where=live, sqlite_where=live)


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


class Subscriber(db.Model):
    __tablename__ = "subscribers"
    __table_args__ = (Index("ix_subscribers_isp_id_branch_id", "isp_id", "branch_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    isp_id: Mapped[int] = mapped_column(Integer)
    branch_id: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(255))
    phone: Mapped[str | None] = mapped_column(String(32))
    email: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Ticket(db.Model):
    __tablename__ = "tickets"
    __table_args__ = (
        CheckConstraint(_in_check("status", TicketStatus), name="status"),
        CheckConstraint(_in_check("priority", TicketPriority), name="priority"),
        # The list always filters by ISP and branch and orders newest first; the optional
        # status and priority filters get their own prefix so no filter scans the branch.
        # Partial (live tickets only): smaller, and the page count is an index-only scan.
        _live_index("ix_tickets_live_scope_created", "isp_id", "branch_id", "created_at", "id"),
        _live_index(
            "ix_tickets_live_scope_status", "isp_id", "branch_id", "status", "created_at", "id"
        ),
        _live_index(
            "ix_tickets_live_scope_priority", "isp_id", "branch_id", "priority", "created_at", "id"
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    isp_id: Mapped[int] = mapped_column(Integer)
    branch_id: Mapped[int] = mapped_column(Integer)
    subscriber_id: Mapped[int | None] = mapped_column(
        ForeignKey("subscribers.id", ondelete="SET NULL"), index=True
    )
    created_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    title: Mapped[str] = mapped_column(String(255))
    description: Mapped[str] = mapped_column(Text)
    priority: Mapped[int] = mapped_column(SmallInteger)
    status: Mapped[int] = mapped_column(SmallInteger, default=TicketStatus.OPEN)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow
    )
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    # lazy="raise": every view states what it loads, so no list can fall into N+1 queries.
    subscriber: Mapped["Subscriber | None"] = relationship(lazy="raise")
    created_by: Mapped["User"] = relationship(lazy="raise")
    replies: Mapped[list["TicketReply"]] = relationship(
        back_populates="ticket",
        lazy="raise",
        order_by="[TicketReply.created_at, TicketReply.id]",
    )

    @property
    def subscriber_name(self) -> str | None:
        return self.subscriber.name if self.subscriber is not None else None

    def soft_delete(self) -> None:
        """Hide the ticket everywhere while keeping its row and replies."""
        self.deleted_at = utcnow()

    def touch(self) -> None:
        """Mark the ticket as changed (a reply counts as a change)."""
        self.updated_at = utcnow()


class RevokedToken(db.Model):
    """A token logged out before it expired; kept until it would have expired anyway."""

    __tablename__ = "revoked_tokens"

    jti: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    revoked_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class TicketReply(db.Model):
    __tablename__ = "ticket_replies"
    __table_args__ = (
        Index("ix_ticket_replies_ticket_id_created", "ticket_id", "created_at", "id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    message: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    ticket: Mapped["Ticket"] = relationship(back_populates="replies", lazy="raise")
    author: Mapped["User"] = relationship(lazy="raise")

    @property
    def user_name(self) -> str:
        return self.author.name
