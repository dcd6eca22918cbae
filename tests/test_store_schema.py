"""The migrations build exactly the schema the models describe, on every backend."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from plugin.store.migrate import pending
from plugin.store.models import Base


def test_migrations_match_the_models(rt_any_db) -> None:
    with rt_any_db.db.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": False})
        assert compare_metadata(context, Base.metadata) == []


def test_no_migration_is_pending_after_upgrade(rt_any_db) -> None:
    assert not pending(rt_any_db.db)
