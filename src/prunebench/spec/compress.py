"""The ``compress`` section: Deep Compression's quantization and coding after fine-tuning."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import Field, field_validator, model_validator

from prunebench.errors import either
from prunebench.spec.base import Bool, Float, Int, Spec

LAYER_KINDS = ("conv", "linear")  # the layer kinds the compress stage shares weights of
MAX_BITS = 16


def bits_per_kind(section: str, value: Any) -> Any:
    """Refuse a layer kind other than conv/linear and a bit count outside 1..16, in one line."""
    if not isinstance(value, Mapping):
        return value
    for kind, bits in value.items():
        if kind not in LAYER_KINDS:
            raise ValueError(f"compress.{section}: unknown layer kind {kind!r} (allowed: {either(LAYER_KINDS)})")
        if isinstance(bits, bool) or not isinstance(bits, int) or not 1 <= bits <= MAX_BITS:
            raise ValueError(f"compress.{section}.{kind}: {bits!r} is not a bit count from 1 to {MAX_BITS}")
    return value


class CompressSpec(Spec):
    """Deep Compression after fine-tuning (Han et al. 2016): trained quantization and Huffman coding.

    ``bits``: per layer kind, k-means with 2**bits shared weights per layer (section 3; paper:
    8 for conv, 5 for fc); a kind left out keeps its fp32 weights. ``index_bits``: the width of
    the relative sparse index (section 2: 8 for conv, 5 for fc). ``huffman``: Huffman-code the
    centroid indices and the index gaps (section 4), else store them at a fixed width.
    ``finetune_epochs``: centroid fine-tuning with the ``finetune`` recipe (``lr`` overrides its
    learning rate); 0 keeps the k-means centroids.
    """

    bits: dict[str, Int] = Field(default_factory=lambda: {"conv": 8, "linear": 5})
    index_bits: dict[str, Int] = Field(default_factory=lambda: {"conv": 8, "linear": 5})
    huffman: Bool = True
    finetune_epochs: Int = Field(default=1, ge=0)
    lr: Float | None = Field(default=None, gt=0)

    @field_validator("bits", mode="before")
    @classmethod
    def known_bits(cls, value: Any) -> Any:
        return bits_per_kind("bits", value)

    @field_validator("index_bits", mode="before")
    @classmethod
    def known_index_bits(cls, value: Any) -> Any:
        return bits_per_kind("index_bits", value)

    @model_validator(mode="after")
    def index_bits_for_every_kind(self) -> CompressSpec:
        missing = [kind for kind in self.bits if kind not in self.index_bits]
        if missing:
            raise ValueError(f"compress.index_bits: no width for {either(missing)}, which compress.bits quantizes")
        return self
