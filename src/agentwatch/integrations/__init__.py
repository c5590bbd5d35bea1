"""Auto-instrumentation of provider SDKs (OpenAI, Anthropic).

``instrument()`` patches every supported SDK that is installed: at once if it
is already imported, otherwise right after it is imported, so the order of
``import openai`` and ``agentwatch.init()`` does not matter. The SDKs are never
imported by us just to patch them. ``uninstrument()`` restores the originals.
"""

from __future__ import annotations

import functools
import importlib
import logging
import sys
import threading

from agentwatch.integrations._patch import ImportHook, Patches, Target, active_client, set_target
from agentwatch.sdk.safety import internal_error, log_once

__all__ = ["active_client", "instrument", "is_instrumented", "uninstrument"]

# provider module name -> our integration module
PROVIDERS = {
    "openai": "agentwatch.integrations.openai",
    "anthropic": "agentwatch.integrations.anthropic",
}

_patches = Patches()
_hook = ImportHook()
_lock = threading.RLock()
_instrumented = False


def _patch_provider(name: str) -> None:
    integration = importlib.import_module(PROVIDERS[name])
    version = integration.installed_version()
    if not integration.supported(version):
        log_once(
            f"unsupported:{name}",
            logging.WARNING,
            "agentwatch: %s %s is outside the supported range (%s); not patching it",
            name,
            version,
            integration.SUPPORTED,
        )
        return
    integration.patch(_patches)


def instrument(target: Target) -> None:
    """Patch installed provider SDKs; each patched call records into `target()`."""
    global _instrumented
    with _lock:
        set_target(target)
        if _instrumented:
            return
        _instrumented = True
        for name in PROVIDERS:
            if name in sys.modules:
                try:
                    _patch_provider(name)
                except Exception as exc:
                    internal_error(f"patch:{name}", exc)
            else:
                _hook.pending[name] = functools.partial(_patch_provider, name)
        if _hook.pending and _hook not in sys.meta_path:
            sys.meta_path.insert(0, _hook)


def uninstrument() -> None:
    """Restore original provider methods and stop patching on import. Idempotent."""
    global _instrumented
    with _lock:
        set_target(None)
        _hook.pending.clear()
        if _hook in sys.meta_path:
            sys.meta_path.remove(_hook)
        _patches.restore_all()
        _instrumented = False


def is_instrumented() -> bool:
    """True while instrument() is in effect."""
    return _instrumented
