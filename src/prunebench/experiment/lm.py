"""A causal language model's run: pretrained model -> prune one-shot -> optional recovery -> perplexity.

The same store as a classifier's run (``prunebench.store.layout``): ``<run_id>/result.json``,
``mask.pt`` and ``model.pt``, and ``dense/<dense_id>/dense.json`` for the dense perplexity,
computed once per dense spec (model, text, evaluation window) and reused while the pretrained
weights and the text keep the checksums it records. There is no dense checkpoint to write: the
dense model is the pretrained file, named by its SHA-256.

A worker process loads each model and tokenizes each text once and keeps them for its later
runs: every run starts from a fresh copy of the pretrained weights, so sharing them changes
nothing but the time.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from prunebench.spec import ExperimentSpec, RunSettings, TrainSpec
from prunebench.errors import ConfigError
from prunebench.experiment.lm_tasks import evaluate_tasks, task_items, tasks_current, tasks_from_json
from prunebench.experiment.pipeline import stored_result
from prunebench.experiment.result import DenseOutcome, Measured, Perplexities, PruneOutcome
from prunebench.experiment.run import run_stages
from prunebench.metrics.accuracy import AccuracyMetrics
from prunebench.metrics.size import size_metrics
from prunebench.pruning.mask import Mask
from prunebench.pruning.masking import KeepPruned
from prunebench.record import LanguageModel, LayerMacs, Latency, Macs, RunResult, Sizes
from prunebench.store.artifacts import read_json, save_tensors, write_json
from prunebench.store.layout import DENSE_FILE, dense_folder
from prunebench.store.lock import dense_lock
from prunebench.train import train

log = logging.getLogger("prunebench")

COMPACT_FOLDER = "compact"  # <run_id>/compact/: a width- or depth-pruned run's smaller dense model (save_pretrained)
RECOVERY_SEED_OFFSET = 1  # the recovery batches differ from the calibration draw of the same seed


@dataclass(frozen=True)
class Pretrained:
    """A fresh copy of the pretrained model (this run may prune it) and its tokenized text."""

    loaded: Any  # prunebench.models.lm.LoadedLM
    text: Any  # prunebench.data.text.TextSplits


def pretrained(spec: ExperimentSpec, settings: RunSettings) -> Pretrained:
    """The model and text of ``spec``; ConfigError/DataError on bad input.

    Both are read once per process (``load_causal_lm`` and ``load_text`` keep them), and every
    call gets its own copy of the weights, so a run never prunes the next run's dense model."""
    from prunebench.data.text import load_text
    from prunebench.models.lm import load_causal_lm

    loaded = load_causal_lm(spec.model, device=settings.device)
    text = load_text(spec.dataset, loaded.tokenizer, data_dir=settings.data_dir, download=settings.download,
                     eval_tokens=spec.evaluation.tokens, joined=spec.evaluation.protocol == "papers")
    return Pretrained(loaded, text)


def evaluation_tokens(spec: ExperimentSpec, text: Any, model: nn.Module | None = None) -> torch.Tensor:
    """The evaluation split as loaded: under ``protocol: papers`` all of it (the protocol picks
    its windows), under ``sliding`` at most ``evaluation.tokens``, from the middle of each text.
    ConfigError where it holds not one of the papers' windows, or where a window is longer
    than ``model`` has positions."""
    evaluation, length = spec.evaluation, text.evaluation.numel()
    if evaluation.protocol == "papers" and length < evaluation.window:
        raise ConfigError(f"evaluation.window: {evaluation.window} tokens is more than the whole evaluation split "
                          f"of {spec.dataset!r} ({length} tokens)")
    limit = getattr(getattr(model, "config", None), "max_position_embeddings", None)
    if limit is not None and min(evaluation.window, length) > limit:
        raise ConfigError(f"evaluation.window: {evaluation.window} tokens is longer than the model's {limit} positions")
    return text.evaluation


def evaluate(model: nn.Module, spec: ExperimentSpec, text: Any) -> Any:
    """The perplexity of ``model`` on the evaluation split by ``evaluation.protocol``
    (a :class:`prunebench.metrics.perplexity.PerplexityResult`)."""
    from prunebench.metrics.perplexity import papers_perplexity, perplexity

    evaluation, tokens = spec.evaluation, evaluation_tokens(spec, text)
    if evaluation.protocol == "papers":
        return papers_perplexity(model, tokens, seq_len=evaluation.window, max_tokens=evaluation.tokens)
    return perplexity(model, tokens, window=evaluation.window, stride=evaluation.resolved_stride)


def check_lm(spec: ExperimentSpec, settings: RunSettings) -> Pretrained:
    """Everything that can reject an LM run, writing nothing: model, text, calibration size, N:M fit."""
    from prunebench.data.text import calibration_samples
    from prunebench.pruning.layerwise import lm_prunable

    found = pretrained(spec, settings)
    evaluation_tokens(spec, found.text, found.loaded.model)
    calibration = spec.prune.calibration
    calibration_samples(found.text.calibration, calibration.n_samples, calibration.seq_len, spec.seed,
                        key="prune.calibration")
    if spec.recovery.steps:
        if spec.recovery.batch_tokens % calibration.seq_len:
            raise ConfigError(
                f"recovery.batch_tokens: {spec.recovery.batch_tokens} is not a multiple of "
                f"prune.calibration.seq_len ({calibration.seq_len}), the length of each recovery sequence"
            )
        calibration_samples(found.text.calibration, spec.recovery.batch_tokens // calibration.seq_len,
                            calibration.seq_len, spec.seed, key="recovery.batch_tokens")
        if spec.recovery.method == "lora":
            from prunebench.experiment.lora import lora_targets, require_peft

            require_peft()
            lora_targets(lm_prunable(found.loaded.model), spec.recovery)
    if spec.evaluation.tasks:
        task_items(spec.evaluation.tasks, spec.evaluation.task_items)  # the Wikipedia wheel is there and intact
    if _structure(spec).scores == "depth":  # whole blocks: the strategy, the count and the layout
        from prunebench.pruning.depth import check_depth_target

        check_depth_target(found.loaded.model, spec.prune.strategy, spec.prune.resolved_sparsity, spec.prune.allocation)
    if _structure(spec).scores == "width":  # whole units: the model's layout and the target's counts
        from prunebench.pruning.width.prune import check_width_target

        check_width_target(found.loaded.model, spec.prune.strategy, spec.prune.structure, spec.prune.resolved_sparsity,
                           spec.prune.allocation)
    pattern = _structure(spec).layer_pattern()  # (N, M) where N of every M inputs are kept
    if pattern is not None:
        for name, weight in lm_prunable(found.loaded.model).items():
            if weight.shape[-1] % pattern[1]:
                raise ConfigError(
                    f"prune.structure {spec.prune.structure!r}: M={pattern[1]} does not divide the input dimension "
                    f"{weight.shape[-1]} of {name}"
                )
    return found


def _structure(spec: ExperimentSpec) -> Any:
    from prunebench.pruning.structures import parse_structure

    return parse_structure(spec.prune.structure)


def lm_macs(model: nn.Module) -> Macs:
    """MACs of one token through the model's Linear layers, LM head included: each weight is one
    multiply-accumulate per token. Attention's score and value products grow with the context
    and hold no weights, so they are left out (docs/metrics.md)."""
    per_layer = {}
    for name, module in model.named_modules():
        if isinstance(module, nn.Linear):
            dense = module.weight.numel()
            per_layer[name] = LayerMacs(dense=dense, effective=int(torch.count_nonzero(module.weight)))
    dense = sum(m.dense for m in per_layer.values())
    effective = sum(m.effective for m in per_layer.values())
    return Macs(dense=dense, effective=effective, theoretical_speedup=dense / max(effective, 1), per_layer=per_layer)


def lm_sizes(model: nn.Module) -> Sizes:
    """Parameter counts; a weight tied to another (the LM head to the embedding) counts once."""
    from prunebench.pruning.layerwise import lm_prunable

    prunable = lm_prunable(model)
    params = dict(model.named_parameters())  # named_parameters lists a shared tensor once
    names = {id(p): n for n, p in params.items()}
    return Sizes.of(size_metrics(model, [names[id(p)] for p in prunable.values()]))


def dense_perplexity(spec: ExperimentSpec, found: Pretrained, results_dir: Path) -> dict[str, Any]:
    """The pretrained model's perplexity, computed once per dense spec under its lock and cached.

    A cached figure is reused only while the weights and the text still have the SHA-256s it
    records; otherwise it is computed again (and replaces the old file)."""
    dense = spec.dense_spec()
    folder = dense_folder(results_dir, dense.content_hash())
    checks = {"pretrained_sha256": found.loaded.sha256, "text_checksums": dict(found.text.checksums)}
    with dense_lock(folder):
        path = folder / DENSE_FILE
        if path.is_file():
            try:
                info = read_json(path)
            except (OSError, ValueError):
                info = None
            if (isinstance(info, dict) and all(info.get(k) == v for k, v in checks.items()) and "perplexity" in info
                    and tasks_current(info.get("tasks"), spec.evaluation.tasks, spec.evaluation.task_items)):
                info["cached"] = True
                return info
            log.warning("ignoring %s: not the dense perplexity of these weights and text; computing it again", path)
        started = time.perf_counter()
        result = evaluate(found.loaded.model, spec, found.text)
        info = {
            "spec": dense.model_dump(mode="json"), **checks, "perplexity": result.value,
            "tokens_scored": result.tokens_scored, "wall_time_s": time.perf_counter() - started,
        }
        if spec.evaluation.tasks:
            scores = evaluate_tasks(found.loaded.model, found.loaded.tokenizer, spec.evaluation.tasks,
                                    spec.evaluation.task_items)
            info["tasks"] = {task: score.model_dump(mode="json") for task, score in scores.items()}
        write_json(path, info)
    info["cached"] = False
    return info


class TokenBatches:
    """Recovery's batches for the training loop (:class:`prunebench.train.batches.BatchSource`):
    ``steps`` batches of ``per_step`` sequences of ``seq_len`` tokens from the calibration split,
    each batch both input and target (the loss shifts it by one token). Drawn once with ``seed``,
    or afresh each step (``seed + step``) when the split is shorter than all steps need. No
    validation: the evaluation split is never trained on."""

    def __init__(self, tokens: torch.Tensor, *, steps: int, per_step: int, seq_len: int, seed: int,
                 device: torch.device) -> None:
        from prunebench.data.text import calibration_samples

        self.tokens, self.per_step, self.seq_len, self.seed = tokens, per_step, seq_len, seed
        self._steps, self._device = steps, device
        self.drawn = calibration_samples(tokens, per_step * steps, seq_len, seed) \
            if per_step * steps * seq_len <= tokens.numel() else None

    @property
    def device(self) -> torch.device:
        return self._device

    def steps(self, spec: TrainSpec) -> int:
        return self._steps

    def examples(self, spec: TrainSpec) -> int:
        return self._steps * self.per_step

    def epoch(self, spec: TrainSpec, generator: torch.Generator, steps: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        from prunebench.data.text import calibration_samples

        for step in range(steps):
            if self.drawn is not None:
                batch = self.drawn[step * self.per_step:(step + 1) * self.per_step]
            else:  # fewer tokens than all steps need: a fresh draw each step
                batch = calibration_samples(self.tokens, self.per_step, self.seq_len, self.seed + step)
            batch = batch.to(self.device)
            yield batch, batch

    def validate(self, model: nn.Module) -> AccuracyMetrics | None:
        return None


def next_token_loss(model: Any) -> Callable[[Any, torch.Tensor], torch.Tensor]:
    """The causal model's own next-token cross-entropy of its output against the batch: what
    ``model(input_ids=batch, labels=batch).loss`` computes, from the logits the loop's forward gave."""
    def loss(output: Any, labels: torch.Tensor) -> torch.Tensor:
        return model.loss_function(logits=output.logits, labels=labels, vocab_size=model.config.vocab_size)
    return loss


def recover(model: nn.Module, mask: Mask, spec: ExperimentSpec, text: Any) -> dict[str, Any] | None:
    """The optional short fine-tune, through the training loop: AdamW at a constant LR for
    ``recovery.steps`` steps (one epoch of :class:`TokenBatches`), next-token loss, the mask held
    exactly. ``recovery.method``: ``full`` trains every weight, re-masked after each step
    (:class:`KeepPruned`, as for classifiers); ``lora`` trains masked LoRA adapters and merges
    them (:mod:`prunebench.experiment.lora`). The global RNG is left as it was.

    Sequences come from the calibration split with the run's seed (offset, so not the very
    calibration draw); the evaluation split is never trained on."""
    recovery = spec.recovery
    steps = recovery.steps
    if steps == 0:
        return None
    seq_len = spec.prune.calibration.seq_len
    per_step = recovery.batch_tokens // seq_len
    seed = spec.seed + RECOVERY_SEED_OFFSET
    source = TokenBatches(text.calibration, steps=steps, per_step=per_step, seq_len=seq_len, seed=seed,
                          device=next(model.parameters()).device)
    recipe = TrainSpec(epochs=1, optimizer="adamw", lr=recovery.lr, weight_decay=0.0, batch_size=per_step)
    losses: list[float] = []
    about: dict[str, Any] = {}
    started = time.perf_counter()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)  # anything random in the model's forward (dropout) draws from the run's seed
        if recovery.method == "lora":
            from prunebench.experiment.lora import lora_adapters
            from prunebench.pruning.layerwise import lm_prunable

            with lora_adapters(model, mask, recovery, lm_prunable(model)) as adapters:
                train(model, source, recipe, seed=seed, callbacks=[], stage="recovery",
                      loss_fn=next_token_loss(model), step_losses=losses)
            about = {"rank": recovery.rank, "alpha": recovery.alpha, "target_modules": list(recovery.target_modules),
                     "adapted_layers": len(adapters.layers), "trainable_parameters": adapters.trainable_parameters}
        else:
            about = {"trainable_parameters": sum(p.numel() for p in model.parameters() if p.requires_grad)}
            train(model, source, recipe, seed=seed, callbacks=[KeepPruned(model, mask)], stage="recovery",
                  loss_fn=next_token_loss(model), step_losses=losses)
    model.eval()
    return {"method": recovery.method, "steps": steps, "lr": recovery.lr, "batch_tokens": recovery.batch_tokens,
            "optimizer": "adamw", **about, "seconds": time.perf_counter() - started, "loss": losses}


def lm_latency(spec: ExperimentSpec, settings: RunSettings, found: Pretrained, model: nn.Module, *,
               compacted: bool = False) -> Latency:
    """Prefill and decode tokens/s of the pretrained against the pruned model, timed in the same
    rounds in every runtime and shape the settings ask for (:mod:`prunebench.metrics.lm_speed`).
    The top-level times are eager torch's first prefill shape; ``forms`` holds every row. ``compacted``: the pruned model is the
    smaller dense one a width structure gives."""
    from prunebench.metrics.lm_latency import sparse_kernels, weight_bytes
    from prunebench.metrics.lm_speed import measure_speed, speed_options
    from prunebench.models.lm import load_causal_lm
    from prunebench.record import LatencyForm

    dense = load_causal_lm(spec.model, device=settings.device).model
    options = speed_options(settings.lm_prefill, settings.lm_decode_tokens, settings.lm_runtimes,
                            settings.lm_speed_repeats)
    # eager torch's first prefill shape is the headline, so it is always timed
    options = dataclasses.replace(options, runtimes=("torch", *(r for r in options.runtimes if r != "torch")))
    timed = measure_speed(dense, model, options, threads=settings.threads)
    head = timed.rows[0]
    assert head.dense_ms is not None and head.pruned_ms is not None and head.measured_speedup is not None
    forms = [LatencyForm(runtime="torch-eager" if r.runtime == "torch" else r.runtime, form=r.form, dense_ms=r.dense_ms, pruned_ms=r.pruned_ms,
                         measured_speedup=r.measured_speedup, measured_speedup_iqr=r.measured_speedup_iqr,
                         skipped=r.skipped, dense_tokens_per_s=r.dense_tokens_per_s,
                         pruned_tokens_per_s=r.pruned_tokens_per_s, note=r.note) for r in timed.rows]
    return Latency(
        runtime="torch-eager", form=head.form, allocator=timed.allocator, device=timed.device, threads=timed.threads,
        batch_size=head.batch_size, dtype=timed.dtype, repeats=timed.repeats, dense_ms=head.dense_ms,
        pruned_ms=head.pruned_ms, measured_speedup=head.measured_speedup,
        measured_speedup_iqr=head.measured_speedup_iqr or (head.measured_speedup,) * 2, compacted=compacted,
        seq_len=head.seq_len, dense_tokens_per_s=head.dense_tokens_per_s, pruned_tokens_per_s=head.pruned_tokens_per_s,
        dense_weight_bytes=weight_bytes(dense), pruned_weight_bytes=weight_bytes(model),
        sparse_kernels=sparse_kernels(settings.device), forms=forms, compile_s=timed.compile_s,
        speed_wall_s=timed.wall_s,
    )


def reusable_lm_result(spec: ExperimentSpec, results_dir: Path, sha256: str) -> RunResult | None:
    """A stored result of this run pruned from these very pretrained weights, if whole."""
    result = stored_result(spec, results_dir)
    if result is None:
        return None
    if result.language_model is None or result.language_model.pretrained_sha256 != sha256:
        log.warning("run %s was pruned from other pretrained weights than %s's; running it again", spec.run_id, spec.model)
        return None
    log.info("run %s exists; reusing it", spec.run_id)
    return result


class LanguageModelRun:
    """A causal language model's stages (:class:`prunebench.experiment.run.ModelKind`): the
    pretrained model (its perplexity cached per dense spec), pruned one-shot layer by layer from
    calibration sequences, optionally recovered, its perplexity measured."""

    def __init__(self, spec: ExperimentSpec, settings: RunSettings, results_dir: Path) -> None:
        self.spec, self.settings, self.results_dir = spec, settings, results_dir
        self._found: Pretrained | None = None
        self._dense: dict[str, Any] = {}  # the dense perplexity's info (dense.json)
        self._mask: Mask | None = None
        self._pre: Any = None  # PerplexityResult right after pruning
        self._post: Any = None  # and after recovery (the same without one)
        self._recovery: dict[str, Any] | None = None
        self._tasks: dict[str, Any] | None = None  # zero-shot task scores of the model the run ends with
        self._compact: Any = None  # width and depth structures: the pruned model with its units removed

    @property
    def found(self) -> Pretrained:
        if self._found is None:
            raise RuntimeError("the load stage has not run")
        return self._found

    @property
    def mask(self) -> Mask:
        if self._mask is None:
            raise RuntimeError("the prune stage has not run")
        return self._mask

    @property
    def checksums(self) -> Mapping[str, str]:
        return self.found.text.checksums

    def reusable(self) -> RunResult | None:
        self.load(prune=True)  # a stored result is trusted only for the very pretrained weights it was pruned from
        return reusable_lm_result(self.spec, self.results_dir, self.found.loaded.sha256)

    def load(self, *, prune: bool) -> None:
        """Model and text, read once and checked; a dense row gets its runs' checks too."""
        if self._found is None:
            self._found = check_lm(self.spec, self.settings)

    def dense(self) -> DenseOutcome:
        self._dense = dense_perplexity(self.spec, self.found, self.results_dir)
        return DenseOutcome(cached=self._dense["cached"])  # no training: the dense model is the pretrained file

    def prune(self) -> PruneOutcome:
        from prunebench.data.text import calibration_samples
        from prunebench.pruning.layerwise import prune_causal_lm

        spec, found, prune = self.spec, self.found, self.spec.prune
        model = found.loaded.model
        calibration = calibration_samples(found.text.calibration, prune.calibration.n_samples, prune.calibration.seq_len,
                                          spec.seed, key="prune.calibration").to(self.settings.device)
        structure = _structure(spec)
        removed_blocks: list[int] = []
        if structure.scores == "width":  # whole units, removed after recovery (compact_width)
            from prunebench.pruning.width.prune import prune_width

            outcome = prune_width(model, calibration, prune.strategy, structure=prune.structure,
                                  sparsity=prune.resolved_sparsity, allocation=prune.allocation, seed=spec.seed)
        elif structure.scores == "depth":  # whole blocks zeroed, removed after recovery (remove_blocks)
            from prunebench.pruning.depth import mask_depth

            outcome, removed_blocks = mask_depth(model, calibration, prune.strategy, sparsity=prune.resolved_sparsity,
                                                 seed=spec.seed, allocation=prune.allocation)
        else:
            outcome = prune_causal_lm(
                model, calibration, prune.strategy,
                sparsity=None if structure.fixed_sparsity is not None else prune.resolved_sparsity,
                structure=prune.structure, scope=prune.scope, allocation=prune.allocation, options=prune.options,
                seed=spec.seed,
            )
        self._mask = outcome.mask
        pruned_at = time.perf_counter()
        self._pre = evaluate(model, spec, found.text)
        self._recovery = recover(model, outcome.mask, spec, found.text)
        self._post = evaluate(model, spec, found.text) if self._recovery is not None else self._pre
        if structure.scores == "width":  # the smaller dense model, timed and stored beside the mask
            from prunebench.pruning.width.compact import compact_width

            self._compact = compact_width(model, outcome.mask)
        elif structure.scores == "depth":
            from prunebench.pruning.depth import remove_blocks

            self._compact = remove_blocks(copy.deepcopy(model), removed_blocks)
        recovered_at = time.perf_counter()
        if spec.evaluation.tasks:
            self._tasks = evaluate_tasks(model, found.loaded.tokenizer, spec.evaluation.tasks, spec.evaluation.task_items)
        return PruneOutcome(prune_s=outcome.seconds, retrain_s=recovered_at - pruned_at if self._recovery else 0.0)

    def measure(self, dense: DenseOutcome, pruned: PruneOutcome | None) -> Measured:
        spec, found, info = self.spec, self.found, self._dense
        loaded, model = found.loaded, found.loaded.model
        about = LanguageModel(
            description=loaded.description, source=str(loaded.source), pretrained_sha256=loaded.sha256,
            num_parameters=loaded.num_parameters, tokenizer=found.text.tokenizer, text_split=dict(found.text.split),
            window=spec.evaluation.window, stride=spec.evaluation.resolved_stride, tokens_scored=info["tokens_scored"],
            protocol=spec.evaluation.protocol,
        )
        sizes, macs = lm_sizes(model), lm_macs(model)
        dense_tasks = tasks_from_json(info.get("tasks"))
        if pruned is None:  # the pretrained model as is
            return Measured(sizes=sizes, macs=macs, language_model=about, perplexity=Perplexities(
                dense=info["perplexity"], pre_recovery=info["perplexity"], final=info["perplexity"]),
                dense_tasks=dense_tasks, tasks=dense_tasks)
        calibration = spec.prune.calibration
        return Measured(
            sizes=sizes, macs=macs,
            perplexity=Perplexities(dense=info["perplexity"], pre_recovery=self._pre.value, final=self._post.value),
            dense_tasks=dense_tasks, tasks=self._tasks,
            language_model=about.model_copy(update={
                "tokens_scored": self._pre.tokens_scored, "calibration_n_samples": calibration.n_samples,
                "calibration_seq_len": calibration.seq_len, "calibration_seed": spec.seed,
                "allocation": spec.prune.allocation, "recovery": self._recovery,
            }),
            latency=lm_latency(spec, self.settings, found, self._compact or model, compacted=self._compact is not None)
            if self.settings.latency else None,
        )

    def save(self, run_dir: Path) -> None:
        save_tensors(run_dir / "mask.pt", self.mask.state_dict())
        save_tensors(run_dir / "model.pt", stored_weights(self.found.loaded.model, self.mask, self._recovery is not None))
        if self._compact is not None:  # a Hugging Face folder: from_pretrained loads the smaller model
            self._compact.save_pretrained(run_dir / COMPACT_FOLDER)


def stored_weights(model: nn.Module, mask: Mask, recovered: bool) -> dict[str, torch.Tensor]:
    """What model.pt keeps: after recovery every weight; otherwise only the pruned layers' weights
    and the projections' biases, the rest being the pretrained file's (``language_model.pretrained_sha256``)."""
    state = model.state_dict()
    if recovered:
        return dict(state)
    # the projections' biases too: FLAP's compensation writes them (none in a Llama's pretrained file)
    return {name: state[name] for name in state if name in mask or name.endswith("_proj.bias")}



def run_lm_experiment(spec: ExperimentSpec, settings: RunSettings, results_dir: Path) -> RunResult:
    """Run (or reuse) one language-model run and return its record; torch threads restored after."""
    return run_stages(LanguageModelRun(spec, settings, results_dir), settings, results_dir)


def run_lm_dense(spec: ExperimentSpec, settings: RunSettings, results_dir: Path) -> RunResult:
    """The dense baseline row of a language-model comparison: the pretrained model, evaluated."""
    return run_stages(LanguageModelRun(spec, settings, results_dir), settings, results_dir, dense_row=True)
