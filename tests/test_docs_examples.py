"""Every example in README.md and docs/*.md runs against the code as it is.

What is checked, and the rules a doc follows so that its examples can be found:

- Every ```yaml block is a config. One with ``dataset:`` and ``model:`` is validated as it
  stands; any other is a fragment and is validated merged into ``BASE`` (digits, mlp). Both go
  through the real path: the bounded YAML loader, then ``plan_from_mapping`` (sweeps included);
  a digits config also passes the runner's preflight (model built, target reachable).
- Every ```python block runs, except README's first one (tests/test_api.py runs it and checks
  its metrics). Strategies a block registers are removed again afterwards and each is used
  once to prune a small model to an exact compression. A block that only names objects the
  reader already has (``model``, ``data``, ...) gets them from ``PRELUDES``, keyed by the block's
  first line; tiny sizes, the block's own calls.
- Every ``prunebench ...`` command in a ```bash / ```console / bare fenced block or an indented
  block (shell syntax: ``$`` prompts, ``&&`` chains, ``VAR=value`` prefixes and ``#`` comments
  allowed) parses with the CLI's parser; a config under configs/ must exist, and ``key=value``
  overrides are applied to it (or to ``BASE`` for a placeholder name) and validated. After a
  ``$ prunebench ...`` prompt, a documented ``prunebench: error: ...`` line must be exactly what
  the command prints.
- docs/config.md's key tables (tables whose first header cell contains "key"; backticked names
  in that header cell are prefixes for the rows, e.g. `train` / `finetune`) name only keys of
  the schema, and every field of the schema appears in them.
"""

from __future__ import annotations

import contextlib
import io
import re
import shlex
import typing
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch
from pydantic import BaseModel

import prunebench as pb
from prunebench import cli
from prunebench.spec import ExperimentSpec, RunSettings, apply_overrides
from prunebench.config_file import load_yaml
from prunebench.errors import PrunebenchError
from prunebench.plan.runner import preflight
from prunebench.plan.controls import CONTROLS_KEY
from prunebench.plan.sweep import BASELINES_KEY, SWEEP_KEY, load_plan, plan_from_mapping
from prunebench.data import DATASETS
from prunebench.models import MODELS
from prunebench.pruning.scores import STRATEGIES

REGISTERS = re.compile(r"register_scorer\(|(MODELS|DATASETS)\.register\(")

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BASE: dict[str, Any] = {"dataset": "digits", "model": "mlp"}
SHELL_LANGS = {"", "bash", "console", "sh", "shell"}
SHELL_OPERATORS = {"&&", "||", ";", "|", "&"}
ENV_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")

# Names a doc's Python block takes from the reader's context, made tiny. Keyed by the block's
# first line; the block itself then runs unchanged.
PRELUDES = {
    "from prunebench.pruning.depth import prune_depth": """
import os, tempfile, torch
from lm_tiny import tiny_llama
model = tiny_llama(layers=4)
token_ids = torch.randint(0, 300, (2, 16), generator=torch.Generator().manual_seed(0))
_folder, _save = tempfile.mkdtemp(), model.save_pretrained
model.save_pretrained = lambda name, **kw: _save(os.path.join(_folder, name), **kw)  # not into the working folder
""",
    "from prunebench.metrics.roofline import measure_machine, op_costs, predicted_ceiling, roofline": """
import copy, torch, prunebench as pb
from prunebench.pruning.channels import ChannelTarget, prune_channels
from prunebench.pruning.compact import compact
torch.manual_seed(0)
dense = pb.create_model("resnet-20", (3, 32, 32), 10).eval()
selection = prune_channels(dense, (3, 32, 32), "l1_filter", ChannelTarget("speedup", 2.0), scope="layer", batches=[], seed=0)
pruned = copy.deepcopy(dense)
selection.mask.apply(pruned)
small = compact(pruned, selection.mask, (3, 32, 32)).eval()
""",
    "from prunebench.pruning.channels import ChannelTarget, prune_channels, slimming_loss": """
import torch, prunebench as pb
from prunebench.spec import TrainSpec
torch.manual_seed(0)
input_shape = (3, 8, 8)
x, y = torch.randn(96, *input_shape), torch.randint(0, 10, (96,))
data = pb.DataSplits.from_tensors(train=(x[:64], y[:64]), test=(x[64:], y[64:]))
model = pb.create_model("resnet-20", input_shape, 10)
batches = [(x[:32], y[:32])]
seed = 0
finetune_spec = TrainSpec(epochs=1, lr=0.01, batch_size=32)
dense_epochs = 1
dense_macs = pb.mac_metrics(model, input_shape).dense_total
""",
}
NEEDS = {"from prunebench.pruning.channels import ChannelTarget, prune_channels, slimming_loss": "torch_pruning"}


@dataclass(frozen=True)
class Block:
    doc: str  # path relative to the repository root
    line: int  # line of the block's first content line, 1-based
    lang: str  # fence info string; "indented" for an indented block
    lines: tuple[str, ...]

    @property
    def text(self) -> str:
        return "\n".join(self.lines) + "\n"

    @property
    def where(self) -> str:
        return f"{self.doc}:{self.line}"


def blocks_of(path: Path) -> Iterator[Block]:
    doc = str(path.relative_to(ROOT))
    lines = path.read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("```"):
            lang, start = line[3:].strip().lower(), i + 1
            end = start
            while end < len(lines) and lines[end].strip() != "```":
                end += 1
            assert end < len(lines), f"{doc}:{i + 1}: code fence is never closed"
            yield Block(doc, start + 1, lang, tuple(lines[start:end]))
            i = end + 1
        elif line.startswith("    ") and line.strip() and (i == 0 or not lines[i - 1].strip()):
            start = i
            while i < len(lines) and (lines[i].startswith("    ") or not lines[i].strip()):
                i += 1
            body = [text[4:] for text in lines[start:i]]
            while body and not body[-1].strip():
                body.pop()
            yield Block(doc, start + 1, "indented", tuple(body))
        else:
            i += 1


BLOCKS = [block for path in DOCS for block in blocks_of(path)]


def ids(items: list[Any]) -> list[str]:
    return [item.where if isinstance(item, Block) else item.id for item in items]


# --- YAML configs -------------------------------------------------------------------------


def deep_merge(base: Mapping[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


YAML_BLOCKS = [b for b in BLOCKS if b.lang in ("yaml", "yml")]


def test_docs_have_yaml_configs() -> None:
    assert {b.doc for b in YAML_BLOCKS} >= {"README.md", "docs/methods.md", "docs/sweeps.md", "docs/structured.md"}


@pytest.mark.parametrize("block", YAML_BLOCKS, ids=ids(YAML_BLOCKS))
def test_yaml_block_is_a_valid_config(block: Block, monkeypatch: pytest.MonkeyPatch) -> None:
    try:
        data = load_yaml(block.text)
    except Exception as exc:  # a YAML syntax error or a refusal of the bounded loader
        pytest.fail(f"{block.where}: yaml block does not load: {exc}")
    assert isinstance(data, Mapping), f"{block.where}: yaml block is not a mapping of config keys"
    if "plugins" in data:  # the plugin a doc names is its own python block that registers (run as a file by test_plugins)
        for registry in (STRATEGIES, MODELS, DATASETS):
            monkeypatch.setattr(registry, "_entries", dict(registry._entries))
        for plugin in (b for b in BLOCKS if b.doc == block.doc and b.lang == "python" and REGISTERS.search(b.text)):
            exec(compile(plugin.text, plugin.where, "exec"), {})  # noqa: S102 - our own docs
        data = {k: v for k, v in data.items() if k != "plugins"}
    fragment = not ("dataset" in data and "model" in data)
    config = deep_merge(BASE, data) if fragment else data
    kind = "fragment (merged into dataset digits, model mlp)" if fragment else "config"
    try:
        plan = plan_from_mapping(config)
        if {job.spec.dataset for job in plan.jobs} == {"digits"}:
            preflight(plan)
    except PrunebenchError as exc:
        pytest.fail(f"{block.where}: yaml {kind} is refused: {exc}")
    assert plan.pruned_jobs, f"{block.where}: yaml {kind} plans no run"


# --- Python blocks ------------------------------------------------------------------------


def readme_block_run_by_test_api() -> str:
    """The block tests/test_api.py executes (its regex: README's first python block)."""
    match = re.search(r"```python\n(.*?)```", (ROOT / "README.md").read_text(encoding="utf-8"), re.S)
    assert match, "README.md has no python block for tests/test_api.py to run"
    return match.group(1)


PYTHON_BLOCKS = [b for b in BLOCKS if b.lang in ("python", "py")]


def test_every_prelude_belongs_to_a_block() -> None:
    first_lines = {b.lines[0] for b in PYTHON_BLOCKS if b.lines}
    stale = sorted(set(PRELUDES) - first_lines)
    assert not stale, f"tests/test_docs_examples.py: PRELUDES for python blocks no doc has any more: {stale}"


@pytest.mark.parametrize("block", PYTHON_BLOCKS, ids=ids(PYTHON_BLOCKS))
def test_python_block_runs(block: Block, monkeypatch: pytest.MonkeyPatch) -> None:
    if block.doc == "README.md" and block.text == readme_block_run_by_test_api():
        pytest.skip("README's quickstart is run and checked by tests/test_api.py")
    first = block.lines[0] if block.lines else ""
    if first in NEEDS:
        pytest.importorskip(NEEDS[first])
    code = compile(block.text, block.where, "exec")  # a SyntaxError names doc:line
    # A block may register strategies, models or datasets; the registries get them back out afterwards.
    for registry in (STRATEGIES, MODELS, DATASETS):
        monkeypatch.setattr(registry, "_entries", dict(registry._entries))
    before = set(STRATEGIES.names())
    namespace: dict[str, Any] = {}
    try:
        if first in PRELUDES:
            exec(compile(PRELUDES[first], "PRELUDES", "exec"), namespace)  # noqa: S102 - our own text
    except Exception as exc:
        pytest.fail(f"tests/test_docs_examples.py: PRELUDES for {block.where} fails: {type(exc).__name__}: {exc}")
    try:
        exec(code, namespace)  # noqa: S102 - our own docs
    except Exception as exc:
        pytest.fail(f"{block.where}: python block fails: {type(exc).__name__}: {exc}")
    for name in sorted(set(STRATEGIES.names()) - before):
        torch.manual_seed(0)
        x, y = torch.randn(64, 10), torch.randint(0, 3, (64,))
        data = pb.DataSplits.from_tensors(train=(x[:48], y[:48]), test=(x[48:], y[48:]))
        model = torch.nn.Sequential(torch.nn.Linear(10, 128), torch.nn.ReLU(), torch.nn.Linear(128, 128), torch.nn.ReLU(), torch.nn.Linear(128, 3))
        mask = pb.prune(model, data, strategy=name, compression=4, score_batches=1)
        ratio = pb.measure(model, data, mask).sizes.compression_ratio
        assert ratio == pytest.approx(4, rel=0.02), f"{block.where}: strategy {name!r} it registers prunes to {ratio}x, not 4x"


# --- prunebench command lines -------------------------------------------------------------


@dataclass(frozen=True)
class Command:
    doc: str
    line: int
    argv: tuple[str, ...]  # after the program name
    expected_error: str | None  # a documented "prunebench: error: ..." line, after a $ prompt

    @property
    def id(self) -> str:
        return f"{self.doc}:{self.line}"


INVOKES_PRUNEBENCH = re.compile(r"(^|[\s;&|/])prunebench(\s|$)")


def segments(line: str) -> Iterator[list[str]]:
    lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    segment: list[str] = []
    for token in lexer:
        if token in SHELL_OPERATORS:
            yield segment
            segment = []
        else:
            segment.append(token)
    yield segment


def logical_lines(lines: tuple[str, ...]) -> Iterator[tuple[int, str]]:
    """Shell lines with backslash continuations joined, each with the index of its first line."""
    start, joined = None, ""
    for offset, text in enumerate(lines):
        start = offset if start is None else start
        if text.rstrip().endswith("\\"):
            joined += text.rstrip()[:-1] + " "
            continue
        yield start, joined + text
        start, joined = None, ""
    if start is not None:
        yield start, joined


def commands_of(block: Block) -> Iterator[Command]:
    prompted = any(text.startswith("$ ") for text in block.lines)
    for offset, text in logical_lines(block.lines):
        if prompted and not text.startswith("$ "):
            continue
        line = text.removeprefix("$ ").strip()
        if not line or line.startswith("#") or not INVOKES_PRUNEBENCH.search(line):
            continue  # prose, file listings, other programs
        output = []
        if prompted:
            for later in block.lines[offset + 1 :]:
                if later.startswith("$ "):
                    break
                output.append(later)
        errors = [o.strip() for o in output if o.startswith("prunebench: error:")]
        try:
            parts = list(segments(line))
        except ValueError as exc:
            raise AssertionError(f"{block.where}: shell line does not tokenize ({exc}): {line}") from None
        for tokens in parts:
            while tokens and ENV_ASSIGNMENT.match(tokens[0]):
                tokens = tokens[1:]
            if tokens and Path(tokens[0]).name == "prunebench":
                yield Command(block.doc, block.line + offset, tuple(tokens[1:]), errors[0] if errors else None)


COMMANDS = [c for b in BLOCKS if b.lang in SHELL_LANGS or b.lang == "indented" for c in commands_of(b)]


def test_docs_have_commands() -> None:
    assert {c.argv[0] for c in COMMANDS if c.argv} >= {"run", "list", "results", "report", "demo", "reproduce"}


def parse(command: Command) -> Any:
    stderr = io.StringIO()
    try:
        with contextlib.redirect_stderr(stderr):
            return cli.build_parser().parse_args(list(command.argv))
    except SystemExit:
        message = stderr.getvalue().strip().splitlines()
        pytest.fail(f"{command.id}: `prunebench {shlex.join(command.argv)}` does not parse: {message[-1] if message else ''}")


@pytest.mark.parametrize("command", COMMANDS, ids=ids(COMMANDS))
def test_command_parses_and_its_config_validates(command: Command, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    args = parse(command)
    shown = f"`prunebench {shlex.join(command.argv)}`"
    if command.expected_error is not None:
        monkeypatch.chdir(ROOT)
        results = ROOT / cli.DEFAULT_RESULTS
        existed = results.exists()
        status = cli.main(list(command.argv))
        printed = capsys.readouterr().err.strip()
        assert existed or not results.exists(), f"{command.id}: {shown} wrote {results} before failing"
        assert status == cli.EXIT_INPUT_ERROR, f"{command.id}: {shown} exits {status}, the doc shows an error (exit 2)"
        assert printed == command.expected_error, f"{command.id}: {shown} prints\n  {printed}\nthe doc shows\n  {command.expected_error}"
        return
    if args.command == "reproduce" and args.name is not None:
        from prunebench.reproduce import REPRODUCTIONS

        assert args.name in REPRODUCTIONS, f"{command.id}: {shown}: no reproduction {args.name!r} (known: {sorted(REPRODUCTIONS)})"
    if args.command != "run":
        return
    in_configs = args.config.parts[:1] == ("configs",)
    try:
        if in_configs:
            path = ROOT / args.config
            assert path.is_file(), f"{command.id}: {shown}: {args.config} does not exist"
            load_plan(path, args.overrides)
        elif args.overrides:  # a placeholder file name: the overrides must still apply
            plan_from_mapping(apply_overrides(BASE, args.overrides))
    except PrunebenchError as exc:
        pytest.fail(f"{command.id}: {shown}: its config or overrides are refused: {exc}")


# --- docs/config.md's key tables against the schema ---------------------------------------

CONFIG_MD = ROOT / "docs" / "config.md"
BACKTICKED = re.compile(r"`([^`]+)`")


def documented_keys() -> dict[str, int]:
    """Dotted key -> line in docs/config.md, from every key table."""
    keys: dict[str, int] = {}
    lines = CONFIG_MD.read_text(encoding="utf-8").splitlines()
    prefixes: list[str] | None = None
    for number, line in enumerate(lines, start=1):
        if not line.startswith("|"):
            prefixes = None
            continue
        first = line.strip("|").split("|")[0].strip()
        if prefixes is None:  # a header row
            prefixes = ([p + "." for p in BACKTICKED.findall(first)] or [""]) if "key" in first else []
            continue
        if set(first) <= {"-", " ", ":"}:
            continue
        for prefix in prefixes:
            for name in BACKTICKED.findall(first):
                keys[prefix + name] = number
    return keys


def schema_keys(model: type[BaseModel], prefix: str = "") -> tuple[set[str], set[str]]:
    """(leaf keys, section keys) of a pydantic model, dotted."""
    leaves: set[str] = set()
    sections: set[str] = set()
    for name, field in model.model_fields.items():
        key = prefix + name
        kind = field.annotation
        optional = [a for a in typing.get_args(kind) if a is not type(None)]  # an optional section: `X | None`
        if len(optional) == 1 and isinstance(optional[0], type) and issubclass(optional[0], BaseModel):
            kind = optional[0]
        if isinstance(kind, type) and issubclass(kind, BaseModel):
            sections.add(key)
            sub_leaves, sub_sections = schema_keys(kind, key + ".")
            leaves |= sub_leaves
            sections |= sub_sections
        else:
            leaves.add(key)
    return leaves, sections


def test_config_md_documents_exactly_the_schema() -> None:
    documented = documented_keys()
    spec_leaves, spec_sections = schema_keys(ExperimentSpec)
    settings_leaves, _ = schema_keys(RunSettings)
    leaves = spec_leaves | settings_leaves
    known = leaves | spec_sections | {SWEEP_KEY, BASELINES_KEY, CONTROLS_KEY}
    unknown = [f"docs/config.md:{line}: `{key}` is not a config key" for key, line in documented.items() if key not in known]
    missing = [f"docs/config.md: `{key}` is in the schema but in no key table" for key in sorted(leaves - set(documented))]
    assert not unknown + missing, "\n".join(unknown + missing)
