"""A causal LM's weights read one tensor at a time from its files, by Hugging Face parameter name.

Two sources: a Hugging Face folder of safetensors files (one file or shards with
``model.safetensors.index.json``; every ``*.safetensors`` file's header is read, its tensors
only when asked for), and a GGUF file, each tensor dequantized on its own with ``gguf``'s
reader and renamed and permuted as transformers' own GGUF loader does, so a block read here
holds the very values ``AutoModelForCausalLM.from_pretrained(..., gguf_file=...)`` gives.

Files are opened per read and closed after: a memory map left open would keep every page read
so far in the process's resident set, which is what reading block by block avoids.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn

from prunebench.errors import ConfigError


class WeightSource(Protocol):
    """Tensors by Hugging Face parameter name, read on demand."""

    def names(self) -> list[str]:
        """Every tensor the files hold, by parameter name."""
        ...

    def read(self, names: Iterable[str]) -> dict[str, torch.Tensor]:
        """The tensors ``names`` in the files' own dtype (GGUF: float32, as dequantized)."""
        ...


class SafetensorsFiles:
    """The ``*.safetensors`` files of a Hugging Face folder."""

    def __init__(self, folder: Path) -> None:
        from safetensors import safe_open

        self.where: dict[str, Path] = {}
        files = sorted(folder.glob("*.safetensors"))
        if not files:
            raise ConfigError(f"model: {folder} has no .safetensors file to read block by block")
        for path in files:
            with safe_open(str(path), framework="pt") as f:
                for name in f.keys():
                    self.where.setdefault(name, path)

    def names(self) -> list[str]:
        return list(self.where)

    def read(self, names: Iterable[str]) -> dict[str, torch.Tensor]:
        from safetensors import safe_open

        by_file: dict[Path, list[str]] = {}
        for name in names:
            if name not in self.where:
                raise ConfigError(f"model: the weight files have no tensor {name!r}")
            by_file.setdefault(self.where[name], []).append(name)
        tensors: dict[str, torch.Tensor] = {}
        for path, wanted in by_file.items():
            with safe_open(str(path), framework="pt") as f:
                tensors.update({name: f.get_tensor(name) for name in wanted})
        return tensors


class GGUFFile:
    """A GGUF file's tensors under the names of ``model`` (a model of the file's config; on the
    meta device is enough), through transformers' name map and tensor processor.

    The file's metadata is parsed once (tens of seconds for a large vocabulary on a busy
    machine); where each tensor lies is kept, and each read takes just its bytes from the file."""

    def __init__(self, path: Path, model: nn.Module) -> None:
        from gguf import GGUFReader
        from transformers.modeling_gguf_pytorch_utils import (
            TENSOR_PROCESSORS,
            TensorProcessor,
            get_gguf_hf_weights_map,
            read_field,
        )

        self.path = path
        reader = GGUFReader(str(path))
        architecture = read_field(reader, "general.architecture")[0]
        # the processor reads transformers' config names (Llama's q/k permutation: the head counts)
        pretrained: Any = model  # a transformers PreTrainedModel
        config: dict[str, Any] = pretrained.config.to_dict()
        self.parsed = {"config": config}
        self.processor = TENSOR_PROCESSORS.get(architecture, TensorProcessor)(config=config)
        self.mapping: dict[str, str] = get_gguf_hf_weights_map(model, self.processor)
        # per parameter name: (GGUF name, byte offset, byte count, numpy dtype, shape, quantization)
        self.where = {
            self.mapping[t.name]: (t.name, int(t.data_offset), int(t.n_bytes), t.data.dtype, tuple(t.data.shape), t.tensor_type)
            for t in reader.tensors if t.name in self.mapping
        }
        del reader  # and with it the file's memory map

    def names(self) -> list[str]:
        return list(self.where)

    def read(self, names: Iterable[str]) -> dict[str, torch.Tensor]:
        import numpy as np
        from gguf import dequantize

        tensors: dict[str, torch.Tensor] = {}
        with open(self.path, "rb") as f:
            for name in names:
                if name not in self.where:
                    raise ConfigError(f"model: {self.path.name} has no tensor for {name!r}")
                gguf_name, offset, count, dtype, shape, kind = self.where[name]
                f.seek(offset)
                raw = np.frombuffer(f.read(count), dtype=dtype).reshape(shape)
                result = self.processor.process(weights=dequantize(raw, kind), name=gguf_name,
                                                tensor_key_mapping=self.mapping, parsed_parameters=self.parsed)
                tensors[name] = torch.from_numpy(np.copy(result.weights)).to(torch.float32)
        return tensors


def open_weights(path: Path, model: nn.Module) -> WeightSource:
    """The weight source of a Hugging Face folder or a ``.gguf`` file."""
    if path.is_file():
        if path.suffix.lower() != ".gguf":
            raise ConfigError(f"model: {path} is a file but not a .gguf file; give the checkpoint's directory")
        return GGUFFile(path, model)
    return SafetensorsFiles(path)


def model_config(path: Path) -> Any:
    """The transformers config of a Hugging Face folder or a ``.gguf`` file; ConfigError if none."""
    from prunebench.models.lm import check_causal, load_config, require_transformers

    transformers = require_transformers(gguf=path.suffix.lower() == ".gguf")
    if path.is_file():
        config = load_config(transformers, str(path.parent), {"gguf_file": path.name}, str(path))
    elif (path / "config.json").is_file():
        config = load_config(transformers, str(path), {}, str(path))
    else:
        raise ConfigError(f"model: {path} is neither a .gguf file nor a folder with config.json")
    check_causal(transformers, config, str(path))
    return config


def weights_path(name: str) -> Path:
    """The file or folder a model name reads from, without loading it: a built-in name's GGUF
    (its SHA-256 checked, as :func:`prunebench.models.lm.load_causal_lm` does) or the path of
    ``hf:<folder or .gguf file>``. Hub ids are not read block by block: download them first."""
    from prunebench.models.lm import HF_PREFIX, LM_MODELS, SMOLLM2_HINT, file_sha256

    if name in LM_MODELS:
        entry = LM_MODELS.get(name)
        path = entry.locate()
        digest = file_sha256(path)
        if digest != entry.sha256:
            raise ConfigError(f"model {name!r}: {path} has SHA-256 {digest}, expected {entry.sha256}: {SMOLLM2_HINT}")
        return path
    if not name.startswith(HF_PREFIX):
        raise ConfigError(LM_MODELS.unknown_message(name) + ", or hf:<folder or .gguf file>")
    path = Path(name[len(HF_PREFIX):].strip()).expanduser()
    if not path.exists():
        raise ConfigError(f"model {name!r}: no such file or directory ({path}); block by block reads local files only")
    return path


def load_tokenizer(path: Path) -> Any:
    """The tokenizer stored with a Hugging Face folder or inside a ``.gguf`` file."""
    from prunebench.models.lm import first_line, require_transformers

    transformers = require_transformers(gguf=path.suffix.lower() == ".gguf")
    folder, options = (str(path.parent), {"gguf_file": path.name}) if path.is_file() else (str(path), {})
    try:
        return transformers.AutoTokenizer.from_pretrained(folder, **options)
    except Exception as exc:  # noqa: BLE001  (a missing or damaged tokenizer fails in many types)
        raise ConfigError(f"model: no tokenizer could be loaded from {path}: {first_line(exc)}") from None
