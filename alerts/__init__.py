"""Alerts: findings routed to people over Slack, webhooks, e-mail and a log file, with a delivery log.

Configuration (`load_alerts_config`) gives a routing tree and receivers; the `Dispatcher`, run by
`muster serve`, turns findings into alert groups following Alertmanager's lifecycle (group_wait,
group_interval, repeat_interval, resolve, silences, acknowledgements) and delivers through an
outbox in the warehouse with retries. The SQL lives in `warehouse.alert_store`.
"""

from alerts.config import AlertsConfig, AlertsConfigError, Secrets, load_alerts_config, parse_duration
from alerts.dispatcher import Dispatcher, TickReport, silence_of
from alerts.matchers import Matcher, MatcherError, parse_matcher
from alerts.model import Alert, alert_from_finding
from alerts.receivers import DeliveryError, slack_message, webhook_v4
from alerts.silences import Silence, SilenceError, new_silence

__all__ = [
    "Alert",
    "AlertsConfig",
    "AlertsConfigError",
    "DeliveryError",
    "Dispatcher",
    "Matcher",
    "MatcherError",
    "Secrets",
    "Silence",
    "SilenceError",
    "TickReport",
    "alert_from_finding",
    "load_alerts_config",
    "new_silence",
    "parse_duration",
    "parse_matcher",
    "silence_of",
    "slack_message",
    "webhook_v4",
]
