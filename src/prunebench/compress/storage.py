"""The stored form of a weight-shared sparse layer and its size in bytes (Han et al. 2016).

Sparse structure (section 2, Figure 2): the kept entries of the flattened (row-major) weight
are stored in order with the *relative* index of each, the number of zeros skipped since the
previous stored entry, in ``index_bits`` bits. A run longer than ``2**index_bits - 1`` zeros
stores a filler zero at the largest gap and continues from there. Because the gaps run across
rows, no row pointers are needed: the shape is part of the architecture.

Each stored entry has a symbol: its centroid's index 0..k-1, or k for a filler zero. Both the
symbols and the gaps are Huffman coded (section 4), or stored at a fixed width without it.

What is counted, per shared layer (every stream rounded up to whole bytes):
  4 bytes entry count + 4 bytes per centroid (fp32 codebook) + the symbol stream + the gap
  stream + each Huffman table (one byte per symbol of its alphabet);
and 4 bytes (fp32) for every parameter that is not shared: biases, normalization, and layers
of a kind without bits.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from prunebench.compress.huffman import HuffmanCode, decode, encode
from prunebench.compress.quantize import SharedLayer

FP32_BYTES = 4
COUNT_BYTES = 4  # the number of stored entries of a layer


def relative_index(keep: torch.Tensor, index_bits: int) -> tuple[list[int], list[int]]:
    """(flat positions of the stored entries, their gaps), filler zeros included.

    A position not in ``keep`` among the returned ones is a filler.
    """
    largest = 2**index_bits - 1
    positions, gaps = [], []
    previous = -1
    for position in torch.nonzero(keep.flatten()).flatten().tolist():
        while position - previous - 1 > largest:
            previous += largest + 1
            positions.append(previous)
            gaps.append(largest)
        gaps.append(position - previous - 1)
        positions.append(position)
        previous = position
    return positions, gaps


@dataclass(frozen=True)
class Stream:
    """One coded stream: its bytes, the number of symbols, and its Huffman code (None: fixed width)."""

    data: bytes
    count: int
    width: int  # bits per symbol when fixed width
    code: HuffmanCode | None

    @classmethod
    def of(cls, symbols: list[int], alphabet: int, width: int, huffman: bool) -> Stream:
        if huffman:
            code = HuffmanCode.fit(symbols, alphabet) if symbols else HuffmanCode((0,) * alphabet)
            return cls(encode(symbols, code), len(symbols), width, code)
        return cls(pack(symbols, width), len(symbols), width, None)

    def symbols(self) -> list[int]:
        return decode(self.data, self.count, self.code) if self.code else unpack(self.data, self.count, self.width)

    @property
    def table_bytes(self) -> int:
        return self.code.table_bytes if self.code else 0


def fixed_width(alphabet: int) -> int:
    """Bits per symbol of a fixed-width code for ``alphabet`` symbols (at least 1)."""
    return max(1, (alphabet - 1).bit_length())


def pack(symbols: list[int], width: int) -> bytes:
    bits = "".join(format(s, f"0{width}b") for s in symbols)
    padded = bits + "0" * (-len(bits) % 8)
    return int(padded, 2).to_bytes(len(padded) // 8, "big") if padded else b""


def unpack(data: bytes, count: int, width: int) -> list[int]:
    bits = "".join(format(byte, "08b") for byte in data)
    return [int(bits[i * width : (i + 1) * width], 2) for i in range(count)]


@dataclass(frozen=True)
class EncodedLayer:
    """A shared layer in its stored form; :meth:`weight` decodes it."""

    shape: tuple[int, ...]
    codebook: torch.Tensor
    symbols: Stream
    gaps: Stream
    fillers: int

    @property
    def bytes_by_part(self) -> dict[str, int]:
        return {
            "count": COUNT_BYTES, "codebook": FP32_BYTES * self.codebook.numel(),
            "indices": len(self.symbols.data), "gaps": len(self.gaps.data),
            "tables": self.symbols.table_bytes + self.gaps.table_bytes,
        }

    @property
    def total_bytes(self) -> int:
        return sum(self.bytes_by_part.values())

    def weight(self) -> torch.Tensor:
        """The dense weight the stored form stands for."""
        flat = torch.zeros(math.prod(self.shape), dtype=self.codebook.dtype)
        filler = self.codebook.numel()
        position = -1
        for gap, symbol in zip(self.gaps.symbols(), self.symbols.symbols(), strict=True):
            position += gap + 1
            if symbol != filler:
                flat[position] = self.codebook[symbol]
        return flat.reshape(self.shape)


def encode_layer(layer: SharedLayer, index_bits: int, huffman: bool) -> EncodedLayer:
    positions, gaps = relative_index(layer.keep, index_bits)
    clusters = layer.codebook.numel()
    keep, index = layer.keep.flatten(), layer.index.flatten()
    symbols = [int(index[p]) if keep[p] else clusters for p in positions]
    fillers = len(positions) - int(keep.sum())
    alphabet = clusters + (1 if fillers else 0)
    return EncodedLayer(
        shape=tuple(layer.keep.shape), codebook=layer.codebook.detach().cpu().clone(),
        symbols=Stream.of(symbols, alphabet, fixed_width(alphabet), huffman),
        gaps=Stream.of(gaps, 2**index_bits, index_bits, huffman), fillers=fillers,
    )
