"""LangChain: a chain or agent invoked outside ``@track`` is one task run.

Registered by ``instrument()`` when ``langchain_core`` is imported (this
module imports it only then), as a configure hook: LangChain adds our
callback handler to every run, as it does for its own tracers. Only the
outermost chain opens a run (task: the chain's name); the model calls inside
it are recorded by the openai / anthropic integrations, under that run. A
chat model invoked on its own is a single call, recorded without a run.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any

from agentwatch.integrations._patch import Integration, Patches
from agentwatch.integrations._runs import FrameworkRuns

RUNS = FrameworkRuns("langchain")
_registered: list[Any] = []


def make_handler() -> Any:
    from langchain_core.callbacks import BaseCallbackHandler

    class AgentWatchCallbackHandler(BaseCallbackHandler):
        """Opens a task run for each outermost chain."""

        # Called in the chain's own context (not in an executor thread), so
        # the run it opens is the one the chain's model calls see.
        run_inline = True
        ignore_llm = True
        ignore_retriever = True
        ignore_agent = True
        ignore_retry = True
        ignore_chat_model = True
        ignore_custom_event = True

        def on_chain_start(
            self,
            serialized: dict[str, Any] | None,
            inputs: Any,
            *,
            run_id: Any,
            parent_run_id: Any = None,
            **kwargs: Any,
        ) -> None:
            if parent_run_id is None:
                name = kwargs.get("name") or (serialized or {}).get("name")
                RUNS.start(run_id, name if isinstance(name, str) else None)

        def on_chain_end(self, outputs: Any, *, run_id: Any, **kwargs: Any) -> None:
            RUNS.end(run_id)

        def on_chain_error(self, error: BaseException, *, run_id: Any, **kwargs: Any) -> None:
            RUNS.end(run_id, error)

    return AgentWatchCallbackHandler()


def patch(patches: Patches) -> None:
    """Register the handler as a configure hook, once per process."""
    if _registered:
        return
    from langchain_core.tracers.context import register_configure_hook

    handler = make_handler()
    # A default value: the hook is on in every context, with nothing to set.
    var: ContextVar[Any] = ContextVar("agentwatch_langchain_handler", default=handler)
    register_configure_hook(var, True)
    _registered.append(var)


INTEGRATION = Integration(module="langchain_core", major=1, patch=patch)
