"""Auto-instrumentation of provider SDKs (OpenAI, Anthropic).

``instrument()`` patches every supported SDK that is installed: at once if it
is already imported, otherwise right after it is imported, so the order of
``import openai`` and ``agentwatch.init()`` does not matter. The SDKs are never
imported by us just to patch them (our integration modules import them only
inside ``patch``). ``uninstrument()`` restores the originals.

The integrations record into a :class:`~agentwatch.sdk.events.Sink` that the
caller names (``agentwatch.instrument`` passes the client); they never import
the client itself.
"""

from __future__ import annotations

import functools
import logging
import sys
import threading

from agentwatch.integrations import agents_sdk, anthropic, langchain, openai
from agentwatch.integrations._patch import (
    ImportHook,
    Integration,
    Patches,
    Target,
    active_client,
    set_target,
)
from agentwatch.sdk.safety import internal_error, log_once

__all__ = ["INTEGRATIONS", "active_client", "instrument", "is_instrumented", "uninstrument"]

# Every provider SDK we patch, then the frameworks whose run hooks we join
# (they only group calls into runs; the calls are the providers'). A new one:
# a module beside these with an INTEGRATION, and one entry here.
INTEGRATIONS: tuple[Integration, ...] = (
    openai.INTEGRATION,
    anthropic.INTEGRATION,
    agents_sdk.INTEGRATION,
    langchain.INTEGRATION,
)

_patches = Patches()
_hook = ImportHook()
_lock = threading.RLock()
_instrumented = False


def _patch_provider(integration: Integration) -> None:
    version = integration.installed_version()
    if not integration.supported(version):
        log_once(
            f"unsupported:{integration.module}",
            logging.WARNING,
            "agentwatch: %s %s is outside the supported range (%s); not patching it",
            integration.module,
            version,
            integration.supported_range,
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
        for integration in INTEGRATIONS:
            name = integration.module
            if name in sys.modules:
                try:
                    _patch_provider(integration)
                except Exception as exc:
                    internal_error(f"patch:{name}", exc)
            else:
                _hook.pending[name] = functools.partial(_patch_provider, integration)
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
