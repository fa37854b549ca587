"""A pydantic ValidationError as one line per problem, 'field.path: message'.

Given the model the error happened in (the root), an unknown key gets a suggestion from the
keys of the section it was written in. Imports no spec, so every spec module can use it.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Sequence
from typing import get_args

from pydantic import BaseModel, ValidationError


def key_suggestion(loc: Sequence[int | str], root: type[BaseModel], extra: Iterable[str] = ()) -> str:
    """'; did you mean X?' for an unknown key, from the keys of the section it was written in
    (at the top: ``root``'s fields and the ``extra`` keys read beside it)."""
    model: type[BaseModel] = root
    names = [*root.model_fields, *extra]
    for part in loc[:-1]:
        field = model.model_fields.get(str(part))
        if field is None:
            return ""
        section = next((t for t in (field.annotation, *get_args(field.annotation))
                        if isinstance(t, type) and issubclass(t, BaseModel)), None)
        if section is None:
            return ""
        model, names = section, list(section.model_fields)
    close = difflib.get_close_matches(str(loc[-1]), names, n=1, cutoff=0.6)
    return f"; did you mean {'.'.join(map(str, [*loc[:-1], close[0]]))}?" if close else ""


def describe(exc: ValidationError, root: type[BaseModel], extra: Iterable[str] = ()) -> str:
    """One line per problem, 'field.path: message', without pydantic's boilerplate."""
    extra = tuple(extra)
    lines = []
    for error in exc.errors():
        where = ".".join(str(part) for part in error["loc"]) or "config"
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message = "unknown key" + key_suggestion(error["loc"], root, extra)
        elif error["type"] == "missing":
            message = "required key is missing"
        elif "input" in error and error["type"] not in ("value_error",):
            message = f"{message} (got {error['input']!r})"
        # a validator's message that names its exact key (prune.options.x) speaks for itself
        names_key = re.match(r"[a-z_]+(\.[a-z0-9_]+)+\b", message) is not None
        names_key = names_key and (where == "config" or re.match(re.escape(where) + r"[.:]", message) is not None)
        names_key = names_key or (where == "config" and message.split(":")[0] in root.model_fields)
        lines.append(message if names_key else f"{where}: {message}")
    return "; ".join(lines)
