"""Rule files for tests: a rule that fires on every call (longer than a second), optionally alerting."""

from __future__ import annotations


def always_rules(*, alert_url: str | None = None, alert_format: str | None = None, version: str = "7") -> str:
    """A rule set whose one rule ``long.call`` (critical, alerting) fires on any call over a second;
    with ``alert_url``, its alerts go to that webhook (target name ``qa-robot``)."""
    text = f"""
ruleset: {{id: test-pack, version: "{version}", name: test}}
rules:
  - id: long.call
    version: "1"
    name: Any call over a second
    category: timing
    conditions:
      1: {{type: duration, above_s: 1}}
    consequence: {{severity: critical, alert: true}}
"""
    if alert_url:
        fmt = f", format: {alert_format}" if alert_format else ""
        text += f'alerts:\n  - {{url: "{alert_url}", name: qa-robot{fmt}}}\n'
    return text
