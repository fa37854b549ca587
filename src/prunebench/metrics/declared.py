"""Every metric a run records, declared once: its name, unit, place in the record, direction,
docs anchor, definition and the code that computes it.

``prunebench results`` names its columns and reads their values from here, the report takes its
table headers, axis labels and the direction that decides "better" from here, and the table in
docs/metrics.md is this module's output (``python -m prunebench.metrics.declared``; a test keeps
the two equal). A new metric is one entry in ``DECLARED``; an approximation gets its own entry,
never another's name.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from prunebench.registry import Registry

Direction = Literal["higher", "lower", "none"]
DOCS = "docs/metrics.md"
BEGIN = "<!-- the table below is the output of `python -m prunebench.metrics.declared`; edit the declarations, not the table -->"
END = "<!-- end of the generated table -->"


@dataclass(frozen=True)
class Metric:
    """One recorded quantity. ``unit`` is the unit of the recorded value: a ``fraction`` is
    shown as a percentage, an ``x`` (a ratio) as a bare number."""

    name: str  # the column of `prunebench results`, the row of docs/metrics.md
    label: str  # how a table header names it
    unit: str
    path: str  # dotted place in result.json, the same attributes on a RunResult
    direction: Direction  # which way is better; "none": a setting or a diagnostic, not a score
    definition: str  # one line: docs/metrics.md's cell
    code: str  # the module that computes it, under src/prunebench/
    axis: str = ""  # a plot's axis label where it needs more than the header (the formula)

    @property
    def anchor(self) -> str:
        """The id of this metric's row in docs/metrics.md."""
        return self.name.replace("_", "-")

    @property
    def docs(self) -> str:
        return f"{DOCS}#{self.anchor}"

    @property
    def shown_unit(self) -> str:
        """The unit as tables print it: fractions as %, ratios bare."""
        return {"fraction": "%", "x": ""}.get(self.unit, self.unit)

    def header(self, qualifier: str = "") -> str:
        """``top-1 mean (%)``: the label, a qualifier, the shown unit in parentheses."""
        text = f"{self.label} {qualifier}".strip()
        return f"{text} ({self.shown_unit})" if self.shown_unit else text

    def axis_label(self) -> str:
        return self.axis or self.header()

    def read(self, record: Any) -> Any:
        """The value at ``path`` in a RunResult or its JSON; None where a part is absent."""
        value = record
        for part in self.path.split("."):
            if value is None:
                return None
            value = value.get(part) if isinstance(value, Mapping) else getattr(value, part, None)
        return value

    def better(self, difference: float) -> bool:
        """Whether a - b = ``difference`` says a is better."""
        if self.direction == "none":
            raise ValueError(f"metric {self.name!r} has no better direction")
        return difference > 0 if self.direction == "higher" else difference < 0

    def worse(self, difference: float) -> bool:
        return difference != 0 and not self.better(difference)

    def best_first(self, value: float) -> float:
        """A sort key that puts the best value first."""
        if self.direction == "none":
            raise ValueError(f"metric {self.name!r} has no better direction")
        return -value if self.direction == "higher" else value

    def surely_better(self, ci_low: float, ci_high: float) -> bool:
        """Whether an interval of a - b lies wholly on the better side of 0."""
        return self.better(ci_low) and self.better(ci_high)


SIZE = "metrics/size.py"
FLOPS = "metrics/flops.py"
ACCURACY = "metrics/accuracy.py"
LATENCY = "metrics/latency.py"
LM_LATENCY = "metrics/lm_latency.py"
TRAINABILITY = "metrics/trainability.py"

DECLARED: tuple[Metric, ...] = (
    Metric("params_total", "parameters", "parameters", "sizes.params_total", "none",
           "every parameter of the model (weights, biases, normalization, classifier; a weight tied to another, a language model's head to its embedding, counts once)", SIZE),
    Metric("params_nonzero", "nonzero parameters", "parameters", "sizes.params_nonzero", "lower",
           "parameters whose value is not exactly 0.0", SIZE),
    Metric("prunable_total", "prunable parameters", "parameters", "sizes.prunable_total", "none",
           "the parameters the prunable policy allows pruning (language models: the weights of the Linear layers inside the decoder blocks; embeddings, norms and the head are not prunable)", SIZE),
    Metric("prunable_nonzero", "nonzero prunable parameters", "parameters", "sizes.prunable_nonzero", "lower",
           "prunable parameters whose value is not exactly 0.0", SIZE),
    Metric("sparsity", "sparsity", "fraction", "sizes.sparsity", "higher",
           "pruned / prunable parameters = 1 - `prunable_nonzero` / `prunable_total`", SIZE,
           axis="sparsity (% of prunable weights pruned)"),
    Metric("compression_ratio", "compression", "x", "sizes.compression_ratio", "higher",
           "`params_total` / `params_nonzero`, over the whole model: what a `compression` target reaches", SIZE,
           axis="compression ratio (total / nonzero parameters)"),
    Metric("prunable_compression_ratio", "prunable compression", "x", "sizes.prunable_compression_ratio", "higher",
           "`prunable_total` / `prunable_nonzero` (what many papers call \"compression\")", SIZE),
    Metric("layer_sparsity", "layer sparsity", "fraction", "sizes.layer_sparsity", "none",
           "per prunable tensor: zeros / entries", SIZE),
    Metric("macs_dense", "dense MACs", "MACs", "macs.dense", "none",
           "multiply-accumulates of one example's forward pass at the model's input size, counted by `torch.utils.flop_counter` and attributed to the module that performs them; a language model: one per weight of each Linear layer (decoder blocks and head) per token, attention's score and value products (no weights, growing with the context) left out", FLOPS),
    Metric("macs_effective", "effective MACs", "MACs", "macs.effective", "lower",
           "MACs that involve a nonzero weight: per Linear/convolution, its dense MACs x its weight density (each weight is used equally often per example); modules without weights keep their dense MACs", FLOPS),
    Metric("theoretical_speedup", "speedup", "x", "macs.theoretical_speedup", "higher",
           "`macs_dense` / `macs_effective`", FLOPS, axis="theoretical speedup (dense MACs / effective MACs)"),
    Metric("dense_top1", "dense top-1", "fraction", "accuracy.dense_top1", "higher",
           "`top1` of the dense model the run pruned, evaluated once per dense checkpoint and shared by every run that prunes it", ACCURACY),
    Metric("pre_retrain_top1", "top-1 right after pruning", "fraction", "accuracy.pre_retrain_top1", "higher",
           "`top1` right after pruning, before any retraining", ACCURACY),
    Metric("top1", "top-1", "fraction", "accuracy.top1", "higher",
           "fraction of test examples whose label has the highest logit, over every test example exactly once, in eval mode, after retraining", ACCURACY,
           axis="test top-1 (%)"),
    Metric("top5", "top-5", "fraction", "accuracy.top5", "higher",
           "the same with the label among the five highest logits", ACCURACY),
    Metric("loss", "loss", "nats", "accuracy.loss", "lower",
           "mean cross-entropy over the same examples", ACCURACY),
    Metric("storage_bytes", "stored bytes", "bytes", "sizes.storage_bytes", "lower",
           "bytes of the compress stage's stored form, every part counted (see [Storage size](#storage-size-the-compress-stage))", "compress/storage.py"),
    Metric("storage_compression_ratio", "storage compression", "x", "sizes.storage_compression_ratio", "higher",
           "dense fp32 bytes / `storage_bytes` = 4 x `params_total` / `storage_bytes`", "experiment/compression.py"),
    Metric("quantized_top1", "quantized top-1", "fraction", "accuracy.quantized_top1", "higher",
           "top-1 of the model decoded from the compress stage's stored form", "experiment/compression.py"),
    Metric("quantized_top5", "quantized top-5", "fraction", "accuracy.quantized_top5", "higher",
           "top-5 of the same decoded model", "experiment/compression.py"),
    Metric("dense_perplexity", "dense perplexity", "", "dense_perplexity", "lower",
           "`perplexity` of the pretrained language model", "metrics/perplexity.py"),
    Metric("pre_finetune_perplexity", "perplexity after pruning", "", "pre_finetune_perplexity", "lower",
           "`perplexity` right after pruning, before any recovery", "metrics/perplexity.py"),
    Metric("perplexity", "perplexity", "", "perplexity", "lower",
           "exp of the mean negative log-likelihood of the evaluation tokens, after recovery (without one: right after pruning); windows: see [Language models](#language-models)", "metrics/perplexity.py",
           axis="evaluation perplexity (log scale)"),
    Metric("dense_ms", "dense ms", "ms", "latency.dense_ms", "lower",
           "median wall time of one eval-mode forward pass of the dense model over a fixed random batch, in the first runtime and form measured (see [Latency](#latency))", LATENCY),
    Metric("pruned_ms", "pruned ms", "ms", "latency.pruned_ms", "lower",
           "the same for the pruned model (channel-pruned: compacted), timed in turns with the dense one", LATENCY),
    Metric("first_form_measured_speedup", "measured speedup (first form)", "x", "latency.measured_speedup", "higher",
           "median of the per-round ratios dense / pruned latency in the first runtime and form measured; every form's is in `latency.forms`, with its interquartile range", LATENCY),
    Metric("measured_speedup", "measured speedup", "x", "latency.best.measured_speedup", "higher",
           "the dense model's fastest median over every runtime and form it was timed in / the pruned model's fastest: each model in the form a deployment would pick for it; the report's headline measured speedup (records without `latency.best`: the first form's)", LATENCY,
           axis="measured speedup (dense / pruned latency)"),
    Metric("dense_tokens_per_s", "dense prefill tokens/s", "tokens/s", "latency.dense_tokens_per_s", "higher",
           "language models: `batch_size` x `seq_len` / median time of one forward pass of the dense model over a random prompt, key-value cache off", LM_LATENCY),
    Metric("pruned_tokens_per_s", "pruned prefill tokens/s", "tokens/s", "latency.pruned_tokens_per_s", "higher",
           "the same for the pruned model, timed in turns with the dense one", LM_LATENCY),
    Metric("dense_weight_bytes", "dense weight bytes", "bytes", "latency.dense_weight_bytes", "lower",
           "language models: bytes of the dense model's parameters as stored (tied weights once)", LM_LATENCY),
    Metric("pruned_weight_bytes", "pruned weight bytes", "bytes", "latency.pruned_weight_bytes", "lower",
           "the same for the pruned model; zeros in dense storage count", LM_LATENCY),
    Metric("jsv_mean", "mean JSV", "", "trainability.jsv_mean", "none",
           "method `exact` only: right after pruning, on a fixed batch (the first 32 training examples), eval mode, the mean of every singular value of each example's input-output Jacobian d logits / d input, pooled over the batch (Wang et al. 2023); null where the Jacobian was sketched", TRAINABILITY),
    Metric("jsv_std", "JSV std", "", "trainability.jsv_std", "none",
           "their population standard deviation, method `exact` only", TRAINABILITY),
    Metric("jsv_top32_mean_approx", "approximate top-32 JSV mean", "", "trainability.jsv_top32_mean_approx", "none",
           "method `randomized-svd-k<K>` only: the mean of the top K = min(32, classes, input entries) singular values of a randomized range finder without oversampling, which come out low; a different quantity from `jsv_mean`, never mixed with it (results written before this name existed load under it)", TRAINABILITY),
    Metric("jsv_top32_std_approx", "approximate top-32 JSV std", "", "trainability.jsv_top32_std_approx", "none",
           "their population standard deviation, method `randomized-svd-k<K>` only", TRAINABILITY),
    Metric("batch_loss", "batch loss", "nats", "trainability.batch_loss", "lower",
           "cross-entropy on the same batch, at the same moment (`trainability.method` says how the JSVs were computed)", TRAINABILITY),
    Metric("prune_s", "prune s", "s", "cost.prune_s", "lower",
           "wall seconds of scoring and selection: every pruning step, plus a channel strategy's own sparsity training", "experiment/schedules.py"),
    Metric("retrain_s", "retrain s", "s", "cost.retrain_s", "lower",
           "wall seconds of all retraining after pruning", "experiment/schedules.py"),
    Metric("prune_peak_mb", "prune peak MB", "MB", "cost.prune_peak_mb", "lower",
           "the largest pruning step's peak memory above what was in use when it started, in 2^20 bytes: on CUDA the allocator's peak (`cuda-allocator`), on the CPU the resident set size sampled every millisecond (`rss-sampled-1ms`; memory the allocator reuses does not show); `cost.peak_method` says which", "metrics/cost.py"),
    Metric("wall_time_s", "wall s", "s", "timings.wall", "lower",
           "wall seconds of the whole run, from its start to its record", "experiment/pipeline.py"),
)

METRICS: Registry[Metric] = Registry("metric")
for _metric in DECLARED:
    METRICS.add(_metric.name, _metric)

# The ones the report reads by name.
TOP1 = METRICS.get("top1")
QUANTIZED_TOP1 = METRICS.get("quantized_top1")
PERPLEXITY = METRICS.get("perplexity")
PRE_FINETUNE_PERPLEXITY = METRICS.get("pre_finetune_perplexity")
SPARSITY = METRICS.get("sparsity")
COMPRESSION = METRICS.get("compression_ratio")
STORAGE_COMPRESSION = METRICS.get("storage_compression_ratio")
THEORETICAL_SPEEDUP = METRICS.get("theoretical_speedup")
MEASURED_SPEEDUP = METRICS.get("measured_speedup")
DENSE_MS = METRICS.get("dense_ms")
PRUNED_MS = METRICS.get("pruned_ms")
PRUNE_S = METRICS.get("prune_s")
RETRAIN_S = METRICS.get("retrain_s")
PRUNE_PEAK_MB = METRICS.get("prune_peak_mb")


def docs_table(metrics: Sequence[Metric] = DECLARED) -> str:
    """docs/metrics.md's table of metrics, between its markers."""
    lines = [BEGIN, "", "| metric | in result.json | unit | better | definition | code |", "| --- | --- | --- | --- | --- | --- |"]
    for m in metrics:
        better = "neither" if m.direction == "none" else m.direction
        lines.append(f'| <a id="{m.anchor}"></a>`{m.name}` | `{m.path}` | {m.unit or "-"} | {better} | {m.definition} | `{m.code}` |')
    return "\n".join([*lines, "", END]) + "\n"


if __name__ == "__main__":
    print(docs_table(), end="")
