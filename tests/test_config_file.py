"""Config files and override values are read safely: every bad input is one ConfigError."""

from __future__ import annotations

import builtins
import resource
import time
from pathlib import Path

import pytest
import yaml

from prunebench.cli import main
from prunebench.spec import apply_overrides, parse_override, read_config
from prunebench.config_file import MAX_NODES, load_yaml, read_config_file
from prunebench.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]
PLAIN = "dataset: digits\nmodel: mlp\nprune: {strategy: magnitude, compression: 4}\n"

# 342 bytes: nine levels of nine aliases, 9**9 (387 million) strings once expanded.
BILLION_LAUGHS = """\
a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
"""


def write(tmp_path: Path, payload: bytes | str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_bytes(payload.encode() if isinstance(payload, str) else payload)
    return path


def one_line_error(path: Path, match: str) -> str:
    with pytest.raises(ConfigError, match=match) as error:
        read_config(path)
    message = str(error.value)
    assert "\n" not in message and str(path) in message
    return message


@pytest.mark.parametrize(
    "config",
    [*sorted((REPO / "configs").glob("*.yaml")), *sorted((REPO / "src/prunebench/reproduce/configs").glob("*.yaml"))],
    ids=lambda p: p.name,
)
def test_shipped_configs_load_exactly_as_safe_load_reads_them(config: Path) -> None:
    plain = yaml.safe_load(config.read_text())
    assert read_config_file(config) == plain
    assert read_config(config) == apply_overrides(plain, [])  # what read_config returned before


def test_merge_keys_and_a_few_aliases_still_work(tmp_path: Path) -> None:
    text = "base: &b {epochs: 2, lr: 0.1}\ntrain: {<<: *b, lr: 0.05}\nfinetune: *b\n"
    assert read_config(write(tmp_path, text)) == {
        "base": {"epochs": 2, "lr": 0.1},
        "train": {"epochs": 2, "lr": 0.05},
        "finetune": {"epochs": 2, "lr": 0.1},
    }


def test_non_utf8_bytes_are_refused(tmp_path: Path) -> None:
    message = one_line_error(write(tmp_path, b"dataset: digits\nmodel: ml\xe9p\n"), "is not UTF-8 text")
    assert "0xe9" in message


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-32"])
def test_utf16_and_utf32_files_are_refused(tmp_path: Path, encoding: str) -> None:
    one_line_error(write(tmp_path, PLAIN.encode(encoding)), "is not UTF-8 text .*UTF-16")


def test_a_utf8_byte_order_mark_is_accepted(tmp_path: Path) -> None:
    assert read_config(write(tmp_path, b"\xef\xbb\xbf" + PLAIN.encode()))["model"] == "mlp"


def test_a_directory_is_refused(tmp_path: Path) -> None:
    one_line_error(tmp_path, "is a directory")


def test_an_unreadable_file_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, PLAIN)
    real_open = builtins.open

    def denied(file: object, *args: object, **kwargs: object) -> object:  # root ignores chmod 000
        if file == path:
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(file, *args, **kwargs)  # type: ignore[call-overload]

    monkeypatch.setattr(builtins, "open", denied)
    one_line_error(path, "cannot be read: permission denied")


def test_an_oversized_file_is_refused_without_reading_it_all(tmp_path: Path) -> None:
    one_line_error(write(tmp_path, b"# " + b"x" * (2 << 20)), "larger than")


def test_invalid_yaml_names_the_line(tmp_path: Path) -> None:
    message = one_line_error(write(tmp_path, "dataset: digits\nmodel: [mlp\n"), "is not valid YAML")
    assert "line 3" in message


@pytest.mark.parametrize(
    "text, key, line, first",
    [
        ("dataset: digits\nmodel: mlp\ndataset: mnist\n", "dataset", 3, 1),
        ("train:\n  lr: 0.1\n  epochs: 2\n  lr: 0.5\n", "lr", 4, 2),
        ("sweep:\n  seed: [0, 1]\nprune: {strategy: magnitude, strategy: random}\n", "strategy", 3, 3),
    ],
)
def test_duplicate_keys_are_refused_at_any_depth(tmp_path: Path, text: str, key: str, line: int, first: int) -> None:
    message = one_line_error(write(tmp_path, text), f"line {line}: key '{key}' appears twice")
    assert f"first on line {first}" in message


def test_a_billion_laughs_is_refused_quickly_in_little_memory(tmp_path: Path) -> None:
    path = write(tmp_path, BILLION_LAUGHS)
    assert path.stat().st_size <= 513
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    one_line_error(path, f"expands to more than {MAX_NODES} values through aliases")
    assert time.perf_counter() - start < 1.0
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 50_000  # KiB: no expansion happened


def test_a_recursive_alias_is_refused(tmp_path: Path) -> None:
    one_line_error(write(tmp_path, "sweep: &s {seed: [0, *s]}\n"), r"alias \*s refers to itself")


def test_deep_nesting_is_refused(tmp_path: Path) -> None:
    one_line_error(write(tmp_path, "x: " + "[" * 5000 + "]" * 5000 + "\n"), "nested more than")


def test_overrides_use_the_same_safe_loader() -> None:
    assert parse_override("prune.compression=16") == (["prune", "compression"], 16)
    assert parse_override("name=a: b: c") == (["name"], "a: b: c")  # not YAML: kept as text
    with pytest.raises(ConfigError, match="key 'lr' appears twice"):
        parse_override("train={lr: 1, lr: 2}")
    bomb = "x=" + BILLION_LAUGHS.replace("\n", ", ").join("{}")
    with pytest.raises(ConfigError, match=r"override .*expands to more than"):
        parse_override(bomb)


def test_load_yaml_builds_only_plain_data() -> None:
    with pytest.raises(yaml.YAMLError):
        load_yaml("!!python/object/apply:os.system ['true']")


def test_cli_gives_one_line_and_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for payload in (BILLION_LAUGHS.encode(), PLAIN.encode("utf-16"), b"a: 1\na: 2\n"):
        path = write(tmp_path, payload)
        assert main(["run", str(path), "--results", str(tmp_path / "results")]) == 2
        err = capsys.readouterr().err
        assert err.startswith("prunebench: error:") and err.count("\n") == 1
        assert not (tmp_path / "results").exists()
