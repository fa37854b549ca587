"""What every spec section shares: strict number types, frozen validation, the resolved JSON
a run id hashes, and a validated ``replace``."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Strict, ValidationError

from prunebench.errors import ConfigError
from prunebench.spec import hashing
from prunebench.spec.messages import describe

MAX_SEED = 2**31 - 1  # torch.manual_seed, NumPy and SQLite all take it, with room for per-stage offsets
SHA256_PATTERN = r"[0-9a-f]{64}"

# Values are taken as written: `true` is not an epoch count and "0.1" is not a learning rate.
# Strict types refuse both; an integer still fills a float field (as the same float, so ids keep).
Int = Annotated[int, Strict()]
Float = Annotated[float, Strict()]
Bool = Annotated[bool, Strict()]


class Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)  # every float is finite

    def resolved(self) -> dict[str, Any]:
        """The spec as JSON data with every value spelled out, defaults included: what the id hashes.

        No key is left out for being at its default, so a changed default changes the ids of
        the specs it changes, and a cached result or dense checkpoint is never reused for a run
        it does not match.
        """
        data = self.model_dump(mode="json")
        for name in type(self).model_fields:
            value = getattr(self, name)
            if isinstance(value, Spec):
                data[name] = value.resolved()
        return data

    def canonical_json(self) -> str:
        """The resolved spec and ``spec_version``, with sorted keys and no whitespace."""
        return hashing.canonical_json(self.resolved())

    def replace(self, **changes: Any) -> Any:
        """A copy with ``changes`` applied, validated like any other spec (model_copy is not)."""
        try:
            return type(self).model_validate({**self.model_dump(), **changes})
        except ValidationError as exc:
            raise ConfigError(describe(exc, type(self))) from None

    def content_hash(self) -> str:
        return hashing.content_hash(self.canonical_json())


def _default(model: type[BaseModel], name: str) -> Any:
    return model.model_fields[name].get_default(call_default_factory=True)
