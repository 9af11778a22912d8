"""the desk: assignment, notes, history, the SLA clock, counts, search, external ids

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28

Existing data is carried over: every ticket's history starts with its creation, reply counts
and first responses come from the replies, a resolved or closed ticket's clock from its last
update, and the live counts from the tickets.
"""

import sqlalchemy as sa
from alembic import op

LIVE = sa.text("deleted_at IS NULL")
SEARCH = (
    "CREATE INDEX ix_tickets_live_search ON tickets "
    "USING gin (to_tsvector('simple', title || ' ' || description)) WHERE deleted_at IS NULL"
)


# revision identifiers, used by Alembic.
revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "ticket_counts",
        sa.Column("isp_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("branch_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("status", sa.SmallInteger(), autoincrement=False, nullable=False),
        sa.Column("priority", sa.SmallInteger(), autoincrement=False, nullable=False),
        sa.Column("assigned", sa.Boolean(), autoincrement=False, nullable=False),
        sa.Column("tickets", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint(
            "isp_id", "branch_id", "status", "priority", "assigned", name=op.f("pk_ticket_counts")
        ),
    )
    op.create_table(
        "ticket_history",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("ticket_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("field", sa.String(length=64), nullable=True),
        sa.Column("old", sa.JSON(), nullable=True),
        sa.Column("new", sa.JSON(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "action IN ('created', 'updated', 'status_changed', 'assigned', 'replied', 'noted', 'deleted', 'restored')",
            name=op.f("ck_ticket_history_action"),
        ),
        sa.ForeignKeyConstraint(
            ["ticket_id"],
            ["tickets.id"],
            name=op.f("fk_ticket_history_ticket_id_tickets"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_ticket_history_user_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ticket_history")),
    )
    with op.batch_alter_table("ticket_history", schema=None) as batch_op:
        batch_op.create_index("ix_ticket_history_ticket_id_id", ["ticket_id", "id"], unique=False)
        batch_op.create_index(batch_op.f("ix_ticket_history_user_id"), ["user_id"], unique=False)

    with op.batch_alter_table("subscribers", schema=None) as batch_op:
        batch_op.add_column(sa.Column("external_id", sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column("updated_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.create_unique_constraint(
            "uq_subscribers_isp_id_external_id", ["isp_id", "external_id"]
        )
    op.execute("UPDATE subscribers SET updated_at = created_at")
    with op.batch_alter_table("subscribers", schema=None) as batch_op:
        batch_op.alter_column(
            "updated_at", existing_type=sa.DateTime(timezone=True), nullable=False
        )

    with op.batch_alter_table("ticket_replies", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("internal", sa.Boolean(), server_default=sa.false(), nullable=False)
        )

    with op.batch_alter_table("tickets", schema=None) as batch_op:
        batch_op.add_column(sa.Column("assignee_id", sa.Integer(), nullable=True))
        batch_op.add_column(
            sa.Column("first_response_at", sa.DateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("due_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(
            sa.Column("reply_count", sa.Integer(), server_default="0", nullable=False)
        )
        batch_op.create_index(
            "ix_tickets_deleted_scope",
            ["isp_id", "branch_id", "deleted_at"],
            unique=False,
            postgresql_where=sa.text("deleted_at IS NOT NULL"),
            sqlite_where=sa.text("deleted_at IS NOT NULL"),
        )
        batch_op.create_index(
            "ix_tickets_live_scope_assignee",
            ["isp_id", "branch_id", "assignee_id", "created_at", "id"],
            unique=False,
            postgresql_where=LIVE,
            sqlite_where=LIVE,
        )
        batch_op.create_index(
            "ix_tickets_live_scope_due",
            ["isp_id", "branch_id", "due_at", "id"],
            unique=False,
            postgresql_where=LIVE,
            sqlite_where=LIVE,
        )
        batch_op.create_index(
            "ix_tickets_live_scope_priority_id",
            ["isp_id", "branch_id", "priority", "id"],
            unique=False,
            postgresql_where=LIVE,
            sqlite_where=LIVE,
        )
        batch_op.create_index(
            "ix_tickets_live_scope_status_id",
            ["isp_id", "branch_id", "status", "id"],
            unique=False,
            postgresql_where=LIVE,
            sqlite_where=LIVE,
        )
        batch_op.create_index(
            "ix_tickets_live_scope_subscriber",
            ["isp_id", "branch_id", "subscriber_id", "created_at", "id"],
            unique=False,
            postgresql_where=LIVE,
            sqlite_where=LIVE,
        )
        batch_op.create_index(
            "ix_tickets_live_scope_updated",
            ["isp_id", "branch_id", "updated_at", "id"],
            unique=False,
            postgresql_where=LIVE,
            sqlite_where=LIVE,
        )
        batch_op.create_foreign_key(
            batch_op.f("fk_tickets_assignee_id_users"), "users", ["assignee_id"], ["id"]
        )
    if op.get_bind().dialect.name == "postgresql":
        op.execute(SEARCH)

    op.execute(
        "UPDATE tickets SET reply_count = "
        "(SELECT count(*) FROM ticket_replies r WHERE r.ticket_id = tickets.id), "
        "first_response_at = (SELECT min(r.created_at) FROM ticket_replies r WHERE r.ticket_id = tickets.id)"
    )
    op.execute("UPDATE tickets SET resolved_at = updated_at WHERE status = 2")
    op.execute("UPDATE tickets SET closed_at = updated_at WHERE status = 3")
    op.execute(
        "INSERT INTO ticket_history (ticket_id, user_id, action, created_at) "
        "SELECT id, created_by_id, 'created', created_at FROM tickets ORDER BY id"
    )
    op.execute(
        "INSERT INTO ticket_counts (isp_id, branch_id, status, priority, assigned, tickets) "
        "SELECT isp_id, branch_id, status, priority, false, count(*) FROM tickets "
        "WHERE deleted_at IS NULL GROUP BY isp_id, branch_id, status, priority"
    )


def downgrade():
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP INDEX ix_tickets_live_search")
    with op.batch_alter_table("tickets", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_tickets_assignee_id_users"), type_="foreignkey")
        batch_op.drop_index(
            "ix_tickets_live_scope_updated", postgresql_where=LIVE, sqlite_where=LIVE
        )
        batch_op.drop_index(
            "ix_tickets_live_scope_subscriber", postgresql_where=LIVE, sqlite_where=LIVE
        )
        batch_op.drop_index(
            "ix_tickets_live_scope_status_id", postgresql_where=LIVE, sqlite_where=LIVE
        )
        batch_op.drop_index(
            "ix_tickets_live_scope_priority_id", postgresql_where=LIVE, sqlite_where=LIVE
        )
        batch_op.drop_index("ix_tickets_live_scope_due", postgresql_where=LIVE, sqlite_where=LIVE)
        batch_op.drop_index(
            "ix_tickets_live_scope_assignee", postgresql_where=LIVE, sqlite_where=LIVE
        )
        batch_op.drop_index(
            "ix_tickets_deleted_scope",
            postgresql_where=sa.text("deleted_at IS NOT NULL"),
            sqlite_where=sa.text("deleted_at IS NOT NULL"),
        )
        batch_op.drop_column("reply_count")
        batch_op.drop_column("due_at")
        batch_op.drop_column("closed_at")
        batch_op.drop_column("resolved_at")
        batch_op.drop_column("first_response_at")
        batch_op.drop_column("assignee_id")

    with op.batch_alter_table("ticket_replies", schema=None) as batch_op:
        batch_op.drop_column("internal")

    with op.batch_alter_table("subscribers", schema=None) as batch_op:
        batch_op.drop_constraint("uq_subscribers_isp_id_external_id", type_="unique")
        batch_op.drop_column("updated_at")
        batch_op.drop_column("external_id")

    with op.batch_alter_table("ticket_history", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_ticket_history_user_id"))
        batch_op.drop_index("ix_ticket_history_ticket_id_id")

    op.drop_table("ticket_history")
    op.drop_table("ticket_counts")
