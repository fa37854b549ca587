"""Prefill and decode speed of a language model pruned in depth, in width and unstructured, against dense.

    python benchmarks/lm_speed.py                         # smollm2-135m, the run defaults
    python benchmarks/lm_speed.py --runtimes torch torch-compile --out speed.json

Each pruned model is timed against the dense one exactly as a run with ``latency: true`` times it
(:func:`prunebench.metrics.lm_speed.measure_speed`, the defaults of ``lm_prefill``,
``lm_decode_tokens``, ``lm_speed_repeats``): prefill 1x512 and 8x128, greedy decode of 64
tokens with the key-value cache, dense and pruned in the same rounds. The pruned models:
depth 25% and 50% (whole blocks removed, chosen by block influence on random-token calibration
sequences: the choice does not change the speed, only the count does), width 25% and 50% (whole
MLP channels and key/value groups of every block, ``prune.structure: width`` by ``magnitude_sp``,
rebuilt as the smaller dense model a width run stores) and magnitude 50% unstructured (zeros in
dense storage). Prints one line per row and each comparison's wall
time: the cost a run pays for its speed record.

``--roofline`` adds, for each pruned model, the roofline of :mod:`prunebench.metrics.roofline`
for one prefill of the first shape's length (batch 1): MACs and bytes per op kind (the Linear matmuls, attention's
batched matmuls, the rest), the machine's measured GEMM rate and bandwidth, and the predicted
speedup ceiling beside the measured one.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the ``benchmarks`` package importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from benchmarks.common import cpu_name  # noqa: E402

CHOICES = ["depth-25", "depth-50", "width-25", "width-50", "magnitude-50"]


class TokenInput(torch.nn.Module):
    """A causal LM as the roofline's op counter calls it: a float tensor in, read as token ids."""

    def __init__(self, lm: torch.nn.Module) -> None:
        super().__init__()
        self.lm = lm

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lm(input_ids=x.long(), use_cache=False).logits


def roofline_lines(dense: torch.nn.Module, pruned: torch.nn.Module, seq_len: int, threads: int) -> list[str]:
    from prunebench.metrics.roofline import by_kind, measure_machine, op_costs, predicted_ceiling, roofline

    costs = {name: op_costs(TokenInput(m), (seq_len,), 1) for name, m in (("dense", dense), ("pruned", pruned))}
    machine = measure_machine(costs["dense"], threads, per_shape=False)
    lines = [f"  roofline 1x{seq_len}: GEMM {machine.gemm_macs_per_s / 1e9:.1f} GMAC/s, bandwidth "
             f"{machine.bandwidth_bytes_per_s / 1e9:.1f} GB/s ({threads} threads)"]
    for name, ops in costs.items():
        kinds = by_kind(roofline(ops, machine))
        macs = sum(c.macs for c in ops) / 1e9
        moved = sum(c.bytes for c in ops) / 1e6
        lines.append(f"  {name}: {macs:.1f} GMAC, {moved:.0f} MB moved, predicted ms by kind: "
                     + ", ".join(f"{k} {v * 1000:.1f}" for k, v in sorted(kinds.items())))
    lines.append(f"  predicted speedup ceiling {predicted_ceiling(costs['dense'], costs['pruned'], machine):.2f}")
    return lines


def main() -> None:
    from prunebench.metrics.lm_speed import SpeedOptions, measure_speed, speed_options
    from prunebench.models.lm import load_causal_lm
    from prunebench.pruning.depth import prune_depth
    from prunebench.pruning.layerwise import prune_causal_lm
    from prunebench.pruning.width.compact import compact_width
    from prunebench.pruning.width.prune import prune_width

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runtimes", nargs="+", default=list(SpeedOptions().runtimes))
    parser.add_argument("--repeats", type=int, default=SpeedOptions().repeats)
    parser.add_argument("--only", nargs="+", default=None, choices=CHOICES, help="some of the pruned models")
    parser.add_argument("--prefill", nargs="+", default=[f"{b}x{s}" for b, s in SpeedOptions().prefill])
    parser.add_argument("--decode-tokens", type=int, default=SpeedOptions().decode_tokens)
    parser.add_argument("--roofline", action="store_true")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()

    dense = load_causal_lm(args.model).model
    calibration = torch.randint(0, dense.config.vocab_size, (4, 128), generator=torch.Generator().manual_seed(0))
    pruned: dict[str, torch.nn.Module] = {}
    for name in args.only or ["depth-25", "depth-50", "magnitude-50"]:
        model = copy.deepcopy(dense)
        if name.startswith("depth-"):
            prune_depth(model, "block_influence", fraction=int(name[6:]) / 100, calibration=calibration)
        elif name.startswith("width-"):
            outcome = prune_width(model, calibration, "magnitude_sp", structure="width", sparsity=int(name[6:]) / 100)
            model = compact_width(model, outcome.mask)
        else:
            prune_causal_lm(model, calibration, "magnitude", sparsity=0.5)
        pruned[name] = model
    options = speed_options(args.prefill, args.decode_tokens, args.runtimes, args.repeats)
    print(f"{args.model} on {cpu_name()}, {args.threads} threads, load average {os.getloadavg()[0]:.2f} at start")
    out = {}
    for name, model in pruned.items():
        result = measure_speed(dense, model, options, threads=args.threads)
        out[name] = {"wall_s": result.wall_s, "compile_s": result.compile_s, "rows": [r.__dict__ for r in result.rows]}
        print(f"{name}: {result.wall_s:.0f} s for all rows")
        for r in result.rows:
            if r.skipped:
                print(f"  {r.runtime:18s} skipped: {r.skipped}")
            else:
                print(f"  {r.runtime:18s} {r.form:15s} dense {r.dense_tokens_per_s:9.1f} tok/s  pruned "
                      f"{r.pruned_tokens_per_s:9.1f} tok/s  speedup {r.measured_speedup:.2f} "
                      f"[{r.measured_speedup_iqr[0]:.2f}, {r.measured_speedup_iqr[1]:.2f}]")
        if args.roofline:
            print("\n".join(roofline_lines(dense, model, options.prefill[0][1], args.threads)))
    print(f"load average {os.getloadavg()[0]:.2f} at the end")
    if args.out:
        args.out.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
