"""Files a user points prunebench at that are damaged or crafted end in one line naming the file
(exit 2, nothing written), never a traceback: huge integers in a config, image files that are
empty, truncated or decompression bombs (decoded in this process or in DataLoader workers), and
Hugging Face weight files that are pickles or truncated."""

from __future__ import annotations

import os
import pickle
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest

from prunebench.cli import main
from prunebench.spec import parse_override, read_config
from prunebench.errors import ConfigError, DataError

HUGE = "1" * 5000  # past Python's int-from-text limit of 4,300 digits


def one_line(err: str) -> str:
    assert err.startswith("prunebench: error:") and err.count("\n") == 1, err
    return err


def test_a_huge_integer_in_a_config_file_is_one_config_error(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(f"dataset: digits\nmodel: mlp\nseed: {HUGE}\n")
    with pytest.raises(ConfigError, match=r"line 3: an integer of 5000 digits") as error:
        read_config(path)
    assert str(path) in str(error.value) and "\n" not in str(error.value)


def test_a_huge_integer_in_an_override_is_one_config_error() -> None:
    with pytest.raises(ConfigError, match=r"^override seed: line 1: an integer of 5000 digits; no setting takes one$"):
        parse_override(f"seed={HUGE}")
    with pytest.raises(ConfigError, match=r"an integer of 5000 digits"):
        parse_override(f"train={{epochs: {HUGE}}}")
    assert parse_override("seed=0x" + "f" * 5000)[1] == int("f" * 5000, 16)  # no limit on hex: range-checked later


def test_a_huge_integer_through_the_cli_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("dataset: digits\nmodel: mlp\nprune: {strategy: magnitude, compression: 2}\n")
    results = tmp_path / "results"
    assert main(["run", str(config), f"seed={HUGE}", "--results", str(results)]) == 2
    assert "an integer of 5000 digits" in one_line(capsys.readouterr().err)
    config.write_text(f"dataset: digits\nmodel: mlp\nseed: {HUGE}\n")
    assert main(["run", str(config), "--results", str(results)]) == 2
    assert str(config) in one_line(capsys.readouterr().err)
    assert not results.exists()


# ---- image folders --------------------------------------------------------------------------

image_module = pytest.importorskip("PIL.Image")


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def bomb_png() -> bytes:
    """A 20,000 x 20,000 PNG header in 57 bytes: 400 million pixels (1.2 GB) if decoded."""
    header = struct.pack(">IIBBBBB", 20_000, 20_000, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", zlib.compress(b"")) + png_chunk(b"IEND", b"")


def truncated_png(tmp_path: Path) -> bytes:
    source = tmp_path / "whole.png"
    pixels = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    image_module.fromarray(pixels).save(source)
    whole = source.read_bytes()
    source.unlink()
    return whole[: len(whole) // 2]


def image_folder(root: Path, bad: bytes) -> Path:
    """Two classes of three 8x8 PNGs under train/ and val/, and ``bad`` as train/c1/9.png."""
    for split in ("train", "val"):
        for c in range(2):
            folder = root / "image-folder" / split / f"c{c}"
            folder.mkdir(parents=True)
            for i in range(3):
                image_module.fromarray(np.full((8, 8, 3), 40 * i + c, np.uint8)).save(folder / f"{i}.png")
    path = root / "image-folder" / "train" / "c1" / "9.png"
    path.write_bytes(bad)
    return path


@pytest.mark.parametrize("kind", ["empty", "truncated", "bomb"])
@pytest.mark.parametrize("streaming, workers", [(False, 0), (True, 1)], ids=["in-process", "dataloader-worker"])
def test_a_bad_image_is_one_line_naming_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], kind: str, streaming: bool, workers: int,
) -> None:
    bad = {"empty": b"", "truncated": truncated_png(tmp_path), "bomb": bomb_png()}[kind]
    data = tmp_path / "data"
    path = image_folder(data, bad)
    config = tmp_path / "config.yaml"
    config.write_text(
        f"dataset: image-folder\nmodel: mlp\ndata_dir: {data}\nstreaming: {str(streaming).lower()}\n"
        f"data_workers: {workers}\nprune: {{strategy: magnitude, compression: 2}}\n"
    )
    results = tmp_path / "results"
    assert main(["run", str(config), "--results", str(results)]) == 2
    err = one_line(capsys.readouterr().err)
    assert f"{path}: cannot decode image" in err
    assert not results.exists()


def test_a_bad_image_read_by_a_worker_is_a_data_error_with_one_line(tmp_path: Path) -> None:
    from prunebench.data.image_folder import load_image_folder
    from prunebench.data.stream import read_all

    path = image_folder(tmp_path, b"")
    stream = load_image_folder(tmp_path / "image-folder", size=8, resize=8).train_x.with_workers(1)
    with pytest.raises(DataError) as error:
        read_all(stream)
    assert str(error.value) == f"{path}: cannot decode image (cannot identify image file {str(path)!r})"


# ---- Hugging Face checkpoints ----------------------------------------------------------------


@pytest.fixture
def hf_checkpoint(tmp_path: Path) -> Path:
    pytest.importorskip("transformers")
    from lm_tiny import tiny_llama, tiny_tokenizer

    folder = tmp_path / "tiny-llama"
    tokenizer = tiny_tokenizer()
    tiny_llama(len(tokenizer)).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


class RunsCode:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, (f"touch {self.marker}",))


def test_a_pickled_bin_checkpoint_is_one_line_and_runs_no_code(hf_checkpoint: Path, tmp_path: Path) -> None:
    from prunebench.models.lm import load_causal_lm

    marker = tmp_path / "ran"
    (hf_checkpoint / "model.safetensors").unlink()
    (hf_checkpoint / "pytorch_model.bin").write_bytes(pickle.dumps({"model.embed_tokens.weight": RunsCode(marker)}))
    with pytest.raises(ConfigError) as error:
        load_causal_lm(f"hf:{hf_checkpoint}")
    message = str(error.value)
    assert "\n" not in message and "pytorch_model.bin" in message and "could run code" in message, message
    assert not marker.exists()


def test_a_truncated_safetensors_checkpoint_is_one_line(hf_checkpoint: Path) -> None:
    from prunebench.models.lm import load_causal_lm

    weights = hf_checkpoint / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(ConfigError) as error:
        load_causal_lm(f"hf:{hf_checkpoint}")
    message = str(error.value)
    assert "\n" not in message and "model.safetensors" in message, message
