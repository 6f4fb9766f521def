"""The OpenAPI document against the routes that a worker's web server serves."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from aiohttp import web

from app.api.openapi import build_openapi
from app.pipeline import create_pipeline
from app.settings import Settings

METHODS = {"get", "put", "post", "delete", "patch"}


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return build_openapi()


@pytest.fixture(scope="module")
def served_routes(tmp_path_factory: pytest.TempPathFactory) -> set[tuple[str, str]]:
    """Return (method, path) of every route of a worker, Faust's own included."""
    settings = Settings(
        state_dir=tmp_path_factory.mktemp("openapi"), jwt_secret="x" * 64
    )
    pipeline = create_pipeline(settings)
    faust_web = pipeline.app.web
    # Faust adds its built-in routes when the web server starts.
    faust_web.init_server()
    web_app: web.Application = faust_web.web_app  # type: ignore[attr-defined]
    routes = set()
    for route in web_app.router.routes():
        if route.method == "HEAD" or route.resource is None:
            continue
        routes.add((route.method, route.resource.canonical))
    return routes


def documented(document: dict[str, Any]) -> set[tuple[str, str]]:
    return {
        (method.upper(), path)
        for path, item in document["paths"].items()
        for method in item
        if method in METHODS
    }


def test_every_route_documented(
    document: dict[str, Any], served_routes: set[tuple[str, str]]
) -> None:
    assert served_routes - documented(document) == set()


def test_every_documented_route_served(
    document: dict[str, Any], served_routes: set[tuple[str, str]]
) -> None:
    assert documented(document) - served_routes == set()


def test_api_routes_present(served_routes: set[tuple[str, str]]) -> None:
    for route in [("POST", "/messages"), ("PUT", "/messages/{message_id}/likes"),
                  ("DELETE", "/messages/{message_id}/likes"), ("POST", "/views"),
                  ("GET", "/stats/likes/daily"), ("GET", "/health")]:
        assert route in served_routes


def walk(value: Any) -> Iterator[Any]:
    yield value
    if isinstance(value, dict):
        for item in value.values():
            yield from walk(item)
    elif isinstance(value, list):
        for item in value:
            yield from walk(item)


def resolve(document: dict[str, Any], reference: str) -> Any:
    assert reference.startswith("#/"), reference
    node: Any = document
    for part in reference[2:].split("/"):
        node = node[part]
    return node


def test_references_resolve(document: dict[str, Any]) -> None:
    references = [node["$ref"] for node in walk(document)
                  if isinstance(node, dict) and "$ref" in node]
    assert references
    for reference in references:
        assert resolve(document, reference) is not None


def operations(document: dict[str, Any]) -> Iterator[tuple[str, str, Any]]:
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method in METHODS:
                yield path, method, operation


def test_path_parameters_declared(document: dict[str, Any]) -> None:
    for path, method, operation in operations(document):
        declared = {
            parameter["name"]
            for parameter in (resolve(document, p["$ref"]) if "$ref" in p else p
                              for p in operation.get("parameters", []))
            if parameter["in"] == "path"
        }
        assert declared == set(re.findall(r"{(\w+)}", path)), f"{method} {path}"


def test_operations_have_responses(document: dict[str, Any]) -> None:
    for path, method, operation in operations(document):
        assert operation["responses"], f"{method} {path}"
        assert operation["summary"], f"{method} {path}"


def test_writes_need_bearer(document: dict[str, Any]) -> None:
    writes = {(path, method) for path, method, operation in operations(document)
              if operation.get("security")}
    assert writes == {("/messages", "post"), ("/messages/{message_id}/likes", "put"),
                      ("/messages/{message_id}/likes", "delete"), ("/views", "post")}
    for path, method in writes:
        assert "401" in document["paths"][path][method]["responses"]
