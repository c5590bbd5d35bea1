"""A local fake of the OpenAI and Anthropic HTTP APIs for the real SDK clients.

`FakeProvider` is an ``httpx2.MockTransport`` handler (openai 3.x and
anthropic 2.x are built on httpx2) that answers with real response JSON and
real SSE stream bodies, shaped like the providers' own. It records each
request body so tests can check what the SDK changed (stream_options).
"""

from __future__ import annotations

import base64
import contextlib
import json
import socket
import struct
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx2

OPENAI_MODEL = "gpt-4o-2024-08-06"
ANTHROPIC_MODEL = "claude-sonnet-4-20250514"


@dataclass
class Usage:
    """Token counts the fake reports, in each provider's own terms."""

    input: int = 100  # OpenAI: all input incl. cached; Anthropic: uncached input only
    output: int = 20
    cached: int = 0
    cache_write: int = 0
    reasoning: int = 0


@dataclass
class FakeProvider:
    usage: Usage = field(default_factory=Usage)
    fail_status: int | None = None  # answer every request with this HTTP error
    timeout: bool = False  # raise a read timeout instead of answering
    text: tuple[str, ...] = ("Hel", "lo", "!")
    requests: list[dict[str, Any]] = field(default_factory=list)

    # -- transport ---------------------------------------------------------------

    def transport(self) -> httpx2.MockTransport:
        return httpx2.MockTransport(self.handle)

    def sync_client(self) -> httpx2.Client:
        return httpx2.Client(transport=self.transport())

    def async_client(self) -> httpx2.AsyncClient:
        return httpx2.AsyncClient(transport=self.transport())

    def handle(self, request: httpx2.Request) -> httpx2.Response:
        body = json.loads(request.content or b"{}")
        self.requests.append({"path": request.url.path, "body": body})
        if self.timeout:
            raise httpx2.ReadTimeout("read timed out", request=request)
        if self.fail_status is not None:
            return httpx2.Response(
                self.fail_status,
                json={"error": {"message": "fake provider failure", "type": "server_error"}},
            )
        path = request.url.path
        if path.endswith("/messages"):
            return self._anthropic(body)
        if path.endswith("/chat/completions"):
            return self._chat(body)
        if path.endswith("/responses"):
            return self._responses(body)
        if path.endswith("/embeddings"):
            return self._embeddings(body)
        return httpx2.Response(404, json={"error": {"message": f"no route {path}"}})

    # -- OpenAI chat ---------------------------------------------------------------

    def chat_usage(self) -> dict[str, Any]:
        u = self.usage
        return {
            "prompt_tokens": u.input,
            "completion_tokens": u.output,
            "total_tokens": u.input + u.output,
            "prompt_tokens_details": {
                "cached_tokens": u.cached,
                "cache_write_tokens": u.cache_write,
            },
            "completion_tokens_details": {"reasoning_tokens": u.reasoning},
        }

    def _tool_call(self, body: dict[str, Any]) -> dict[str, Any] | None:
        """The first tool offered, called with {"x": 2}, unless a tool result came back."""
        tools = body.get("tools") or []
        messages = body.get("messages") or []
        if not tools or (messages and messages[-1].get("role") == "tool"):
            return None
        name = tools[0].get("function", {}).get("name", "tool")
        return {
            "id": "call_1",
            "type": "function",
            "function": {"name": name, "arguments": json.dumps({"x": 2})},
        }

    def _chat(self, body: dict[str, Any]) -> httpx2.Response:
        content = "".join(self.text)
        if body.get("response_format", {}).get("type") == "json_schema":
            content = json.dumps({"answer": 4})
        tool_call = self._tool_call(body)
        if tool_call is not None and not body.get("stream"):
            return httpx2.Response(
                200,
                json={
                    "id": "chatcmpl-1",
                    "object": "chat.completion",
                    "created": 1,
                    "model": OPENAI_MODEL,
                    "choices": [
                        {
                            "index": 0,
                            "message": {
                                "role": "assistant",
                                "content": None,
                                "tool_calls": [tool_call],
                            },
                            "finish_reason": "tool_calls",
                        }
                    ],
                    "usage": self.chat_usage(),
                },
            )
        if not body.get("stream"):
            return httpx2.Response(
                200,
                json={
                    "id": "chatcmpl-1",
                    "object": "chat.completion",
                    "created": 1,
                    "model": OPENAI_MODEL,
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": content},
                            "finish_reason": "stop",
                        }
                    ],
                    "usage": self.chat_usage(),
                },
            )

        def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
            return {
                "id": "chatcmpl-1",
                "object": "chat.completion.chunk",
                "created": 1,
                "model": OPENAI_MODEL,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            }

        events = [chunk({"role": "assistant", "content": ""})]
        if tool_call is not None:
            events.append(chunk({"tool_calls": [{"index": 0, **tool_call}]}))
            events.append(chunk({}, "tool_calls"))
        else:
            events += [chunk({"content": t}) for t in self.text]
            events.append(chunk({}, "stop"))
        if (body.get("stream_options") or {}).get("include_usage"):
            events.append(
                {
                    "id": "chatcmpl-1",
                    "object": "chat.completion.chunk",
                    "created": 1,
                    "model": OPENAI_MODEL,
                    "choices": [],
                    "usage": self.chat_usage(),
                }
            )
        data = "".join(f"data: {json.dumps(e)}\n\n" for e in events) + "data: [DONE]\n\n"
        return sse(data)

    # -- OpenAI Responses -------------------------------------------------------------

    def responses_usage(self) -> dict[str, Any]:
        u = self.usage
        return {
            "input_tokens": u.input,
            "input_tokens_details": {
                "cached_tokens": u.cached,
                "cache_write_tokens": u.cache_write,
            },
            "output_tokens": u.output,
            "output_tokens_details": {"reasoning_tokens": u.reasoning},
            "total_tokens": u.input + u.output,
        }

    def _response_obj(self, status: str, with_output: bool) -> dict[str, Any]:
        text = "".join(self.text)
        return {
            "id": "resp_1",
            "object": "response",
            "created_at": 1,
            "model": OPENAI_MODEL,
            "status": status,
            "output": [
                {
                    "id": "msg_1",
                    "type": "message",
                    "role": "assistant",
                    "status": "completed",
                    "content": [{"type": "output_text", "text": text, "annotations": []}],
                }
            ]
            if with_output
            else [],
            "parallel_tool_calls": True,
            "tool_choice": "auto",
            "tools": [],
            "usage": self.responses_usage() if status == "completed" else None,
        }

    def _responses(self, body: dict[str, Any]) -> httpx2.Response:
        if not body.get("stream"):
            return httpx2.Response(200, json=self._response_obj("completed", True))
        text = "".join(self.text)
        ev: list[dict[str, Any]] = [
            {"type": "response.created", "response": self._response_obj("in_progress", False)},
            {
                "type": "response.output_item.added",
                "output_index": 0,
                "item": {
                    "id": "msg_1",
                    "type": "message",
                    "role": "assistant",
                    "status": "in_progress",
                    "content": [],
                },
            },
            {
                "type": "response.content_part.added",
                "item_id": "msg_1",
                "output_index": 0,
                "content_index": 0,
                "part": {"type": "output_text", "text": "", "annotations": []},
            },
        ]
        ev += [
            {
                "type": "response.output_text.delta",
                "item_id": "msg_1",
                "output_index": 0,
                "content_index": 0,
                "delta": t,
                "logprobs": [],
            }
            for t in self.text
        ]
        ev += [
            {
                "type": "response.output_text.done",
                "item_id": "msg_1",
                "output_index": 0,
                "content_index": 0,
                "text": text,
                "logprobs": [],
            },
            {"type": "response.completed", "response": self._response_obj("completed", True)},
        ]
        data = ""
        for i, e in enumerate(ev):
            e["sequence_number"] = i
            data += f"event: {e['type']}\ndata: {json.dumps(e)}\n\n"
        return sse(data)

    # -- OpenAI embeddings -----------------------------------------------------------

    def _embeddings(self, body: dict[str, Any]) -> httpx2.Response:
        vec = [0.25, 0.5]
        emb: Any = vec
        if body.get("encoding_format") == "base64":
            emb = base64.b64encode(struct.pack(f"<{len(vec)}f", *vec)).decode()
        return httpx2.Response(
            200,
            json={
                "object": "list",
                "data": [{"object": "embedding", "index": 0, "embedding": emb}],
                "model": "text-embedding-3-small",
                "usage": {"prompt_tokens": self.usage.input, "total_tokens": self.usage.input},
            },
        )

    # -- Anthropic ---------------------------------------------------------------------

    def _anthropic(self, body: dict[str, Any]) -> httpx2.Response:
        u = self.usage
        usage = {
            "input_tokens": u.input,
            "cache_creation_input_tokens": u.cache_write,
            "cache_read_input_tokens": u.cached,
            "output_tokens": u.output,
        }
        if not body.get("stream"):
            return httpx2.Response(
                200,
                json={
                    "id": "msg_1",
                    "type": "message",
                    "role": "assistant",
                    "model": ANTHROPIC_MODEL,
                    "content": [{"type": "text", "text": "".join(self.text)}],
                    "stop_reason": "end_turn",
                    "stop_sequence": None,
                    "usage": usage,
                },
            )
        start_usage = {**usage, "output_tokens": 1}
        ev: list[dict[str, Any]] = [
            {
                "type": "message_start",
                "message": {
                    "id": "msg_1",
                    "type": "message",
                    "role": "assistant",
                    "model": ANTHROPIC_MODEL,
                    "content": [],
                    "stop_reason": None,
                    "stop_sequence": None,
                    "usage": start_usage,
                },
            },
            {
                "type": "content_block_start",
                "index": 0,
                "content_block": {"type": "text", "text": ""},
            },
            {"type": "ping"},
        ]
        ev += [
            {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": t}}
            for t in self.text
        ]
        ev += [
            {"type": "content_block_stop", "index": 0},
            # Cumulative: the first delta is a running count, the second the total.
            {
                "type": "message_delta",
                "delta": {"stop_reason": None, "stop_sequence": None},
                "usage": {"output_tokens": max(1, u.output // 2)},
            },
            {
                "type": "message_delta",
                "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                "usage": {"output_tokens": u.output},
            },
            {"type": "message_stop"},
        ]
        data = "".join(f"event: {e['type']}\ndata: {json.dumps(e)}\n\n" for e in ev)
        return sse(data)


def sse(data: str) -> httpx2.Response:
    return httpx2.Response(
        200, headers={"content-type": "text/event-stream"}, content=data.encode()
    )


class JSONHandler(BaseHTTPRequestHandler):
    """A quiet keep-alive request handler that answers JSON bytes."""

    protocol_version = "HTTP/1.1"

    def answer(self, status: int, data: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


class LocalServer:
    """A real HTTP server on a free port of 127.0.0.1, serving from its own thread."""

    def __init__(self, handler: type[BaseHTTPRequestHandler]) -> None:
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class SlowHTTPProvider(LocalServer):
    """A real HTTP server on a free port that answers after `delay` seconds (for timeouts)."""

    def __init__(self, delay: float) -> None:
        delay_s = delay

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                time.sleep(delay_s)
                try:
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.end_headers()
                    self.wfile.write(b"{}")
                except OSError:
                    pass

            def log_message(self, *args: Any) -> None:
                pass

        super().__init__(Handler)


class JudgingServer(LocalServer):
    """A real HTTP server standing in for AgentWatch's ingest: `judge` picks each answer.

    `judge(events, headers)` gets the events and the request headers of one
    POST and returns (status, JSON body). Events of every 200 batch are kept
    in `accepted` (by id, so a retry counts once); every request's headers
    are kept in `headers`.
    """

    def __init__(self, judge: Any) -> None:
        server = self
        self.accepted: dict[str, dict[str, Any]] = {}
        self.requests = 0
        self.headers: list[dict[str, str]] = []
        self.lock = threading.Lock()

        class Handler(JSONHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                events = json.loads(raw)["events"]
                headers = dict(self.headers)
                status, body = judge(events, headers)
                with server.lock:
                    server.requests += 1
                    server.headers.append(headers)
                    if status == 200:
                        server.accepted.update((e["id"], e) for e in events)
                self.answer(status, json.dumps(body).encode())

        super().__init__(Handler)


class SilentServer:
    """Accepts connections and reads what is sent, and never answers."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.conns: list[socket.socket] = []
        self.closed = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.closed.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(conn)
            threading.Thread(target=self._drain, args=(conn,), daemon=True).start()

    def _drain(self, conn: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while conn.recv(65536):
                pass

    def close(self) -> None:
        self.closed.set()
        self.sock.close()
        for c in self.conns:
            with contextlib.suppress(OSError):
                c.close()


class HTTPFakeProvider(LocalServer):
    """The fake provider behind a real HTTP server, for code that builds its own clients.

    Frameworks (LangChain, Pydantic AI, the Agents SDK, LlamaIndex, LiteLLM)
    make their own openai / anthropic clients from a base URL: they are
    pointed at `url` (OpenAI: `url + "/v1"`) and answered by `provider`.
    """

    def __init__(self, provider: FakeProvider) -> None:
        self.provider = provider

        class Handler(JSONHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                request = httpx2.Request("POST", "http://fake" + self.path, content=raw)
                response = provider.handle(request)
                data = response.read()
                self.send_response(response.status_code)
                kind = response.headers.get("content-type", "application/json")
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        super().__init__(Handler)
