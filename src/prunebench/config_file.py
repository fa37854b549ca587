"""Reading YAML config text safely: every way a file or value can be wrong is one ConfigError.

Beyond ``yaml.safe_load`` (which already builds only plain data), the loader here

- refuses a key that appears twice in one mapping, at any depth (YAML would keep the last);
- bounds what aliases can do: a document whose nodes, counted with every alias expanded,
  exceed :data:`MAX_NODES` is refused while it is composed, before any Python object is
  built, so a few hundred bytes of nested aliases cannot exhaust memory; a recursive alias
  and nesting deeper than :data:`MAX_DEPTH` are refused too;
- reads at most :data:`MAX_CONFIG_BYTES` of a file, and only UTF-8 text;
- refuses a decimal integer Python will not convert from text (over 4,300 digits) naming its line.
- reads ``1e-3``, ``5e-4`` and ``1E-3`` as numbers, as YAML 1.2 does (YAML 1.1, which PyYAML
  follows, wants a dot and a signed exponent, ``1.0e-3``, and leaves ``1e-3`` a string).
"""

from __future__ import annotations

import codecs
import os
import re
from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, SequenceNode

from prunebench.errors import ConfigError

MAX_CONFIG_BYTES = 1 << 20  # a config is a few hundred bytes; this is far beyond any real one
MAX_NODES = 10_000  # nodes in one document with aliases expanded
MAX_DEPTH = 64  # nested mappings/sequences
MERGE_TAG = "tag:yaml.org,2002:merge"
UTF16_32_BOMS = (codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE, codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)
FLOAT_TAG = "tag:yaml.org,2002:float"
# YAML 1.2 core-schema floats with an exponent that YAML 1.1 leaves as strings: 1e-3, 5E4, .5e-3
EXPONENT_FLOAT = re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9][0-9_]*)[eE][-+]?[0-9]+$")


def line_of(node: Node) -> int:
    return node.start_mark.line + 1


class BoundedSafeLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that counts nodes while composing and refuses duplicate keys."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.expanded: dict[int, int] = {}  # id(node) -> its node count with aliases expanded
        self.depth = 0

    def compose_node(self, parent: Node | None, index: object) -> Node:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            node = super().compose_node(parent, index)
            if id(node) not in self.expanded:  # the anchor is still being composed
                raise ConfigError(f"line {event.start_mark.line + 1}: alias *{event.anchor} refers to itself")
            return node
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise ConfigError(f"line {self.peek_event().start_mark.line + 1}: nested more than {MAX_DEPTH} levels deep")
        node = super().compose_node(parent, index)
        self.depth -= 1
        if isinstance(node, SequenceNode):
            children: list[Node] = node.value
        elif isinstance(node, MappingNode):
            children = [part for pair in node.value for part in pair]
        else:
            children = []
        size = 1 + sum(self.expanded[id(child)] for child in children)
        if size > MAX_NODES:
            raise ConfigError(
                f"line {line_of(node)}: expands to more than {MAX_NODES} values through aliases "
                "(*name); write the values out or use fewer aliases"
            )
        self.expanded[id(node)] = size
        return node

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Any, Any]:
        if isinstance(node, MappingNode):
            seen: dict[object, int] = {}
            for key_node, _ in node.value:
                if key_node.tag == MERGE_TAG:  # "<<: *base" keys may be overridden: not duplicates
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    first = seen.get(key)
                except TypeError:
                    continue  # an unhashable key: SafeLoader reports it
                if first is not None:
                    raise ConfigError(f"line {line_of(key_node)}: key {key!r} appears twice (first on line {first})")
                seen[key] = line_of(key_node)
        return super().construct_mapping(node, deep=deep)

    def construct_yaml_int(self, node: Node) -> int:
        try:
            return super().construct_yaml_int(node)
        except ValueError:  # int() refuses text over sys.get_int_max_str_digits() digits
            digits = sum(c.isdigit() for c in str(node.value))
            raise ConfigError(f"line {line_of(node)}: an integer of {digits} digits; no setting takes one") from None


BoundedSafeLoader.add_constructor("tag:yaml.org,2002:int", BoundedSafeLoader.construct_yaml_int)


BoundedSafeLoader.add_implicit_resolver(FLOAT_TAG, EXPONENT_FLOAT, list("-+0123456789."))


def describe_yaml_error(exc: yaml.YAMLError) -> str:
    """One line: what is wrong and where."""
    if isinstance(exc, yaml.MarkedYAMLError) and exc.problem:
        mark = exc.problem_mark
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        return f"{exc.problem}{where}"
    return str(exc).splitlines()[0]


def load_yaml(text: str) -> Any:
    """Parse one YAML document with :class:`BoundedSafeLoader`; errors are ConfigErrors/YAMLErrors."""
    loader = BoundedSafeLoader(text)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


def parse_value(raw: str, source: str) -> Any:
    """A ``key=value`` override's value as YAML; text that is not valid YAML stays text."""
    try:
        return load_yaml(raw)
    except yaml.YAMLError:
        return raw
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None


def read_text(path: Path) -> str:
    """The file's UTF-8 text; a missing, unreadable, binary or oversized file is a ConfigError."""
    try:
        # O_NONBLOCK: opening a named pipe nobody writes to must not wait for a writer. Reading
        # then blocks again, so `<(cat config.yaml)` works and a pipe without a writer reads empty.
        with open(path, "rb", opener=lambda file, flags: os.open(file, flags | os.O_NONBLOCK)) as handle:
            os.set_blocking(handle.fileno(), True)
            payload = handle.read(MAX_CONFIG_BYTES + 1)
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except IsADirectoryError:
        raise ConfigError(f"config file {path} is a directory; give the path of a .yaml file") from None
    except PermissionError:
        raise ConfigError(f"config file {path} cannot be read: permission denied") from None
    except OSError as exc:
        raise ConfigError(f"config file {path} cannot be read: {exc.strerror or exc}") from None
    if len(payload) > MAX_CONFIG_BYTES:
        raise ConfigError(f"config file {path} is larger than {MAX_CONFIG_BYTES} bytes; a config is a short YAML file")
    if payload.startswith(UTF16_32_BOMS) or b"\x00" in payload:
        raise ConfigError(f"config file {path} is not UTF-8 text (it looks like UTF-16 or UTF-32); save it as UTF-8")
    try:
        return payload.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"config file {path} is not UTF-8 text (byte 0x{payload[exc.start]:02x} at offset {exc.start}); "
            "save it as UTF-8"
        ) from None


def read_config_file(path: Path) -> dict[str, Any]:
    """A config file as a plain mapping (an empty file is an empty mapping)."""
    text = read_text(path)
    try:
        data = load_yaml(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {describe_yaml_error(exc)}") from None
    except ConfigError as exc:
        raise ConfigError(f"{path}, {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a mapping of keys to values")
    return data
