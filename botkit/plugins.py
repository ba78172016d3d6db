"""One registry type for every kind of plugin (sources, filters, post targets).

A plugin is found by name. Built-ins and third-party plugins register the same way: through a
Python entry-point group (``botkit.sources``, ``botkit.filters``, ``botkit.targets``) declared in
the distribution's ``pyproject.toml``, so a third party adds one without touching botkit.
:meth:`Registry.register` also lets a script or a test add a plugin in-process.

Entry points are loaded lazily: listing names imports nothing, and a plugin's heavy
dependencies (praw, pandas...) load only when that plugin is used.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib.metadata import EntryPoint, entry_points
from typing import Generic, TypeVar

from botkit.errors import PluginError

T = TypeVar("T")


class Registry(Generic[T]):
    """Plugins of one kind, by name."""

    def __init__(self, kind: str, group: str) -> None:
        self.kind = kind
        self.group = group
        self._registered: dict[str, T] = {}
        self._loaded: dict[str, T] = {}
        self._found: dict[str, EntryPoint] | None = None

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator adding a plugin in-process; it wins over an entry point of the same name."""

        def add(plugin: T) -> T:
            self._registered[name] = plugin
            return plugin

        return add

    def _entry_points(self) -> dict[str, EntryPoint]:
        # Scanning installed distributions costs milliseconds each time; once per process is enough.
        if self._found is None:
            self._found = {ep.name: ep for ep in entry_points(group=self.group)}
        return self._found

    def names(self) -> list[str]:
        return sorted(set(self._entry_points()) | set(self._registered))

    def origin(self, name: str) -> str:
        """Where a plugin comes from, for listings: ``module:attr (distribution)``."""
        if name in self._registered:
            plugin = self._registered[name]
            return f"{getattr(plugin, '__module__', '?')}:{getattr(plugin, '__qualname__', plugin)}"
        ep = self._entry_points()[name]
        dist = f" ({ep.dist.name})" if ep.dist is not None else ""
        return f"{ep.value}{dist}"

    def get(self, name: str) -> T:
        if name in self._registered:
            return self._registered[name]
        if name in self._loaded:
            return self._loaded[name]
        ep = self._entry_points().get(name)
        if ep is None:
            known = ", ".join(self.names()) or "none installed"
            raise PluginError(f"unknown {self.kind} {name!r} (known: {known})")
        try:
            plugin = ep.load()
        except Exception as exc:  # a broken third-party plugin must not look like our bug
            raise PluginError(f"{self.kind} {name!r} ({ep.value}) failed to load: {exc}") from exc
        self._loaded[name] = plugin
        return plugin
