"""Run ids: a spec's resolved JSON and the spec version, canonically written, hashed.

A leaf module of its own, so the rules an id is computed under are read in one place.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

RUN_ID_LENGTH = 16
# Hashed with every spec, so ids from different hashing rules can never meet. Raise it when the
# canonical JSON's rules change (not for a new key: a new key changes every id by itself).
# 1: every resolved value hashed (before it, keys added later were hashed only when set).
SPEC_VERSION = 1


def canonical_json(resolved: dict[str, Any]) -> str:
    """``resolved`` and ``spec_version``, with sorted keys and no whitespace."""
    return json.dumps({**resolved, "spec_version": SPEC_VERSION}, sort_keys=True, separators=(",", ":"))


def content_hash(text: str) -> str:
    """The first RUN_ID_LENGTH hex digits of the SHA-256 of ``text``."""
    return hashlib.sha256(text.encode()).hexdigest()[:RUN_ID_LENGTH]
