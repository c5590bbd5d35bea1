"""docs/otlp.md documents every attribute of the mapping table, and the route is in the API doc."""

from __future__ import annotations

from pathlib import Path

from agentwatch.otlp import attributes as A

ROOT = Path(__file__).resolve().parents[2]


def test_every_attribute_name_is_documented() -> None:
    doc = (ROOT / "docs" / "otlp.md").read_text()
    names = set(A.MAPPED) | {A.INVOCATION_PARAMETERS, A.FIRST_TOKEN_EVENT, A.SERVICE_NAME}
    names |= {A.EXCEPTION_EVENT, A.EXCEPTION_MESSAGE, A.EXCEPTION_TYPE}
    names |= {f"`{v}`" for v in (*A.GENAI_KINDS, *A.OI_KINDS)}
    missing = sorted(n for n in names if n not in doc)
    assert not missing, f"docs/otlp.md does not mention: {missing}"


def test_route_is_in_the_api_and_architecture_docs() -> None:
    assert "### POST /v1/traces" in (ROOT / "docs" / "http-api.md").read_text()
    arch = (ROOT / "docs" / "architecture.md").read_text()
    for module in (
        "otlp/attributes.py",
        "otlp/decode.py",
        "otlp/mapping.py",
        "integrations/otel_overlap.py",
    ):
        assert module in arch, module
    assert "server/api/otlp.py" in arch or "`otlp.py`" in arch
