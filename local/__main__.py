"""`make run`: start the local stack, seed a demo project and print how to call it.

    python -m local        # API :8000, AWS (moto) :5000, JSM emulator :8081, mailbox :8025

Ports follow `HELPDESK_API_PORT`, `HELPDESK_AWS_PORT`, `HELPDESK_JIRA_PORT`, `HELPDESK_MAIL_PORT`;
`HELPDESK_FAST_CLOCK=0.01` makes Step Functions waits and retries 100x shorter (demos of
throttling). Ctrl-C stops everything.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import threading
import time
import warnings
from types import FrameType
from typing import TYPE_CHECKING, Any

import requests

if TYPE_CHECKING:
    from local.stack import LocalStack

DEMO_PROJECT = {
    "name": "Demo project",
    "customer_company_id": "acme",
    "integrator_company_id": "integrator",
    "created_by": "pm-1",
    "service_desk_id": "1",
}
DEMO_CONTACTS = {
    "pm-1": {
        "email": "priya.pm@acme.example",
        "name": "Priya PM",
        "company_id": "acme",
        "console_user": True,
        "groups": ["project-managers"],
    },
    "dev-1": {
        "email": "dana.dev@acme.example",
        "name": "Dana Dev",
        "company_id": "acme",
        "console_user": True,
        "groups": ["developers"],
    },
}
DEMO_PM = {"sub": "pm-1", "email": "priya.pm@acme.example", "company_id": "acme"}


def _token(sub: str, email: str, company_id: str | None, roles: list[str]) -> str:
    from chalicelib.api.auth import issue_token  # noqa: PLC0415 - after the stack set the env
    from chalicelib.config import jwt_secret  # noqa: PLC0415

    return issue_token(jwt_secret(), sub, email, company_id, roles)


def seed(api_url: str) -> None:
    """The demo project and its two contacts, through the real API as the console would."""
    service = _token("console", "console@example.com", None, ["service"])
    headers = {"Authorization": f"Bearer {service}"}
    calls: list[tuple[str, dict[str, Any]]] = [("/projects/demo", DEMO_PROJECT)]
    calls += [(f"/contacts/{contact_id}", body) for contact_id, body in DEMO_CONTACTS.items()]
    for path, body in calls:
        response = requests.put(f"{api_url}{path}", json=body, headers=headers, timeout=10)
        if response.status_code not in (200, 201):
            raise RuntimeError(f"seeding {path} failed: {response.status_code} {response.text}")


def banner(stack: LocalStack, token: str) -> str:
    api, auth = stack.api_url, '-H "Authorization: Bearer $TOKEN"'
    json_body = "-H 'Content-Type: application/json'"
    return f"""
Helpdesk access service — local stack
  API            {api}
  AWS (moto)     {stack.aws_url}
  JSM emulator   {stack.jira_url}   (state: {stack.jira_url}/_emulator/state)
  Mailbox        {stack.mail_url}/api/messages

Demo: project `demo` (customer acme, JSM service desk 1), contacts pm-1 (Priya, project manager)
and dev-1 (Dana, console user). Token of pm-1 (project_manager, company acme, 8 h):

export TOKEN={token}

curl -s {api}/health
curl -s {auth} {api}/projects/demo/grants
curl -s -X POST {auth} {json_body} -d '{{"contact_id": "dev-1"}}' {api}/projects/demo/grants
curl -s {auth} {api}/projects/demo/grants/dev-1
curl -s {auth} {api}/projects/demo/activity
curl -s -X PATCH {auth} {json_body} \\
  -d '{{"expires_at": "'$(date -u -d '+15 seconds' +%Y-%m-%dT%H:%M:%SZ)'"}}' \\
  {api}/projects/demo/grants/dev-1   # removed by the expiry job within ~30 s
curl -s -X DELETE {auth} {api}/projects/demo/grants/dev-1
curl -s {stack.mail_url}/api/messages
curl -s {stack.jira_url}/_emulator/state
{hr_example(api)}

SCIM (acme's identity provider): an admin of acme mints a token; deactivate dev-1 as Okta does:
export ADMIN=$(make -s token \\
  ARGS="--sub adm-1 --email ada@acme.example --company acme --roles company_admin")
export SCIM=$(curl -s -X POST -H "Authorization: Bearer $ADMIN" {api}/companies/acme/scim-tokens \\
  | python3 -c 'import json, sys; print(json.load(sys.stdin)["token"])')
curl -s -X PATCH -H "Authorization: Bearer $SCIM" -H 'Content-Type: application/scim+json' \\
  -d '{{"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
       "Operations": [{{"op": "replace", "value": {{"active": false}}}}]}}' \\
  {api}/scim/v2/Users/dev-1

More tokens: make token ARGS="--sub u1 --email a@acme.example --company acme --roles supervisor"
"""


def hr_example(api: str) -> str:
    """A signed HR event for the demo (SPEC §2 `POST /hr/events`), and how to sign another."""
    from chalicelib.api.hr_events import sign  # noqa: PLC0415
    from chalicelib.config import hr_webhook_secret  # noqa: PLC0415

    body = json.dumps(
        {
            "id": "hr-demo-1",
            "type": "contact.offboarded",
            "contact_id": "dev-1",
            "occurred_at": "2026-01-01T09:00:00Z",
        }
    )
    secret = hr_webhook_secret()
    return f"""
# HR offboards dev-1 (signed webhook → HR queue → every grant of dev-1 removed within seconds):
BODY='{body}'
curl -s -X POST -H 'Content-Type: application/json' -d "$BODY" {api}/hr/events \\
  -H "X-Signature: {sign(body.encode(), secret)}"
# another body: -H "X-Signature: sha256=$(printf %s "$BODY" | openssl dgst -sha256 -hmac \
{secret} | sed 's/^.* //')"
"""


def main() -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    # The documented local JWT secret is short on purpose; PyJWT would say so on every start.
    warnings.filterwarnings("ignore", message=".*HMAC key.*")
    started = time.perf_counter()
    from local.stack import LocalStack  # noqa: PLC0415 - counted in the start-up time

    fast = os.environ.get("HELPDESK_FAST_CLOCK")
    schedule = float(os.environ.get("HELPDESK_LOCAL_SCHEDULE_SECONDS", "10"))
    stack = LocalStack(
        fast_clock_scale=float(fast) if fast else None,
        access_log=True,
        schedule_seconds=schedule,
    )
    stopping = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stopping.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        stack.start()
        seed(stack.api_url)
    except Exception as exc:
        stack.stop()
        print(f"the local stack could not start: {exc}", file=sys.stderr)
        if isinstance(exc, OSError):
            print(
                "(another process may hold a port: set HELPDESK_API_PORT, HELPDESK_AWS_PORT, "
                "HELPDESK_JIRA_PORT or HELPDESK_MAIL_PORT)",
                file=sys.stderr,
            )
        return 1
    print(banner(stack, _token(roles=["project_manager"], **DEMO_PM)))
    print(f"ready in {time.perf_counter() - started:.1f} s — Ctrl-C to stop", flush=True)
    while not stopping.wait(0.5):
        pass
    print("\nstopping the local stack…", flush=True)
    stack.stop()
    print("stopped.", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
