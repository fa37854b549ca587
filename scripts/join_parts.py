"""Check and reassemble the parts that ``scripts/split_parts.py`` made; standard library only.

    python scripts/join_parts.py gpu-parts --out data     # then: --data-dir data

Every part must have the size and SHA-256 its ``manifest.json`` gives (a missing part is named,
so the command that still has to bring it is known); every file rebuilt from them must have its
own. Only then are the files written under ``--out`` (each written to a temporary name and
renamed, so a file that is there is whole). Rebuilt CIFAR-10 batches are the published files,
which prunebench's loader checks once more against their published SHA-256s.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path


class Refused(Exception):
    """Missing or damaged input: a one-line message naming it."""


def read_manifest(parts: Path) -> dict:  # type: ignore[type-arg]
    try:
        manifest = json.loads((parts / "manifest.json").read_text())
        manifest["files"], manifest["parts"]  # noqa: B018 (both must be there)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise Refused(f"{parts / 'manifest.json'}: cannot read it ({exc})") from None
    if manifest.get("format") != 1:
        raise Refused(f"{parts / 'manifest.json'}: format {manifest.get('format')!r} is not 1")
    return manifest


def joined_bytes(parts: Path, manifest: dict) -> bytes:  # type: ignore[type-arg]
    """Every part checked, then their bytes in order."""
    missing = [p["name"] for p in manifest["parts"] if not (parts / p["name"]).is_file()]
    if missing:
        raise Refused(f"{parts}: missing {len(missing)} of {len(manifest['parts'])} parts: {', '.join(missing)}")
    chunks = []
    for part in manifest["parts"]:
        payload = (parts / part["name"]).read_bytes()
        if len(payload) != part["bytes"] or hashlib.sha256(payload).hexdigest() != part["sha256"]:
            raise Refused(f"{parts / part['name']}: {len(payload):,} bytes whose SHA-256 is not the manifest's; send it again")
        chunks.append(payload)
    joined = b"".join(chunks)
    if len(joined) != manifest["total_bytes"]:
        raise Refused(f"{parts}: the parts hold {len(joined):,} bytes, the manifest says {manifest['total_bytes']:,}")
    return joined


def join(parts: Path, out: Path) -> list[Path]:
    """Check everything, then write the files under ``out``; returns their paths."""
    manifest = read_manifest(parts)
    joined = joined_bytes(parts, manifest)
    files = []
    for entry in manifest["files"]:
        relative = Path(entry["path"])
        if relative.is_absolute() or ".." in relative.parts:
            raise Refused(f"{parts / 'manifest.json'}: file path {entry['path']!r} leaves --out")
        payload = joined[entry["offset"] : entry["offset"] + entry["bytes"]]
        if len(payload) != entry["bytes"] or hashlib.sha256(payload).hexdigest() != entry["sha256"]:
            raise Refused(f"{entry['path']}: rebuilt from the parts, its SHA-256 is not the manifest's")
        files.append((out / relative, payload))
    for path, payload in files:  # written only once all of them checked out
        path.parent.mkdir(parents=True, exist_ok=True)
        staging = path.with_name(f".{path.name}.partial")
        staging.write_bytes(payload)
        os.replace(staging, path)
    return [path for path, _ in files]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("parts", type=Path, help="the folder with manifest.json and the parts")
    parser.add_argument("--out", type=Path, required=True, help="where the files go (for CIFAR-10: the --data-dir)")
    args = parser.parse_args(argv)
    try:
        written = join(args.parts, args.out)
    except Refused as exc:
        print(f"join_parts: error: {exc}", file=sys.stderr)
        return 2
    print(f"{len(written)} files checked and written under {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
