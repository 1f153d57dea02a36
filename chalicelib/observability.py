"""The service's one logger and metrics, plus the few helpers that shape what they record.

Logs are Powertools JSON with a correlation id (API request id → execution name → Jira call);
emails are masked before they reach a log line; secrets are never passed to the logger.
Traces need no code here: Lambda and Step Functions trace actively (the template), and the X-Ray
SDK that Powertools' Tracer needs would cost every cold start ~0.15 s (docs/decisions.md).
"""

from __future__ import annotations

import os
import re
import warnings

from aws_lambda_powertools.logging import Logger
from aws_lambda_powertools.metrics import Metrics, MetricUnit, single_metric
from aws_lambda_powertools.metrics.functions import is_metrics_disabled

SERVICE = "helpdesk-access"

__all__ = [
    "MetricUnit",
    "count",
    "logger",
    "mask_email",
    "mask_emails_in",
    "metrics",
    "record_jira_call",
]

logger = Logger(service=SERVICE)
# An invocation that only reads (most API calls) has no metric to publish: that is not news.
warnings.filterwarnings("ignore", message="No application metrics to publish")
metrics = Metrics(namespace=os.environ.get("HELPDESK_METRICS_NAMESPACE", "HelpdeskAccess-local"))


def mask_email(email: str | None) -> str | None:
    """`jane.doe@acme.example` → `j***@acme.example`: enough to correlate, not enough to leak."""
    if not email or "@" not in email:
        return email
    local, domain = email.split("@", 1)
    return f"{local[:1]}***@{domain}"


_EMAIL = re.compile(r"([A-Za-z0-9._%+-])[A-Za-z0-9._%+-]*@([A-Za-z0-9.-]+)")


def mask_emails_in(text: str) -> str:
    """Every email address in free text masked like `mask_email` does."""
    return _EMAIL.sub(r"\1***@\2", text)


def count(name: str, value: float = 1, unit: MetricUnit = MetricUnit.Count) -> None:
    """Add a plain metric to the current invocation's batch."""
    # Disabled (the local stack), Powertools never clears the batch at flush, and once a metric
    # holds 100 values `add_metric` prints the whole batch to stdout regardless.
    if not is_metrics_disabled():
        metrics.add_metric(name=name, unit=unit, value=value)


def record_jira_call(method: str, path: str, status: int | None, outcome: str, ms: float) -> None:
    """Log one JSM call and count it by outcome (`ok`, `throttled`, `unavailable`, ...)."""
    logger.info(
        "jira call",
        extra={
            "jira": {
                "method": method,
                "path": path,
                "status": status,
                "outcome": outcome,
                "ms": round(ms, 1),
            }
        },
    )
    # `single_metric` prints its EMF line even with POWERTOOLS_METRICS_DISABLED (the local stack).
    if not is_metrics_disabled():
        with single_metric(
            name="JiraCalls",
            unit=MetricUnit.Count,
            value=1,
            namespace=metrics.namespace,
            default_dimensions={"outcome": outcome},
        ):
            pass
    if outcome == "throttled":
        count("JiraThrottled")
