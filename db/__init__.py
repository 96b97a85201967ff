"""Database: numbered plain-SQL migrations and the migrator, and the SQL more than one flow reads or writes."""
