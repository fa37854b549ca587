"""``prunebench prune-lm``: a language model pruned block by block from its weight files into a
new Hugging Face checkpoint folder, for models too large to hold whole in memory.

The calibration sequences are a run's (``prune.calibration``): ``n_samples`` runs of ``seq_len``
tokens drawn with ``seed`` from the text's calibration split, tokenized with the model's own
tokenizer, which is saved beside the pruned weights so the folder loads as it is
(``model: hf:<folder>``, or any Hugging Face tool). Pruning itself:
:func:`prunebench.pruning.blockwise.prune_checkpoint`.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from prunebench.pruning.blockwise import BlockwiseOutcome, prune_checkpoint


def prune_lm_blocks(
    model: str,
    out: Path,
    *,
    strategy: str,
    sparsity: float | None = None,
    structure: str = "unstructured",
    scope: str | None = None,
    options: Mapping[str, Any] | None = None,
    dataset: str = "shakespeare",
    n_samples: int = 128,
    seq_len: int = 2048,
    seed: int = 0,
    batch_size: int = 8,
    data_dir: Path | None = None,
) -> BlockwiseOutcome:
    """Prune ``model`` (a built-in name or ``hf:<folder or .gguf file>``) into the new folder
    ``out``; ConfigError/DataError on bad input, before anything is written."""
    from prunebench.data.text import calibration_samples, load_text
    from prunebench.errors import ConfigError
    from prunebench.models.weight_files import load_tokenizer, weights_path

    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ConfigError(f"out: {out} exists and is not an empty folder")
    path = weights_path(model)
    tokenizer = load_tokenizer(path)
    text = load_text(dataset, tokenizer, data_dir=data_dir, eval_tokens=None)
    calibration = calibration_samples(text.calibration, n_samples, seq_len, seed, key="prune.calibration")
    outcome = prune_checkpoint(path, out, calibration, strategy, sparsity=sparsity, structure=structure, scope=scope,
                               options=options, seed=seed, batch_size=batch_size)
    tokenizer.save_pretrained(out)
    return outcome
