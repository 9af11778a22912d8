"""partial indexes on live tickets

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28

"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("tickets", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_tickets_scope_created"))
        batch_op.drop_index(batch_op.f("ix_tickets_scope_priority_created"))
        batch_op.drop_index(batch_op.f("ix_tickets_scope_status_created"))
        batch_op.create_index(
            "ix_tickets_live_scope_created",
            ["isp_id", "branch_id", "created_at", "id"],
            unique=False,
            postgresql_where=sa.text("deleted_at IS NULL"),
            sqlite_where=sa.text("deleted_at IS NULL"),
        )
        batch_op.create_index(
            "ix_tickets_live_scope_priority",
            ["isp_id", "branch_id", "priority", "created_at", "id"],
            unique=False,
            postgresql_where=sa.text("deleted_at IS NULL"),
            sqlite_where=sa.text("deleted_at IS NULL"),
        )
        batch_op.create_index(
            "ix_tickets_live_scope_status",
            ["isp_id", "branch_id", "status", "created_at", "id"],
            unique=False,
            postgresql_where=sa.text("deleted_at IS NULL"),
            sqlite_where=sa.text("deleted_at IS NULL"),
        )


def downgrade():
    with op.batch_alter_table("tickets", schema=None) as batch_op:
        batch_op.drop_index(
            "ix_tickets_live_scope_status",
            postgresql_where=sa.text("deleted_at IS NULL"),
            sqlite_where=sa.text("deleted_at IS NULL"),
        )
        batch_op.drop_index(
            "ix_tickets_live_scope_priority",
            postgresql_where=sa.text("deleted_at IS NULL"),
            sqlite_where=sa.text("deleted_at IS NULL"),
        )
        batch_op.drop_index(
            "ix_tickets_live_scope_created",
            postgresql_where=sa.text("deleted_at IS NULL"),
            sqlite_where=sa.text("deleted_at IS NULL"),
        )
        batch_op.create_index(
            batch_op.f("ix_tickets_scope_status_created"),
            ["isp_id", "branch_id", "status", "created_at"],
            unique=False,
        )
        batch_op.create_index(
            batch_op.f("ix_tickets_scope_priority_created"),
            ["isp_id", "branch_id", "priority", "created_at"],
            unique=False,
        )
        batch_op.create_index(
            batch_op.f("ix_tickets_scope_created"),
            ["isp_id", "branch_id", "created_at", "id"],
            unique=False,
        )
