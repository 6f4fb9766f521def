"""The OpenAPI 3.1 document served at ``GET /openapi.json``.

It describes every route of the worker's web server: the transactional API
(``app/api``), the stats views over the live tables (``tables/http.py``)
and the routes that Faust itself adds. ``tests/unit/test_api_openapi.py``
fails when a route is missing here or a documented route does not exist.
"""

from __future__ import annotations

from typing import Any

from app.api.inputs import DEFAULT_LIMIT, MAX_CURSOR_CHARS, MAX_LIMIT
from app.api.likes import MESSAGE_WAIT_S, RECENT_MESSAGE_S
from app.api.views import MAX_VIEWS_PER_REQUEST as MAX_VIEWS
from app.events import (
    BODY_MAX_CHARS,
    MIN_EPOCH_MILLIS,
    USER_MAX_CHARS,
    VIEW_MAX_DURATION_MS,
)
from tables.http import MAX_RANGE_DAYS

JSON = "application/json"
Schema = dict[str, Any]


def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def json_content(schema: Schema) -> Schema:
    return {JSON: {"schema": schema}}


def ok(description: str, schema: Schema, status: str = "200") -> dict[str, Any]:
    return {status: {"description": description, "content": json_content(schema)}}


def errors(*statuses: int) -> dict[str, Any]:
    """Return the error responses with the given statuses, each the Error schema."""
    return {str(status): {"$ref": f"#/components/responses/E{status}"}
            for status in statuses}


def integer(minimum: int | None = None, maximum: int | None = None) -> Schema:
    schema: Schema = {"type": "integer"}
    if minimum is not None:
        schema["minimum"] = minimum
    if maximum is not None:
        schema["maximum"] = maximum
    return schema


def obj(properties: dict[str, Schema], *, optional: tuple[str, ...] = ()) -> Schema:
    """Return a closed object schema whose properties are required unless listed."""
    return {
        "type": "object",
        "properties": properties,
        "required": [name for name in properties if name not in optional],
        "additionalProperties": False,
    }


# ---------------------------------------------------------------- parameters

PARAMETERS: dict[str, Any] = {
    "message_id": {
        "name": "message_id", "in": "path", "required": True,
        "description": "Message id: a lower-case UUID in 8-4-4-4-12 form.",
        "schema": {"type": "string", "format": "uuid"},
    },
    "user": {
        "name": "user", "in": "path", "required": True,
        "description": f"User name: 1 to {USER_MAX_CHARS} letters, digits, _ . @ -",
        "schema": ref("User"),
    },
    "limit": {
        "name": "limit", "in": "query", "required": False,
        "description": "Messages per page.",
        "schema": {**integer(1, MAX_LIMIT), "default": DEFAULT_LIMIT},
    },
    "cursor": {
        "name": "cursor", "in": "query", "required": False,
        "description": "The next_cursor of the previous page; omit for the first.",
        "schema": {"type": "string", "maxLength": MAX_CURSOR_CHARS},
    },
    "from": {
        "name": "from", "in": "query", "required": False,
        "description": "First UTC day, inclusive (default: to, or today).",
        "schema": {"type": "string", "format": "date"},
    },
    "to": {
        "name": "to", "in": "query", "required": False,
        "description": (
            f"Last UTC day, inclusive (default: from); at most {MAX_RANGE_DAYS} days "
            "after from."
        ),
        "schema": {"type": "string", "format": "date"},
    },
    "name": {
        "name": "name", "in": "path", "required": True,
        "description": "Faust table name, such as message-likes.",
        "schema": {"type": "string"},
    },
    "key": {
        "name": "key", "in": "path", "required": True,
        "description": "Table key.",
        "schema": {"type": "string"},
    },
}


def params(*names: str) -> list[Schema]:
    return [{"$ref": f"#/components/parameters/{name}"} for name in names]


# ---------------------------------------------------------------- schemas

DAY = {"type": "string", "format": "date", "description": "UTC day, YYYY-MM-DD."}
COUNT = integer(0)


def days_of(row: dict[str, Schema]) -> Schema:
    return {"type": "array", "items": obj({"day": DAY, **row})}


SCHEMAS: dict[str, Schema] = {
    "Error": obj({
        "error": obj({
            "status": integer(400, 599),
            "field": {
                "type": ["string", "null"],
                "description": (
                    "The rejected input: a JSON path such as views[3].duration_ms, "
                    "a query or path parameter, a header, or $ for the whole body."
                ),
            },
            "message": {
                "type": "string",
                "description": "What is wrong and what is allowed.",
            },
        }),
    }),
    "User": {
        "type": "string", "pattern": f"^[A-Za-z0-9_.@-]{{1,{USER_MAX_CHARS}}}$",
    },
    "Timestamp": {
        "type": "string", "format": "date-time",
        "description": "RFC 3339 in UTC with microseconds, such as "
                       "2026-12-04T10:15:00.123456Z.",
    },
    "Sentiment": obj({
        "compound": {"type": "number", "minimum": -1, "maximum": 1,
                     "description": "VADER compound score, 4 decimal places."},
        "label": {"enum": ["positive", "neutral", "negative"]},
    }),
    "Message": obj({
        "message_id": {"type": "string", "format": "uuid",
                       "description": "UUIDv7 for messages posted through the API."},
        "user": ref("User"),
        "body": {"type": "string", "minLength": 1, "maxLength": BODY_MAX_CHARS},
        "created_at": ref("Timestamp"),
        "like_count": {**COUNT, "description": (
            "Effective likes minus effective unlikes, as applied by the like "
            "agent so far."
        )},
        "sentiment": {
            "oneOf": [ref("Sentiment"), {"type": "null"}],
            "description": (
                "null in the response to POST /messages, because the message agent "
                "scores the message after Kafka acknowledged it; always set in reads."
            ),
        },
    }),
    "MessagePage": obj({
        "messages": {"type": "array", "items": ref("Message"),
                     "description": "Newest first; ties in created_at by "
                                    "message_id, descending."},
        "next_cursor": {"type": ["string", "null"],
                        "description": "Pass as cursor for the next page; null "
                                       "on the last page."},
    }),
    "NewMessage": obj({
        "body": {
            "type": "string", "minLength": 1, "maxLength": BODY_MAX_CHARS,
            "description": (
                f"1 to {BODY_MAX_CHARS} characters (code points), not only white "
                "space, without NUL (U+0000) or lone UTF-16 surrogates."
            ),
        },
    }),
    "LikeState": obj({
        "message_id": {"type": "string", "format": "uuid"},
        "user": ref("User"),
        "state": {"enum": ["liked", "not liked"]},
        "event_id": {"type": "string", "format": "uuid",
                     "description": "Id of the LikeAdded or LikeRemoved event."},
        "occurred_at": {**ref("Timestamp"),
                        "description": "Event time; the like counts on its UTC day."},
    }),
    "View": obj({
        "message_id": {"type": "string", "format": "uuid"},
        "started_at": {
            "oneOf": [
                ref("Timestamp"), {"type": "integer", "minimum": MIN_EPOCH_MILLIS},
            ],
            "description": (
                "When the view started: RFC 3339 with a UTC offset, or epoch "
                "milliseconds (a number below 1e11 is taken for seconds and "
                "rejected). At most 5 minutes after the request arrives, and on a "
                "UTC day within the retention period."
            ),
        },
        "duration_ms": integer(1, VIEW_MAX_DURATION_MS),
        "event_id": {
            "type": "string", "format": "uuid",
            "description": (
                "Optional id of the ViewRecorded event, unique per view. Send it to "
                "make a retried request count each view once."
            ),
        },
    }, optional=("event_id",)),
    "ViewBatch": obj({
        "views": {"type": "array", "items": ref("View"),
                  "minItems": 1, "maxItems": MAX_VIEWS},
    }),
    "Accepted": obj({"accepted": integer(1, MAX_VIEWS)}),
    "Health": obj({
        "status": {"enum": ["ok", "unavailable"]},
        "kafka": {"type": "boolean"},
        "mongodb": {"type": "boolean"},
    }),
    "LagSummary": obj({
        "count": COUNT,
        "p50": {"type": "number"}, "p90": {"type": "number"},
        "p99": {"type": "number"}, "max": {"type": "number"},
    }),
}

STATS_SCHEMAS: dict[str, Schema] = {
    "DailyMessages": obj({"days": days_of({"messages": COUNT})}),
    "DailyLikes": obj({"days": days_of({"likes": COUNT, "unlikes": COUNT})}),
    "DailyViews": obj({"days": days_of({"view_ms": COUNT, "views": COUNT})}),
    "DailySentiment": obj({"days": days_of({
        "count": COUNT,
        "compound_sum": {"type": "integer",
                         "description": "Sum of compound scores in units of 0.0001."},
        "mean_compound": {"type": "number"},
        "positive": COUNT, "neutral": COUNT, "negative": COUNT,
    })}),
    "UserMessages": obj({
        "user": ref("User"), "total": COUNT, "days": days_of({"messages": COUNT}),
    }),
    "UserLikes": obj({
        "user": ref("User"),
        "days": days_of({"likes_given": COUNT, "likes_received": COUNT}),
    }),
    "UserViews": obj({
        "user": ref("User"), "days": days_of({"view_ms": COUNT, "views": COUNT}),
    }),
    "MessageLikes": obj({
        "message_id": {"type": "string"}, "like_count": integer(),
        "days": days_of({"likes": COUNT}),
    }),
    "MessageViews": obj({
        "message_id": {"type": "string"}, "view_ms": COUNT, "views": COUNT,
    }),
}

ERROR_DESCRIPTIONS = {
    400: "Invalid input; field names it.",
    401: "Missing, malformed, expired or forged bearer token.",
    404: "Not found.",
    413: "Request body over 1 MiB.",
    415: "Content-Type is not application/json.",
    503: "Kafka or MongoDB failed or did not respond; retry later.",
}


def error_responses() -> dict[str, Any]:
    return {
        f"E{status}": {"description": text, "content": json_content(ref("Error"))}
        for status, text in ERROR_DESCRIPTIONS.items()
    }


# ---------------------------------------------------------------- operations

BEARER: list[dict[str, list[str]]] = [{"bearerAuth": []}]
WRITE_ERRORS = (400, 401, 413, 415, 503)


def api_paths() -> dict[str, Any]:
    return {
        "/messages": {
            "post": {
                "tags": ["messages"], "summary": "Post a message as the token's user",
                "description": (
                    "Responds 201 once Kafka acknowledged the MessagePosted event. "
                    "The message appears in the reads when the message agent has "
                    "written it to MongoDB, normally within a second."
                ),
                "security": BEARER,
                "requestBody": {"required": True, "content": json_content(
                    ref("NewMessage"))},
                "responses": {
                    **ok("The message as posted.", ref("Message"), "201"),
                    **errors(*WRITE_ERRORS),
                },
            },
            "get": {
                "tags": ["messages"], "summary": "Read the feed, newest first",
                "parameters": params("limit", "cursor"),
                "responses": {**ok("One page of the feed.", ref("MessagePage")),
                              **errors(400, 503)},
            },
        },
        "/messages/{message_id}": {
            "get": {
                "tags": ["messages"], "summary": "Read one message",
                "parameters": params("message_id"),
                "responses": {**ok("The message.", ref("Message")),
                              **errors(400, 404, 503)},
            },
        },
        "/messages/{message_id}/likes": {
            "put": like_operation("Like a message as the token's user", "liked"),
            "delete": like_operation("Unlike a message as the token's user",
                                     "not liked"),
        },
        "/users/{user}/messages": {
            "get": {
                "tags": ["messages"], "summary": "Read a user's messages, newest first",
                "parameters": params("user", "limit", "cursor"),
                "responses": {**ok("One page of the user's messages.",
                                   ref("MessagePage")),
                              **errors(400, 503)},
            },
        },
        "/views": {
            "post": {
                "tags": ["views"], "summary": "Record views as the token's user",
                "description": (
                    f"Takes 1 to {MAX_VIEWS} views. One invalid view rejects the "
                    "whole request, and its field names the view's index, such as "
                    "views[3].duration_ms. Responds 202 once Kafka acknowledged every "
                    "ViewRecorded event; their occurred_at is the arrival time."
                ),
                "security": BEARER,
                "requestBody": {"required": True, "content": json_content(
                    ref("ViewBatch"))},
                "responses": {**ok("Views written to Kafka.", ref("Accepted"), "202"),
                              **errors(*WRITE_ERRORS)},
            },
        },
        "/health": {
            "get": {
                "tags": ["operations"], "summary": "Check Kafka and MongoDB",
                "responses": {
                    **ok("Both respond.", ref("Health")),
                    "503": {"description": "Kafka or MongoDB does not respond.",
                            "content": json_content(ref("Health"))},
                },
            },
        },
        "/metrics": {
            "get": {
                "tags": ["operations"],
                "summary": "Counters in the Prometheus text format",
                "responses": {"200": {
                    "description": "Counters of this worker process.",
                    "content": {"text/plain": {"schema": {"type": "string"}}},
                }},
            },
        },
        "/openapi.json": {
            "get": {
                "tags": ["operations"], "summary": "This document",
                "responses": ok("OpenAPI 3.1 document.", {"type": "object"}),
            },
        },
    }


def like_operation(summary: str, state: str) -> dict[str, Any]:
    return {
        "tags": ["likes"], "summary": summary,
        "description": (
            f"Idempotent: the pair ends up {state!r} however often it is sent. "
            "Responds 202 once Kafka acknowledged the event; the like agent "
            "updates like_count afterwards. For a message id whose UUIDv7 time "
            f"is within {RECENT_MESSAGE_S:.0f} s of now, the server waits up to "
            f"{MESSAGE_WAIT_S:.0f} s for the message to reach MongoDB before it "
            "responds 404."
        ),
        "security": BEARER,
        "parameters": params("message_id"),
        "responses": {**ok("The event is written.", ref("LikeState"), "202"),
                      **errors(400, 401, 404, 503)},
    }


def stats_paths() -> dict[str, Any]:
    def daily(summary: str, schema: str) -> dict[str, Any]:
        return {"get": {
            "tags": ["stats"], "summary": summary,
            "parameters": params("from", "to"),
            "responses": {**ok("One row per day, zeros for days without events.",
                               ref(schema)),
                          **errors(400, 503)},
        }}

    def keyed(summary: str, key: str, schema: str, days: bool = True) -> Any:
        names = (key, "from", "to") if days else (key,)
        return {"get": {
            "tags": ["stats"], "summary": summary, "parameters": params(*names),
            "responses": {**ok("Figures of the live tables.", ref(schema)),
                          **errors(400)},
        }}

    return {
        "/stats/messages/daily": daily("Messages per day", "DailyMessages"),
        "/stats/likes/daily": daily("Likes and unlikes per day", "DailyLikes"),
        "/stats/views/daily": daily("View time per day", "DailyViews"),
        "/stats/sentiment/daily": daily("Sentiment per day", "DailySentiment"),
        "/stats/users/{user}/messages": keyed(
            "A user's messages per day and in total", "user", "UserMessages"),
        "/stats/users/{user}/likes": keyed(
            "Likes a user gave and received per day", "user", "UserLikes"),
        "/stats/users/{user}/views": keyed(
            "A user's view time per day", "user", "UserViews"),
        "/stats/messages/{message_id}/likes": keyed(
            "A message's like count and likes per day", "message_id",
            "MessageLikes"),
        "/stats/messages/{message_id}/views": keyed(
            "A message's view time", "message_id", "MessageViews", days=False),
        "/stats/_local/days": {"get": {
            "tags": ["stats"],
            "summary": "Per-day figures held by this worker (used between workers)",
            "parameters": [{
                "name": "days", "in": "query", "required": False,
                "description": "Comma-separated UTC days, YYYY-MM-DD.",
                "schema": {"type": "string"},
            }],
            "responses": {**ok("Raw day values by day.", {"type": "object"}),
                          **errors(400)},
        }},
        "/metrics/lag": {"get": {
            "tags": ["operations"],
            "summary": "Percentiles of this worker's processing lag in milliseconds",
            "parameters": [{
                "name": "reset", "in": "query", "required": False,
                "description": "1 clears the samples after reading.",
                "schema": {"enum": ["1"]},
            }],
            "responses": ok("Lag from send to apply, and of the rollups.", obj({
                "applied": ref("LagSummary"), "rollup": ref("LagSummary"),
            })),
        }},
    }


def faust_paths() -> dict[str, Any]:
    """Return the routes that Faust's web server adds on its own (faust-streaming)."""

    def route(summary: str, *names: str) -> dict[str, Any]:
        return {"get": {
            "tags": ["faust"], "summary": summary, "parameters": params(*names),
            "responses": ok("Faust's own JSON.", {}),
        }}

    return {
        "/": route("Faust's index: {\"status\": \"OK\"}"),
        "/router/": route("Which worker owns each table partition"),
        "/router/topics": route("Which worker owns each external topic partition"),
        "/router/{name}/": route("Which worker owns each partition of a table",
                                 "name"),
        "/router/{name}/{key}/": route("Which worker owns a table key", "name",
                                       "key"),
    }


def build_openapi() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "socialstream",
            "version": "1.0.0",
            "description": (
                "Messages, likes and views written through Kafka, the feed read "
                "from MongoDB, and figures read from the live Faust tables. Every "
                "error response has the Error schema."
            ),
        },
        "tags": [
            {"name": "messages"}, {"name": "likes"}, {"name": "views"},
            {"name": "stats"}, {"name": "operations"},
            {"name": "faust", "description": "Routes that Faust adds itself."},
        ],
        "paths": {**api_paths(), **stats_paths(), **faust_paths()},
        "components": {
            "securitySchemes": {"bearerAuth": {
                "type": "http", "scheme": "bearer", "bearerFormat": "JWT",
                "description": "HS256, signed with SOCIALSTREAM_JWT_SECRET; claims "
                               "sub (the user), iat and exp are required.",
            }},
            "parameters": PARAMETERS,
            "schemas": {**SCHEMAS, **STATS_SCHEMAS},
            "responses": error_responses(),
        },
    }
