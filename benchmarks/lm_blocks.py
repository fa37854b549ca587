"""Peak memory of pruning a language model whole against block by block from its weight files.

    python benchmarks/lm_blocks.py whole  smollm2-135m /tmp/lm-whole     # today's driver
    python benchmarks/lm_blocks.py blocks smollm2-135m /tmp/lm-blocks    # block by block
    python benchmarks/lm_blocks.py compare /tmp/lm-whole /tmp/lm-blocks  # the same masks?
    python benchmarks/lm_blocks.py generate /tmp/llama-1.5b              # random weights, Llama layout
    python benchmarks/lm_blocks.py blocks hf:/tmp/llama-1.5b /tmp/llama-1.5b-pruned --random-calibration

Run each pruning under ``/usr/bin/time -v`` for its peak resident set ("Maximum resident set
size"); one pruning per process, so each peak is its own. ``whole`` loads the model as a run does
(:func:`prunebench.models.lm.load_causal_lm`) and prunes it with
:func:`prunebench.pruning.layerwise.prune_causal_lm`, writing its masks to ``OUT/mask.safetensors``;
``blocks`` prunes with :func:`prunebench.pruning.blockwise.prune_checkpoint` into the checkpoint
folder OUT. Both use the default comparison's calibration (docs/llm.md): 8 sequences of 128 tokens
of the Shakespeare calibration split, seed 0, Wanda at 50% unless told otherwise; a model without a
tokenizer (the generated one) takes ``--random-calibration``: token ids drawn uniformly with the seed.

``generate`` writes a Llama-layout checkpoint of random bf16 weights (normal, std 0.02, seeded), one
safetensors shard per block, holding one block at a time in memory; the defaults make 1.54 billion
parameters (3.1 GB). It is a temporary folder for the measurement: never commit it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the ``benchmarks`` package importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from benchmarks.common import cpu_name  # noqa: E402


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    commands = parser.add_subparsers(dest="command", required=True)
    for name in ("whole", "blocks"):
        prune = commands.add_parser(name, help=f"prune {'the whole model in memory' if name == 'whole' else 'block by block'}")
        prune.add_argument("model", help="smollm2-135m or hf:<folder or .gguf file>")
        prune.add_argument("out", type=Path, help="a new folder for the masks (and, block by block, the checkpoint)")
        prune.add_argument("--strategy", default="wanda")
        prune.add_argument("--sparsity", type=float, default=None, help="default 0.5 (unstructured)")
        prune.add_argument("--structure", default="unstructured", help="unstructured or N:M")
        prune.add_argument("--n-samples", type=int, default=8)
        prune.add_argument("--seq-len", type=int, default=128)
        prune.add_argument("--seed", type=int, default=0)
        prune.add_argument("--threads", type=int, default=2)
        prune.add_argument("--random-calibration", action="store_true",
                           help="token ids drawn with the seed, for a model without a tokenizer")
    compare = commands.add_parser("compare", help="are the masks of two prunings identical?")
    compare.add_argument("first", type=Path)
    compare.add_argument("second", type=Path)
    generate = commands.add_parser("generate", help="write a random Llama-layout bf16 checkpoint")
    generate.add_argument("out", type=Path)
    generate.add_argument("--layers", type=int, default=22)
    generate.add_argument("--hidden", type=int, default=2048)
    generate.add_argument("--intermediate", type=int, default=8192)
    generate.add_argument("--heads", type=int, default=32)
    generate.add_argument("--kv-heads", type=int, default=8)
    generate.add_argument("--vocab", type=int, default=49152)
    generate.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


def calibration_tokens(args: argparse.Namespace, path: Path, tokenizer: object | None) -> torch.Tensor:
    from prunebench.data.text import calibration_samples, load_text
    from prunebench.models.weight_files import model_config

    if args.random_calibration:
        vocab = model_config(path).vocab_size
        return torch.randint(0, vocab, (args.n_samples, args.seq_len), generator=torch.Generator().manual_seed(args.seed))
    text = load_text("shakespeare", tokenizer, eval_tokens=None)
    return calibration_samples(text.calibration, args.n_samples, args.seq_len, args.seed, key="calibration")


def prune(args: argparse.Namespace) -> None:
    from prunebench.models.weight_files import load_tokenizer, weights_path

    sparsity = args.sparsity if args.sparsity is not None or args.structure != "unstructured" else 0.5
    started = time.perf_counter()
    path = weights_path(args.model)
    if args.command == "whole":
        from safetensors.torch import save_file

        from prunebench.models.lm import load_causal_lm
        from prunebench.pruning.layerwise import prune_causal_lm

        loaded = load_causal_lm(args.model)
        calibration = calibration_tokens(args, path, loaded.tokenizer)
        outcome = prune_causal_lm(loaded.model, calibration, args.strategy, sparsity=sparsity, structure=args.structure,
                                  seed=args.seed)
        args.out.mkdir(parents=True, exist_ok=False)
        save_file(dict(outcome.mask.items()), str(args.out / "mask.safetensors"))
        pruning_s = outcome.seconds
    else:
        from prunebench.pruning.blockwise import prune_checkpoint

        tokenizer = None if args.random_calibration else load_tokenizer(path)
        calibration = calibration_tokens(args, path, tokenizer)
        result = prune_checkpoint(path, args.out, calibration, args.strategy, sparsity=sparsity,
                                  structure=args.structure, seed=args.seed)
        pruning_s = result.seconds
    print(f"{args.command}: {args.model}, {args.strategy} {args.structure if sparsity is None else sparsity}, "
          f"calibration {args.n_samples} x {args.seq_len} seed {args.seed}: pruning {pruning_s:.1f} s, "
          f"all {time.perf_counter() - started:.1f} s")


def read_masks(folder: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    from prunebench.pruning.blockwise import read_mask

    whole = folder / "mask.safetensors"
    return load_file(str(whole)) if whole.is_file() else dict(read_mask(folder).items())


def compare(args: argparse.Namespace) -> int:
    first, second = read_masks(args.first), read_masks(args.second)
    if set(first) != set(second):
        print(f"different weights: {sorted(set(first) ^ set(second))[:5]}")
        return 1
    differing = {name: int((first[name] != second[name]).sum()) for name in first}
    entries = sum(t.numel() for t in first.values())
    changed = sum(differing.values())
    print(f"{len(first)} masks, {entries:,} entries: {changed:,} differ "
          f"({sum(1 for v in differing.values() if v)} masks with a difference)")
    return 0 if changed == 0 else 1


def generate(args: argparse.Namespace) -> None:
    """A Llama checkpoint of random bf16 weights, written block by block."""
    from safetensors.torch import save_file
    from transformers import LlamaConfig

    config = LlamaConfig(vocab_size=args.vocab, hidden_size=args.hidden, intermediate_size=args.intermediate,
                         num_hidden_layers=args.layers, num_attention_heads=args.heads,
                         num_key_value_heads=args.kv_heads, max_position_embeddings=4096, tie_word_embeddings=False,
                         dtype="bfloat16")
    args.out.mkdir(parents=True, exist_ok=False)
    generator = torch.Generator().manual_seed(args.seed)
    head = args.hidden // args.heads
    shapes = {"self_attn.q_proj": (args.hidden, args.hidden), "self_attn.k_proj": (args.kv_heads * head, args.hidden),
              "self_attn.v_proj": (args.kv_heads * head, args.hidden), "self_attn.o_proj": (args.hidden, args.hidden),
              "mlp.gate_proj": (args.intermediate, args.hidden), "mlp.up_proj": (args.intermediate, args.hidden),
              "mlp.down_proj": (args.hidden, args.intermediate)}
    shards = args.layers + 1
    index: dict[str, str] = {}
    total = 0

    def write(number: int, tensors: dict[str, torch.Tensor]) -> None:
        nonlocal total
        name = f"model-{number:05d}-of-{shards:05d}.safetensors"
        save_file(tensors, str(args.out / name))
        index.update({key: name for key in tensors})
        total += sum(t.numel() for t in tensors.values())

    def normal(*shape: int) -> torch.Tensor:
        return (torch.randn(*shape, generator=generator) * 0.02).to(torch.bfloat16)

    ones = torch.ones(args.hidden, dtype=torch.bfloat16)
    write(1, {"model.embed_tokens.weight": normal(args.vocab, args.hidden), "lm_head.weight": normal(args.vocab, args.hidden),
              "model.norm.weight": ones.clone()})
    for layer in range(args.layers):
        tensors = {f"model.layers.{layer}.{name}.weight": normal(*shape) for name, shape in shapes.items()}
        tensors[f"model.layers.{layer}.input_layernorm.weight"] = ones.clone()
        tensors[f"model.layers.{layer}.post_attention_layernorm.weight"] = ones.clone()
        write(layer + 2, tensors)
    (args.out / "model.safetensors.index.json").write_text(json.dumps(
        {"metadata": {"total_size": 2 * total}, "weight_map": index}, indent=2, sort_keys=True))
    config.save_pretrained(args.out)
    print(f"{args.out}: {total:,} parameters in bf16, {shards} shards")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from prunebench.errors import ConfigError, PrunebenchError

    try:
        if args.command == "compare":
            return compare(args)
        if args.command == "generate":
            if args.out.exists():
                raise ConfigError(f"out: {args.out} exists; give a new folder")
            generate(args)
            return 0
        if args.out.exists():
            raise ConfigError(f"out: {args.out} exists; give a new folder")
        torch.set_num_threads(args.threads)
        print(f"CPU {cpu_name()}, {os.cpu_count()} logical CPUs, torch {torch.__version__} with {args.threads} "
              f"thread(s), Python {platform.python_version()}, load average {os.getloadavg()[0]:.2f}", flush=True)
        prune(args)
        print(f"load average after: {os.getloadavg()[0]:.2f}")
        return 0
    except PrunebenchError as exc:  # bad input: one line, exit 2, as the CLI does
        print(f"lm_blocks: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
