"""The server's OpenAPI document, complete: what every route takes and every answer it gives.

FastAPI documents the routes' success bodies; this adds what a generated client or an API
fuzzer needs besides: the request bodies (multipart and JSON for ``/v1/ask``, the
chat-completions request) with their constraints, every status a route answers with its
body (one error model, ``{"detail": ...}``, for vpagent's routes; OpenAI's ``{"error": {...}}``
for the OpenAI routes), ``Retry-After`` on 429 and 503, the API-key scheme (when the server has
a key), the answer modes and models this server offers, and a link from an answer's
``trace_id`` to ``GET /v1/traces/{trace_id}``.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any, Literal

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel, Field, create_model
from pydantic.json_schema import models_json_schema

from vpagent.http.chat_schema import OpenAIError
from vpagent.http.openai_api import EXTRA_FIELDS, ChatRequest
from vpagent.images import MIN_IMAGE_SIDE
from vpagent.result import MAX_CHOICES, MAX_QUESTION_CHARS, ResultSummary
from vpagent.trace.records import Trace

SCHEMAS = "#/components/schemas/"
IMAGE_TYPES = "image/png, image/jpeg, image/webp, image/gif, image/bmp, image/tiff"
# A character that is not white space as Python's str.strip() sees it (JSON Schema's \S is
# ECMA's, which differs): a question or choice needs one.
NON_BLANK = "[^" + "".join(f"\\u{ord(c):04x}" for c in map(chr, range(0x3001)) if c.isspace()) + "]"


class ErrorBody(BaseModel):
    """Every error of vpagent's own routes."""

    detail: str = Field(description="What was wrong, in words.")


class Health(BaseModel):
    """``GET /healthz``."""

    status: Literal["ok", "draining"]
    version: str


class AssistantMessage(BaseModel):
    role: Literal["assistant"]
    content: str = Field(description="The answer, or 'No answer: <why>'.")


class CompletionChoice(BaseModel):
    index: int
    finish_reason: Literal["stop"]
    logprobs: None
    message: AssistantMessage


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


VpagentFields: Any = create_model(
    "VpagentFields",
    __doc__="What vpagent knows beyond the answer (the fields of POST /v1/ask's answer).",
    **{name: (ResultSummary.model_fields[name].annotation, ResultSummary.model_fields[name])
       for name in sorted(EXTRA_FIELDS)},  # type: ignore[call-overload]
)  # fmt: skip


class ChatCompletion(BaseModel):
    """A ``chat.completion`` (the answer without ``stream``)."""

    id: str
    object: Literal["chat.completion"]
    created: int
    model: str
    choices: list[CompletionChoice]
    usage: Usage
    vpagent: VpagentFields


class ModelCard(BaseModel):
    id: str
    object: Literal["model"]
    created: int
    owned_by: str


class ModelList(BaseModel):
    """The models this server answers as."""

    object: Literal["list"]
    data: list[ModelCard]


MODELS: list[type[BaseModel]] = [ErrorBody, OpenAIError, Health, ChatRequest, ChatCompletion,
                                 ModelList, Trace]  # fmt: skip
CHOICES = {"type": "array", "maxItems": MAX_CHOICES, "items": {"type": "string",
           "pattern": NON_BLANK}}  # fmt: skip
SSE_EVENT = {
    "type": "object",
    "required": ["data"],
    "properties": {"data": {"type": "string", "description": "A chat.completion.chunk as JSON "
                            "(progress events name themselves in vpagent.event), then [DONE]."},
                   "event": {"type": "string"}},
}  # fmt: skip
RETRY_AFTER = {"Retry-After": {"description": "Seconds to wait before asking again.",
                               "schema": {"type": "integer", "minimum": 1}}}  # fmt: skip
ERRORS = {
    400: "A body that cannot be parsed (a broken multipart body; any bad chat request).",
    401: "Missing or wrong API key.",
    404: "No such trace, or no such model.",
    413: "The request body is larger than server.max_upload_mb.",
    415: "Neither multipart/form-data nor JSON.",
    422: "A bad field: an empty question, an unreadable image, a mode this server lacks.",
    429: "Busy: every place taken and the queue full.",
    503: "Shutting down.",
    504: "No answer within server.request_timeout_s; says how far the question got.",
}
PROTECTED = {("/v1/ask", "post"), ("/v1/traces/{trace_id}", "get"),
             ("/v1/chat/completions", "post"), ("/v1/models", "get")}  # fmt: skip
OPERATION_IDS = {("/healthz", "get"): "healthz", ("/metrics", "get"): "metrics",
                 ("/v1/ask", "post"): "ask", ("/v1/traces/{trace_id}", "get"): "get_trace",
                 ("/v1/chat/completions", "post"): "chat_completions",
                 ("/v1/models", "get"): "list_models"}  # fmt: skip


def install(app: FastAPI, *, secured: bool, modes: list[str], models: list[str]) -> None:
    """Serve the complete document at ``/openapi.json`` (built once, on first use)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = get_openapi(
                title=app.title, version=app.version, summary=app.summary, routes=app.routes
            )
            app.openapi_schema = complete(document, secured=secured, modes=modes, models=models)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def complete(
    document: dict[str, Any], *, secured: bool, modes: list[str], models: list[str]
) -> dict[str, Any]:
    """``document`` (FastAPI's) with the request bodies, answers, security and links."""
    document = copy.deepcopy(document)
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    _, defs = models_json_schema(
        [(model, "validation") for model in MODELS], ref_template=SCHEMAS + "{model}"
    )
    for name, schema in defs.get("$defs", {}).items():
        schemas.setdefault(name, schema)  # FastAPI's own, where it has one
    _hoist_defs(document, schemas)
    _constrain(schemas, models)
    if secured:
        document["components"]["securitySchemes"] = {
            "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
            "bearer": {"type": "http", "scheme": "bearer", "description": "The same key."},
        }
    for path, methods in document["paths"].items():
        for method, operation in methods.items():
            _operation(path, method, operation, secured=secured, modes=modes)
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    return document


def _operation(
    path: str, method: str, operation: dict[str, Any], *, secured: bool, modes: list[str]
) -> None:
    key = (path, method)
    operation["operationId"] = OPERATION_IDS.get(key, operation.get("operationId"))
    operation["parameters"] = [
        p for p in operation.get("parameters", [])
        if not (p["in"] == "header" and p["name"].lower() in ("x-api-key", "authorization"))
    ]  # fmt: skip
    if not operation["parameters"]:
        del operation["parameters"]
    responses: dict[str, Any] = {"200": operation["responses"].get("200")}
    openai = path.startswith(("/v1/chat", "/v1/models"))
    statuses = _statuses(key)
    if secured and key in PROTECTED:
        operation["security"] = [{"apiKey": []}, {"bearer": []}]
        statuses.insert(0, 401)
    for status in statuses:
        responses[str(status)] = _error(status, openai)
    operation["responses"] = responses
    build = _DETAILS.get(key)
    if build is not None:
        build(operation, modes)


def _statuses(key: tuple[str, str]) -> list[int]:
    return {
        ("/v1/ask", "post"): [400, 413, 415, 422, 429, 503, 504],
        ("/v1/traces/{trace_id}", "get"): [404, 422],
        ("/v1/chat/completions", "post"): [400, 404, 413, 429, 503, 504],
    }.get(key, [])


def _error(status: int, openai: bool) -> dict[str, Any]:
    answer: dict[str, Any] = {
        "description": ERRORS[status],
        "content": {"application/json": {"schema": {"$ref": SCHEMAS + (
            "OpenAIError" if openai else "ErrorBody")}}},
    }  # fmt: skip
    if status in (429, 503):
        answer["headers"] = RETRY_AFTER
    return answer


def _ask(operation: dict[str, Any], modes: list[str]) -> None:
    text = {"type": "string", "minLength": 1, "maxLength": MAX_QUESTION_CHARS,
            "pattern": NON_BLANK}  # fmt: skip
    form = {
        "type": "object",
        "required": ["image", "question"],
        "additionalProperties": False,
        "properties": {
            "image": {"type": "string", "format": "binary",
                      "description": "The picture: a PNG, JPEG, WebP, GIF, BMP or TIFF file, "
                      f"at least {MIN_IMAGE_SIDE} pixels a side."},
            "question": text,
            "mode": {"type": "string", "enum": modes,
                     "description": "Who answers (default: the server's agent.mode)."},
            "choices": {**CHOICES, "description": "A multiple-choice question's options, "
                        "one field each."},
        },
    }  # fmt: skip
    body = operation["requestBody"]["content"]
    marks = body["multipart/form-data"]["schema"]["properties"].get("marks")
    if marks is not None:
        form["properties"]["marks"] = marks
    body["multipart/form-data"] = {
        "schema": form,
        "encoding": {"image": {"contentType": IMAGE_TYPES}},
    }
    as_json = body["application/json"]["schema"]["properties"]
    as_json["question"] = text
    as_json["mode"] = {"anyOf": [form["properties"]["mode"], {"type": "null"}], "default": None}
    as_json["image_base64"] = {"type": "string", "contentEncoding": "base64",
                               "description": "The picture's file, base64-encoded (as "
                               "the multipart image)."}  # fmt: skip
    if "choices" in as_json:
        as_json["choices"] = {"anyOf": [CHOICES, {"type": "null"}], "default": None,
                              "description": as_json["choices"].get("description", "")}  # fmt: skip
    operation["responses"]["200"]["links"] = {
        "trace": {
            "operationId": "get_trace",
            "parameters": {"trace_id": "$response.body#/trace_id"},
            "description": "The answer's trace (kept for the most recent answers).",
        }
    }


def _trace(operation: dict[str, Any], _modes: list[str]) -> None:
    for parameter in operation.get("parameters", []):
        if parameter["name"] == "format":
            parameter["schema"] = {"type": "string", "enum": ["json", "html"], "default": "json"}
    operation["responses"]["200"] = {
        "description": "The trace as JSON, or its HTML visual rationale with ?format=html.",
        "content": {"application/json": {"schema": {"$ref": SCHEMAS + "Trace"}},
                    "text/html": {"schema": {"type": "string"}}},
    }  # fmt: skip


def _chat(operation: dict[str, Any], _modes: list[str]) -> None:
    operation["requestBody"] = {
        "required": True,
        "content": {"application/json": {"schema": {"$ref": SCHEMAS + "ChatRequest"}}},
    }
    operation["responses"]["200"] = {
        "description": "The answer; with stream: true, server-sent events ending in [DONE].",
        "content": {"application/json": {"schema": {"$ref": SCHEMAS + "ChatCompletion"}},
                    "text/event-stream": {"schema": SSE_EVENT}},
        "links": {"trace": {"operationId": "get_trace",
                            "parameters": {"trace_id": "$response.body#/vpagent/trace_id"},
                            "description": "A JSON answer's trace (not a stream's)."}},
    }  # fmt: skip


def _plain(model: str) -> Callable[[dict[str, Any], list[str]], None]:
    def document(operation: dict[str, Any], _modes: list[str]) -> None:
        operation["responses"]["200"] = {
            "description": "OK",
            "content": {"application/json": {"schema": {"$ref": SCHEMAS + model}}},
        }

    return document


_DETAILS = {("/v1/ask", "post"): _ask, ("/v1/traces/{trace_id}", "get"): _trace,
            ("/v1/chat/completions", "post"): _chat, ("/v1/models", "get"): _plain("ModelList"),
            ("/healthz", "get"): _plain("Health")}  # fmt: skip


def _constrain(schemas: dict[str, Any], models: list[str]) -> None:
    """What pydantic's schema cannot know: this server's models; what validate_choices
    checks."""
    chat = schemas["ChatRequest"]["properties"]
    if "choices" in chat:
        chat["choices"] = {"anyOf": [CHOICES, {"type": "null"}], "default": None}
    schemas["ChatRequest"]["properties"]["model"] = {
        "type": "string", "enum": models, "description": "vpagent; with a student, "
        "vpagent-student and vpagent-auto (GET /v1/models)."
    }  # fmt: skip


def _hoist_defs(node: Any, schemas: dict[str, Any]) -> None:
    """Move inline ``$defs`` into the components and point their references there."""
    if isinstance(node, dict):
        for name, schema in node.pop("$defs", {}).items():
            schemas.setdefault(name, schema)
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            node["$ref"] = SCHEMAS + ref.removeprefix("#/$defs/")
        for value in list(node.values()):
            _hoist_defs(value, schemas)
    elif isinstance(node, list):
        for value in node:
            _hoist_defs(value, schemas)
