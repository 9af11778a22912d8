"""Alembic environment for Flask-Migrate: the app's engine and its models' metadata."""

import logging
from contextlib import contextmanager
from logging.config import fileConfig

from alembic import context
from flask import current_app

from tickets_service.models import compared_by_autogenerate

config = context.config
# Leave logging alone when the app (or pytest) has already set it up.
if config.config_file_name and not logging.getLogger().handlers:
    fileConfig(config.config_file_name, disable_existing_loggers=False)
logger = logging.getLogger("alembic.env")

database = current_app.extensions["migrate"].db
# Flask-SQLAlchemy 3 exposes the engine as a property; get_engine() is deprecated.
engine = database.engine
config.set_main_option(
    "sqlalchemy.url", engine.url.render_as_string(hide_password=False).replace("%", "%%")
)
target_metadata = database.metadata
options = {
    **current_app.extensions["migrate"].configure_args,
    "include_object": compared_by_autogenerate,
}


def run_migrations_offline() -> None:
    """Write the SQL to stdout instead of running it."""
    context.configure(
        url=config.get_main_option("sqlalchemy.url"),
        target_metadata=target_metadata,
        literal_binds=True,
        **options,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    """Run the migrations on a connection of the app's engine."""

    def skip_empty_revisions(context_, revision, directives):
        # `flask db migrate` with no model change should not write an empty file.
        if getattr(config.cmd_opts, "autogenerate", False) and directives[0].upgrade_ops.is_empty():
            directives[:] = []
            logger.info("No changes in schema detected.")

    with engine.connect() as connection, foreign_keys_deferred(connection):
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            process_revision_directives=skip_empty_revisions,
            **options,
        )
        with context.begin_transaction():
            context.run_migrations()


@contextmanager
def foreign_keys_deferred(connection):
    """On SQLite, foreign keys off while the migrations run: a batch operation rebuilds a table
    (copy, drop, rename), and dropping a table that other rows refer to fails while they are on.
    The pragma only takes effect outside a transaction, so it goes straight to the driver."""
    sqlite = connection.dialect.name == "sqlite"
    if sqlite:
        connection.connection.driver_connection.execute("PRAGMA foreign_keys=OFF")
    try:
        yield
    finally:
        if sqlite:
            connection.connection.driver_connection.execute("PRAGMA foreign_keys=ON")


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
