"""Alembic environment: lawful passes the connection in (`lawful.store.db.upgrade`)."""

from alembic import context

from lawful.consent import models as _consent  # noqa: F401  (its tables join the metadata)
from lawful.store.db import VERSION_TABLE
from lawful.store.models import Base

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - lawful always passes one
    raise RuntimeError("run migrations with `lawful db upgrade`")
context.configure(connection=connection, target_metadata=Base.metadata,
                  render_as_batch=connection.dialect.name == "sqlite",
                  version_table=VERSION_TABLE)
with context.begin_transaction():
    context.run_migrations()
