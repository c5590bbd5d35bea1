"""The one table of span attribute names that AgentWatch reads.

Two conventions name the same facts differently: OpenTelemetry's GenAI
semantic conventions (``gen_ai.*``, used by opentelemetry-instrumentation-*,
the Anthropic SDK's own spans, Logfire, the OpenAI Agents SDK...) and
OpenInference (``llm.*``, ``openinference.span.kind``, used by Arize's
instrumentations for LangChain, LlamaIndex, CrewAI, DSPy...). Each field of
an event lists its sources in order of precedence: the first attribute present
on the span wins, and values are never added across sources, so a span that
carries both conventions is not counted twice.

docs/otlp.md documents this table; tests/otlp/test_docs.py checks that every
name here appears there.
"""

from __future__ import annotations

# -- which spans become which events ------------------------------------------------

GENAI_OPERATION = "gen_ai.operation.name"
OI_SPAN_KIND = "openinference.span.kind"

# gen_ai.operation.name -> event kind
GENAI_KINDS: dict[str, str] = {
    "chat": "llm",
    "text_completion": "llm",
    "generate_content": "llm",
    "embeddings": "llm",
    "invoke_agent": "task",
    "invoke_workflow": "task",
    "execute_tool": "tool",
    "retrieval": "tool",
}

# openinference.span.kind -> event kind (upper case in the convention; compared
# case-insensitively)
OI_KINDS: dict[str, str] = {
    "LLM": "llm",
    "EMBEDDING": "llm",
    "AGENT": "task",
    "CHAIN": "task",
    "TOOL": "tool",
    "RETRIEVER": "tool",
    "RERANKER": "tool",
}

# -- fields of an LLM event -------------------------------------------------------

MODEL = (
    "gen_ai.response.model",
    "gen_ai.request.model",
    "llm.response.model_name",
    "llm.model_name",
    "llm.request.model_name",
    "embedding.model_name",
)
# OpenInference's request parameters (a JSON string): its "model" is the last
# source, for calls that failed before a response named the model. The
# attribute itself is also kept in metadata.
INVOCATION_PARAMETERS = "llm.invocation_parameters"
PROVIDER = ("gen_ai.provider.name", "gen_ai.system", "llm.provider", "llm.system")

# Input counts include cached tokens in both conventions; the cache counts are
# the parts of it billed at their own rates (the event contract's semantics).
INPUT_TOKENS = ("gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens", "llm.token_count.prompt")
OUTPUT_TOKENS = (
    "gen_ai.usage.output_tokens",
    "gen_ai.usage.completion_tokens",
    "llm.token_count.completion",
)
CACHE_READ_TOKENS = (
    "gen_ai.usage.cache_read.input_tokens",
    "llm.token_count.prompt_details.cache_read",
)
CACHE_WRITE_TOKENS = (
    "gen_ai.usage.cache_creation.input_tokens",
    # the spelling of the Anthropic SDK's own spans
    "gen_ai.usage.cache_write.input_tokens",
    "llm.token_count.prompt_details.cache_write",
)
REASONING_TOKENS = (
    "gen_ai.usage.reasoning.output_tokens",
    "llm.token_count.completion_details.reasoning",
)
COST = ("llm.cost.total",)
TIME_TO_FIRST_TOKEN_S = ("gen_ai.response.time_to_first_chunk",)
# OpenInference marks the first streamed token with a span event of this name.
FIRST_TOKEN_EVENT = "First Token Stream Event"

# -- attribution (on the span, else inherited from the nearest ancestor) ------------

AGENT = ("gen_ai.agent.name", "agent.name")
WORKFLOW = ("gen_ai.workflow.name",)
SESSION = ("session.id", "gen_ai.conversation.id")
USER = ("user.id",)
TOOL_NAME = ("gen_ai.tool.name", "tool.name")

# -- status ------------------------------------------------------------------------

ERROR_TYPE = "error.type"
EXCEPTION_EVENT = "exception"
EXCEPTION_MESSAGE = "exception.message"
EXCEPTION_TYPE = "exception.type"

# -- resource ----------------------------------------------------------------------

SERVICE_NAME = "service.name"
# Resource attributes copied into metadata (under these names): what tells one
# deployment of a service from another. Others (telemetry.sdk.*, host.*,
# process.*, whose command lines may hold secrets) are not copied.
RESOURCE_KEPT_PREFIXES = ("service.", "deployment.")

# Every span attribute read into an event field; everything else goes to metadata.
MAPPED: frozenset[str] = frozenset(
    (
        GENAI_OPERATION,
        OI_SPAN_KIND,
        *MODEL,
        *PROVIDER,
        *INPUT_TOKENS,
        *OUTPUT_TOKENS,
        *CACHE_READ_TOKENS,
        *CACHE_WRITE_TOKENS,
        *REASONING_TOKENS,
        *COST,
        *TIME_TO_FIRST_TOKEN_S,
        *AGENT,
        *WORKFLOW,
        *SESSION,
        *USER,
        *TOOL_NAME,
        ERROR_TYPE,
    )
)

# Provider names of the conventions -> the price book's provider ids
# (genai-prices). Anything else is kept as given, lower-cased.
PROVIDER_IDS: dict[str, str] = {
    "az.ai.openai": "azure",
    "azure.ai.openai": "azure",
    "azure.ai.inference": "azure",
    "az.ai.inference": "azure",
    "aws.bedrock": "aws",
    "gcp.gemini": "google",
    "gcp.vertex_ai": "google",
    "gcp.gen_ai": "google",
    "vertex_ai": "google",
    "mistral_ai": "mistral",
    "mistralai": "mistral",
    "x_ai": "x-ai",
    "xai": "x-ai",
}
