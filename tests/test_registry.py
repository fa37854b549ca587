import pytest

from prunebench.errors import UnknownNameError
from prunebench.registry import Registry


def test_register_get_and_list() -> None:
    registry: Registry[int] = Registry("widget")
    registry.register("b")(2)
    registry.add("a", 1)
    assert registry.get("a") == 1
    assert registry.names() == ["a", "b"]
    assert "b" in registry and "c" not in registry


def test_unknown_name_suggests_close_matches() -> None:
    registry: Registry[int] = Registry("strategy")
    registry.add("magnitude", 1)
    registry.add("random", 2)
    with pytest.raises(UnknownNameError, match="did you mean magnitude"):
        registry.get("magnitud")


def test_duplicate_registration_is_refused() -> None:
    registry: Registry[int] = Registry("widget")
    registry.add("a", 1)
    with pytest.raises(ValueError, match="already registered"):
        registry.add("a", 2)
