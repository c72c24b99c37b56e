"""Writes the generated tables of docs/api.md (roles and routes) from the FastAPI app itself.

Run it after adding or changing a route: `.venv/bin/python docs/api_routes.py`. The text between
the `<!-- generated: … -->` markers of docs/api.md is replaced; everything else is left as written.
tests/test_docs.py fails while the page and the app disagree, so the reference cannot drift.

Each route's permission is read from its dependencies (`muster.api.deps.allowed(permission)`
closures), its parameters and body from the OpenAPI schema, its purpose from its docstring.
"""

from __future__ import annotations

import inspect
import re
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import FastAPI, routing
from fastapi.routing import APIRoute

PAGE = Path(__file__).with_name("api.md")
BLOCKS = ("roles", "routes")


@dataclass(frozen=True)
class Route:
    """One method and path of the API as the reference lists it."""

    method: str
    path: str
    subject: str
    permission: str
    parameters: str
    purpose: str


def documentation_app() -> FastAPI:
    """The API application with placeholders for what serving needs: routes are all we read."""
    from collector.credentials import IngestCredentials
    from collector.pipeline import IngestStats
    from muster.api import create_app
    from muster.metrics import SelfMetrics

    stats = IngestStats()
    return create_app(
        connection=None,  # type: ignore[arg-type]  # never queried: no request is served
        stats=stats,
        metrics=SelfMetrics(stats),
        credentials=IngestCredentials(dict, required=False),
        ready=lambda: True,
    )


def api_routes(app: FastAPI) -> Iterator[tuple[str, APIRoute]]:
    """(path, route) of every API route, with the prefixes of included routers applied."""
    # FastAPI ≥ 0.160 keeps included routers whole in app.routes; iter_route_contexts flattens them.
    flatten = getattr(routing, "iter_route_contexts", None)
    contexts = flatten(app.routes) if flatten else app.routes
    for context in contexts:
        route = getattr(context, "original_route", context)
        if isinstance(route, APIRoute) and route.include_in_schema:
            yield getattr(context, "path_format", None) or route.path_format, route


def routes(app: FastAPI) -> list[Route]:
    """Every route of the app, in the order the app includes them, described from the code."""
    schema = app.openapi()
    found = []
    for path, route in api_routes(app):
        for method in sorted(route.methods):
            operation = schema["paths"][path][method.lower()]
            found.append(
                Route(
                    method=method,
                    path=path,
                    subject=(operation.get("tags") or ["other"])[0],
                    permission=permission_of(route),
                    parameters=parameters_of(operation, schema),
                    purpose=purpose_of(operation),
                )
            )
    return found


# Permissions


def _calls(dependant: Any) -> Iterator[Callable[..., Any]]:
    for dependency in dependant.dependencies:
        if dependency.call is not None:
            yield dependency.call
        yield from _calls(dependency)


def permission_of(route: APIRoute) -> str:
    """What a token needs for the route: a permission, "any token", or "none" for open routes."""
    from muster.api.deps import principal
    from muster.api.registry import whole_registry_writer
    from muster.auth import Permission

    calls = list(_calls(route.dependant))
    needed = []
    for call in calls:
        closure = inspect.getclosurevars(call).nonlocals if inspect.isfunction(call) else {}
        granted = closure.get("permission")
        if isinstance(granted, Permission) and f"`{granted.value}`" not in needed:
            needed.append(f"`{granted.value}`")
    if whole_registry_writer in calls:
        needed.append("unscoped token")
    if needed:
        return ", ".join(needed)
    return "any token" if principal in calls else "none"


# Parameters


def parameters_of(operation: dict[str, Any], schema: dict[str, Any]) -> str:
    """Query parameters (with their choices and defaults) and the body's fields, briefly."""
    parts = [_parameter(p) for p in operation.get("parameters", []) if p["in"] == "query"]
    body = operation.get("requestBody")
    if body:
        parts.append(_body(body, schema))
    return "; ".join(parts)


def _parameter(parameter: dict[str, Any]) -> str:
    text = f"`{parameter['name']}`"
    details = []
    choices = _choices(parameter.get("schema", {}))
    if choices:
        details.append("|".join(choices))
    default = parameter.get("schema", {}).get("default")
    if default is not None:
        details.append(f"default {str(default).lower() if isinstance(default, bool) else default}")
    elif parameter.get("required"):
        details.append("required")
    return f"{text} ({', '.join(details)})" if details else text


def _choices(schema: dict[str, Any]) -> list[str]:
    if "enum" in schema:
        return [str(value) for value in schema["enum"]]
    for option in schema.get("anyOf", []):
        if "enum" in option:
            return [str(value) for value in option["enum"]]
    return []


def _body(body: dict[str, Any], schema: dict[str, Any]) -> str:
    content = body.get("content", {})
    media = next(iter(content.values()), {})
    model = _resolve(media.get("schema", {}), schema)
    properties = model.get("properties")
    if properties:
        required = set(model.get("required", []))
        names = [name if name in required else f"{name}?" for name in properties]
        return "body `{" + ", ".join(names) + "}`"
    description = model.get("description") or model.get("title") or "JSON"
    if description[1:2].islower():  # "An Agent document" reads "an Agent document"; "YAML" stays
        description = description[0].lower() + description[1:]
    return f"body: {description}"


def _resolve(node: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    if "$ref" in node:
        name = node["$ref"].rsplit("/", 1)[-1]
        return schema["components"]["schemas"][name]
    for option in node.get("anyOf", []):
        if option.get("type") != "null":
            return _resolve(option, schema)
    return node


def purpose_of(operation: dict[str, Any]) -> str:
    """The first paragraph of the endpoint's docstring, on one line."""
    text = (operation.get("description") or operation.get("summary") or "").strip()
    return " ".join(text.split("\n\n")[0].split())


# Markdown


def roles_table() -> str:
    """Which role holds which permission, from `muster.auth`."""
    from muster.auth import Permission, Principal, Role

    header = "| permission | " + " | ".join(role.value for role in Role) + " |"
    rule = "|---|" + "---|" * len(Role)
    rows = [
        f"| `{permission.value}` | "
        + " | ".join("yes" if Principal("doc", role).may(permission) else "—" for role in Role)
        + " |"
        for permission in Permission
    ]
    return "\n".join([header, rule, *rows])


def routes_tables(found: list[Route]) -> str:
    """One table per subject (the route's OpenAPI tag), in the order the app includes them."""
    subjects: dict[str, list[Route]] = {}
    for route in found:
        subjects.setdefault(route.subject, []).append(route)
    sections = []
    for subject, listed in subjects.items():
        lines = [
            f"### {subject}",
            "",
            "| method and path | permission | parameters | purpose |",
            "|---|---|---|---|",
        ]
        lines += [
            f"| `{r.method} {r.path}` | {r.permission} | {_cell(r.parameters)} | {_cell(r.purpose)} |"
            for r in listed
        ]
        sections.append("\n".join(lines))
    return "\n\n".join(sections)


def _cell(text: str) -> str:
    return text.replace("|", "\\|") if text else ""


def generated_blocks(app: FastAPI | None = None) -> dict[str, str]:
    """The text of each generated block of docs/api.md, as the code says it should be."""
    app = app or documentation_app()
    return {"roles": roles_table(), "routes": routes_tables(routes(app))}


def _marker(name: str) -> re.Pattern[str]:
    return re.compile(rf"(<!-- generated: {name} .*?-->\n)(.*?)(<!-- end generated: {name} -->)", re.DOTALL)


def page_blocks(text: str) -> dict[str, str]:
    """The text of each generated block as the page has it now."""
    found = {}
    for name in BLOCKS:
        match = _marker(name).search(text)
        if match:
            found[name] = match.group(2).removesuffix("\n")
    return found


def rewrite(text: str, blocks: dict[str, str]) -> str:
    """The page with each generated block replaced by the given text."""
    for name, body in blocks.items():
        pattern = _marker(name)
        if not pattern.search(text):
            raise SystemExit(f"docs/api.md has no <!-- generated: {name} … --> block")
        text = pattern.sub(lambda match, body=body: match.group(1) + body + "\n" + match.group(3), text)
    return text


def main() -> None:
    PAGE.write_text(rewrite(PAGE.read_text(encoding="utf-8"), generated_blocks()), encoding="utf-8")
    print(f"wrote the generated tables of {PAGE}")


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    main()
