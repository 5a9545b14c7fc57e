"""The gateway's OpenAPI 3.1 description, served at `GET /openapi.json` (used by fuzzers and clients).

Request shapes follow the validation in thrifty.request (same bounds: `n` ≤ MAX_N, `max_tokens` ≤
MAX_TOKENS_CAP); admin key bodies come from the pydantic models that validate them. Every error is the
OpenAI error object. Only what the gateway itself checks is described; other OpenAI parameters (tools,
stop, response_format, …) pass through to the provider, which judges them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from thrifty.request import MAX_N, MAX_TOKENS_CAP, ROLES
from thrifty.server.responses import json_response

if TYPE_CHECKING:
    from thrifty.gateway import Gateway

_REF = "#/components/schemas/"

ERROR: dict[str, Any] = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["message", "type"],
            "properties": {
                "message": {"type": "string"},
                "type": {"type": "string"},
                "param": {"type": ["string", "null"]},
                "code": {"type": ["string", "null"]},
            },
        }
    },
}

CONTENT_PART: dict[str, Any] = {
    "type": "object",
    "required": ["type"],
    "properties": {"type": {"type": "string"}, "text": {"type": "string"}},
}

MESSAGE: dict[str, Any] = {
    "type": "object",
    "required": ["role"],
    "properties": {
        "role": {"enum": sorted(ROLES)},
        "content": {
            "anyOf": [{"type": "string"}, {"type": "array", "items": CONTENT_PART}, {"type": "null"}]
        },
    },
}

CHAT_REQUEST: dict[str, Any] = {
    "type": "object",
    "required": ["model", "messages"],
    "properties": {
        "model": {"type": "string", "minLength": 1},
        "messages": {"type": "array", "minItems": 1, "items": {"$ref": _REF + "Message"}},
        "max_tokens": {"type": "integer", "minimum": 1, "maximum": MAX_TOKENS_CAP},
        "max_completion_tokens": {"type": "integer", "minimum": 1, "maximum": MAX_TOKENS_CAP},
        "n": {"type": "integer", "minimum": 1, "maximum": MAX_N},
        "temperature": {"type": "number", "minimum": 0, "maximum": 2},
        "top_p": {"type": "number", "minimum": 0, "maximum": 1},
        "presence_penalty": {"type": "number", "minimum": -2, "maximum": 2},
        "frequency_penalty": {"type": "number", "minimum": -2, "maximum": 2},
        "stream": {"type": "boolean"},
        "seed": {"type": "integer"},
        "logprobs": {"type": "boolean"},
        "parallel_tool_calls": {"type": "boolean"},
        "top_logprobs": {"type": "integer", "minimum": 0, "maximum": 20},
    },
}

CHAT_RESPONSE: dict[str, Any] = {
    "type": "object",
    "required": ["id", "object", "choices", "model"],
    "properties": {
        "id": {"type": "string"},
        "object": {"const": "chat.completion"},
        "model": {"type": "string"},
        "choices": {"type": "array", "items": {"type": "object", "required": ["index", "message"]}},
        "usage": {"type": "object"},
    },
}

EMBEDDINGS_REQUEST: dict[str, Any] = {
    "type": "object",
    "required": ["model", "input"],
    "properties": {
        "model": {"type": "string", "minLength": 1},
        "input": {
            "anyOf": [
                {"type": "string"},
                {"type": "array", "minItems": 1, "items": {"type": "string"}},
                {"type": "array", "minItems": 1, "items": {"type": "integer"}},
            ]
        },
        "encoding_format": {"enum": ["float", "base64"]},
        "dimensions": {"type": "integer", "minimum": 1},
    },
}

LIST: dict[str, Any] = {
    "type": "object",
    "required": ["object", "data"],
    "properties": {"object": {"const": "list"}, "data": {"type": "array"}},
}


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"content": {"application/json": {"schema": schema}}}


def _responses(ok: int, schema: dict[str, Any], *errors: int) -> dict[str, Any]:
    out: dict[str, Any] = {str(ok): {"description": "Success", **_json(schema)}}
    for status in (400, 401, 403, 404, 405, 413, 415, 422, 429, *errors):
        out[str(status)] = {"description": "Error", **_json({"$ref": _REF + "Error"})}
    return out


def _operation(summary: str, ok: int, schema: dict[str, Any], body: str | None = None,
               *errors: int) -> dict[str, Any]:  # fmt: skip
    op: dict[str, Any] = {"summary": summary, "responses": _responses(ok, schema, *errors)}
    if body is not None:
        op["requestBody"] = {"required": True, **_json({"$ref": _REF + body})}
    return op


def _key_schemas() -> dict[str, Any]:
    from thrifty.tenancy.spec import KeyCreate, KeyUpdate

    schemas: dict[str, Any] = {}
    for name, model in (("KeyCreate", KeyCreate), ("KeyUpdate", KeyUpdate)):
        schema = model.model_json_schema(ref_template=_REF + "{model}")
        schemas.update(schema.pop("$defs", {}))
        schemas[name] = schema
    return schemas


def build_schema(models: list[str]) -> dict[str, Any]:
    """The OpenAPI document; `models` are the model names this gateway serves."""
    upstream = (502, 503, 504)
    model_prop = {"type": "string", "enum": models} if models else {"type": "string", "minLength": 1}
    chat = {**CHAT_REQUEST, "properties": {**CHAT_REQUEST["properties"], "model": model_prop}}
    embeddings = {
        **EMBEDDINGS_REQUEST,
        "properties": {**EMBEDDINGS_REQUEST["properties"], "model": model_prop},
    }
    chat_op = _operation("Create a chat completion", 200, CHAT_RESPONSE, "ChatRequest", *upstream)
    chat_op["responses"]["200"]["content"]["text/event-stream"] = {"schema": {}}  # stream: true
    key_path = {
        "parameters": [{"name": "key_id", "in": "path", "required": True, "schema": {"type": "string"}}],
        "get": _operation("Show a virtual key and its usage", 200, {"type": "object"}),
        "patch": _operation("Change a virtual key", 200, {"type": "object"}, "KeyUpdate"),
        "delete": _operation("Revoke a virtual key", 200, {"type": "object"}),
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": "thrifty", "version": "1", "description": "OpenAI-compatible LLM gateway."},
        "servers": [{"url": "/"}],
        "security": [{"bearer": []}],
        "paths": {
            "/v1/chat/completions": {"post": chat_op},
            "/v1/embeddings": {
                "post": _operation("Create embeddings", 200, LIST, "EmbeddingsRequest", *upstream)
            },
            "/v1/models": {"get": _operation("List models", 200, LIST)},
            "/v1/models/{model}": {
                "parameters": [
                    {"name": "model", "in": "path", "required": True, "schema": {"type": "string"}}
                ],
                "get": _operation("Retrieve a model", 200, {"type": "object"}, None, 404),
            },
            "/healthz": {"get": {**_operation("Liveness", 200, {"type": "object"}), "security": []}},
            "/readyz": {
                "get": {**_operation("Readiness", 200, {"type": "object"}, None, 503), "security": []}
            },
            "/admin/keys": {
                "post": _operation("Create a virtual key (master key)", 201, {"type": "object"}, "KeyCreate"),
                "get": _operation("List virtual keys (master key)", 200, LIST),
            },
            "/admin/keys/{key_id}": key_path,
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "Error": ERROR,
                "Message": MESSAGE,
                "ChatRequest": chat,
                "EmbeddingsRequest": embeddings,
                **_key_schemas(),
            },
        },
    }


def openapi_routes(gateway: Gateway) -> list[Route]:
    document = build_schema(gateway.table.names())

    async def openapi(request: Request) -> Response:
        return json_response(document)

    return [Route("/openapi.json", openapi, methods=["GET"])]
