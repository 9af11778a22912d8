"""Extensions, created unbound and bound to the app in create_app."""

from flask_jwt_extended import JWTManager
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import MetaData
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import DeclarativeBase

# One naming convention for every constraint, so migrations name them the same on every
# database and SQLite batch migrations can find them again.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


db = SQLAlchemy(model_class=Base)


def insert(model, connection=None):
    """INSERT for the database in use, with its ON CONFLICT clauses (PostgreSQL or SQLite)."""
    dialect = connection.dialect if connection is not None else db.session.get_bind().dialect
    return (postgresql if dialect.name == "postgresql" else sqlite).insert(model)


migrate = Migrate(render_as_batch=True, compare_type=True)
jwt = JWTManager()
