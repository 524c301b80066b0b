"""Revision scripts; Alembic skips this file when it loads the versions directory."""
