"""Plugins: a user's modules that register strategies, models, datasets or schedules.

A plugin is a dotted module name (importable from ``sys.path``) or a path to a ``.py`` file.
The CLI imports the ones named by ``--plugin`` and the config key ``plugins``, and every
installed package's entry points in the group ``prunebench.plugins``, before a config is
validated (a strategy name is checked against the registry). The list travels to every worker
in :class:`~prunebench.spec.RunSettings`, and each worker imports it before its first job.

A file is imported as the top-level module named by its stem, without touching ``sys.path``;
a file that is already imported (under any module name) is not executed again, so naming a
plugin both ways, or twice, registers it once.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import traceback
from collections.abc import Iterable, Sequence
from functools import cache
from importlib import metadata
from pathlib import Path
from types import ModuleType
from typing import Any

from prunebench.errors import ConfigError

ENTRY_POINT_GROUP = "prunebench.plugins"
CONFIG_KEY = "plugins"
IMPORTLIB_DIR = Path(importlib.__file__).parent

# What this process imported through this module, in order: what result.json's provenance
# records. It mirrors sys.modules (process-wide by nature) and never changes a result.
_loaded: dict[str, None] = {}


def is_file(plugin: str) -> bool:
    return plugin.endswith(".py") or "/" in plugin or "\\" in plugin


def normalize(plugin: str) -> str:
    """A file becomes an absolute path (a worker may start in another folder); a module stays."""
    return str(Path(plugin).expanduser().resolve()) if is_file(plugin) else plugin


def plugins_in_config(data: Any) -> list[str]:
    """The config's ``plugins`` list, checked, from the raw mapping (before validation)."""
    value = data.get(CONFIG_KEY, []) if isinstance(data, dict) else []
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ConfigError(f"{CONFIG_KEY}: must be a list of module names or .py files (got {value!r})")
    return value


def load_plugins(plugins: Iterable[str], source: str = CONFIG_KEY) -> list[str]:
    """Import the entry-point plugins (once per process) and ``plugins``; return ``plugins``
    normalized and without repeats. A module that cannot be imported is a ConfigError naming it;
    ``source`` (``plugins`` or ``--plugin``) says where it was named."""
    load_entry_points()
    names = list(dict.fromkeys(normalize(p) for p in plugins))
    for name in names:
        if name not in _loaded:
            import_plugin(name, source)
            _loaded[name] = None
    return names


def loaded_plugins() -> list[str]:
    """Every plugin this process imported: module names, files, ``entry point NAME = VALUE``."""
    return list(_loaded)


@cache
def load_entry_points() -> None:
    """Import every installed package's ``prunebench.plugins`` entry point. One that names a
    callable (``package.module:register``) is also called, with no arguments."""
    for point in sorted(metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda p: p.name):
        label = f"entry point {point.name} = {point.value}"
        try:
            loaded = point.load()
            if point.attr and callable(loaded):
                loaded()
        except (Exception, SystemExit) as exc:  # noqa: BLE001 - a broken package must name itself, in one line
            raise ConfigError(f"{ENTRY_POINT_GROUP} {label}: {describe(exc)}") from None
        _loaded[label] = None


def import_plugin(name: str, source: str) -> ModuleType:
    try:
        return import_file(Path(name)) if is_file(name) else import_module(name)
    except (Exception, SystemExit) as exc:  # noqa: BLE001 - any failure of a user's module is one line
        raise ConfigError(f"{source}: cannot import plugin {name!r}: {describe(exc)}") from None


def import_module(name: str) -> ModuleType:
    if name not in sys.modules:
        found = importlib.util.find_spec(name)
        if found is None:
            raise ModuleNotFoundError(f"no module named {name!r} on the Python path")
        same = found.origin and module_from_file(Path(found.origin))
        if same:  # already imported from its file under another name: do not run it twice
            sys.modules[name] = same
            return same
    return importlib.import_module(name)


def import_file(path: Path) -> ModuleType:
    if path.is_dir():
        raise IsADirectoryError("a directory, not a .py file")
    if not path.is_file():
        raise FileNotFoundError("no such file")
    existing = module_from_file(path)
    if existing is not None:
        return existing
    name = path.stem
    if name in sys.modules:
        raise ImportError(f"a different module named {name!r} is already imported; rename the file")
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError("not importable as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # as `import` does: the module may import itself, or be imported by name
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


def module_from_file(path: Path) -> ModuleType | None:
    """The imported module whose source is ``path``, if there is one."""
    path = path.resolve()
    for module in list(sys.modules.values()):
        file = getattr(module, "__file__", None)
        if file and Path(file).resolve() == path:
            return module
    return None


def describe(exc: BaseException) -> str:
    """``Type: message (file:line)`` on one line, the line being the deepest frame of the failure."""
    message = str(exc).splitlines()[0] if str(exc) else ""
    where = ""
    if isinstance(exc, SyntaxError) and exc.filename:
        where = f" ({Path(exc.filename).name}:{exc.lineno})"
    else:  # the import machinery's own frames (<frozen ...>, this file) say nothing to the user
        frames = [f for f in traceback.extract_tb(exc.__traceback__)
                  if not f.filename.startswith("<") and f.filename != __file__
                  and Path(f.filename).parent != IMPORTLIB_DIR]
        if frames:
            where = f" ({Path(frames[-1].filename).name}:{frames[-1].lineno})"
    return f"{type(exc).__name__}: {message}{where}"


def all_plugins(flags: Sequence[str], data: Any) -> list[str]:
    """Load the ``--plugin`` flags, then the config's ``plugins``; return both lists, merged."""
    return list(dict.fromkeys([*load_plugins(flags, "--plugin"), *load_plugins(plugins_in_config(data))]))


__all__ = ["ENTRY_POINT_GROUP", "all_plugins", "load_plugins", "loaded_plugins", "plugins_in_config"]
