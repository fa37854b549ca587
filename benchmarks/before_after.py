"""Do two versions of prunebench give the same figures? Two checks, each run once per version.

``masks``: from the cached seed-``S`` dense checkpoint of the MNIST LeNet-300-100 sweep
(configs/mnist-lenet-300-100-sweep.yaml, run into RESULTS first), the masks of the sweep's 42
selections (three strategies x two scopes x six levels, and the random control), of 15 rounds of
layer-wise iterative magnitude pruning with a previous mask (20% a round, the output layer 10%,
as lth-lenet-mnist) and of 3 rounds of global magnitude pruning over every weight matrix
(60% a round, as han-lenet-mnist), all on the same dense weights; written to OUT with the number
of magnitude selections that had a tie at the keep boundary (the only place a tie rule acts).
It uses only functions both sides of the one-core redesign have.

``compare-masks A B``: every mask of A against B's, element for element.

``compare-results A.csv B.csv [A_DIR B_DIR]``: two ``prunebench results --format csv`` exports
joined on what a run is (run ids differ between versions), every figure of every run completed
in both compared; with the results folders, each run's mask.pt and model.pt byte for byte too.

    python benchmarks/before_after.py masks RESULTS OUT.pt [--seed S]
    python benchmarks/before_after.py compare-masks after.pt before.pt
    python benchmarks/before_after.py compare-results after.csv before.csv [AFTER_DIR BEFORE_DIR]
    python benchmarks/before_after.py compare-records AFTER_DIR BEFORE_DIR

``compare-records``: the result.json of every run in two results folders, paired by model,
seed, strategy, scope, compression, schedule, retraining mode and compress stage, every
measured value compared (not timings, provenance or ids).
"""

from __future__ import annotations

import argparse
import copy
import csv
import hashlib
import json
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import yaml

REPO = Path(__file__).resolve().parent.parent
SWEEP = REPO / "configs" / "mnist-lenet-300-100-sweep.yaml"
STRATEGIES = ("magnitude", "grad_magnitude", "act_magnitude")
LEVELS = (2, 4, 8, 16, 32, 64)
# What a run is, in the results table: run ids hash the spec, which the redesign changed.
KEY = ("role", "dataset", "model", "strategy", "scope", "structure", "schedule", "retrain_mode",
       "target_kind", "target_value", "seed")
NOT_FIGURES = {"run_id", "status", "wall_time_s", "error", *KEY}


def boundary_ties(scores: Mapping[str, torch.Tensor], keep: Mapping[str, torch.Tensor]) -> int:
    """Entries whose score equals the highest pruned (finite) score, when a kept entry has it too."""
    flat = torch.cat([s.float().flatten() for s in scores.values()])
    kept = torch.cat([keep[name].flatten() for name in scores])
    pruned = flat[~kept]
    pruned = pruned[torch.isfinite(pruned)]
    if pruned.numel() == 0 or bool(kept.all()):
        return 0
    edge = pruned.max()
    return int((flat == edge).sum()) if bool((flat[kept] == edge).any()) else 0


def write_masks(results: Path, out: Path, seed: int) -> None:
    # Imported here: the compare commands need no prunebench, only torch.
    from prunebench.config import load_config
    from prunebench.experiment.pipeline import dense_checkpoint, prepare
    from prunebench.pruning import prunable_parameters
    from prunebench.pruning.prune import prune_model
    from prunebench.store.layout import completed_dense

    base = {key: value for key, value in yaml.safe_load(SWEEP.read_text()).items() if key != "sweep"}  # as one run
    with tempfile.TemporaryDirectory() as tmp:
        single = Path(tmp) / "run.yaml"
        single.write_text(yaml.safe_dump(base))

        def spec_for(**prune: object) -> Any:
            overrides = [f"seed={seed}", "threads=1"] + [f"prune.{k}={v}" for k, v in prune.items()]
            return load_config(single, overrides)[0]

        spec, settings = load_config(single, [f"seed={seed}", "threads=1"])
        if completed_dense(results, spec.dense_spec().content_hash()) is None:
            sys.exit(f"no completed dense checkpoint of seed {seed} in {results}: run the sweep there first")
        torch.set_num_threads(1)
        data, model = prepare(spec, settings)
        info = dense_checkpoint(spec, data, model, results)
        dense = copy.deepcopy(model.state_dict())
        saved: dict[str, Any] = {"dense_sha256": info["model_sha256"], "masks": {}, "ties": {}}

        def select(key: str, spec: Any, previous: Any = None, keep: Any = None) -> Any:
            model.load_state_dict(dense)
            mask = prune_model(model, data, spec.prune, seed=spec.seed, previous=previous, keep=keep)
            saved["masks"][key] = {name: t.clone() for name, t in mask.items()}
            if spec.prune.strategy == "magnitude":  # its scores are the dense weights' magnitudes
                model.load_state_dict(dense)
                scores = {n: p.detach().abs() for n, p in prunable_parameters(model, spec.prune.prunable).items()}
                if previous is not None:
                    scores = {n: s.masked_fill(~previous[n], float("-inf")) for n, s in scores.items()}
                one_ranking = spec.prune.scope == "global" and not isinstance(keep, Mapping)
                groups = [scores] if one_ranking else [{n: s} for n, s in scores.items()]
                saved["ties"][key] = sum(boundary_ties(group, mask) for group in groups)
            return mask

        for strategy in STRATEGIES:
            for scope in ("global", "layer"):
                for level in LEVELS:
                    select(f"{strategy}/{scope}/{level}", spec_for(strategy=strategy, scope=scope, compression=level))
        for level in LEVELS:
            select(f"random/global/{level}", spec_for(strategy="random", scope="global", compression=level))

        every_matrix = {"prunable.exclude_classifier": "false"}
        lth = spec_for(strategy="magnitude", scope="layer", compression=2, **every_matrix)
        model.load_state_dict(dense)
        sizes = {n: p.numel() for n, p in prunable_parameters(model, lth.prune.prunable).items()}
        output = list(sizes)[-1]
        previous = None
        for r in range(1, 16):
            keep = {n: round(size * (0.9 if n == output else 0.8) ** r) for n, size in sizes.items()}
            previous = select(f"lth-like/round{r}", lth, previous, keep)
        han = spec_for(strategy="magnitude", scope="global", compression=12, **every_matrix)
        previous = None
        for r in range(1, 4):
            previous = select(f"han-like/round{r}", han, previous, round(sum(sizes.values()) * 0.4**r))
    torch.save(saved, out)
    ties = sum(1 for count in saved["ties"].values() if count)
    print(f"{len(saved['masks'])} masks, dense sha256 {saved['dense_sha256']}; "
          f"{ties} of {len(saved['ties'])} magnitude selections have a tie at the keep boundary")


def compare_masks(a_path: Path, b_path: Path) -> int:
    a, b = torch.load(a_path), torch.load(b_path)
    print(f"dense weights identical: {a['dense_sha256'] == b['dense_sha256']}")
    if a["masks"].keys() != b["masks"].keys():
        print("the files hold different selections")
        return 1
    differ = 0
    for key, ma in a["masks"].items():
        mb = b["masks"][key]
        if ma.keys() != mb.keys() or not all(torch.equal(ma[n], mb[n]) for n in ma):
            differ += 1
            changed = sum(int((ma[n] != mb[n]).sum()) for n in ma if n in mb)
            print(f"  {key}: {changed} entries differ (ties at the boundary: {a['ties'].get(key)}, {b['ties'].get(key)})")
    print(f"{len(a['masks']) - differ} of {len(a['masks'])} masks identical")
    return 1 if differ else 0


def completed_rows(path: Path) -> dict[tuple[str, ...], dict[str, str]]:
    with path.open() as f:
        return {tuple(r[k] for k in KEY): r for r in csv.DictReader(f) if r["status"] == "completed"}


def file_digest(folder: Path, run_id: str, name: str) -> str:
    return hashlib.sha256((Path(folder) / run_id / name).read_bytes()).hexdigest()


def pct(value: str) -> str:
    return f"{100 * float(value):.2f}%" if value else "-"


def compare_results(a_csv: Path, b_csv: Path, folders: list[Path]) -> int:
    a_rows, b_rows = completed_rows(a_csv), completed_rows(b_csv)
    common = sorted(set(a_rows) & set(b_rows), key=lambda k: (k[0] != "dense", k[3], k[4], float(k[9] or 0), k[10]))
    if not common:
        print("no run completed on both sides")
        return 1
    figures = [c for c in a_rows[common[0]] if c not in NOT_FIGURES]
    print("| run | seed | compression | theoretical speedup | top-1 before retraining | top-1 | top-5 | before and after |")
    print("|---|---|---|---|---|---|---|---|")
    differ = 0
    for key in common:
        a, b = a_rows[key], b_rows[key]
        diffs = [f"{c} {b[c]} -> {a[c]}" for c in figures if a[c] != b[c]]
        if folders and key[0] != "dense":
            diffs += [f for f in ("mask.pt", "model.pt")
                      if file_digest(folders[0], a["run_id"], f) != file_digest(folders[1], b["run_id"], f)]
        differ += bool(diffs)
        name = "dense" if key[0] == "dense" else f"{key[3]} {key[4]} {float(key[9]):g}x"
        print(f"| {name} | {key[10]} | {float(a['compression_ratio']):.3f}x | {float(a['theoretical_speedup']):.3f}x | "
              f"{pct(a['pre_retrain_top1'])} | {pct(a['top1'])} | {pct(a['top5'])} | "
              f"{'identical' if not diffs else 'differ: ' + '; '.join(diffs)} |")
    extra = "; mask.pt and model.pt byte for byte" if folders else ""
    print(f"\n{len(common)} runs completed on both sides; {len(figures)} figures each ({', '.join(figures)}){extra}; "
          f"runs that differ: {differ}")
    return 1 if differ else 0


# Parts of result.json that say how or when a run ran, or name it, rather than what it measured.
NOT_MEASURED = ("provenance", "spec", "cost", "run_id", "dense_id", "timings", "wall", "time_s", "schema_version")


def flat(record: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(record, dict):
        return {k: v for key, value in record.items() for k, v in flat(value, f"{prefix}.{key}").items()}
    if isinstance(record, list):
        return {k: v for i, value in enumerate(record) for k, v in flat(value, f"{prefix}[{i}]").items()}
    return {prefix: record}


def records(folder: Path) -> dict[tuple[Any, ...], dict[str, Any]]:
    """Every run's measured values by what the run is (its spec's fields that both versions have)."""
    found = {}
    for path in folder.glob("*/result.json"):
        record = json.loads(path.read_text())
        spec = record["spec"]
        key = (spec["model"], spec["seed"], spec["prune"]["strategy"], spec["prune"]["scope"],
               spec["prune"]["compression"], spec["prune"]["schedule"], spec["retrain"]["mode"], spec["compress"] is not None)
        if key in found:
            sys.exit(f"{folder}: two runs are {key}; compare them another way")
        found[key] = {k: v for k, v in flat(record).items() if not any(word in k for word in NOT_MEASURED)}
    return found


def compare_records(a_dir: Path, b_dir: Path) -> int:
    a_runs, b_runs = records(a_dir), records(b_dir)
    differ = 0
    for key in sorted(set(a_runs) & set(b_runs)):
        a, b = a_runs[key], b_runs[key]
        diffs = [f"{k}: {b.get(k)} -> {a.get(k)}" for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
        differ += bool(diffs)
        print(f"{' '.join(map(str, key))}: {len(set(a) & set(b))} values compared, "
              + ("identical" if not diffs else f"{len(diffs)} differ: " + "; ".join(diffs[:10])))
    common = len(set(a_runs) & set(b_runs))
    print(f"{common} runs completed on both sides; runs that differ: {differ}")
    return 1 if differ or not common else 0  # nothing compared is no evidence of sameness


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    masks = sub.add_parser("masks")
    masks.add_argument("results", type=Path)
    masks.add_argument("out", type=Path)
    masks.add_argument("--seed", type=int, default=0)
    cm = sub.add_parser("compare-masks")
    cm.add_argument("a", type=Path)
    cm.add_argument("b", type=Path)
    cr = sub.add_parser("compare-results")
    cr.add_argument("a", type=Path)
    cr.add_argument("b", type=Path)
    cr.add_argument("folders", nargs="*", type=Path, help="the two results folders, to compare mask.pt and model.pt")
    cc = sub.add_parser("compare-records")
    cc.add_argument("a", type=Path)
    cc.add_argument("b", type=Path)
    args = parser.parse_args()
    needed = [args.results] if args.command == "masks" else [args.a, args.b, *getattr(args, "folders", [])]
    for path in needed:
        if not path.exists():
            parser.error(f"{path}: no such file or folder")  # one line, exit 2, nothing written
    if args.command == "masks":
        write_masks(args.results, args.out, args.seed)
        return 0
    if args.command == "compare-masks":
        return compare_masks(args.a, args.b)
    if args.command == "compare-records":
        return compare_records(args.a, args.b)
    if len(args.folders) not in (0, 2):
        parser.error("compare-results: give both results folders or neither")
    return compare_results(args.a, args.b, args.folders)


if __name__ == "__main__":
    sys.exit(main())
