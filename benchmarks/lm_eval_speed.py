"""Zero-shot task scoring speed: evaluation tokens per second beside the floor the hardware allows.

    python benchmarks/lm_eval_speed.py                          # smollm2-135m, 25 items of each task
    python benchmarks/lm_eval_speed.py --items 100 --threads 2 --naive 5

The scorer (prunebench.metrics.choice) packs each item into one row, its context once and then
every choice, and batches rows up to ``--batch-tokens`` padded tokens. Printed:

- tokens/s: the tokens the model read (packed rows, padding not counted) per second of wall time;
- lm-eval tokens/s: the tokens lm-eval's one-row-per-choice requests would have read, per second
  of the same time (what the sharing of a context saves shows as the ratio of the two);
- the floor: this machine's measured matrix-multiply rate (a square float32 GEMM of
  ``--gemm-size``, the same threads) divided by the model's FLOPs per token (2 x the MACs of its
  Linear layers for one token, LM head included; attention's score and value products, which
  grow with the context, are left out, so the floor is a little optimistic). The ratio
  tokens/s / floor says how close scoring runs to the machine's matmul limit.
- with ``--naive N``: the first N items per task scored one (context, choice) pair per forward pass
  (lm-eval's loop at batch size 1) for the same tokens/s figure.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the ``benchmarks`` package importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from benchmarks.common import cpu_name  # noqa: E402
from prunebench.metrics.choice import BATCH_TOKENS  # noqa: E402


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--model", default="smollm2-135m", help="a built-in language model or hf:<path> (default smollm2-135m)")
    parser.add_argument("--items", type=int, default=25, help="the first N items of each task (default 25)")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(), help="torch threads (default: torch's)")
    parser.add_argument("--batch-tokens", type=int, default=BATCH_TOKENS, help=f"padded tokens per forward pass (default {BATCH_TOKENS})")
    parser.add_argument("--gemm-size", type=int, default=1024, help="side of the GEMM that measures the matmul rate")
    parser.add_argument("--naive", type=int, default=0, help="also score the first N items per task one pair at a time")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # Imported here so that --help works without the language-model extra.
    from prunebench.data.wiki_tasks import TASKS, capped
    from prunebench.errors import PrunebenchError
    from prunebench.experiment.lm import lm_macs
    from prunebench.metrics.choice import encode_item, packed_row, score_items, score_items_naive
    from prunebench.metrics.roofline import measure_gemm
    from prunebench.models.lm import load_causal_lm

    for flag, value in (("--items", args.items), ("--threads", args.threads), ("--batch-tokens", args.batch_tokens),
                        ("--gemm-size", args.gemm_size)):
        if value < 1:
            print(f"lm_eval_speed: error: {flag} must be at least 1, got {value}", file=sys.stderr)
            return 2
    torch.set_num_threads(args.threads)
    try:
        loaded = load_causal_lm(args.model)
        items = [item for task in TASKS for item in capped(task, args.items)]
    except PrunebenchError as exc:  # a bad --model or a missing wheel: one line, exit 2, as the CLI does
        print(f"lm_eval_speed: error: {exc}", file=sys.stderr)
        return 2
    model, tokenizer = loaded.model, loaded.tokenizer
    encoded = [encode_item(tokenizer, i.context, i.choices) for i in items]
    packed = sum(len(packed_row(e).tokens) for e in encoded)
    requested = sum(len(e.context) + len(c) - 1 for e in encoded for c in e.continuations)

    score_items(model, tokenizer, items[:4], batch_tokens=args.batch_tokens)  # warm-up: allocator, kernels
    start = time.perf_counter()
    scores = score_items(model, tokenizer, items, batch_tokens=args.batch_tokens)
    seconds = time.perf_counter() - start

    flops_per_token = 2 * lm_macs(model).dense
    gemm_flops = 2 * measure_gemm(args.threads, size=args.gemm_size)
    floor = gemm_flops / flops_per_token

    print(f"model {args.model}: {loaded.description}")
    print(f"CPU {cpu_name()}, {os.cpu_count()} logical CPUs, torch {torch.__version__} with {args.threads} thread(s), "
          f"Python {platform.python_version()}, load average {os.getloadavg()[0]:.2f}")
    print(f"{len(items)} items ({args.items} per task), {sum(len(i.choices) for i in items)} choices; "
          f"batches of at most {args.batch_tokens} padded tokens\n")
    print("| figure | value |")
    print("| --- | --- |")
    print(f"| wall time | {seconds:.2f} s ({len(items) / seconds:.1f} items/s) |")
    print(f"| tokens read (packed rows) | {packed:,} |")
    print(f"| tokens lm-eval's requests read | {requested:,} ({requested / packed:.2f} x) |")
    print(f"| tokens/s | {packed / seconds:,.0f} |")
    print(f"| lm-eval tokens/s (same time) | {requested / seconds:,.0f} |")
    print(f"| model FLOPs per token (2 x Linear MACs) | {flops_per_token / 1e6:.1f} M |")
    print(f"| measured GEMM rate ({args.gemm_size}^3, float32) | {gemm_flops / 1e9:.1f} GFLOP/s |")
    print(f"| floor: GEMM rate / FLOPs per token | {floor:,.0f} tokens/s |")
    print(f"| tokens/s / floor | {packed / seconds / floor:.2f} |")
    print(f"| acc over these items | {sum(s.acc for s in scores) / len(scores):.3f} |")
    if args.naive:
        few = [item for task in TASKS for item in capped(task, min(args.naive, args.items))]
        few_tokens = sum(len(packed_row(encode_item(tokenizer, i.context, i.choices)).tokens) for i in few)
        start = time.perf_counter()
        score_items_naive(model, tokenizer, few)
        naive_s = time.perf_counter() - start
        start = time.perf_counter()
        score_items(model, tokenizer, few, batch_tokens=args.batch_tokens)
        batched_s = time.perf_counter() - start
        print(f"| {len(few)} items one pair per pass: wall time | {naive_s:.2f} s against {batched_s:.2f} s batched "
              f"({naive_s / batched_s:.1f} x) |")
        print(f"| same, tokens/s (packed tokens) | {few_tokens / naive_s:,.0f} one pair per pass, "
              f"{few_tokens / batched_s:,.0f} batched |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
