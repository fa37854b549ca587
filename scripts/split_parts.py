"""Split files into checksummed parts small enough to travel one at a time (default 48 MiB each).

A GPU machine with no network, to which at most 64 MiB of files travel with each command, still
gets CIFAR-10: this decodes it here through prunebench's loader (every batch checked against its
published checksum), writes the decoded uint8 images and labels back as the six official binary
batches (``cifar-10/cifar-10-batches-bin/*.bin``, label byte + 3072 pixel bytes per image, so they
carry the published SHA-256s again), and cuts their bytes into parts. ``scripts/join_parts.py``
checks and reassembles them on the other side, where ``--data-dir`` then finds the batches as
usual. Any other files can be sent the same way (``--file``).

    python scripts/split_parts.py --cifar10 ../shared/data --out gpu-parts
    python scripts/split_parts.py --file weights.npy=path/to/weights.npy --out parts --part-bytes 1000000

``manifest.json`` lists each file (path, bytes, SHA-256, where it starts in the joined bytes) and
each part (name, bytes, SHA-256). A user who has a GPU machine with a network needs none of this:
``load_dataset`` downloads CIFAR-10 there.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

MIB = 1024 * 1024
LIMIT = 64 * MIB  # what travels with one command, the repository's own files included
DEFAULT_PART = 48 * MIB
CIFAR_RECORDS = 10_000  # images per official CIFAR-10 batch file


class Refused(Exception):
    """Bad input: a one-line message naming the option."""


def cifar10_files(data_dir: Path) -> dict[str, bytes]:
    """The official CIFAR-10 binary batches, rebuilt from the verified, decoded uint8 arrays."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    from prunebench.data.cifar import CIFAR10, binary_batch_bytes, load_cifar
    from prunebench.errors import DataError

    try:
        raw = load_cifar(CIFAR10, data_dir, allow_download=False)
    except DataError as exc:
        raise Refused(f"--cifar10: {exc}") from None
    train_x, test_x = (p.pixels.numpy() for p in (raw.train_x, raw.test_x))  # type: ignore[union-attr]
    train_y, test_y = raw.train_y.numpy(), raw.test_y.numpy()
    files = {}
    for i, name in enumerate(CIFAR10.binary_train):
        rows = slice(i * CIFAR_RECORDS, (i + 1) * CIFAR_RECORDS)
        files[f"cifar-10/{CIFAR10.binary_folder}/{name}"] = binary_batch_bytes(train_x[rows], train_y[rows])
    files[f"cifar-10/{CIFAR10.binary_folder}/{CIFAR10.binary_test}"] = binary_batch_bytes(test_x, test_y)
    for relative, payload in files.items():  # what arrives must be the published files, bit for bit
        published = CIFAR10.official[relative.removeprefix("cifar-10/")]
        if hashlib.new(published.algorithm, payload).hexdigest() != published.hex:
            raise Refused(f"--cifar10: {relative} rebuilt from the decoded arrays differs from the published file")
    return files


def chunks(payloads: Sequence[bytes], size: int) -> Iterator[bytes]:
    """The payloads' bytes, one after another, cut every ``size`` bytes."""
    joined = b"".join(payloads)
    for start in range(0, len(joined), size):
        yield joined[start : start + size]


def split(files: dict[str, bytes], out: Path, part_bytes: int) -> dict[str, object]:
    """Write the parts and ``manifest.json`` into ``out`` (created whole, or not at all)."""
    if not 1 <= part_bytes < LIMIT:
        raise Refused(f"--part-bytes: {part_bytes} is not below the 64 MiB that travels with a command (allowed: 1 to {LIMIT - 1})")
    if out.exists():
        raise Refused(f"--out: {out} exists; give a new folder")
    entries, offset = [], 0
    for relative, payload in files.items():
        entries.append({"path": relative, "bytes": len(payload), "sha256": hashlib.sha256(payload).hexdigest(), "offset": offset})
        offset += len(payload)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}-"))
    try:
        parts = []
        for index, chunk in enumerate(chunks(list(files.values()), part_bytes)):
            name = f"part-{index:03d}.bin"
            (staging / name).write_bytes(chunk)
            parts.append({"name": name, "bytes": len(chunk), "sha256": hashlib.sha256(chunk).hexdigest()})
        manifest = {"format": 1, "total_bytes": offset, "files": entries, "parts": parts}
        (staging / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
        staging.rename(out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return manifest


def named_files(pairs: Sequence[str]) -> dict[str, bytes]:
    files = {}
    for pair in pairs:
        name, sep, path = pair.partition("=")
        if not sep or not name or Path(name).is_absolute() or ".." in Path(name).parts:
            raise Refused(f"--file: {pair!r} is not NAME=PATH with a relative NAME")
        if not Path(path).is_file():
            raise Refused(f"--file: {path} is not a file")
        files[name] = Path(path).read_bytes()
    return files


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--cifar10", type=Path, metavar="DATA_DIR", help="the folder that holds cifar-10/ (as --data-dir)")
    source.add_argument("--file", action="append", metavar="NAME=PATH", help="a file to send as NAME (repeatable)")
    parser.add_argument("--out", type=Path, required=True, help="a new folder for the parts and manifest.json")
    parser.add_argument("--part-bytes", type=int, default=DEFAULT_PART, help=f"bytes per part (default {DEFAULT_PART // MIB} MiB)")
    args = parser.parse_args(argv)
    try:
        files = cifar10_files(args.cifar10) if args.cifar10 else named_files(args.file)
        manifest = split(files, args.out, args.part_bytes)
    except Refused as exc:
        print(f"split_parts: error: {exc}", file=sys.stderr)
        return 2
    parts = manifest["parts"]
    print(f"{len(files)} files, {manifest['total_bytes']:,} bytes, in {len(parts)} parts under {args.out}")  # type: ignore[arg-type]
    return 0


if __name__ == "__main__":
    sys.exit(main())
