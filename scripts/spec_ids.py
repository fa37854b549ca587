"""Every run id the repository's configs and docs' example configs give, to check a refactor of
the spec changes none of them.

    python scripts/spec_ids.py > before.json    # on the old code
    python scripts/spec_ids.py --compare before.json   # on the new code: exit 1 on any difference

For each config (configs/*.yaml, the reproductions' experiments, every ```yaml block of README.md and
docs/*.md that validates; a fragment is merged into a digits/mlp base as tests/test_docs_examples.py
does) it records each job's run id (the hash of the canonical JSON, so equal ids mean
byte-identical hashed JSON), its dense id, and a digest of the spec as results record it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path
from typing import Any

from prunebench.config_file import load_yaml, read_config_file
from prunebench.errors import PrunebenchError
from prunebench.plan.sweep import plan_from_mapping

ROOT = Path(__file__).resolve().parents[1]
BASE = {"dataset": "digits", "model": "mlp"}


def yaml_blocks(path: Path) -> list[tuple[str, str]]:
    """(where, text) of each ```yaml block of a Markdown file; where is the file and the block's
    number, so that text added around the blocks does not rename them."""
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks, i = [], 0
    while i < len(lines):
        if lines[i].strip().lower() == "```yaml":
            end = i + 1
            while end < len(lines) and lines[end].strip() != "```":
                end += 1
            blocks.append((f"{path.relative_to(ROOT)} yaml block {len(blocks) + 1}", "\n".join(lines[i + 1:end]) + "\n"))
            i = end
        i += 1
    return blocks


def configs() -> dict[str, Any]:
    found: dict[str, Any] = {}
    for path in sorted((ROOT / "configs").glob("*.yaml")):
        found[str(path.relative_to(ROOT))] = read_config_file(path)
    for path in sorted((ROOT / "src/prunebench/reproduce/configs").glob("*.yaml")):
        data = read_config_file(path)  # a reproduction: its experiment, or one per model
        where = str(path.relative_to(ROOT))
        if "experiment" in data:
            found[where] = data["experiment"]
        for model, entry in data.get("models", {}).items():
            found[f"{where}:{model}"] = entry["experiment"]
    for doc in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for where, text in yaml_blocks(doc):
            data = load_yaml(text)
            if isinstance(data, dict):
                found[where] = data if "dataset" in data and "model" in data else {**BASE, **data}
    return found


def ids(data: Any) -> list[list[str]] | str:
    try:
        plan = plan_from_mapping(data)
    except PrunebenchError as exc:  # a doc block that shows an error: its message is compared
        return f"error: {exc}"
    rows = []
    for job in plan.jobs:
        recorded = json.dumps(job.spec.recorded(), sort_keys=True)
        rows.append([job.kind, job.run_id, job.spec.dense_spec().content_hash(),
                     hashlib.sha256(recorded.encode()).hexdigest()[:16]])
    return sorted(rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--compare", type=Path, help="a file this script wrote before: report every difference")
    args = parser.parse_args()
    now = {where: ids(data) for where, data in configs().items()}
    if args.compare is None:
        json.dump(now, sys.stdout, indent=1, sort_keys=True)
        print()
        return 0
    before = json.loads(args.compare.read_text())
    changed = sorted(k for k in before.keys() | now.keys() if before.get(k) != now.get(k))
    for key in changed:
        print(f"{key}: before {before.get(key)!r}\n{' ' * len(key)}  now    {now.get(key)!r}")
    count = sum(len(v) for v in now.values() if isinstance(v, list))
    print(f"{len(now)} configs, {count} jobs: {len(changed)} differ")
    return 1 if changed else 0


if __name__ == "__main__":
    sys.exit(main())
