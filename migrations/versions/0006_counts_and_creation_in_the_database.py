"""the database keeps the live ticket counts and writes each ticket's first history entries

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29

Triggers, so that no write can forget them and a create costs no extra round trip:
- ticket_counts follows every insert, update (of the counted columns) and delete of tickets;
  on PostgreSQL the insert trigger is per statement (a COPY of a million rows adds them in one
  go), and each change adds its deltas in one sorted statement so writers lock counts in one
  order;
- a new ticket's history starts with "created" (and "assigned" when it is created assigned),
  by its creator at its creation time.
"""

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

COUNTED = "isp_id, branch_id, status, priority, assigned"
UPSERT = f"ON CONFLICT ({COUNTED}) DO UPDATE SET tickets = ticket_counts.tickets + excluded.tickets"

POSTGRESQL = f"""
CREATE OR REPLACE FUNCTION tickets_after_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO ticket_counts ({COUNTED}, tickets)
    SELECT isp_id, branch_id, status, priority, assignee_id IS NOT NULL, count(*)
    FROM inserted WHERE deleted_at IS NULL
    GROUP BY 1, 2, 3, 4, 5 ORDER BY 1, 2, 3, 4, 5
    {UPSERT};
    INSERT INTO ticket_history (ticket_id, user_id, action, created_at)
    SELECT id, created_by_id, 'created', created_at FROM inserted ORDER BY id;
    INSERT INTO ticket_history (ticket_id, user_id, action, field, new, created_at)
    SELECT id, created_by_id, 'assigned', 'assignee_id', to_json(assignee_id), created_at
    FROM inserted WHERE assignee_id IS NOT NULL ORDER BY id;
    RETURN NULL;
END $$;

CREATE TRIGGER tickets_after_insert AFTER INSERT ON tickets
REFERENCING NEW TABLE AS inserted FOR EACH STATEMENT EXECUTE FUNCTION tickets_after_insert();

CREATE OR REPLACE FUNCTION tickets_after_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO ticket_counts ({COUNTED}, tickets)
    SELECT isp_id, branch_id, status, priority, assigned, sum(delta)
    FROM (
        SELECT OLD.isp_id, OLD.branch_id, OLD.status, OLD.priority,
               OLD.assignee_id IS NOT NULL, -1
        WHERE OLD.deleted_at IS NULL
        UNION ALL
        SELECT NEW.isp_id, NEW.branch_id, NEW.status, NEW.priority,
               NEW.assignee_id IS NOT NULL, 1
        WHERE NEW.deleted_at IS NULL
    ) AS moved (isp_id, branch_id, status, priority, assigned, delta)
    GROUP BY 1, 2, 3, 4, 5 HAVING sum(delta) <> 0 ORDER BY 1, 2, 3, 4, 5
    {UPSERT};
    RETURN NULL;
END $$;

CREATE TRIGGER tickets_after_update
AFTER UPDATE OF isp_id, branch_id, status, priority, assignee_id, deleted_at ON tickets
FOR EACH ROW EXECUTE FUNCTION tickets_after_update();

CREATE OR REPLACE FUNCTION tickets_after_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO ticket_counts ({COUNTED}, tickets)
    SELECT OLD.isp_id, OLD.branch_id, OLD.status, OLD.priority, OLD.assignee_id IS NOT NULL, -1
    WHERE OLD.deleted_at IS NULL
    {UPSERT};
    RETURN NULL;
END $$;

CREATE TRIGGER tickets_after_delete AFTER DELETE ON tickets
FOR EACH ROW EXECUTE FUNCTION tickets_after_delete();
"""

_OLD_KEY = "OLD.isp_id, OLD.branch_id, OLD.status, OLD.priority, OLD.assignee_id IS NOT NULL"
_NEW_KEY = "NEW.isp_id, NEW.branch_id, NEW.status, NEW.priority, NEW.assignee_id IS NOT NULL"

SQLITE = [
    f"""
CREATE TRIGGER tickets_after_insert AFTER INSERT ON tickets FOR EACH ROW BEGIN
    INSERT INTO ticket_counts ({COUNTED}, tickets)
    SELECT {_NEW_KEY}, 1 WHERE NEW.deleted_at IS NULL
    {UPSERT};
    INSERT INTO ticket_history (ticket_id, user_id, action, created_at)
    VALUES (NEW.id, NEW.created_by_id, 'created', NEW.created_at);
    INSERT INTO ticket_history (ticket_id, user_id, action, field, new, created_at)
    SELECT NEW.id, NEW.created_by_id, 'assigned', 'assignee_id', NEW.assignee_id, NEW.created_at
    WHERE NEW.assignee_id IS NOT NULL;
END""",
    f"""
CREATE TRIGGER tickets_after_update
AFTER UPDATE OF isp_id, branch_id, status, priority, assignee_id, deleted_at ON tickets
FOR EACH ROW BEGIN
    INSERT INTO ticket_counts ({COUNTED}, tickets)
    SELECT {_OLD_KEY}, -1 WHERE OLD.deleted_at IS NULL
    {UPSERT};
    INSERT INTO ticket_counts ({COUNTED}, tickets)
    SELECT {_NEW_KEY}, 1 WHERE NEW.deleted_at IS NULL
    {UPSERT};
END""",
    f"""
CREATE TRIGGER tickets_after_delete AFTER DELETE ON tickets FOR EACH ROW BEGIN
    INSERT INTO ticket_counts ({COUNTED}, tickets)
    SELECT {_OLD_KEY}, -1 WHERE OLD.deleted_at IS NULL
    {UPSERT};
END""",
]


def upgrade():
    if op.get_bind().dialect.name == "postgresql":
        op.execute(POSTGRESQL)
    else:
        for statement in SQLITE:
            op.execute(statement)


def downgrade():
    postgresql = op.get_bind().dialect.name == "postgresql"
    for event in ("insert", "update", "delete"):
        if postgresql:
            op.execute(f"DROP TRIGGER IF EXISTS tickets_after_{event} ON tickets")
            op.execute(f"DROP FUNCTION IF EXISTS tickets_after_{event}()")
        else:
            op.execute(f"DROP TRIGGER IF EXISTS tickets_after_{event}")
