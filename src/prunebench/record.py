"""One typed record per run: what the pipeline returns, what result.json holds, what the store
indexes and what the report reads. A field means one thing; metric definitions: docs/metrics.md.

result.json is ``RunResult.model_dump_json()``; its ``schema_version`` says which layout it is.
A result written before the record existed (a flat dict without ``schema_version``) loads
through :func:`from_legacy`, which logs that it converted it.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from prunebench.errors import DataError
from prunebench.target import Target

log = logging.getLogger("prunebench")

SCHEMA_VERSION = 2  # 2: language-model runs (perplexity, accuracy optional); a 1 loads as is
READABLE_VERSIONS = (1, 2)
RECIPE_ID_LENGTH = 10

Role = Literal["method", "control", "dense"]
CONTROL_PREFIX = "random"  # rows written before roles existed: their controls were strategy 'random'


class Record(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Sizes(Record):
    """Parameter counts. compression_ratio = params_total / params_nonzero (whole model)."""

    params_total: int
    params_nonzero: int
    prunable_total: int
    prunable_nonzero: int
    compression_ratio: float
    prunable_compression_ratio: float
    sparsity: float  # pruned / prunable
    layer_sparsity: dict[str, float] = {}
    storage_bytes: int | None = None  # the compress stage's stored form, every part counted (Storage)
    storage_compression_ratio: float | None = None  # 4 x params_total / storage_bytes

    @classmethod
    def of(cls, metrics: Any) -> Sizes:
        """From :class:`prunebench.metrics.size.SizeMetrics`."""
        return cls(
            params_total=metrics.params_total, params_nonzero=metrics.params_nonzero,
            prunable_total=metrics.prunable_total, prunable_nonzero=metrics.prunable_nonzero,
            compression_ratio=metrics.compression_ratio, prunable_compression_ratio=metrics.prunable_compression_ratio,
            sparsity=metrics.sparsity, layer_sparsity=metrics.layer_sparsity,
        )


class LayerMacs(Record):
    dense: int
    effective: int


class Macs(Record):
    """MACs of one example. theoretical_speedup = dense / effective."""

    dense: int
    effective: int
    theoretical_speedup: float
    per_layer: dict[str, LayerMacs] = {}

    @classmethod
    def of(cls, metrics: Any) -> Macs:
        """From :class:`prunebench.metrics.flops.MacMetrics`."""
        return cls(
            dense=metrics.dense_total, effective=metrics.effective_total,
            theoretical_speedup=metrics.theoretical_speedup,
            per_layer={name: LayerMacs(dense=n, effective=metrics.effective[name]) for name, n in metrics.dense.items()},
        )


class Accuracy(Record):
    """Test accuracy over every test example once; val_* from the split held out of training."""

    top1: float
    top5: float
    loss: float | None = None
    test_examples: int | None = None
    val_top1: float | None = None
    pre_retrain_top1: float | None = None  # right after pruning, before any retraining
    pre_retrain_top5: float | None = None
    dense_top1: float
    dense_top5: float | None = None
    dense_val_top1: float | None = None
    quantized_top1: float | None = None  # the compress stage's model, decoded from its stored form
    quantized_top5: float | None = None


class LatencyForm(Record):
    """Dense and pruned timed in turns in one deployment form under one runtime; ``skipped``
    says why this runtime could not run it (then no times)."""

    runtime: str
    form: str
    dense_ms: float | None = None
    pruned_ms: float | None = None
    measured_speedup: float | None = None  # median of the per-round ratios dense / pruned
    measured_speedup_iqr: tuple[float, float] | None = None
    skipped: str | None = None
    # language models (prunebench.metrics.lm_speed): the form is "prefill BxS" or "decode N";
    # the times are per call (a prefill pass; the N-1 decode steps after the prompt)
    dense_tokens_per_s: float | None = None
    pruned_tokens_per_s: float | None = None
    note: str | None = None  # what the runtime changed (sparse CSR: which layers)


class LatencyBest(Record):
    """Each model in its own fastest runtime and form; measured_speedup = dense_ms / pruned_ms."""

    dense_runtime: str
    dense_form: str
    dense_ms: float
    pruned_runtime: str
    pruned_form: str
    pruned_ms: float
    measured_speedup: float


class Latency(Record):
    """Dense and pruned latency timed in turns; measured_speedup = dense / pruned (median of ratios).

    The top-level times are the first runtime and form measured (torch eager unless the run's
    settings say otherwise); ``forms`` holds every runtime x form asked for, ``best`` each model
    in its fastest one. Records written before forms existed are eager, with neither.
    """

    runtime: str
    form: str = "eager"
    allocator: str | None = None
    device: str
    threads: int
    batch_size: int
    dtype: str
    repeats: int
    dense_ms: float
    pruned_ms: float
    measured_speedup: float
    measured_speedup_iqr: tuple[float, float]
    compacted: bool
    # language models: prefill of batch_size sequences of seq_len tokens
    seq_len: int | None = None
    dense_tokens_per_s: float | None = None
    pruned_tokens_per_s: float | None = None
    dense_weight_bytes: int | None = None
    pruned_weight_bytes: int | None = None
    sparse_kernels: str | None = None  # which sparse kernels the runtime had for this mask (CPU: none)
    forms: list[LatencyForm] = []
    best: LatencyBest | None = None
    compile_s: float | None = None  # language models: torch.compile's first prefill shape, compile included
    speed_wall_s: float | None = None  # language models: what timing every form took


class Retraining(Record):
    """How the pruned network was obtained and trained after pruning."""

    schedule: str
    structure: str
    mode: str
    recipe: dict[str, Any]  # the final training's recipe, epochs as run
    log: list[dict[str, Any]] = []  # per epoch of the final training
    rounds: list[dict[str, Any]] = []  # iterative: one entry per round
    gradual_updates: list[dict[str, int]] = []
    sparsity_training: dict[str, Any] | None = None  # a channel strategy's own training phase (slimming)


class StorageLayer(Record):
    """One weight-shared layer's stored form; ``bytes`` by part (count, codebook, indices, gaps, tables)."""

    kind: str
    bits: int
    index_bits: int
    clusters: int
    entries: int  # stored entries, filler zeros included
    fillers: int
    bytes: dict[str, int]
    total_bytes: int


WEIGHT_PARTS = ("codebook", "indices", "gaps")  # StorageLayer.bytes parts that encode the weights themselves


class Storage(Record):
    """The compress stage (Deep Compression): storage_compression_ratio = dense_bytes / storage_bytes.

    dense_bytes = 4 x params_total (fp32); storage_bytes = the shared layers' total_bytes +
    unshared_bytes (4 per parameter that is not shared)."""

    dense_bytes: int
    storage_bytes: int
    unshared_bytes: int
    huffman: bool
    layers: dict[str, StorageLayer]
    finetune_log: list[dict[str, Any]] = []  # per epoch of centroid fine-tuning

    @property
    def shared_weight_bytes(self) -> int:
        """The shared layers' codebooks, indices and gaps only: storage_bytes without the
        unshared parameters (biases), the Huffman tables and the per-layer entry counts."""
        return sum(layer.bytes.get(part, 0) for layer in self.layers.values() for part in WEIGHT_PARTS)

    @property
    def ratio_without_biases_and_tables(self) -> float:
        """dense_bytes / shared_weight_bytes: the ratio counted as weights and their index alone."""
        return self.dense_bytes / self.shared_weight_bytes


class Trainability(Record):
    """Right after pruning, before retraining, on a fixed training batch (Wang et al. 2023): mean
    and spread of the input-output Jacobian's singular values, how they were computed, and the
    cross-entropy on the batch. Exact values (every singular value) and the sketch's approximate
    top K are different quantities under different names; one pair is set. Definitions: docs/metrics.md."""

    jsv_mean: float | None  # method 'exact' (torch.func): every singular value
    jsv_std: float | None
    method: str  # 'exact' or 'randomized-svd-k<K>'
    batch_loss: float
    examples: int | None = None
    jsv_top32_mean_approx: float | None = None  # method 'randomized-svd-k<K>': the approximate top K
    jsv_top32_std_approx: float | None = None

    @model_validator(mode="before")
    @classmethod
    def sketch_under_its_own_name(cls, data: Any) -> Any:
        """Results written before the split filed the sketch's top K under jsv_mean / jsv_std."""
        if isinstance(data, Mapping) and data.get("method", "exact") != "exact" and "jsv_top32_mean_approx" not in data:
            return {**data, "jsv_mean": None, "jsv_std": None,
                    "jsv_top32_mean_approx": data.get("jsv_mean"), "jsv_top32_std_approx": data.get("jsv_std")}
        return data

    @property
    def mean(self) -> tuple[str, float]:
        """(name, value) of the mean this run has: the exact one, else the sketch's."""
        if self.jsv_mean is not None:
            return "jsv_mean", self.jsv_mean
        return "jsv_top32_mean_approx", float(self.jsv_top32_mean_approx or 0.0)

    @classmethod
    def of(cls, metrics: Any) -> Trainability:
        """From :class:`prunebench.metrics.trainability.TrainabilityMetrics`."""
        return cls(jsv_mean=metrics.jsv_mean, jsv_std=metrics.jsv_std, method=metrics.method,
                   batch_loss=metrics.batch_loss, examples=metrics.examples,
                   jsv_top32_mean_approx=metrics.jsv_top32_mean_approx, jsv_top32_std_approx=metrics.jsv_top32_std_approx)


class Cost(Record):
    """What the run cost: seconds of scoring and selection (every pruning step, and a channel
    strategy's own sparsity-training phase) and of all retraining after pruning, and the largest pruning step's peak memory above
    what was in use when it started (MB = 2^20 bytes; ``peak_method`` says how it was measured)."""

    prune_s: float
    retrain_s: float
    prune_peak_mb: float
    peak_method: str = ""  # 'cuda-allocator' or 'rss-sampled-1ms' (prunebench.metrics.cost)


class Timings(Record):
    """Seconds. dense_train is 0 when the dense checkpoint was reused."""

    dense_train: float = 0.0
    prune: float = 0.0
    retrain: float = 0.0  # all (re)training after the dense checkpoint
    compress: float = 0.0  # weight sharing, centroid fine-tuning and coding
    wall: float


class Provenance(Record):
    """What the result was produced with."""

    prunebench: str | None = None
    git_commit: str | None = None
    torch: str | None = None
    python: str | None = None
    platform: str | None = None
    host: str | None = None
    device: str | None = None
    threads: int | None = None
    plugins: tuple[str, ...] = ()  # user modules this process imported (prunebench.plugins)
    dataset_checksums: dict[str, str] = {}
    dense_cached: bool = False


class LanguageModel(Record):
    """What a language-model run's perplexities and pruning were measured on and with.

    Perplexity = exp(mean negative log-likelihood) over the scored tokens of the evaluation
    split, in windows of ``window`` tokens moved by ``stride`` (each token scored at most once), by
    ``protocol`` (``papers``: disjoint windows, the tail dropped; records written before the
    protocols existed were ``sliding``)."""

    description: str  # e.g. the source format: a dequantized GGUF is not its fp16 original
    source: str
    pretrained_sha256: str  # the pretrained weights every strategy pruned
    num_parameters: int
    tokenizer: str
    text_split: dict[str, Any] = {}  # which files / ranges are calibration and evaluation
    window: int
    stride: int
    tokens_scored: int
    protocol: str = "sliding"
    calibration_n_samples: int | None = None
    calibration_seq_len: int | None = None
    calibration_seed: int | None = None
    allocation: str | None = None
    recovery: dict[str, Any] | None = None  # steps, lr, batch_tokens and the loss per step
    macs_per: str = "token"  # Macs count one token's pass through the linear layers (see docs/metrics.md)


class Measurement(Record):
    """What :func:`prunebench.measure` reports for a user's own model: the parts that apply."""

    sizes: Sizes
    macs: Macs
    top1: float
    top5: float
    loss: float | None = None
    test_examples: int


class TaskScore(Record):
    """One zero-shot task's accuracy on the items a run scored (prunebench.metrics.choice: lm-eval's
    acc and acc_norm), each with its Wilson 95% interval over the items. ``correct`` and
    ``correct_norm`` hold one character per item, "1" right and "0" wrong, in the task's item
    order, for paired tests between runs; ``items_sha256`` names the items, so only runs that
    scored the very same items are paired."""

    n: int
    acc: float
    acc_low: float
    acc_high: float
    acc_norm: float
    acc_norm_low: float
    acc_norm_high: float
    items_sha256: str
    correct: str
    correct_norm: str


class RunResult(Record):
    """One run, pruned or dense baseline (a dense baseline: no target, no retraining).

    Whether a run is a method or a control is not in it: that belongs to the plan that ran it
    (the same spec is a control when a sweep adds it and a method when listed), so the results
    database keeps it as the row's ``role``."""

    schema_version: Literal[2] = SCHEMA_VERSION
    # The rules run_id and dense_id were hashed under (prunebench.spec.hashing.SPEC_VERSION); None: a
    # result from before versioned ids, whose ids the current rules never produce.
    spec_version: int | None = None
    run_id: str
    dense_id: str
    dense_sha256: str | None = None
    spec: dict[str, Any]  # the resolved spec (a dense baseline: its dense spec)
    target: Target | None = None
    sizes: Sizes
    macs: Macs
    accuracy: Accuracy | None = None  # classifiers; a language model has perplexities instead
    dense_perplexity: float | None = None  # language models: the pretrained model
    pre_finetune_perplexity: float | None = None  # right after pruning, before any recovery
    perplexity: float | None = None  # after recovery (equal to the previous without one)
    dense_tasks: dict[str, TaskScore] | None = None  # language models with evaluation.tasks: the pretrained model
    tasks: dict[str, TaskScore] | None = None  # and the model the run ends with
    language_model: LanguageModel | None = None
    latency: Latency | None = None
    retraining: Retraining | None = None
    storage: Storage | None = None  # only with a compress stage
    trainability: Trainability | None = None  # right after pruning; None before it was recorded
    cost: Cost | None = None  # None in results written before it was recorded (timings has the seconds)
    timings: Timings
    provenance: Provenance


def load_result(data: Mapping[str, Any] | str | bytes) -> RunResult:
    """A RunResult from its JSON (text or parsed); the flat layout from before the record converts."""
    parsed: Any = json.loads(data) if isinstance(data, (str, bytes)) else data
    if not isinstance(parsed, Mapping):
        raise DataError("a run result must be a JSON object")
    if "schema_version" not in parsed:
        return from_legacy(parsed)
    if parsed["schema_version"] not in READABLE_VERSIONS:
        raise DataError(
            f"result schema_version {parsed['schema_version']!r} is not {SCHEMA_VERSION}: "
            "written by another prunebench version; read it with that version"
        )
    if parsed["schema_version"] == 1:  # every version-1 record is a version-2 one
        parsed = {**parsed, "schema_version": SCHEMA_VERSION}
    if "role" in parsed:  # results written before the role moved to the database row
        parsed = {k: v for k, v in parsed.items() if k != "role"}
    try:
        return RunResult.model_validate(parsed)
    except ValidationError as exc:
        raise DataError(f"invalid run result: {str(exc).splitlines()[0]}") from None


def read_result(path: Path) -> RunResult:
    """Load ``path`` (a result.json) through :func:`load_result`."""
    try:
        return load_result(path.read_text())
    except (DataError, json.JSONDecodeError) as exc:
        raise DataError(f"{path}: {exc}") from None


def from_legacy(old: Mapping[str, Any]) -> RunResult:
    """Convert a result written before ``schema_version`` existed (flat keys) into a RunResult.

    The old ``target_compression`` is dropped: the target is re-derived from the spec, so a
    round-count or N:M run gets its own target kind instead of the default compression.
    """
    log.info("converting a result without schema_version (run %s) to schema %d", old.get("run_id") or old.get("dense_id"), SCHEMA_VERSION)
    spec = dict(old["spec"])
    dense = "prune" not in spec
    top1 = old["top1"]
    accuracy = Accuracy(
        top1=top1, top5=old["top5"], loss=old.get("loss"), test_examples=old.get("test_examples"),
        val_top1=old.get("val_top1", old.get("dense_val_top1")),
        pre_retrain_top1=None if dense else old.get("pre_finetune_top1"),
        pre_retrain_top5=None if dense else old.get("pre_finetune_top5"),
        dense_top1=old["dense_top1"], dense_top5=old.get("dense_top5", old["top5"] if dense else None),
        dense_val_top1=old.get("dense_val_top1"),
    )
    params_total, params_nonzero = old["params_total"], old["params_nonzero"]
    sizes = Sizes(
        params_total=params_total, params_nonzero=params_nonzero,
        prunable_total=old.get("prunable_total", 0), prunable_nonzero=old.get("prunable_nonzero", 0),
        compression_ratio=old["compression_ratio"], prunable_compression_ratio=old["prunable_compression_ratio"],
        sparsity=old.get("sparsity", 0.0), layer_sparsity=old.get("layer_sparsity", {}),
    )
    macs = Macs(
        dense=old["macs_dense"], effective=old["macs_effective"], theoretical_speedup=old["theoretical_speedup"],
        per_layer={k: LayerMacs(**v) for k, v in old.get("macs_per_layer", {}).items()},
    )
    latency = None
    if old.get("latency"):
        latency = Latency(**old["latency"], measured_speedup=old["measured_speedup"])
    timings = old.get("timings_s", {})
    provenance = Provenance(
        **old.get("provenance", {}), dataset_checksums=old.get("dataset_checksums", {}),
        dense_cached=bool(old.get("dense_cached", False)),
    )
    retraining = None if dense else Retraining(
        schedule=old.get("schedule", "one-shot"), structure=old.get("structure", "unstructured"),
        mode=old.get("retrain_mode", "finetune"), recipe=old.get("retrain_recipe", {}),
        log=old.get("finetune_log", []), rounds=old.get("rounds", []), gradual_updates=old.get("gradual_updates", []),
    )
    return RunResult(
        run_id=old.get("run_id") or dense_run_id(old["dense_id"]),
        dense_id=old["dense_id"], dense_sha256=old.get("dense_sha256"), spec=spec,
        target=None if dense else Target.from_prune(spec["prune"]),
        sizes=sizes, macs=macs, accuracy=accuracy, latency=latency, retraining=retraining,
        timings=Timings(
            dense_train=timings.get("dense_train", 0.0 if old.get("dense_cached") else old.get("wall_time_s", 0.0)),
            prune=timings.get("prune", 0.0), retrain=timings.get("finetune", 0.0), wall=old.get("wall_time_s", 0.0),
        ),
        provenance=provenance,
    )


DENSE_PREFIX = "dense-"


def dense_run_id(dense_id: str) -> str:
    """The run id of a dense baseline row: its dense checkpoint's id, prefixed."""
    return DENSE_PREFIX + dense_id


def recipe_id(*sections: Any) -> str:
    """A short id of resolved spec sections (JSON), e.g. ``recipe_id(spec['train'])``."""
    payload = json.dumps(list(sections), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(payload.encode()).hexdigest()[:RECIPE_ID_LENGTH]


def index_of(spec: Mapping[str, Any]) -> dict[str, Any]:
    """The columns a results index keeps for a run, from its resolved spec (a dense spec has no prune)."""
    prune = spec.get("prune")
    if prune is None:
        return {
            "target_kind": None, "target_value": None, "structure": None, "schedule": None, "retrain_mode": None,
            "dense_recipe": recipe_id(spec.get("train", {})), "retrain_recipe": None,
        }
    target = Target.from_prune(prune)
    if "recovery" in spec:  # a language model: no dense training or retraining mode
        return {
            "target_kind": target.kind, "target_value": target.value,
            "structure": prune.get("structure", "unstructured"), "schedule": None, "retrain_mode": None,
            "dense_recipe": None, "retrain_recipe": recipe_id(spec["recovery"]),
        }
    return {
        "target_kind": target.kind, "target_value": target.value,
        "structure": prune.get("structure", "unstructured"), "schedule": prune.get("schedule", "one-shot"),
        "retrain_mode": spec.get("retrain", {}).get("mode", "finetune"),
        "dense_recipe": recipe_id(spec.get("train", {})),
        "retrain_recipe": recipe_id(spec.get("finetune", {}), spec.get("retrain", {})),
    }


def role_of(role: str | None, strategy: str | None, dense: bool) -> Role:
    """A row's role: as recorded, else (rows from before roles) dense, or a control named random*."""
    if role in ("method", "control", "dense"):
        return role  # type: ignore[return-value]
    if dense:
        return "dense"
    return "control" if (strategy or "").startswith(CONTROL_PREFIX) else "method"
