"""users, subscribers, tickets and replies

Revision ID: 0001
Revises:
Create Date: 2026-11-28

"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "subscribers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("isp_id", sa.Integer(), nullable=False),
        sa.Column("branch_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("phone", sa.String(length=32), nullable=True),
        sa.Column("email", sa.String(length=255), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_subscribers")),
    )
    with op.batch_alter_table("subscribers", schema=None) as batch_op:
        batch_op.create_index(
            "ix_subscribers_isp_id_branch_id", ["isp_id", "branch_id"], unique=False
        )

    op.create_table(
        "users",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("isp_id", sa.Integer(), nullable=False),
        sa.Column("branch_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("email", sa.String(length=255), nullable=False),
        sa.Column("password_hash", sa.String(length=255), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("is_active", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("role IN ('admin', 'staff')", name=op.f("ck_users_role")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        sa.UniqueConstraint("email", name=op.f("uq_users_email")),
    )
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_users_isp_id"), ["isp_id"], unique=False)

    op.create_table(
        "tickets",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("isp_id", sa.Integer(), nullable=False),
        sa.Column("branch_id", sa.Integer(), nullable=False),
        sa.Column("subscriber_id", sa.Integer(), nullable=True),
        sa.Column("created_by_id", sa.Integer(), nullable=False),
        sa.Column("title", sa.String(length=255), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("priority", sa.SmallInteger(), nullable=False),
        sa.Column("status", sa.SmallInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("priority IN (1, 2, 3)", name=op.f("ck_tickets_priority")),
        sa.CheckConstraint("status IN (0, 1, 2, 3)", name=op.f("ck_tickets_status")),
        sa.ForeignKeyConstraint(
            ["created_by_id"], ["users.id"], name=op.f("fk_tickets_created_by_id_users")
        ),
        sa.ForeignKeyConstraint(
            ["subscriber_id"],
            ["subscribers.id"],
            name=op.f("fk_tickets_subscriber_id_subscribers"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tickets")),
    )
    with op.batch_alter_table("tickets", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_tickets_created_by_id"), ["created_by_id"], unique=False
        )
        batch_op.create_index(
            "ix_tickets_scope_created", ["isp_id", "branch_id", "created_at", "id"], unique=False
        )
        batch_op.create_index(
            "ix_tickets_scope_priority_created",
            ["isp_id", "branch_id", "priority", "created_at"],
            unique=False,
        )
        batch_op.create_index(
            "ix_tickets_scope_status_created",
            ["isp_id", "branch_id", "status", "created_at"],
            unique=False,
        )
        batch_op.create_index(
            batch_op.f("ix_tickets_subscriber_id"), ["subscriber_id"], unique=False
        )

    op.create_table(
        "ticket_replies",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("ticket_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["ticket_id"],
            ["tickets.id"],
            name=op.f("fk_ticket_replies_ticket_id_tickets"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_ticket_replies_user_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ticket_replies")),
    )
    with op.batch_alter_table("ticket_replies", schema=None) as batch_op:
        batch_op.create_index(
            "ix_ticket_replies_ticket_id_created", ["ticket_id", "created_at", "id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_ticket_replies_user_id"), ["user_id"], unique=False)


def downgrade():
    with op.batch_alter_table("ticket_replies", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_ticket_replies_user_id"))
        batch_op.drop_index("ix_ticket_replies_ticket_id_created")

    op.drop_table("ticket_replies")
    with op.batch_alter_table("tickets", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_tickets_subscriber_id"))
        batch_op.drop_index("ix_tickets_scope_status_created")
        batch_op.drop_index("ix_tickets_scope_priority_created")
        batch_op.drop_index("ix_tickets_scope_created")
        batch_op.drop_index(batch_op.f("ix_tickets_created_by_id"))

    op.drop_table("tickets")
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_users_isp_id"))

    op.drop_table("users")
    with op.batch_alter_table("subscribers", schema=None) as batch_op:
        batch_op.drop_index("ix_subscribers_isp_id_branch_id")

    op.drop_table("subscribers")
