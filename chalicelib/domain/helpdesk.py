"""The Helpdesk tab's "Request" view: links to the JSM portal and the latest open requests.

JSM may be slow or down; the tab must still render. Requests are read with a hard deadline and
cached briefly; when they cannot be had, the links come back with `latest_requests = None` and
the reason in `requests_error`.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import Any

from ..errors import JiraAuthError, JiraError, JiraRateLimited
from .authorization import ensure_member
from .models import Principal, Project
from .ports import RequestReader

LATEST_REQUESTS = 10
# What the tab tells people; the failed call itself (path, status, JSM's message) is in the logs.
NO_ANSWER = "Jira Service Management did not answer in time"
BUSY = "Jira Service Management is busy; the requests will show again shortly"
REFUSED = "Jira Service Management refused to list the requests; the operators can see why"
FAILED = "Jira Service Management could not list the requests right now"


def requests_error(error: JiraError) -> str:
    """The reason shown on the tab for a failed read: words for people, no JSM internals."""
    if isinstance(error, JiraRateLimited):
        return BUSY
    if isinstance(error, JiraAuthError):
        return REFUSED
    return FAILED


@dataclass(frozen=True)
class HelpdeskView:
    project: Project
    organization_name: str
    service_desk_name: str
    requests_url: str
    new_request_url: str
    latest_requests: list[Any] | None
    requests_error: str | None


class HelpdeskService:
    def __init__(
        self,
        reader: RequestReader,
        portal_base_url: str,
        cache_seconds: float,
        deadline_seconds: float,
    ) -> None:
        self._reader = reader
        self._portal = portal_base_url
        self._cache_seconds = cache_seconds
        self._deadline = deadline_seconds
        self._cache: dict[tuple[str, str], tuple[float, list[Any]]] = {}
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="jsm-read")

    def view(self, principal: Principal, project: Project) -> HelpdeskView:
        ensure_member(principal, project)
        requests, error = self._latest(project)
        sd, org = project.service_desk_id, project.organization_id
        return HelpdeskView(
            project=project,
            organization_name=project.organization_name or project.name,
            service_desk_name=project.service_desk_name or f"Service desk {sd}",
            requests_url=f"{self._portal}/servicedesk/customer/user/requests"
            f"?reporter=org-{org}&statuses=open",
            new_request_url=f"{self._portal}/servicedesk/customer/portal/{sd}",
            latest_requests=requests,
            requests_error=error,
        )

    def _latest(self, project: Project) -> tuple[list[Any] | None, str | None]:
        key = (project.service_desk_id, project.organization_id)
        now = time.monotonic()
        with self._lock:
            cached = self._cache.get(key)
        if cached and cached[0] > now:
            return cached[1], None
        future = self._pool.submit(self._reader.open_requests, *key, LATEST_REQUESTS)
        try:
            requests = future.result(timeout=self._deadline)
        except FutureTimeout:
            return None, NO_ANSWER
        except JiraError as exc:
            return None, requests_error(exc)
        with self._lock:
            self._cache[key] = (now + self._cache_seconds, requests)
        return requests, None
