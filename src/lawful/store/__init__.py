"""lawful's app store: requests, verification, outbox, packages, notifications, audit, API keys.

SQLAlchemy ORM with Alembic migrations; SQLite under the state directory by default,
PostgreSQL with LAWFUL_DATABASE_URL (the same database the engine keeps its run journal in).
"""
