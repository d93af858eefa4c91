"""Alembic environment, driven from `sceneflow.db` rather than an alembic.ini.

`sceneflow.db.upgrade` passes an open connection (already in a transaction and, on
PostgreSQL, holding the migration lock) through `config.attributes["connection"]`.
To write a new migration, from the project root:

    python -c "from alembic import command; from sceneflow import db; \
        e = db.get_engine(); c = e.connect(); \
        command.revision(db.alembic_config(c), 'what changed', autogenerate=True, rev_id='0002')"
"""

from __future__ import annotations

from alembic import context
from sqlmodel import SQLModel

import sceneflow.tables  # noqa: F401  (registers the tables on SQLModel.metadata)

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=SQLModel.metadata,
    # SQLite cannot ALTER most things; batch mode rebuilds the table instead.
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
