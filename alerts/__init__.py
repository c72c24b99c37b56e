"""Alerts: findings routed to people over Slack, webhooks and e-mail, with a delivery log.

Not built yet (issue 5).
"""

__all__: list[str] = []
