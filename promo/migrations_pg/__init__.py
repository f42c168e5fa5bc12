"""PostgreSQL migrations: numbered SQL files, applied by promo.backends.pg_schema.migrate."""
