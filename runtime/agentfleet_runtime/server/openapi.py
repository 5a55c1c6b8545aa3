"""The task API's OpenAPI 3.0 document, served at ``GET /v1/openapi.json``.

Written by hand beside the handlers (api.py) and the validation (submission.py): the integration
tier fuzzes the running API from this document with schemathesis and requires that no request,
valid or not, gets a 5xx (tests/integration/runtime/test_runtime_api_fuzz.py).
"""

from __future__ import annotations

from typing import Any

from agentfleet_runtime.server.submission import MAX_KEY_CHARS, MAX_SESSION_CHARS
from agentfleet_runtime.store.approvals import MAX_REASON_CHARS


def _error(description: str, retry_after: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }
    if retry_after:
        out["headers"] = {
            "Retry-After": {"description": "Seconds to wait before trying again.", "schema": {"type": "integer"}}
        }
    return out


def _json(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


TASK_ID = {
    "name": "id",
    "in": "path",
    "required": True,
    "description": "Task id (from a submission).",
    "schema": {"type": "string"},
}
UNAUTHORIZED = _error("Missing or unknown bearer token.")
NOT_FOUND = _error("No task of your tenant has this id.")
NOT_A_REVIEWER = _error("Not a reviewer's token (scope approver), or the token that submitted the task.")
BAD_REQUEST = _error("The request is malformed; the message names the field and the fix.")
REDIS_UNWRITABLE = _error(
    "The fleet's Redis is full or failing over: nothing was stored; retry later.", retry_after=True
)

OPENAPI: dict[str, Any] = {
    "openapi": "3.0.3",
    "info": {
        "title": "agentfleet task API",
        "version": "1",
        "description": (
            "Submit agent tasks, follow their progress and read their answers. Every call but the health"
            " checks needs a bearer token; the token's tenant owns the tasks it submits and sees no other."
        ),
    },
    "components": {
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        "schemas": {
            "Error": {
                "type": "object",
                "required": ["error"],
                "properties": {"error": {"type": "string"}, "limit": {"type": "string"}},
            },
            "Budgets": {
                "type": "object",
                "additionalProperties": False,
                "description": "Lower the fleet's budgets for this task (never raise them).",
                "properties": {
                    "maxSteps": {"type": "integer", "minimum": 1},
                    "maxTokens": {"type": "integer", "minimum": 1},
                    "timeoutSeconds": {"type": "number", "minimum": 1},
                    "maxCost": {"type": "string", "pattern": r"^[0-9]+(\.[0-9]{1,9})?$"},
                    "maxFanOut": {"type": "integer", "minimum": 0},
                    "maxDepth": {"type": "integer", "minimum": 0},
                },
            },
            "Submission": {
                "type": "object",
                "additionalProperties": False,
                "required": ["goal"],
                "properties": {
                    "goal": {"type": "string", "minLength": 1, "pattern": r"\S"},
                    "session": {
                        "type": "string",
                        "maxLength": MAX_SESSION_CHARS,
                        "description": "Your tenant's session this task continues.",
                    },
                    "budgets": {"$ref": "#/components/schemas/Budgets"},
                    "idempotencyKey": {"type": "string", "minLength": 1, "maxLength": MAX_KEY_CHARS},
                    "metadata": {"type": "object", "description": "Your own fields, returned with the task."},
                },
            },
            "ApprovalDecision": {
                "type": "object",
                "additionalProperties": False,
                "required": ["decision"],
                "properties": {
                    "decision": {"type": "string", "enum": ["approve", "deny"]},
                    "reason": {
                        "type": "string",
                        "maxLength": MAX_REASON_CHARS,
                        "description": "Shown to the model on a denial.",
                    },
                    "step": {
                        "type": "integer",
                        "minimum": 0,
                        "maximum": 999999,
                        "description": (
                            "The waiting step (GET /v1/approvals): a retried request then never decides a later pause."
                        ),
                    },
                },
            },
            "Accepted": {
                "type": "object",
                "required": ["id", "status", "created"],
                "properties": {"id": {"type": "string"}, "status": {"type": "string"}, "created": {"type": "boolean"}},
            },
            "Task": {
                "type": "object",
                "required": ["id", "status"],
                "properties": {"id": {"type": "string"}, "status": {"type": "string"}},
            },
        },
    },
    "security": [{"bearer": []}],
    "paths": {
        "/v1/tasks": {
            "post": {
                "operationId": "submitTask",
                "parameters": [
                    {
                        "name": "Idempotency-Key",
                        "in": "header",
                        "required": False,
                        "description": "A retry with the same key returns the first task (per tenant).",
                        "schema": {"type": "string", "minLength": 1, "maxLength": MAX_KEY_CHARS},
                    }
                ],
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Submission"}}},
                },
                "responses": {
                    "201": _json("Queued.", {"$ref": "#/components/schemas/Accepted"}),
                    "200": _json(
                        "The task this Idempotency-Key submitted before.", {"$ref": "#/components/schemas/Accepted"}
                    ),
                    "400": BAD_REQUEST,
                    "401": UNAUTHORIZED,
                    "403": _error("A reviewer's token (scope approver) submits nothing."),
                    "409": _error("The Idempotency-Key was used for a different request."),
                    "413": _error("The body is larger than the fleet's spec.api.maxRequestBytes."),
                    "429": _error(
                        "Your tenant is at its tasks-in-flight, daily spend or tokens-per-minute limit.",
                        retry_after=True,
                    ),
                    "503": REDIS_UNWRITABLE,
                },
            }
        },
        "/v1/tasks/{id}": {
            "get": {
                "operationId": "getTask",
                "parameters": [
                    TASK_ID,
                    {
                        "name": "steps",
                        "in": "query",
                        "required": False,
                        "description": "0 leaves the steps out.",
                        "schema": {"type": "string"},
                    },
                ],
                "responses": {
                    "200": _json("The task.", {"$ref": "#/components/schemas/Task"}),
                    "401": UNAUTHORIZED,
                    "404": NOT_FOUND,
                },
            }
        },
        "/v1/tasks/{id}/events": {
            "get": {
                "operationId": "taskEvents",
                "parameters": [
                    TASK_ID,
                    {
                        "name": "after",
                        "in": "query",
                        "required": False,
                        "description": "Resume after this event id (as Last-Event-ID).",
                        "schema": {"type": "string", "pattern": r"^[0-9]{1,20}(-[0-9]{1,20})?$"},
                    },
                    {
                        "name": "Last-Event-ID",
                        "in": "header",
                        "required": False,
                        "schema": {"type": "string", "pattern": r"^[0-9]{1,20}(-[0-9]{1,20})?$"},
                    },
                ],
                "responses": {
                    "200": {
                        "description": "Server-sent events until the task ends.",
                        "content": {"text/event-stream": {"schema": {"type": "string"}}},
                    },
                    "400": BAD_REQUEST,
                    "401": UNAUTHORIZED,
                    "404": NOT_FOUND,
                    "429": _error("This pod's or your tenant's open streams are at their cap.", retry_after=True),
                },
            }
        },
        "/v1/tasks/{id}/cancel": {
            "post": {
                "operationId": "cancelTask",
                "parameters": [TASK_ID],
                "responses": {
                    "202": _json("Cancellation requested.", {"type": "object"}),
                    "200": _json("The task had already ended.", {"type": "object"}),
                    "401": UNAUTHORIZED,
                    "403": _error("A reviewer's token (scope approver) cancels nothing."),
                    "404": NOT_FOUND,
                    "503": REDIS_UNWRITABLE,
                },
            }
        },
        "/v1/tasks/{id}/approvals": {
            "post": {
                "operationId": "decideApproval",
                "parameters": [TASK_ID],
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ApprovalDecision"}}},
                },
                "responses": {
                    "200": _json(
                        "Decided (or the same decision repeated); an approved task runs again.", {"type": "object"}
                    ),
                    "400": BAD_REQUEST,
                    "401": UNAUTHORIZED,
                    "403": NOT_A_REVIEWER,
                    "404": NOT_FOUND,
                    "409": _error("The task is not waiting for this approval (not waiting, or another step)."),
                },
            }
        },
        "/v1/approvals": {
            "get": {
                "operationId": "listApprovals",
                "responses": {
                    "200": _json(
                        "Your tenant's tasks waiting for an approval, soonest timeout first.", {"type": "object"}
                    ),
                    "401": UNAUTHORIZED,
                    "403": NOT_A_REVIEWER,
                },
            }
        },
        "/v1/deadletters": {
            "get": {
                "operationId": "deadLetters",
                "parameters": [
                    {
                        "name": "count",
                        "in": "query",
                        "required": False,
                        "schema": {"type": "integer", "minimum": 1, "maximum": 1000},
                    }
                ],
                "responses": {
                    "200": _json("Your tenant's dead-lettered tasks, newest first.", {"type": "object"}),
                    "400": BAD_REQUEST,
                    "401": UNAUTHORIZED,
                },
            }
        },
        "/healthz": {
            "get": {"operationId": "healthz", "security": [], "responses": {"200": _json("Alive.", {"type": "object"})}}
        },
        "/readyz": {
            "get": {
                "operationId": "readyz",
                "security": [],
                "responses": {
                    "200": _json("Redis answers.", {"type": "object"}),
                    "503": _json("Redis does not answer.", {"type": "object"}),
                },
            }
        },
    },
}
