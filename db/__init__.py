"""Database schema: numbered plain-SQL migrations and the migrator."""
