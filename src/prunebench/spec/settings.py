"""Where and how to run (:class:`RunSettings`): none of it is in the run id."""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import Field, ValidationInfo, field_validator

from prunebench import latency_names
from prunebench.spec.base import Bool, Int, Spec

DEVICE_PATTERN = re.compile(r"cpu|cuda(:\d+)?|mps")

# torch threads: more than any CPU has; beyond it OpenMP aborts the process instead of raising.
# A fixed bound, not one relative to os.cpu_count(): a config valid here is valid on every machine.
MAX_THREADS = 1024


MAX_LATENCY_BATCH = 65_536  # a deployed batch; 10^8 inputs used to fail only once the run had trained


class RunSettings(Spec):
    """Where and how to run; none of it changes the results, so none of it is in the run id."""

    data_dir: Path | None = None
    download: Bool = True
    # Image folders (and datasets whose source streams): decode each batch from the files in
    # `data_workers` processes instead of reading them whole into memory. The same batches
    # either way (tested bit for bit), so neither is in the run id.
    streaming: Bool = False
    data_workers: Int = Field(default=2, ge=0, le=MAX_THREADS)
    device: str = "cpu"  # cpu, cuda, cuda:N or mps; checked against the installed torch before a run
    threads: Int | None = Field(default=None, ge=1, le=MAX_THREADS)
    latency: Bool = False  # time the dense and the pruned (compacted, for channels) model per run
    latency_batch_size: Int = Field(default=64, ge=1, le=MAX_LATENCY_BATCH)  # larger would fail after training, out of memory
    latency_repeats: Int = Field(default=30, ge=2)
    # deployment forms timed (prunebench.models.deploy): eager and the BatchNorm-folded form a deployment runs
    latency_forms: tuple[str, ...] = (latency_names.EAGER, latency_names.FOLDED)
    latency_runtimes: tuple[str, ...] = (latency_names.TORCH,)  # torch (eager), torch-compile, onnxruntime
    # language models, with latency: prefill shapes (BATCHxSEQ_LEN), greedy decode length, runtimes
    # and interleaved rounds of prunebench.metrics.lm_speed
    lm_prefill: tuple[str, ...] = ("1x512", "8x128")
    lm_decode_tokens: Int = Field(default=64, ge=2, le=4096)
    lm_runtimes: tuple[str, ...] = (latency_names.TORCH, latency_names.SPARSE_CSR)
    lm_speed_repeats: Int = Field(default=3, ge=1)
    plugins: tuple[str, ...] = ()  # modules imported before validation, in every worker (prunebench.plugins)

    @field_validator("data_dir")
    @classmethod
    def data_dir_is_a_folder(cls, value: Path | None) -> Path | None:
        if value is not None and value.exists() and not value.is_dir():
            raise ValueError(f"{value} is a file, not a directory")
        return value

    @field_validator("latency_forms", "latency_runtimes")
    @classmethod
    def known_latency_names(cls, value: tuple[str, ...], info: ValidationInfo) -> tuple[str, ...]:
        allowed = latency_names.LATENCY_FORMS if info.field_name == "latency_forms" else latency_names.LATENCY_RUNTIMES
        unknown = [name for name in value if name not in allowed]
        if unknown or not value or len(set(value)) != len(value):
            problem = f"unknown {unknown[0]!r}" if unknown else f"got {list(value)}"
            raise ValueError(f"{problem} (allowed: one or more of {', '.join(allowed)}, each once)")
        return value

    @field_validator("lm_prefill")
    @classmethod
    def prefill_shapes(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        bad = [shape for shape in value if not re.fullmatch(latency_names.LM_PREFILL_SHAPE, shape)]
        if bad or not value:
            raise ValueError(f"{bad[0]!r} is not a shape BATCHxSEQ_LEN such as '8x128'" if bad else "give at least one shape")
        return value

    @field_validator("lm_runtimes")
    @classmethod
    def known_lm_runtimes(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        unknown = [name for name in value if name not in latency_names.LM_RUNTIMES]
        if unknown or not value or len(set(value)) != len(value):
            problem = f"unknown {unknown[0]!r}" if unknown else f"got {list(value)}"
            raise ValueError(f"{problem} (allowed: one or more of {', '.join(latency_names.LM_RUNTIMES)}, each once)")
        return value

    @field_validator("device")
    @classmethod
    def device_kind(cls, value: str) -> str:
        """The form only; whether this machine has it is checked before a run (runner.preflight)."""
        if not DEVICE_PATTERN.fullmatch(value):
            raise ValueError(f"{value!r} is not a device prunebench runs on (allowed: cpu, cuda, cuda:N, mps)")
        return value


SETTINGS_KEYS = frozenset(RunSettings.model_fields)
