"""Canonical Huffman coding of a stream of small non-negative integers (Han et al. 2016, section 4).

A code is stored as one code length per symbol of its alphabet (0 = symbol absent), one byte
each: the decoder rebuilds the canonical codes from the lengths alone, so the lengths are the
whole table. A stream with a single distinct symbol gets a 1-bit code, so its length is still
decodable from the entry count.
"""

from __future__ import annotations

import heapq
import itertools
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

TABLE_BYTES_PER_SYMBOL = 1  # one code length (< 256) per symbol of the alphabet


@dataclass(frozen=True)
class HuffmanCode:
    """Code lengths per symbol 0..alphabet-1 and the canonical codes they define."""

    lengths: tuple[int, ...]

    @classmethod
    def fit(cls, symbols: Sequence[int], alphabet: int) -> HuffmanCode:
        """The optimal prefix code for ``symbols`` (each in 0..alphabet-1)."""
        counts = Counter(symbols)
        if any(not 0 <= s < alphabet for s in counts):
            raise ValueError(f"symbols must lie in 0..{alphabet - 1}")
        lengths = [0] * alphabet
        if len(counts) == 1:
            lengths[next(iter(counts))] = 1
            return cls(tuple(lengths))
        order = itertools.count()  # tie-breaker: equal weights merge in a fixed order
        heap = [(n, next(order), [s]) for s, n in sorted(counts.items())]
        heapq.heapify(heap)
        while len(heap) > 1:
            n1, _, a = heapq.heappop(heap)
            n2, _, b = heapq.heappop(heap)
            for s in a + b:  # every symbol under the merged node sits one level deeper
                lengths[s] += 1
            heapq.heappush(heap, (n1 + n2, next(order), a + b))
        return cls(tuple(lengths))

    @property
    def codes(self) -> dict[int, tuple[int, int]]:
        """symbol -> (code, length): canonical order, shorter codes first, then by symbol."""
        found: dict[int, tuple[int, int]] = {}
        code, previous = 0, 0
        for length, symbol in sorted((n, s) for s, n in enumerate(self.lengths) if n):
            code <<= length - previous
            found[symbol] = (code, length)
            code, previous = code + 1, length
        return found

    @property
    def table_bytes(self) -> int:
        return TABLE_BYTES_PER_SYMBOL * len(self.lengths)

    def encoded_bits(self, symbols: Sequence[int]) -> int:
        return sum(self.lengths[s] for s in symbols)


def encode(symbols: Sequence[int], code: HuffmanCode) -> bytes:
    """The concatenated codes, most significant bit first, zero-padded to whole bytes."""
    codes = code.codes
    bits = "".join(format(codes[s][0], f"0{codes[s][1]}b") for s in symbols)
    if not bits:
        return b""
    padded = bits + "0" * (-len(bits) % 8)
    return int(padded, 2).to_bytes(len(padded) // 8, "big")


def decode(data: bytes, count: int, code: HuffmanCode) -> list[int]:
    """The first ``count`` symbols of ``data`` (the padding after them is ignored)."""
    lookup = {(c, n): s for s, (c, n) in code.codes.items()}
    bits = "".join(format(byte, "08b") for byte in data)
    symbols: list[int] = []
    value, length = 0, 0
    for bit in bits:
        if len(symbols) == count:
            break
        value, length = (value << 1) | (bit == "1"), length + 1
        symbol = lookup.get((value, length))
        if symbol is not None:
            symbols.append(symbol)
            value, length = 0, 0
    if len(symbols) != count:
        raise ValueError(f"the data holds {len(symbols)} symbols, not {count}")
    return symbols
