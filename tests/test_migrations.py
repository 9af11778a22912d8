"""Issue 2 point 14 and issue 3 point 3: the schema exists only through migrations, and the
migrations never drift from the models."""

import flask_migrate
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from tickets_service.extensions import NAMING_CONVENTION, db
from tickets_service.models import compared_by_autogenerate


def schema_differences(app) -> list:
    with app.app_context(), db.engine.connect() as connection:
        opts = {"compare_type": True, "include_object": compared_by_autogenerate}
        context = MigrationContext.configure(connection, opts=opts)
        return compare_metadata(context, db.metadata)


def test_migrated_schema_matches_the_models(app):
    assert schema_differences(app) == []


def test_downgrade_to_base_then_upgrade_rebuilds_the_schema(app):
    with app.app_context():
        db.session.remove()
        flask_migrate.downgrade(revision="base")
        with db.engine.connect() as connection:
            left = set(inspect(connection).get_table_names()) - {"alembic_version"}
        flask_migrate.upgrade()
        with db.engine.connect() as connection:
            rebuilt = set(inspect(connection).get_table_names())
    assert left == set()
    assert set(db.metadata.tables) <= rebuilt
    assert schema_differences(app) == []


def test_constraints_follow_the_naming_convention(app):
    with app.app_context(), db.engine.connect() as connection:
        inspector = inspect(connection)
        foreign_keys = inspector.get_foreign_keys("tickets")
        unique = inspector.get_unique_constraints("users")
    assert NAMING_CONVENTION["fk"].startswith("fk_")
    assert {fk["name"] for fk in foreign_keys} == {
        "fk_tickets_subscriber_id_subscribers",
        "fk_tickets_created_by_id_users",
        "fk_tickets_assignee_id_users",
    }
    assert [u["name"] for u in unique] == ["uq_users_email"]


def test_list_filters_and_order_are_indexed_over_live_tickets(app):
    with app.app_context(), db.engine.connect() as connection:
        indexes = {i["name"]: i for i in inspect(connection).get_indexes("tickets")}
    expected = {
        "ix_tickets_live_scope_created": ["isp_id", "branch_id", "created_at", "id"],
        "ix_tickets_live_scope_status": ["isp_id", "branch_id", "status", "created_at", "id"],
        "ix_tickets_live_scope_priority": ["isp_id", "branch_id", "priority", "created_at", "id"],
    }
    for name, columns in expected.items():
        assert indexes[name]["column_names"] == columns
        where = indexes[name].get("dialect_options", {})
        assert any("deleted_at IS NULL" in str(v) for v in where.values()), where
