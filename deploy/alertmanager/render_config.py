"""Alertmanager's configuration for stockcast: the template (alertmanager.yml beside this
script) with the ``stockcast`` receiver filled from the environment, that is the ALERT_* lines
of .env that docker compose passes in.

    python3 render_config.py alertmanager.yml /tmp/alertmanager.yml

ALERT_WEBHOOK_URL        a URL that takes Alertmanager's JSON (every alert with its labels)
ALERT_SLACK_WEBHOOK_URL  a Slack incoming webhook, or a Slack-compatible one (Mattermost, ...)
ALERT_SLACK_CHANNEL      optional: post there instead of the webhook's own channel
ALERT_EMAIL_TO           comma-separated addresses; needs ALERT_EMAIL_FROM and
                         ALERT_SMTP_SMARTHOST (host:port)
ALERT_SMTP_USERNAME, ALERT_SMTP_PASSWORD  optional SMTP login
ALERT_SMTP_REQUIRE_TLS   true (default) or false

Empty or unset settings add nothing. A receiver set only in part, or a malformed value, stops
the start with one line naming the setting. With none set Alertmanager still starts and lists
the alerts in its UI, after a warning that it delivers them nowhere.

Only the standard library and PyYAML: the Alertmanager image (Debian's packages) has no more.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

RECEIVER = "stockcast"
SLACK_TITLE = (
    "{{ .Status | toUpper }}: {{ .CommonLabels.alertname }}"
    "{{ if .CommonLabels.ticker }} ({{ .CommonLabels.ticker }}){{ end }}"
)
SLACK_TEXT = "{{ range .Alerts }}{{ .Annotations.summary }}\n{{ end }}"


class SettingError(ValueError):
    """A setting that cannot make a working receiver; the message names it."""


def _setting(environment: Mapping[str, str], name: str) -> str:
    return environment.get(name, "").strip()


def _url(environment: Mapping[str, str], name: str) -> str:
    value = _setting(environment, name)
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise SettingError(f"{name} must be an http(s) URL, not {value!r}")
    return value


def _smarthost(environment: Mapping[str, str]) -> str:
    name = "ALERT_SMTP_SMARTHOST"
    value = _setting(environment, name)
    if not value:
        raise SettingError(f"{name} (host:port of the SMTP server) is required when ALERT_EMAIL_TO is set")
    host, _, port = value.rpartition(":")
    if not host or not port.isdigit():
        raise SettingError(f"{name} must be host:port, not {value!r}")
    return value


def _flag(environment: Mapping[str, str], name: str, default: bool) -> bool:
    value = _setting(environment, name).lower()
    if not value:
        return default
    if value not in ("true", "false"):
        raise SettingError(f"{name} must be true or false, not {value!r}")
    return value == "true"


def receiver(environment: Mapping[str, str]) -> dict[str, Any]:
    """The ``stockcast`` receiver with an integration for each delivery that is set."""
    found: dict[str, Any] = {"name": RECEIVER}
    if _setting(environment, "ALERT_WEBHOOK_URL"):
        found["webhook_configs"] = [{"url": _url(environment, "ALERT_WEBHOOK_URL"), "send_resolved": True}]
    if _setting(environment, "ALERT_SLACK_WEBHOOK_URL"):
        slack: dict[str, Any] = {
            "api_url": _url(environment, "ALERT_SLACK_WEBHOOK_URL"),
            "send_resolved": True,
            "title": SLACK_TITLE,
            "text": SLACK_TEXT,
        }
        if _setting(environment, "ALERT_SLACK_CHANNEL"):
            slack["channel"] = _setting(environment, "ALERT_SLACK_CHANNEL")
        found["slack_configs"] = [slack]
    elif _setting(environment, "ALERT_SLACK_CHANNEL"):
        raise SettingError("ALERT_SLACK_CHANNEL is set without ALERT_SLACK_WEBHOOK_URL")
    if _setting(environment, "ALERT_EMAIL_TO"):
        sender = _setting(environment, "ALERT_EMAIL_FROM")
        if "@" not in sender:
            raise SettingError("ALERT_EMAIL_FROM (an address) is required when ALERT_EMAIL_TO is set")
        email: dict[str, Any] = {
            "to": _setting(environment, "ALERT_EMAIL_TO"),
            "from": sender,
            "smarthost": _smarthost(environment),
            "require_tls": _flag(environment, "ALERT_SMTP_REQUIRE_TLS", True),
            "send_resolved": True,
        }
        username, password = (
            _setting(environment, "ALERT_SMTP_USERNAME"),
            _setting(environment, "ALERT_SMTP_PASSWORD"),
        )
        if password and not username:
            raise SettingError("ALERT_SMTP_PASSWORD is set without ALERT_SMTP_USERNAME")
        if username:
            email |= {"auth_username": username, "auth_password": password}
        found["email_configs"] = [email]
    else:
        for name in (
            "ALERT_EMAIL_FROM",
            "ALERT_SMTP_SMARTHOST",
            "ALERT_SMTP_USERNAME",
            "ALERT_SMTP_PASSWORD",
        ):
            if _setting(environment, name):
                raise SettingError(f"{name} is set without ALERT_EMAIL_TO")
    return found


def render(template: dict[str, Any], environment: Mapping[str, str]) -> dict[str, Any]:
    """The template with its ``stockcast`` receiver replaced by the one the settings make."""
    names = [entry.get("name") for entry in template.get("receivers", [])]
    if RECEIVER not in names:
        raise SettingError(f"the template has no receiver named {RECEIVER!r}")
    rendered = dict(template)
    rendered["receivers"] = [
        receiver(environment) if entry.get("name") == RECEIVER else entry for entry in template["receivers"]
    ]
    return rendered


def main(arguments: list[str]) -> int:
    if len(arguments) != 2:
        print("usage: render_config.py TEMPLATE OUTPUT", file=sys.stderr)
        return 2
    template_path, output_path = map(Path, arguments)
    try:
        rendered = render(yaml.safe_load(template_path.read_text()), os.environ)
    except SettingError as error:
        print(f"alertmanager: {error}", file=sys.stderr)
        return 2
    if len(next(entry for entry in rendered["receivers"] if entry["name"] == RECEIVER)) == 1:
        print(
            "alertmanager: no ALERT_* receiver is set in .env: alerts are listed in Alertmanager's UI "
            "and delivered nowhere",
            file=sys.stderr,
        )
    # It may hold the SMTP password: readable by Alertmanager's user only.
    descriptor = os.open(output_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as output:
        yaml.safe_dump(rendered, output, sort_keys=False)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
