"""Alembic revision files of the SQL archive schema (see ``agentmem.migrations.sql``)."""
