"""An observed identity turned into an Agent document to register, or a selector to link it with.

The cost job writes identities as text, strongest key first, e.g.
`main_agent.id=asst_1, agent.name=triage, service=shop/checkout, env=prod`. Registering an
identity means writing an Agent whose `match` selects it: by service when it has one (every agent
of that application then belongs to the new entry), else by agent id or agent name.
"""

from __future__ import annotations

import re
from typing import Any

_PART = re.compile(r"(?:^|, )(credential|agent\.id|main_agent\.id|agent\.name|service|env)=")
_ID_UNSAFE = re.compile(r"[^a-z0-9._-]+")


def parse_identity(identity: str) -> dict[str, str]:
    """The keys of an observed identity: credential, agent.id, main_agent.id, agent.name, service, env."""
    marks = list(_PART.finditer(identity))
    parts: dict[str, str] = {}
    for mark, following in zip(marks, [*marks[1:], None], strict=False):  # one shorter when empty
        end = following.start() if following else len(identity)
        parts[mark.group(1)] = identity[mark.end() : end]
    return parts


def selector(identity: str, *, by: str = "service", environment: bool = False) -> dict[str, Any] | None:
    """A `match` selector for the identity by `by` (service, agent_id, agent_name); None if it lacks it."""
    parts = parse_identity(identity)
    found: dict[str, Any] | None = None
    if by == "service" and parts.get("service"):
        namespace, _, name = parts["service"].rpartition("/")
        found = {"service": {"namespace": namespace, "name": name} if namespace else {"name": name}}
    elif by == "agent_id" and (parts.get("agent.id") or parts.get("main_agent.id")):
        found = {"agentId": parts.get("agent.id") or parts["main_agent.id"]}
    elif by == "agent_name" and parts.get("agent.name"):
        found = {"agentName": parts["agent.name"]}
    if found is not None and environment and parts.get("env"):
        found["environment"] = parts["env"]
    return found


def selector_kinds(identity: str) -> list[str]:
    """The selector kinds this identity offers, broadest first."""
    return [by for by in ("service", "agent_id", "agent_name") if selector(identity, by=by)]


def suggested_id(identity: str) -> str:
    """A registry id from the identity's service name, else its agent name or id."""
    parts = parse_identity(identity)
    source = (
        parts.get("service", "").rpartition("/")[2]
        or parts.get("agent.name")
        or parts.get("agent.id")
        or "agent"
    )
    slug = _ID_UNSAFE.sub("-", source.lower()).strip("-._")[:120]
    return slug or "agent"


def agent_document(
    identity: str,
    *,
    agent_id: str,
    name: str,
    owner: str,
    department: str,
    lifecycle: str,
    platform: str | None = None,
    by: str = "service",
) -> dict[str, Any]:
    """An Agent document (muster/v1) that registers `identity` under `agent_id`."""
    chosen = selector(identity, by=by)
    spec: dict[str, Any] = {
        "name": name,
        "owner": owner,
        "department": department,
        "lifecycle": lifecycle,
        "match": [chosen] if chosen else [],
    }
    if platform:
        spec["platform"] = platform
    environment = parse_identity(identity).get("env")
    if environment:
        spec["environments"] = [environment]
    return {"apiVersion": "muster/v1", "kind": "Agent", "metadata": {"id": agent_id}, "spec": spec}


def linked(document: dict[str, Any], identity: str, *, by: str = "service") -> dict[str, Any]:
    """The agent's document with a selector for `identity` added (unchanged if it already has it)."""
    chosen = selector(identity, by=by)
    match = list(document.get("spec", {}).get("match", []))
    if chosen is not None and chosen not in match:
        match.append(chosen)
    return {**document, "spec": {**document.get("spec", {}), "match": match}}


def default_lifecycle(identity: str) -> str:
    return "production" if parse_identity(identity).get("env", "").startswith("prod") else "prototype"
