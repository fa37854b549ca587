"""Results storage: the SQLite database and the per-run artifact directories."""

from prunebench.store.db import DB_FILE, STATUSES, ResultsDB

__all__ = ["DB_FILE", "STATUSES", "ResultsDB"]
