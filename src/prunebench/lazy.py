"""Public names of a package loaded when first used (PEP 562's module ``__getattr__``).

A package's ``__init__`` re-exports names from its modules for users; importing them all up front
would make every import of any submodule pay for torch and matplotlib (``prunebench results``,
which only reads the database, spent most of its time there). The names stay declared for type
checkers under ``TYPE_CHECKING`` in the package itself.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_getattr(package: str, namespace: dict[str, Any], where: Mapping[str, str]) -> Callable[[str], Any]:
    """The ``__getattr__`` of ``package``: ``where`` maps each public name to its module; a name
    found is stored in the package's ``namespace`` so it is looked up once."""

    def __getattr__(name: str) -> Any:
        module = where.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        namespace[name] = value
        return value

    return __getattr__
