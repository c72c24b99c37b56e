"""Alert configuration: the routing tree, the receivers, delivery retries, and where secrets come from.

Read from the `[alerts]` table of muster.toml or from the file named by `MUSTER_ALERTS_FILE`
(YAML or TOML), in the shape Alertmanager users know: a root `route` with `receiver`, `group_by`,
`group_wait`, `group_interval`, `repeat_interval`, `matchers` and child `routes` (with `continue`),
and named `receivers`. Secrets — webhook URLs, SMTP passwords — are never written in the file:
a secret field holds a reference, `env:NAME`, `secret:KEY` (a key of the secrets file) or
`file:PATH`, resolved when the configuration is loaded. Without any configuration every alert goes
to a local log file, so findings are always seen somewhere.
"""

from __future__ import annotations

import os
import re
import tomllib
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from alerts.matchers import Matcher, parse_matcher

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_SECRET_REF = re.compile(r"^(env|secret|file):(.+)$")


class AlertsConfigError(ValueError):
    """The alert configuration cannot be used; the message names the field and what to do."""


def parse_duration(value: str | float | int | timedelta) -> timedelta:
    """`30s`, `5m`, `4h`, `1h30m`, `2d` (Alertmanager's notation), or a number of seconds."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return timedelta(seconds=value)
    text = str(value).strip()
    parts = _DURATION.findall(text)
    if not text or "".join(n + u for n, u in parts) != text:
        raise ValueError(f"{value!r} is not a duration: write e.g. 30s, 5m, 4h, 1h30m or 2d")
    try:
        return timedelta(seconds=sum(float(n) * _UNIT_SECONDS[u] for n, u in parts))
    except OverflowError:
        raise ValueError(f"{value!r} is too long a duration") from None


Duration = Annotated[timedelta, BeforeValidator(parse_duration)]


def _matcher(value: Any) -> Any:
    return parse_matcher(value) if isinstance(value, str) else value


RouteMatcher = Annotated[Matcher, BeforeValidator(_matcher)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


# Routes


class Route(_Strict):
    """A node of the routing tree; what it leaves out it inherits from its parent."""

    receiver: str | None = None
    matchers: list[RouteMatcher] = Field(default_factory=list)
    group_by: list[str] | None = None  # ["..."] groups by every label: one alert per group
    group_wait: Duration | None = None
    group_interval: Duration | None = None
    repeat_interval: Duration | None = None
    continue_: bool = Field(False, alias="continue")
    routes: list[Route] = Field(default_factory=list)


class RootRoute(Route):
    """The default route: matches every alert and sets the defaults every child inherits."""

    receiver: str = "log"
    group_by: list[str] = Field(default_factory=lambda: ["rule", "department"])
    group_wait: Duration = timedelta(seconds=30)
    group_interval: Duration = timedelta(minutes=5)
    repeat_interval: Duration = timedelta(hours=4)

    @field_validator("matchers")
    @classmethod
    def _no_matchers(cls, matchers: list[Matcher]) -> list[Matcher]:
        if matchers:
            raise ValueError("the root route matches every alert: put matchers on its child routes")
        return matchers


# Receivers


def _secret_reference(value: Any) -> Any:
    if isinstance(value, str) and not _SECRET_REF.match(value):
        raise ValueError(
            "write a reference, not the secret itself: env:NAME (an environment variable), "
            "secret:KEY (a key of the secrets file) or file:PATH"
        )
    return value


SecretRef = Annotated[str, BeforeValidator(_secret_reference)]


class SlackReceiver(_Strict):
    """A Slack incoming webhook: a message with blocks, and a text fallback."""

    type: Literal["slack"]
    name: str
    url: SecretRef
    channel: str | None = None  # only for legacy webhooks that may post elsewhere
    timeout: Duration = timedelta(seconds=10)


class WebhookReceiver(_Strict):
    """Any HTTP endpoint taking Alertmanager's webhook v4 JSON (on-call tools, chat bridges)."""

    type: Literal["webhook"]
    name: str
    url: SecretRef
    max_alerts: int = Field(0, ge=0)  # 0: all; more are left out and counted in truncatedAlerts
    timeout: Duration = timedelta(seconds=10)


class EmailReceiver(_Strict):
    """E-mail over SMTP. `to` holds addresses, `department.financeContact` and/or `agent.owner`."""

    type: Literal["email"]
    name: str
    to: list[str] = Field(min_length=1)
    # SMTP server: each left out comes from [alerts.smtp].
    host: str | None = None
    port: int | None = Field(None, ge=1, le=65535)
    sender: str | None = Field(None, alias="from")
    starttls: bool | None = None
    username: str | None = None
    password: SecretRef | None = None
    ca_file: Path | None = None  # trust this CA (a private mail relay) in addition to the system's
    timeout: Duration = timedelta(seconds=15)

    @field_validator("to")
    @classmethod
    def _recipients(cls, to: list[str]) -> list[str]:
        for entry in to:
            if "@" not in entry and entry not in REGISTRY_CONTACTS:
                raise ValueError(
                    f"{entry!r} is neither an e-mail address nor one of {', '.join(REGISTRY_CONTACTS)}"
                )
        return to


REGISTRY_CONTACTS = ("department.financeContact", "agent.owner")


class LogfileReceiver(_Strict):
    """One JSON line per notification (Alertmanager's webhook v4 shape) appended to a local file."""

    type: Literal["logfile"]
    name: str
    path: Path


Receiver = Annotated[
    SlackReceiver | WebhookReceiver | EmailReceiver | LogfileReceiver, Field(discriminator="type")
]


class SmtpDefaults(_Strict):
    """The SMTP server e-mail receivers use unless they name their own."""

    host: str = "localhost"
    port: int = Field(587, ge=1, le=65535)
    sender: str = Field("muster@localhost", alias="from")
    starttls: bool = True
    username: str | None = None
    password: SecretRef | None = None
    ca_file: Path | None = None


class Delivery(_Strict):
    """How the outbox retries: exponential backoff from `initial_backoff`, capped, until `give_up_after`."""

    initial_backoff: Duration = timedelta(seconds=5)
    max_backoff: Duration = timedelta(minutes=5)
    give_up_after: Duration = timedelta(hours=24)


class AlertsConfig(_Strict):
    """Everything about alerts: where secrets are, the routing tree, receivers and delivery."""

    secrets_file: Path | None = None
    smtp: SmtpDefaults = Field(default_factory=SmtpDefaults)
    delivery: Delivery = Field(default_factory=Delivery)
    route: RootRoute = Field(default_factory=RootRoute)
    receivers: list[Receiver] = Field(default_factory=list)

    @model_validator(mode="after")
    def _receivers_known(self) -> AlertsConfig:
        names = [receiver.name for receiver in self.receivers]
        twice = sorted({name for name in names if names.count(name) > 1})
        if twice:
            raise ValueError(f"receivers named more than once: {', '.join(twice)}")
        unknown = sorted(_route_receivers(self.route) - set(names))
        if unknown:
            raise ValueError(
                f"routes send to receivers that are not defined: {', '.join(unknown)}; "
                "add them under receivers"
            )
        return self

    def receiver(self, name: str) -> SlackReceiver | WebhookReceiver | EmailReceiver | LogfileReceiver:
        for receiver in self.receivers:
            if receiver.name == name:
                return receiver
        raise KeyError(name)


def _route_receivers(route: Route) -> set[str]:
    found = {route.receiver} if route.receiver else set()
    for child in route.routes:
        found |= _route_receivers(child)
    return found


def default_config(data_dir: Path) -> AlertsConfig:
    """Without configuration: every alert, grouped by rule and department, to <data dir>/alerts.log."""
    log = LogfileReceiver(type="logfile", name="log", path=data_dir / "alerts.log")
    return AlertsConfig(receivers=[log])


# Loading


def load_alerts_config(
    table: dict[str, Any] | None, file: Path | None, *, data_dir: Path
) -> tuple[AlertsConfig, Secrets]:
    """The configuration from muster.toml's [alerts] table or from `file`, and its resolved secrets.

    Raises AlertsConfigError naming the field, for a bad value or a secret that cannot be found.
    """
    if table and file:
        raise AlertsConfigError(
            f"alerts are configured twice, in muster.toml [alerts] and in {file}: keep one of them"
        )
    data = _read_file(file) if file else table
    if not data:
        config = default_config(data_dir)
    else:
        data = dict(data)
        if "log" not in {r.get("name") for r in data.get("receivers", []) if isinstance(r, dict)}:
            # the built-in log receiver stays addressable so a route can send to it
            log = {"type": "logfile", "name": "log", "path": str(data_dir / "alerts.log")}
            data["receivers"] = [*data.get("receivers", []), log]
        try:
            config = AlertsConfig.model_validate(data)
        except ValidationError as exc:
            raise AlertsConfigError(_describe(exc, file)) from None
    return config, resolve_secrets(config)


def _read_file(file: Path) -> dict[str, Any]:
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise AlertsConfigError(f"cannot read the alerts file {file}: {exc.strerror}") from None
    try:
        data = tomllib.loads(text) if file.suffix == ".toml" else yaml.safe_load(text)
    except (tomllib.TOMLDecodeError, yaml.YAMLError) as exc:
        raise AlertsConfigError(f"the alerts file {file} is not valid {file.suffix[1:]}: {exc}") from None
    if not isinstance(data, dict):
        raise AlertsConfigError(f"the alerts file {file} must hold a mapping (route, receivers, ...)")
    return data.get("alerts", data)


def _describe(exc: ValidationError, file: Path | None) -> str:
    where = str(file) if file else "muster.toml [alerts]"
    lines = []
    for error in exc.errors():
        field = ".".join(str(part) for part in error["loc"] if not str(part).startswith("function-"))
        lines.append(f"invalid alert configuration in {where}: {field or '(top)'}: {error['msg']}")
    return "\n".join(lines)


# Secrets


class Secrets:
    """Resolved secret values by reference; their repr never shows them, and `redact` hides them."""

    def __init__(self, values: dict[str, SecretStr]) -> None:
        self._values = values

    def get(self, reference: str | None) -> str | None:
        if reference is None:
            return None
        return self._values[reference].get_secret_value()

    def redact(self, text: str) -> str:
        """`text` with every secret value (and any long enough part of a URL secret) replaced."""
        for secret in self._values.values():
            value = secret.get_secret_value()
            for part in _secret_parts(value):
                text = text.replace(part, "***")
        return text

    def __repr__(self) -> str:
        return f"Secrets({len(self._values)} values)"


def _secret_parts(value: str) -> list[str]:
    # The whole value first, then a URL's path and query: they are what makes it a credential.
    parts = [value]
    if "://" in value:
        rest = value.split("://", 1)[1]
        if "/" in rest:
            path = "/" + rest.split("/", 1)[1]
            if len(path) > 8:
                parts.append(path)
    return [part for part in parts if part]


def resolve_secrets(config: AlertsConfig) -> Secrets:
    """Every secret reference in `config`, resolved now so a missing one stops start-up, not a send."""
    file_values = _secrets_file(config.secrets_file)
    values: dict[str, SecretStr] = {}
    for owner, reference in _references(config):
        values[reference] = SecretStr(_resolve(reference, owner, file_values, config.secrets_file))
    return Secrets(values)


def _references(config: AlertsConfig) -> list[tuple[str, str]]:
    found = [("smtp.password", config.smtp.password)]
    for receiver in config.receivers:
        for field in ("url", "password"):
            found.append((f"receiver {receiver.name!r} {field}", getattr(receiver, field, None)))
    return [(owner, reference) for owner, reference in found if reference]


def _secrets_file(path: Path | None) -> dict[str, str]:
    if path is None:
        return {}
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise AlertsConfigError(f"cannot read the alerts secrets file {path}: {exc.strerror}") from None
    try:
        data = tomllib.loads(text) if path.suffix == ".toml" else yaml.safe_load(text)
    except (tomllib.TOMLDecodeError, yaml.YAMLError):
        # the parser's message may quote a line of the file, which would be a secret
        raise AlertsConfigError(f"the alerts secrets file {path} is not valid {path.suffix[1:]}") from None
    if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
        raise AlertsConfigError(f"the alerts secrets file {path} must map names to text values")
    return data


def _resolve(reference: str, owner: str, file_values: dict[str, str], file: Path | None) -> str:
    kind, name = _SECRET_REF.match(reference).groups()  # type: ignore[union-attr]
    if kind == "env":
        value = os.environ.get(name)
        if not value:
            raise AlertsConfigError(f"{owner}: the environment variable {name} is not set")
        return value
    if kind == "secret":
        if name not in file_values:
            where = f"the secrets file {file}" if file else "no secrets_file (set alerts.secrets_file)"
            raise AlertsConfigError(f"{owner}: {name!r} is not in {where}")
        return file_values[name]
    try:
        return Path(name).read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise AlertsConfigError(f"{owner}: cannot read the secret file {name}: {exc.strerror}") from None
