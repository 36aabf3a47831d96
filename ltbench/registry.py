"""Name -> object registries (detectron2 style): one obvious place to look a component up by name."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from ltbench.errors import LtbenchError, did_you_mean

T = TypeVar("T")


class Registry:
    """A named mapping from string keys to classes or functions.

    >>> LOSSES = Registry("loss")
    >>> @LOSSES.register("ce")
    ... def cross_entropy(...): ...
    >>> LOSSES.get("ce")
    """

    def __init__(self, kind: str, *, key: str | None = None) -> None:
        self.kind = kind
        self.key = key  # the spec/config key whose value names an entry, for errors
        self._items: dict[str, Any] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def decorator(obj: T) -> T:
            if name in self._items and self._items[name] is not obj:
                raise KeyError(f"{self.kind} {name!r} is already registered")
            self._items[name] = obj
            return obj

        return decorator

    def get(self, name: str) -> Any:
        try:
            return self._items[name]
        except KeyError:
            raise LtbenchError(
                f"unknown {self.kind} {name!r}{did_you_mean(str(name), self._items)}",
                key=self.key,
                expected="one of " + ", ".join(sorted(self._items)),
            ) from None

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._items))

    def names(self) -> list[str]:
        return sorted(self._items)
