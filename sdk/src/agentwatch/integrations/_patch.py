"""Patching machinery shared by the provider integrations.

* :class:`Integration`: one provider SDK in the typed registry
  (``integrations/__init__.py``): its module, the major version we support,
  and the function that wraps its methods.
* :class:`Patches`: wrap a class attribute once, remember the original,
  restore it on uninstrument (idempotent both ways).
* :class:`ImportHook`: patch a provider SDK that is imported after ``init()``.
* :func:`active_client`: the sink a patched call records into, looked up per call.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
import threading
import types
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from agentwatch.sdk.events import Sink
from agentwatch.sdk.safety import internal_error

# -- where the patched methods record ------------------------------------------

Target = Callable[[], Sink | None]

_target: Target | None = None


def set_target(target: Target | None) -> None:
    """Report patched calls to whatever `target()` returns at call time; None: stop."""
    global _target
    _target = target


def active_client() -> Sink | None:
    """The sink patched calls record into, or None (then the call is not measured)."""
    target = _target
    if target is None:
        return None
    sink = target()
    if sink is None or sink.disabled:
        return None
    return sink


# -- one provider SDK --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Integration:
    """A provider SDK we can patch: the tested major version, and how to patch it."""

    module: str  # the SDK's top-level module, e.g. "openai"
    major: int  # the one major version tested (and so supported)
    patch: Callable[[Patches], None]  # wraps its methods; called once per instrument()

    @property
    def supported_range(self) -> str:
        return f"{self.module}>={self.major},<{self.major + 1}"

    def installed_version(self) -> str:
        """The version of the imported SDK (it is imported before we patch it)."""
        return str(getattr(sys.modules[self.module], "__version__", "0"))

    def supported(self, version: str) -> bool:
        try:
            return int(version.split(".")[0]) == self.major
        except ValueError:
            return False


# -- patch registry ----------------------------------------------------------------

_MARK = "__agentwatch_original__"


class Patches:
    """Wrapped (owner, name) pairs and their originals."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._done: dict[tuple[type, str], object] = {}

    def wrap(self, owner: type, name: str, factory: Callable[[Any], object]) -> None:
        """Replace ``owner.name`` by ``factory(original)``, once; absent names are skipped."""
        with self._lock:
            if (owner, name) in self._done:
                return
            original = owner.__dict__.get(name)
            if original is None:
                return  # method absent in this version: nothing to wrap
            if getattr(original, _MARK, None) is not None:
                return  # already ours (e.g. a second registry after reload)
            wrapper = factory(original)
            setattr(wrapper, _MARK, original)
            setattr(owner, name, wrapper)
            self._done[(owner, name)] = original

    def restore_all(self) -> None:
        with self._lock:
            for (owner, name), original in self._done.items():
                current = owner.__dict__.get(name)
                if current is not None and getattr(current, _MARK, None) is original:
                    setattr(owner, name, original)
                # If someone wrapped on top of us, leave their wrapper in place;
                # ours is inert once disabled (active_client() returns None).
            self._done.clear()

    def count(self) -> int:
        return len(self._done)


# -- post-import hook ----------------------------------------------------------------


class ImportHook(importlib.abc.MetaPathFinder):
    """Runs a callback right after a watched top-level module finishes importing."""

    def __init__(self) -> None:
        self.pending: dict[str, Callable[[], None]] = {}

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None,
        target: types.ModuleType | None = None,
    ) -> importlib.machinery.ModuleSpec | None:
        callback = self.pending.get(fullname)
        if callback is None:
            return None
        spec = None
        for finder in sys.meta_path:
            if finder is self:
                continue
            find = getattr(finder, "find_spec", None)
            if find is None:
                continue
            spec = find(fullname, path, target)
            if spec is not None:
                break
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        loader = spec.loader
        original_exec = loader.exec_module

        def exec_module(module: types.ModuleType) -> None:
            original_exec(module)
            if self.pending.pop(fullname, None) is not None:
                try:
                    callback()
                except Exception as exc:
                    internal_error(f"patch-on-import:{fullname}", exc)

        # Per-spec loader instance: overriding its method touches nothing else.
        loader.exec_module = exec_module
        return spec
