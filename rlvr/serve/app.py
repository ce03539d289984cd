"""The OpenAI-compatible endpoint over a rollout engine: `/v1/models`, `/v1/chat/completions`,
`/v1/completions` (and, per session, `/sessions/<id>/v1/chat/completions`, see `rlvr.serve.sessions`).

Every choice carries what a trainer needs beside the text, as vLLM returns them: the sampled `token_ids`, and
the prompt's (`prompt_token_ids`: top level for chat, per choice for completions); with `logprobs` the
log-prob of each sampled token under the distribution it was drawn from (the engine's behaviour log-probs:
temperature-scaled, nucleus-renormalised with top_p < 1; at temperature 0 the model's own). Chat requests
with `tools` on a template with a tools branch get the `<tool_call>` blocks the model wrote as `tool_calls`.
With `stream: true` the reply is sent as server-sent events once it is complete: one chunk per choice (its
whole text as one delta, token ids and log-probs included), a usage chunk with `stream_options.include_usage`,
then `[DONE]` (agent programs that always stream, such as verifiers' chat loop, work unchanged).
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid

from rlvr.environments.adapters.base import MessageRenderer
from rlvr.environments.parsing import json_calls, template_form
from rlvr.extras import import_extra
from rlvr.serve.batcher import Batcher, Sample
from rlvr.serve.requests import GenRequest, RequestError, read_chat, read_completion
from rlvr.serve.sessions import Session, Sessions, Turn

fastapi = import_extra("fastapi", "the endpoint (rlvr serve, task.environment: verifiers:...)", "serve")
FastAPI, Request = fastapi.FastAPI, fastapi.Request
responses = import_extra("fastapi.responses", "the endpoint (rlvr serve)", "serve")
JSONResponse, StreamingResponse = responses.JSONResponse, responses.StreamingResponse


class EngineServer:
    """The endpoint's state: the engine (behind a `Batcher`), the tokenizer, the served model's name, the
    default `max_tokens` and the context length, and the open sessions."""

    def __init__(self, engine, tokenizer, model_name: str, stop_token_ids: tuple[int, ...], max_len: int,
                 default_max_tokens: int = 256, seed: int = 0, max_batch: int = 64, window_s: float = 0.005):
        self.tokenizer, self.model_name = tokenizer, model_name
        self.max_len, self.default_max_tokens = max_len, default_max_tokens
        self.batcher = Batcher(engine, tokenizer, stop_token_ids, seed, max_batch, window_s)
        self.sessions = Sessions()
        self.renderer = MessageRenderer(tokenizer)
        self.bare_json = template_form(tokenizer) == "llama"  # tool calls are Llama 3's bare JSON replies

    def open_session(self, seed: int, temperature: float = 1.0, top_p: float = 1.0, budget: int | None = None) -> str:
        return self.sessions.open(seed, temperature, top_p, budget)

    def load_weights(self, state, version: int) -> None:
        """New weights for the engine, between two batches."""
        with self.batcher.lock:
            self.batcher.engine.load_weights(state, version)

    def close(self) -> None:
        self.batcher.close()

    def check_model(self, body: dict) -> None:
        model = body.get("model")
        if model is not None and model != self.model_name:
            raise RequestError("model", f"this server serves {self.model_name!r}, not {model!r}", status=404)

    async def chat(self, body: dict, sid: str | None = None) -> dict:
        self.check_model(body)
        session = self.sessions.get(sid) if sid is not None else None
        req = read_chat(body, self.tokenizer, self.default_max_tokens, self.max_len if session is None else None)
        if session is None:
            samples = (await self._generate(req))[0]
        else:
            samples = await self._session_turn(session, req)
        choices = []
        for i, s in enumerate(samples):
            message = {"role": "assistant", "content": s.text}
            finish = s.finish_reason
            if req.tools:
                content, calls = json_calls(s.text, self.bare_json)
                if calls:
                    message["content"] = content or None
                    message["tool_calls"] = [{"id": f"call_{uuid.uuid4().hex[:12]}", "type": "function",
                                              "function": {"name": c.name, "arguments": json.dumps(c.arguments)}}
                                             for c in calls]
                    finish = "tool_calls"
            choices.append({"index": i, "message": message, "finish_reason": finish, "token_ids": s.token_ids,
                            "logprobs": {"content": self._chat_logprobs(s, req.top_logprobs)} if req.logprobs else None})
        return self._response("chat.completion", choices, req.prompts[0], samples, prompt_token_ids=req.prompts[0])

    async def completion(self, body: dict) -> dict:
        self.check_model(body)
        req = read_completion(body, self.tokenizer, self.default_max_tokens, self.max_len)
        per_prompt = await self._generate(req)
        choices, flat = [], []
        for prompt, samples in zip(req.prompts, per_prompt):
            for s in samples:
                choices.append({"index": len(choices), "text": s.text, "finish_reason": s.finish_reason,
                                "token_ids": s.token_ids, "prompt_token_ids": prompt,
                                "logprobs": self._text_logprobs(s) if req.logprobs else None})
                flat.append(s)
        return self._response("text_completion", choices, [t for p in req.prompts for t in p], flat)

    async def _generate(self, req: GenRequest) -> list[list[Sample]]:
        return await asyncio.wrap_future(self.batcher.submit(req))

    async def _session_turn(self, session: Session, req: GenRequest) -> list[Sample]:
        """One turn of a session: its prompt extends the stream, its sampling is the session's."""
        if req.n != 1:
            raise RequestError("n", "a session is one episode: n must be 1")
        prompt = session.prompt(req.messages, req.prompts[0], self.renderer, self.tokenizer)
        req.prompts = [prompt]
        if len(prompt) >= self.max_len:
            raise RequestError("messages", f"the session's stream ({len(prompt)} tokens) leaves no room in "
                                           f"the model's context of {self.max_len} tokens")
        req.max_tokens = min(session.max_tokens(req.max_tokens, prompt), self.max_len - len(prompt))
        req.temperature, req.top_p, req.seed = session.temperature, session.top_p, session.next_seed()
        samples = (await self._generate(req))[0]
        s = samples[0]
        reply = json_calls(s.text, self.bare_json)[0] if req.tools else s.text
        session.turns.append(Turn(prompt, s.token_ids, s.logprobs, s.finish_reason, req.messages, reply))
        return samples

    def _piece(self, token_id: int) -> str:
        return self.tokenizer.decode([token_id], skip_special_tokens=False)

    def _chat_logprobs(self, s: Sample, top: int) -> list[dict]:
        out = []
        for k, (t, lp) in enumerate(zip(s.token_ids, s.logprobs)):
            piece = self._piece(t)
            entry = {"token": piece, "logprob": lp, "bytes": list(piece.encode()), "top_logprobs": []}
            if top and s.top is not None:
                entry["top_logprobs"] = [{"token": self._piece(i), "logprob": v, "bytes": list(self._piece(i).encode())}
                                         for i, v in s.top[k]]
            out.append(entry)
        return out

    def _text_logprobs(self, s: Sample) -> dict:
        pieces = [self._piece(t) for t in s.token_ids]
        offsets, at = [], 0
        for p in pieces:
            offsets.append(at)
            at += len(p)
        top = None if s.top is None else [{self._piece(i): v for i, v in row} for row in s.top]
        return {"tokens": pieces, "token_logprobs": list(s.logprobs), "top_logprobs": top, "text_offset": offsets}

    def _response(self, kind: str, choices: list[dict], prompt: list[int], samples: list[Sample], **extra) -> dict:
        completion_tokens = sum(len(s.token_ids) for s in samples)
        return {"id": f"{'chatcmpl' if kind == 'chat.completion' else 'cmpl'}-{uuid.uuid4().hex}", "object": kind,
                "created": int(time.time()), "model": self.model_name, "choices": choices,
                "usage": {"prompt_tokens": len(prompt), "completion_tokens": completion_tokens,
                          "total_tokens": len(prompt) + completion_tokens}, **extra}


def sse_events(response: dict, include_usage: bool) -> list[bytes]:
    """A complete response as the events of a stream: a chunk per choice, the usage chunk, `[DONE]`."""
    head = {k: v for k, v in response.items() if k not in ("choices", "usage")}
    if head["object"] == "chat.completion":
        head["object"] = "chat.completion.chunk"
    events = []
    for choice in response["choices"]:
        choice = dict(choice)
        if "message" in choice:
            delta = dict(choice.pop("message"))
            if delta.get("tool_calls"):
                delta["tool_calls"] = [{**c, "index": k} for k, c in enumerate(delta["tool_calls"])]
            choice["delta"] = delta
        events.append({**head, "choices": [choice]})
    if include_usage:
        events.append({**head, "choices": [], "usage": response["usage"]})
    return [f"data: {json.dumps(e)}\n\n".encode() for e in events] + [b"data: [DONE]\n\n"]


def create_app(server: EngineServer):
    """The FastAPI application over `server`."""
    app = FastAPI(title="rlvr", docs_url=None, redoc_url=None)

    def error(status: int, message: str, kind: str, param: str | None = None) -> JSONResponse:
        return JSONResponse({"error": {"message": message, "type": kind, "param": param, "code": None}},
                            status_code=status)

    async def call(request: Request, handler, *args) -> JSONResponse:
        try:
            body = json.loads(await request.body() or b"null")
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            return error(400, f"body: not valid JSON ({e})", "invalid_request_error", "body")
        if not isinstance(body, dict):
            return error(400, "body: must be a JSON object", "invalid_request_error", "body")
        try:
            response = await handler(body, *args)
            if body.get("stream"):
                usage = bool((body.get("stream_options") or {}).get("include_usage"))
                return StreamingResponse(iter(sse_events(response, usage)), media_type="text/event-stream")
            return JSONResponse(response)
        except RequestError as e:
            return error(e.status, str(e), "invalid_request_error" if e.status == 400 else "not_found_error", e.param)
        except Exception as e:  # noqa: BLE001 - the engine failed: the client is told, the server goes on
            return error(500, f"the engine failed: {type(e).__name__}: {e}", "server_error")

    @app.get("/v1/models")
    @app.get("/sessions/{sid}/v1/models")
    async def models():
        return {"object": "list", "data": [{"id": server.model_name, "object": "model", "created": 0,
                                            "owned_by": "rlvr"}]}

    @app.post("/v1/chat/completions")
    async def chat(request: Request):
        return await call(request, server.chat)

    @app.post("/v1/completions")
    async def completions(request: Request):
        return await call(request, server.completion)

    @app.post("/sessions/{sid}/v1/chat/completions")
    async def session_chat(sid: str, request: Request):
        return await call(request, server.chat, sid)

    return app


class ServerThread:
    """`server`'s endpoint served by uvicorn on a background thread (port 0: any free port); `url` is the
    base URL for an OpenAI client (`.../v1`); `stop()` shuts it down."""

    def __init__(self, server: EngineServer, host: str = "127.0.0.1", port: int = 0):
        uvicorn = import_extra("uvicorn", "the endpoint (rlvr serve)", "serve")

        self.server = server
        config = uvicorn.Config(create_app(server), host=host, port=port, log_level="warning", lifespan="off")
        self._uvicorn = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._uvicorn.run, name="rlvr-serve-http", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 30
        while not self._uvicorn.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the endpoint did not start on {host}:{port}")
            time.sleep(0.01)
        bound = self._uvicorn.servers[0].sockets[0].getsockname()
        self.host, self.port = bound[0], bound[1]
        self.url = f"http://{self.host}:{self.port}/v1"

    def session_url(self, sid: str) -> str:
        return f"http://{self.host}:{self.port}/sessions/{sid}/v1"

    def stop(self) -> None:
        self._uvicorn.should_exit = True
        self._thread.join(timeout=30)
        self.server.close()
