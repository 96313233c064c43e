"""Sending an alert: a Slack-style incoming webhook (JSON ``{"text": ...}``) and/or e-mail (SMTP).

Where to send comes from the environment, so the secrets never sit in configuration or logs:

* ``CRM_ALERT_WEBHOOK_URL``: the incoming-webhook URL (Slack, Mattermost, Rocket.Chat, Teams
  workflows and most chat tools accept ``{"text": ...}``); the URL itself is the secret;
* ``CRM_ALERT_SMTP_HOST`` (+ ``_PORT``, default 587, ``_USER``, ``_PASSWORD``, ``_STARTTLS``
  default true), ``CRM_ALERT_EMAIL_FROM`` and ``CRM_ALERT_EMAIL_TO`` (comma-separated).

A failure to deliver is reported, never raised into the run that triggered the alert.
"""

from __future__ import annotations

import logging
import os
import smtplib
from dataclasses import dataclass, field
from email.message import EmailMessage

import httpx

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Alert:
    """One alert: a rule, a one-line title and details (plain text)."""

    rule: str
    title: str
    details: str = ""

    def text(self) -> str:
        return f":rotating_light: [{self.rule}] {self.title}" + (f"\n{self.details}" if self.details else "")


@dataclass(frozen=True)
class Channels:
    webhook_url: str | None = None
    smtp_host: str | None = None
    smtp_port: int = 587
    smtp_user: str | None = None
    smtp_password: str | None = field(default=None, repr=False)
    smtp_starttls: bool = True
    email_from: str | None = None
    email_to: tuple[str, ...] = ()

    def __repr__(self) -> str:  # never show the webhook URL or the password
        return f"Channels(webhook={'set' if self.webhook_url else 'unset'}, smtp={self.smtp_host or 'unset'}, to={list(self.email_to)})"

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Channels:
        env = os.environ if environ is None else environ
        return cls(
            webhook_url=env.get("CRM_ALERT_WEBHOOK_URL") or None,
            smtp_host=env.get("CRM_ALERT_SMTP_HOST") or None,
            smtp_port=int(env.get("CRM_ALERT_SMTP_PORT") or 587),
            smtp_user=env.get("CRM_ALERT_SMTP_USER") or None,
            smtp_password=env.get("CRM_ALERT_SMTP_PASSWORD") or None,
            smtp_starttls=(env.get("CRM_ALERT_SMTP_STARTTLS", "true").lower() not in ("0", "false", "no")),
            email_from=env.get("CRM_ALERT_EMAIL_FROM") or None,
            email_to=tuple(a.strip() for a in (env.get("CRM_ALERT_EMAIL_TO") or "").split(",") if a.strip()),
        )

    @property
    def configured(self) -> bool:
        return bool(self.webhook_url or (self.smtp_host and self.email_to))


def send(alert: Alert, channels: Channels, *, timeout_s: float = 10.0) -> list[str]:
    """Deliver ``alert`` on every configured channel; returns the channels that took it."""
    delivered = []
    if channels.webhook_url:
        try:
            response = httpx.post(channels.webhook_url, json={"text": alert.text()}, timeout=timeout_s)
            if response.status_code < 300:
                delivered.append("webhook")
            else:
                log.warning("alert webhook answered HTTP %d", response.status_code)
        except httpx.HTTPError as exc:
            log.warning("alert webhook unreachable (%s)", type(exc).__name__)
    if channels.smtp_host and channels.email_to:
        message = EmailMessage()
        message["Subject"] = f"[crm_pipelines] {alert.title}"[:200]
        message["From"] = channels.email_from or "crm-pipelines@localhost"
        message["To"] = ", ".join(channels.email_to)
        message.set_content(alert.text())
        try:
            with smtplib.SMTP(channels.smtp_host, channels.smtp_port, timeout=timeout_s) as smtp:
                if channels.smtp_starttls:
                    smtp.starttls()
                if channels.smtp_user:
                    smtp.login(channels.smtp_user, channels.smtp_password or "")
                smtp.send_message(message)
            delivered.append("email")
        except (OSError, smtplib.SMTPException) as exc:
            log.warning("alert e-mail not sent (%s)", type(exc).__name__)
    if not delivered and not channels.configured:
        log.warning("alert not sent (no channel configured: set CRM_ALERT_WEBHOOK_URL or CRM_ALERT_SMTP_HOST): %s", alert.title)
    return delivered
