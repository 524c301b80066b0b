"""Alembic migrations of the historian database: an async env, configured in code (no alembic.ini).

`controller.historian.upgrade.upgrade(url)` runs them and `depline db upgrade` calls that. A new revision is
written during development with `alembic.command.revision(controller.historian.upgrade.alembic_config(url),
message, autogenerate=True)` against a database at head; `script.py.mako` is its template.
"""
