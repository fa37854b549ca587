"""Measured speed of a language-model run: prefill and decode tokens per second, dense against pruned.

Every row times the dense and the pruned model in the same interleaved rounds (a, b, a, b, ...;
:func:`prunebench.metrics.latency.interleaved_times`), so load drifting on a shared machine hits
both, and the speedup is the median of the per-round ratios:

- **prefill**: one forward pass over ``batch x seq_len`` random tokens without a key-value cache
  (by default 1 x 512 and 8 x 128); tokens/s = batch x seq_len / time.
- **decode**: greedy generation of ``decode_tokens`` tokens (batch 1) after a
  ``DECODE_PROMPT``-token prompt, with the key-value cache: the prompt's prefill (which yields the
  first token) is not timed; the ``decode_tokens - 1`` one-token steps after it are. The tokens are
  those ``transformers``' ``generate`` gives with ``do_sample=False`` (tested).

Runtimes: ``torch`` (eager), ``torch-compile`` (inductor; its compile time is recorded, and a
failure is recorded as the reason it was skipped, never a crash) and ``torch-sparse-csr``: the
pruned model with every Linear whose weight has zeros (the LM head aside) stored as a sparse CSR
tensor (:class:`prunebench.metrics.latency.SparseCSRLinear`; embeddings and the LM head stay
dense) against the dense model in eager torch. It applies to unstructured and N:M masks; a model
without zeros (depth pruned) has nothing to run sparse and the row says so. A mask in dense
storage runs the same dense kernels, so about 1x is the expected result for unstructured and
N:M masks in eager and compiled torch: it is printed like any other.
"""

from __future__ import annotations

import copy
import inspect
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from prunebench.errors import ConfigError
from prunebench.latency_names import COMPILE, LM_RUNTIMES as RUNTIMES, SPARSE_CSR, TORCH as EAGER
from prunebench.metrics.latency import (
    SparseCSRLinear, cpu_name, interleaved_times, paired_speedup, short_reason, steady_allocator, torch_threads,
)

DECODE_PROMPT = 32  # tokens of the decode prompt
DENSE, PRUNED = "dense", "pruned"


@dataclass(frozen=True)
class SpeedOptions:
    """What to time; the defaults are the ones a run uses (docs/llm.md states their cost)."""

    prefill: tuple[tuple[int, int], ...] = ((1, 512), (8, 128))  # (batch, seq_len)
    decode_tokens: int = 64
    runtimes: tuple[str, ...] = (EAGER, SPARSE_CSR)
    warmup: int = 1
    repeats: int = 3

    def __post_init__(self) -> None:
        if any(b < 1 or s < 1 for b, s in self.prefill):
            raise ConfigError(f"lm_prefill: each shape needs batch and seq_len >= 1, got {self.prefill}")
        if self.decode_tokens < 2:
            raise ConfigError(f"lm_decode_tokens: must be >= 2, got {self.decode_tokens}")
        unknown = [r for r in self.runtimes if r not in RUNTIMES]
        if unknown:
            raise ConfigError(f"lm_runtimes: unknown {unknown[0]!r} (allowed: {', '.join(RUNTIMES)})")
        if self.warmup < 0 or self.repeats < 1:
            raise ConfigError(f"lm_speed_repeats must be >= 1 (and warmup >= 0), got {self.repeats}")


def parse_shape(text: str) -> tuple[int, int]:
    """``"8x128"`` -> (8, 128); ConfigError naming ``lm_prefill`` otherwise."""
    batch, sep, length = text.partition("x")
    if not sep or not batch.isdigit() or not length.isdigit() or int(batch) < 1 or int(length) < 1:
        raise ConfigError(f"lm_prefill: {text!r} is not a shape BATCHxSEQ_LEN such as '8x128'")
    return int(batch), int(length)


# ---------------------------------------------------------------------------------------------
# Greedy decoding with the key-value cache


def _cache_keyword(model: nn.Module) -> str:
    """How this transformers version's forward takes the cache (``cache`` since 5.x)."""
    params = inspect.signature(model.forward).parameters
    return "cache" if "cache" in params else "past_key_values"


def greedy_decode(model: nn.Module, prompt: torch.Tensor, new_tokens: int, *,
                  timed: list[float] | None = None, step: Callable[..., Any] | None = None) -> torch.Tensor:
    """``new_tokens`` greedy tokens after ``prompt`` ((batch, length) ids), with a DynamicCache:
    the prompt's prefill yields the first, each later step feeds the last token alone. ``timed``
    gets the seconds of those later steps; ``step`` (a compiled forward) replaces ``model``'s."""
    from transformers import DynamicCache

    forward = step if step is not None else model  # a module has no truth value of its own
    hf: Any = model  # a transformers model: it has a config
    cache = DynamicCache(config=hf.config)
    keyword = _cache_keyword(model)
    with torch.inference_mode():
        logits = forward(input_ids=prompt, use_cache=True, **{keyword: cache}).logits
        token = logits[:, -1].argmax(-1, keepdim=True)
        out = [token]
        start = time.perf_counter()
        for _ in range(new_tokens - 1):
            logits = forward(input_ids=token, use_cache=True, **{keyword: cache}).logits
            token = logits[:, -1].argmax(-1, keepdim=True)
            out.append(token)
        if prompt.device.type == "cuda":
            torch.cuda.synchronize(prompt.device)
        if timed is not None:
            timed.append(time.perf_counter() - start)
    return torch.cat(out, dim=1)


# ---------------------------------------------------------------------------------------------
# The runtimes' models


def sparse_csr_blocks(model: nn.Module) -> tuple[nn.Module, list[str]]:
    """A CPU copy of ``model`` whose Linears with zeros (the pruned ones; never the LM head) hold
    their weight as sparse CSR; returns it and the replaced layers' names (none: nothing to run sparse)."""
    copied = copy.deepcopy(model).cpu().float()
    head = getattr(copied, "get_output_embeddings", lambda: None)()
    linears = {name: m for name, m in copied.named_modules()
               if isinstance(m, nn.Linear) and m is not head and bool((m.weight == 0).any())}
    sparse = list(linears)
    with warnings.catch_warnings():  # torch warns that CSR support is beta, once per process; the rows say CSR
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        for name in sparse:
            parent, _, child = name.rpartition(".")
            setattr(copied.get_submodule(parent), child, SparseCSRLinear(linears[name]))
    return copied, sparse


class Skipped(Exception):
    """A runtime that cannot run here; the message says why."""


@dataclass
class Prepared:
    """The two forwards one runtime times, and what preparing them said."""

    dense: Callable[..., Any]
    pruned: Callable[..., Any]
    dense_model: nn.Module
    pruned_model: nn.Module
    note: str = ""
    warmup_s: list[float] = field(default_factory=list)  # per prefill shape, both models' warmup calls


def prepare(runtime: str, dense: nn.Module, pruned: nn.Module) -> Prepared:
    if runtime == EAGER:
        return Prepared(dense, pruned, dense, pruned)
    if runtime == SPARSE_CSR:
        if next(pruned.parameters()).device.type != "cpu":
            raise Skipped("sparse CSR timing runs on CPU only")
        sparse, names = sparse_csr_blocks(pruned)
        if not names:
            raise Skipped("no Linear of the pruned model has zeros: nothing to run sparse")
        total = len([n for n, m in pruned.named_modules() if isinstance(m, nn.Linear)])
        return Prepared(dense, sparse, dense, sparse, note=f"{len(names)} of {total} Linear layers as sparse CSR "
                        "(those with zeros; embeddings and LM head dense)")
    if runtime == COMPILE:
        try:
            return Prepared(torch.compile(dense), torch.compile(pruned), dense, pruned)
        except Exception as exc:  # noqa: BLE001  (a backend missing here fails in many types)
            raise Skipped(f"torch.compile unavailable: {short_reason(exc)}") from None
    raise ConfigError(f"lm_runtimes: unknown {runtime!r} (allowed: {', '.join(RUNTIMES)})")


# ---------------------------------------------------------------------------------------------
# Timing


@dataclass(frozen=True)
class SpeedRow:
    """One runtime x phase x shape, dense and pruned timed in the same rounds."""

    runtime: str
    phase: str  # prefill or decode
    batch_size: int
    seq_len: int  # prefill: tokens per sequence; decode: tokens generated
    dense_ms: float | None = None  # median per timed call
    pruned_ms: float | None = None
    dense_tokens_per_s: float | None = None
    pruned_tokens_per_s: float | None = None
    measured_speedup: float | None = None  # median of the per-round ratios dense time / pruned time
    measured_speedup_iqr: tuple[float, float] | None = None
    rounds: int = 0
    note: str | None = None
    skipped: str | None = None

    @property
    def form(self) -> str:
        """How a record names it: ``prefill 8x128`` or ``decode 64``."""
        if self.phase == "prefill":
            return f"prefill {self.batch_size}x{self.seq_len}"
        return f"decode {self.seq_len}" if self.phase == "decode" else self.phase


def _row(runtime: str, phase: str, batch: int, length: int, tokens: int, times: dict[str, list[float]],
         note: str) -> SpeedRow:
    """From seconds per round (per model) to tokens/s; ``tokens`` counted per timed call."""
    import statistics

    ratio, q1, q3 = paired_speedup(times[DENSE], times[PRUNED])
    dense_s, pruned_s = statistics.median(times[DENSE]), statistics.median(times[PRUNED])
    return SpeedRow(runtime, phase, batch, length, dense_ms=dense_s * 1000.0, pruned_ms=pruned_s * 1000.0,
                    dense_tokens_per_s=tokens / dense_s, pruned_tokens_per_s=tokens / pruned_s,
                    measured_speedup=ratio, measured_speedup_iqr=(q1, q3), rounds=len(times[DENSE]),
                    note=note or None)


def _prefill_seconds(prepared: Prepared, prompt: torch.Tensor, options: SpeedOptions) -> dict[str, list[float]]:
    def runner(forward: Callable[..., Any]) -> Callable[[], object]:
        def run() -> object:
            with torch.inference_mode():
                out = forward(input_ids=prompt, use_cache=False)
            if prompt.device.type == "cuda":
                torch.cuda.synchronize(prompt.device)
            return out
        return run

    runners = {DENSE: runner(prepared.dense), PRUNED: runner(prepared.pruned)}
    started = time.perf_counter()
    for run in runners.values():  # warmup first: under torch.compile this is where each model compiles
        for _ in range(options.warmup):
            run()
    prepared.warmup_s.append(time.perf_counter() - started)
    ms = interleaved_times(runners, 0, options.repeats)
    return {label: [t / 1000.0 for t in times] for label, times in ms.items()}


def _decode_seconds(prepared: Prepared, prompt: torch.Tensor, options: SpeedOptions) -> dict[str, list[float]]:
    """Decode in turns: each round runs the dense model's, then the pruned model's generation."""
    models = {DENSE: (prepared.dense_model, prepared.dense), PRUNED: (prepared.pruned_model, prepared.pruned)}
    for _ in range(options.warmup):
        for model, step in models.values():
            greedy_decode(model, prompt, options.decode_tokens, step=step)
    times: dict[str, list[float]] = {DENSE: [], PRUNED: []}
    for _ in range(options.repeats):
        for label, (model, step) in models.items():
            greedy_decode(model, prompt, options.decode_tokens, timed=times[label], step=step)
    return times


def random_tokens(vocab: int, batch: int, length: int, device: torch.device, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, vocab, (batch, length), generator=torch.Generator().manual_seed(seed)).to(device)


@dataclass(frozen=True)
class SpeedResult:
    """Every row, and where they were timed."""

    rows: list[SpeedRow]
    device: str  # the CPU's model name, or the CUDA device
    threads: int
    allocator: str | None
    dtype: str
    warmup: int
    repeats: int
    compile_s: float | None  # torch.compile: the first prefill shape's warmup, both models compiled in it
    wall_s: float  # all of it

    def row(self, runtime: str, phase: str) -> SpeedRow | None:
        return next((r for r in self.rows if r.runtime == runtime and r.phase == phase and not r.skipped), None)


def measure_speed(dense: nn.Module, pruned: nn.Module, options: SpeedOptions | None = None, *,
                  threads: int | None = None) -> SpeedResult:
    """Every row of ``options`` for ``dense`` against ``pruned`` (on one device, float32), and
    where it ran: CPU, threads, allocator, wall time. Modes and threads are left as they were."""
    options = options or SpeedOptions()
    device = next(dense.parameters()).device
    if next(pruned.parameters()).device != device:
        raise ConfigError(f"dense and pruned models must be on one device, got {device} and "
                          f"{next(pruned.parameters()).device}")
    hf: Any = dense  # a transformers model: it has input embeddings
    vocab = int(hf.get_input_embeddings().num_embeddings)
    started = time.perf_counter()
    modes = (dense.training, pruned.training)
    dense.eval()
    pruned.eval()
    allocator = "" if device.type == "cuda" else steady_allocator()
    rows: list[SpeedRow] = []
    compile_s: float | None = None
    try:
        with torch_threads(threads) as used:
            for runtime in options.runtimes:
                rows_before = len(rows)
                try:
                    prepared = prepare(runtime, dense, pruned)
                    for batch, length in options.prefill:
                        prompt = random_tokens(vocab, batch, length, device)
                        rows.append(_row(runtime, "prefill", batch, length, batch * length,
                                         _prefill_seconds(prepared, prompt, options), prepared.note))
                    if runtime == COMPILE:
                        compile_s = prepared.warmup_s[0]
                    prompt = random_tokens(vocab, 1, DECODE_PROMPT, device)
                    rows.append(_row(runtime, "decode", 1, options.decode_tokens, options.decode_tokens - 1,
                                     _decode_seconds(prepared, prompt, options), prepared.note))
                except Skipped as exc:
                    rows.append(SpeedRow(runtime, "all", 0, 0, skipped=str(exc)))
                except Exception as exc:  # noqa: BLE001  (a compiler failing mid-run: recorded, not a crash)
                    if runtime != COMPILE:
                        raise
                    del rows[rows_before:]
                    rows.append(SpeedRow(runtime, "all", 0, 0, skipped=f"torch.compile failed: {short_reason(exc)}"))
    finally:
        dense.train(modes[0])
        pruned.train(modes[1])
    return SpeedResult(rows, cpu_name() if device.type == "cpu" else str(device), used, allocator or None,
                       str(next(dense.parameters()).dtype).removeprefix("torch."), options.warmup, options.repeats,
                       compile_s, time.perf_counter() - started)


def speed_options(prefill: Sequence[str], decode_tokens: int, runtimes: Sequence[str], repeats: int) -> SpeedOptions:
    """SpeedOptions from the settings' spelling (``"8x128"``)."""
    return SpeedOptions(prefill=tuple(parse_shape(s) for s in prefill), decode_tokens=decode_tokens,
                        runtimes=tuple(runtimes), repeats=repeats)
