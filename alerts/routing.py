"""Routing: which receivers an alert goes to, and in which group, by walking the route tree.

As in Alertmanager: the root route matches everything; an alert descends into the first child
whose matchers hold, and on to later siblings only while the matched child says `continue`; a
route none of whose children match takes the alert itself. Children inherit what they leave out.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta

from alerts.config import RootRoute, Route
from alerts.matchers import all_match

GROUP_BY_ALL = "..."


@dataclass(frozen=True)
class Destination:
    """Where one alert goes: a route's receiver, its grouping and its timings."""

    route: str  # the route's path in the tree: "root", "root.0", "root.0.2"
    receiver: str
    group_by: tuple[str, ...]
    group_wait: timedelta
    group_interval: timedelta
    repeat_interval: timedelta

    def group_labels(self, labels: Mapping[str, str]) -> dict[str, str]:
        """The labels that name the alert's group (those of group_by the alert carries)."""
        if GROUP_BY_ALL in self.group_by:
            return dict(sorted(labels.items()))
        return {name: labels[name] for name in sorted(self.group_by) if name in labels}

    def group_key(self, labels: Mapping[str, str]) -> str:
        """A stable key: receiver, route and group labels, readable like Alertmanager's."""
        group = ", ".join(f"{k}={json.dumps(v)}" for k, v in self.group_labels(labels).items())
        return f"{self.receiver}/{self.route}:{{{group}}}"


def route_alert(root: RootRoute, labels: Mapping[str, str]) -> list[Destination]:
    """Every destination of an alert with these labels, in tree order (at least the root's)."""
    inherited = Destination(
        "root",
        root.receiver,
        tuple(root.group_by),
        root.group_wait,
        root.group_interval,
        root.repeat_interval,
    )
    return _walk(root, labels, "root", inherited)


def _walk(route: Route, labels: Mapping[str, str], path: str, parent: Destination) -> list[Destination]:
    here = _inherit(route, path, parent)
    found: list[Destination] = []
    for index, child in enumerate(route.routes):
        if not all_match(child.matchers, labels):
            continue
        found.extend(_walk(child, labels, f"{path}.{index}", here))
        if not child.continue_:
            break
    return found or [here]


def _inherit(route: Route, path: str, parent: Destination) -> Destination:
    return Destination(
        path,
        route.receiver or parent.receiver,
        tuple(route.group_by) if route.group_by is not None else parent.group_by,
        route.group_wait if route.group_wait is not None else parent.group_wait,
        route.group_interval if route.group_interval is not None else parent.group_interval,
        route.repeat_interval if route.repeat_interval is not None else parent.repeat_interval,
    )
