"""The routing example of docs/alerts.md routes the findings the rules really produce.

People copy that example; a route whose matchers name a rule no detector emits never fires and
nobody notices (finance would never be mailed about a budget). So the example is loaded as the
server loads it, and the rule ids of analytics' catalogue are routed through it.
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from alerts.config import AlertsConfig, Route
from alerts.routing import route_alert
from analytics.rules import RULES

EXAMPLE = re.compile(r"A complete example \(`alerts.yaml`\):\n\n```yaml\n(.*?)```", re.S)
RULE_IDS = sorted(rule.id for rule in RULES)


def example() -> AlertsConfig:
    page = (Path(__file__).parent.parent / "docs" / "alerts.md").read_text(encoding="utf-8")
    found = EXAMPLE.search(page)
    assert found, "docs/alerts.md lost its complete alerts.yaml example"
    return AlertsConfig.model_validate(yaml.safe_load(found.group(1)))


def routes(route: Route) -> list[Route]:
    return [route, *(child for sub in route.routes for child in routes(sub))]


def labels(rule_id: str, severity: str = "warning", **more: str) -> dict[str, str]:
    return {"rule": rule_id, "category": rule_id.split(".")[0], "severity": severity, **more}


def test_every_rule_matcher_of_the_example_names_a_rule_that_exists():
    for route in routes(example().route):
        for matcher in route.matchers:
            if matcher.name == "rule" and not matcher.negative:
                hits = [rule for rule in RULE_IDS if matcher.matches({"rule": rule})]
                assert hits, f"route matcher {matcher} matches none of the rules: {RULE_IDS}"


def test_the_example_mails_finance_about_budgets_and_pages_oncall_for_critical_drift():
    config = example()
    for rule in ("spend.budget_forecast", "spend.budget_threshold"):
        to = {d.receiver for d in route_alert(config.route, labels(rule, department="marketing"))}
        assert to == {"finance-email"}, rule
    critical = {d.receiver for d in route_alert(config.route, labels("drift.model_not_allowed", "critical"))}
    assert critical == {"oncall", "platform-slack"}
    sprawl = {d.receiver for d in route_alert(config.route, labels("sprawl.unregistered_agent"))}
    assert sprawl == {"platform-slack"}
