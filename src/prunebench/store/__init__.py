"""Results storage: the SQLite database, the per-run artifact layout and its locks."""

from prunebench.store.db import DB_FILE, STATUSES, ResultsDB
from prunebench.store.layout import DENSE_DIR, DENSE_FILE, MASK_FILE, MODEL_FILE, RESULT_FILE

__all__ = ["DB_FILE", "DENSE_DIR", "DENSE_FILE", "MASK_FILE", "MODEL_FILE", "RESULT_FILE", "STATUSES", "ResultsDB"]
