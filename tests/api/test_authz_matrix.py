"""Who may call what: every role × every SPEC §2 operation × the caller's company relation to the
project (its customer, its integrator, or another company), expected exactly as SPEC §2's "who"
column, §1 rules 2-3 and 8 and docs/decisions.md say.

"Allowed" cases are built so that the request succeeds and must answer the operation's success
status; "denied" ones must answer a 403 problem and change nothing at all.

One stack state serves the whole module (resetting it per case would cost minutes): each case
seeds the contacts and grants it needs under names of its own, so cases never meet.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any

import pytest

from chalicelib.domain.models import GrantStatus, iso, utc_now
from local.stack import LocalStack
from tests.api.expect import World, assert_problem
from tests.conftest import ROOT
from tests.helpers import PROJECT, Api, Seeder, bearer

ROLES = [
    "console_user",
    "project_manager",
    "supervisor",
    "company_admin",
    "platform_admin",
    "service",
]
RELATIONS = {"customer": "acme", "integrator": "integrator", "other": "other"}
MANAGERS = {"project_manager", "supervisor"}
CREATOR = "creator-1"


@dataclass(frozen=True)
class Actor:
    role: str
    relation: str  # the caller's company, seen from the project
    sub: str | None = None

    @property
    def company(self) -> str:
        return RELATIONS[self.relation]

    @property
    def key(self) -> str:
        return f"{self.role}-{self.relation}" + (f"-{self.sub}" if self.sub else "")

    @property
    def headers(self) -> dict[str, str]:
        sub = self.sub or f"u-{self.key}"
        return bearer(sub, f"{sub}@{self.company}.example", self.company, [self.role])

    # --- what SPEC §2 and docs/decisions.md allow ---------------------------------------------

    @property
    def is_member(self) -> bool:
        return self.relation != "other" or self.role in {"platform_admin", "service"}

    @property
    def manages_grants(self) -> bool:
        """Rule 2 + "platform_admin may do anything a project manager may" (not `service`)."""
        on_project = self.role in MANAGERS and self.relation != "other"
        return on_project or self.role == "platform_admin"

    @property
    def acting_company(self) -> str:
        """Whose contacts a grant case names: a platform admin acts for the customer company."""
        return "acme" if self.role == "platform_admin" else self.company


@dataclass(frozen=True)
class Endpoint:
    name: str
    method: str
    success: int
    allows: Callable[[Actor], bool]
    # (module state, actor) → (path, body); may seed what the request needs (before the check)
    build: Callable[[Matrix, Actor], tuple[str, Any]]
    on_project: bool = True  # under /projects/demo


class Matrix:
    """The module's world: project `demo` (acme customer, integrator integrator, created by
    `creator-1`) with an activated grant of `dev-1`, and project `foreign` of two other
    companies."""

    def __init__(self, stack: LocalStack, api: Api) -> None:
        self.api = api
        self.seed = Seeder(api)
        self.world = World(stack)
        self.project = self.seed.project(created_by=CREATOR)
        self.seed.project("foreign", customer_company_id="other", integrator_company_id="globex")
        dev = self.seed.contact("dev-1", "dana.dev@acme.example", name="Dana Dev")
        self.world.put_grant(self.project, dev, GrantStatus.ACTIVATED)

    def contact_of(self, prefix: str, actor: Actor) -> dict[str, Any]:
        """Given: a Console User of the company the actor acts for, unique to this case."""
        contact_id = f"{prefix}-{actor.key}"
        return self.seed.contact(
            contact_id, f"{contact_id}@{actor.acting_company}.example", company=actor.acting_company
        )

    def granted(self, prefix: str, actor: Actor, status: GrantStatus) -> str:
        """Given: that contact with a grant in `status` on `demo`; returns the grant's path."""
        contact = self.contact_of(prefix, actor)
        self.world.put_grant(self.project, contact, status)
        return f"/projects/demo/grants/{contact['contact_id']}"

    def pending_request(self, prefix: str, actor: Actor) -> str:
        """Given: a pending access request of a Console User of the actor's acting company."""
        from chalicelib import services  # noqa: PLC0415
        from chalicelib.domain.models import AccessRequest  # noqa: PLC0415

        contact = self.contact_of(prefix, actor)
        now = utc_now()
        request = AccessRequest(
            request_id=f"q-{prefix}-{actor.key}",
            project_id="demo",
            contact_id=contact["contact_id"],
            email=contact["email"],
            name=contact["name"],
            company_id=actor.acting_company,
            reason="I support the import team",
            status="pending",
            requested_at=iso(now),
            expires_at=iso(now + timedelta(days=7)),
        )
        uow = services.store().unit_of_work()
        uow.create_access_request(request)
        uow.commit()
        return f"/projects/demo/access-requests/{request.request_id}"

    def no_open_review(self) -> None:
        """Given: no open review on `demo` (one project has one at a time)."""
        from chalicelib import services  # noqa: PLC0415 - the app's own store, as configured

        store = services.store()
        for review in store.reviews_of_project("demo"):
            if review.status == "open":
                uow = store.unit_of_work()
                uow.close_review(replace(review, status="closed", closed_at=iso(utc_now())))
                uow.commit()

    def fresh_review(self) -> str:
        """Given: a review of `demo` opened now, listing every grant activated so far."""
        from chalicelib import services  # noqa: PLC0415
        from chalicelib.domain.models import Principal, Role  # noqa: PLC0415

        self.no_open_review()
        admin = Principal(
            "root-1", "root@platform.example", "platform", frozenset({Role.PLATFORM_ADMIN})
        )
        due = iso(utc_now() + timedelta(days=1))
        return services.reviews().open(admin, "demo", due).review_id


def _put_project(m: Matrix, a: Actor) -> tuple[str, Any]:
    return f"/projects/p-{a.key}", {**PROJECT, "name": f"Project {a.key}"}


def _put_contact(m: Matrix, a: Actor) -> tuple[str, Any]:
    body = {"email": f"new-{a.key}@acme.example", "name": "New Contact", "company_id": "acme"}
    return f"/contacts/new-{a.key}", body


def _add_grant(m: Matrix, a: Actor) -> tuple[str, Any]:
    return "/projects/demo/grants", {"contact_id": m.contact_of("add", a)["contact_id"]}


def _grant_batch(m: Matrix, a: Actor) -> tuple[str, Any]:
    """A batch adding one contact and removing another's grant, both the actor's company's."""
    removed = m.granted("bdel", a, GrantStatus.ACTIVATED).rsplit("/", 1)[-1]
    body = {"add": [{"contact_id": m.contact_of("badd", a)["contact_id"]}], "remove": [removed]}
    return "/projects/demo/grant-batches", body


def _read(path: str) -> Callable[[Matrix, Actor], tuple[str, Any]]:
    return lambda m, a: (path, None)


def _support_access(m: Matrix, a: Actor) -> tuple[str, Any]:
    body = {"enabled": True, "reason": "We need help with imports", "confirmation": "Support"}
    return "/projects/demo/support-access", body


def _expiry_body() -> dict[str, Any]:
    return {"expires_at": iso(utc_now() + timedelta(days=30))}


def _open_review(m: Matrix, a: Actor) -> tuple[str, Any]:
    m.no_open_review()
    return "/projects/demo/reviews", {"due_at": iso(utc_now() + timedelta(days=7))}


def _review(m: Matrix, a: Actor) -> tuple[str, Any]:
    return f"/projects/demo/reviews/{m.fresh_review()}", None


def _decide(m: Matrix, a: Actor) -> tuple[str, Any]:
    """A grant of the actor's company, in a review opened after it was activated."""
    contact_id = m.granted("rv", a, GrantStatus.ACTIVATED).rsplit("/", 1)[-1]
    path = f"/projects/demo/reviews/{m.fresh_review()}/items/{contact_id}"
    return path, {"decision": "keep"}


def _ask(m: Matrix, a: Actor) -> tuple[str, Any]:
    """The actor asks for themselves: a contact of theirs exists under the token's subject."""
    sub = f"u-{a.key}"
    m.seed.contact(sub, f"{sub}@{a.company}.example", company=a.company)
    return "/projects/demo/access-requests", {"reason": "I support the import team"}


def _scim_token_admin(a: Actor) -> bool:
    """A company's SCIM tokens: its company admins and platform admins (here: acme's)."""
    return (a.role == "company_admin" and a.relation == "customer") or a.role == "platform_admin"


def _minted_token(m: Matrix, a: Actor) -> tuple[str, Any]:
    """Given: a token of acme, minted by a platform admin, unique to this case."""
    admin = bearer("root-1", "root@platform.example", "platform", ["platform_admin"])
    minted = m.api.post("/companies/acme/scim-tokens", {}, admin)
    return f"/companies/acme/scim-tokens/{minted.body['token_id']}", None


def _anyone(a: Actor) -> bool:
    return True


def _members(a: Actor) -> bool:
    return a.is_member


def _managers(a: Actor) -> bool:
    return a.manages_grants


ENDPOINTS = [
    Endpoint("GET /health", "GET", 200, _anyone, _read("/health"), on_project=False),
    Endpoint(
        "POST scim-tokens",
        "POST",
        201,
        _scim_token_admin,
        lambda m, a: ("/companies/acme/scim-tokens", {}),
        on_project=False,
    ),
    Endpoint(
        "GET scim-tokens",
        "GET",
        200,
        _scim_token_admin,
        _read("/companies/acme/scim-tokens"),
        on_project=False,
    ),
    Endpoint(
        "DELETE scim-token", "DELETE", 204, _scim_token_admin, _minted_token, on_project=False
    ),
    Endpoint("GET /openapi.json", "GET", 200, _anyone, _read("/openapi.json"), on_project=False),
    Endpoint(
        "PUT /projects/{id}",
        "PUT",
        201,
        lambda a: a.role in {"service", "platform_admin"},
        _put_project,
        on_project=False,
    ),
    Endpoint("GET /projects/{id}", "GET", 200, _members, _read("/projects/demo")),
    Endpoint(
        "PUT /contacts/{id}",
        "PUT",
        201,
        lambda a: a.role == "service",
        _put_contact,
        on_project=False,
    ),
    Endpoint(
        "GET /contacts?email=",
        "GET",
        200,
        lambda a: a.role in {*MANAGERS, "platform_admin"},
        _read("/contacts?email=dana.dev@acme.example"),
        on_project=False,
    ),
    Endpoint(
        "GET eligible-contacts",
        "GET",
        200,
        _managers,
        _read("/projects/demo/eligible-contacts"),
    ),
    Endpoint("GET helpdesk", "GET", 200, _members, _read("/projects/demo/helpdesk")),
    Endpoint("GET grants", "GET", 200, _members, _read("/projects/demo/grants")),
    Endpoint("POST grants", "POST", 202, _managers, _add_grant),
    Endpoint("POST grant-batches", "POST", 207, _managers, _grant_batch),
    Endpoint("GET grant", "GET", 200, _members, _read("/projects/demo/grants/dev-1")),
    Endpoint(
        "DELETE grant",
        "DELETE",
        202,
        _managers,
        lambda m, a: (m.granted("del", a, GrantStatus.ACTIVATED), None),
    ),
    Endpoint(
        "PATCH grant",
        "PATCH",
        200,
        _managers,
        lambda m, a: (m.granted("exp", a, GrantStatus.ACTIVATED), _expiry_body()),
    ),
    Endpoint(
        "POST password-reset",
        "POST",
        202,
        _managers,
        lambda m, a: (m.granted("pwd", a, GrantStatus.ACTIVATED) + "/password-reset", {}),
    ),
    Endpoint(
        "POST retry",
        "POST",
        202,
        _managers,
        lambda m, a: (m.granted("retry", a, GrantStatus.ACTIVATION_FAILED) + "/retry", {}),
    ),
    Endpoint("GET activity", "GET", 200, _members, _read("/projects/demo/activity")),
    Endpoint(
        "POST reconcile",
        "POST",
        200,
        lambda a: a.role == "platform_admin",
        lambda m, a: ("/projects/demo/reconcile", {"repair": False, "remove_extra": False}),
    ),
    Endpoint("GET reviews", "GET", 200, _members, _read("/projects/demo/reviews")),
    Endpoint(
        "POST reviews",
        "POST",
        201,
        lambda a: (a.role in MANAGERS and a.relation == "customer") or a.role == "platform_admin",
        _open_review,
    ),
    Endpoint("GET review", "GET", 200, _members, _review),
    Endpoint("PUT review item", "PUT", 200, _managers, _decide),
    Endpoint(
        "POST access-requests",
        "POST",
        201,
        lambda a: a.role == "console_user" and a.relation != "other",
        _ask,
    ),
    Endpoint("GET access-requests", "GET", 200, _members, _read("/projects/demo/access-requests")),
    Endpoint(
        "POST approve",
        "POST",
        200,
        _managers,
        lambda m, a: (m.pending_request("apr", a) + "/approve", {}),
    ),
    Endpoint(
        "POST deny",
        "POST",
        200,
        _managers,
        lambda m, a: (m.pending_request("dny", a) + "/deny", {"reason": "not now"}),
    ),
    Endpoint(
        "GET support-access",
        "GET",
        200,
        lambda a: _members(a) or a.sub == CREATOR,  # who may switch it may read it
        _read("/projects/demo/support-access"),
    ),
    Endpoint(
        "PUT support-access",
        "PUT",
        200,
        lambda a: (a.role == "company_admin" and a.relation == "customer") or a.sub == CREATOR,
        _support_access,
    ),
]

ACTORS = [Actor(role, relation) for role in ROLES for relation in RELATIONS]
CASES = [
    pytest.param(
        endpoint,
        actor,
        id=f"{endpoint.name} | {actor.role}@{actor.relation} → "
        + ("allow" if endpoint.allows(actor) else "deny"),
    )
    for endpoint in ENDPOINTS
    for actor in ACTORS
]
BY_NAME = {endpoint.name: endpoint for endpoint in ENDPOINTS}
# The project's creator (seed 003) may switch support access whatever its roles and company;
# being the creator grants nothing else.
CREATOR_CASES = [
    pytest.param(
        BY_NAME["PUT support-access"],
        Actor("console_user", "customer", sub=CREATOR),
        id="PUT support-access | creator console_user@customer → allow",
    ),
    pytest.param(
        BY_NAME["PUT support-access"],
        Actor("console_user", "integrator", sub=CREATOR),
        id="PUT support-access | creator console_user@integrator → allow",
    ),
    pytest.param(
        BY_NAME["PUT support-access"],
        Actor("console_user", "other", sub=CREATOR),
        id="PUT support-access | creator console_user@other → allow",
    ),
    pytest.param(
        BY_NAME["GET support-access"],
        Actor("console_user", "other", sub=CREATOR),
        id="GET support-access | creator console_user@other → allow",
    ),
    pytest.param(
        BY_NAME["POST grants"],
        Actor("console_user", "customer", sub=CREATOR),
        id="POST grants | creator console_user@customer → deny",
    ),
    pytest.param(
        BY_NAME["PUT support-access"],
        Actor("company_admin", "integrator", sub="not-the-creator"),
        id="PUT support-access | company_admin@integrator (not the creator) → deny",
    ),
]


@pytest.fixture(scope="module")
def matrix(running_stack: LocalStack) -> Iterator[Matrix]:
    running_stack.reset()
    with Api.for_app(running_stack.app, ROOT) as api:
        yield Matrix(running_stack, api)


@pytest.mark.parametrize(("endpoint", "actor"), CASES + CREATOR_CASES)
def test_who_may_call_what(matrix: Matrix, endpoint: Endpoint, actor: Actor) -> None:
    # Given what the request needs, seeded under the case's own names
    path, body = endpoint.build(matrix, actor)

    if endpoint.allows(actor):
        # When an allowed caller sends it / Then it succeeds (a batch: every item too)
        answer = matrix.api.call(endpoint.method, path, body, actor.headers)
        assert answer.status == endpoint.success, answer.body
        if answer.status == 207:
            assert {r["status"] for r in answer.body["results"]} == {202}, answer.body
        matrix.world.settle()  # let a started workflow finish before the next case looks
    else:
        # When anybody else sends it / Then 403, and nothing changed anywhere
        with matrix.world.unchanged():
            answer = matrix.api.call(endpoint.method, path, body, actor.headers)
        assert_problem(answer, 403)


@pytest.mark.parametrize(
    "endpoint",
    [e for e in ENDPOINTS if e.on_project and e.allows(Actor("project_manager", "customer"))],
    ids=lambda e: f"{e.name} on another company's project → deny",
)
def test_a_manager_of_one_project_is_a_stranger_on_another(
    matrix: Matrix, endpoint: Endpoint
) -> None:
    # Given acme's project manager, allowed on `demo`, and what the request would need there
    actor = Actor("project_manager", "customer", sub="pm-elsewhere")
    path, body = endpoint.build(matrix, actor)
    foreign = path.replace("/projects/demo", "/projects/foreign", 1)

    # When they call it on project `foreign` (customer other, integrator globex)
    with matrix.world.unchanged():
        answer = matrix.api.call(endpoint.method, foreign, body, actor.headers)

    # Then 403
    assert_problem(answer, 403)


# Rule 2: a grant belongs to the company that gave it (`granted_by_company_id`). Cases: who gave
# the grant, whose contact it is (and whom it is linked to as an external), who calls.
GRANT_OWNERSHIP = [
    # (granted by, contact's company, contact linked to, caller, allowed?)
    ("acme", "acme", None, Actor("supervisor", "integrator"), False),
    ("acme", "globex", "integrator", Actor("supervisor", "integrator"), False),
    ("acme", "globex", "integrator", Actor("project_manager", "customer"), True),
    ("integrator", "acme", None, Actor("project_manager", "customer"), True),
    ("integrator", "acme", None, Actor("supervisor", "integrator"), True),
    ("integrator", "globex", None, Actor("project_manager", "customer"), False),
    ("integrator", "globex", None, Actor("platform_admin", "other"), True),
]
GRANT_CHANGES = [
    ("DELETE", "", GrantStatus.ACTIVATED, 202),
    ("POST", "/retry", GrantStatus.ACTIVATION_FAILED, 202),
    ("POST", "/password-reset", GrantStatus.ACTIVATED, 202),
    ("PATCH", "", GrantStatus.ACTIVATED, 200),
]


def _change_body(method: str) -> dict[str, Any] | None:
    return {"POST": {}, "PATCH": _expiry_body()}.get(method)


@pytest.mark.parametrize(("method", "suffix", "status", "success"), GRANT_CHANGES)
@pytest.mark.parametrize(
    ("granted_by", "company", "linked_to", "actor", "allowed"), GRANT_OWNERSHIP
)
def test_only_the_granting_company_the_contacts_company_and_admins_change_a_grant(
    matrix: Matrix,
    method: str,
    suffix: str,
    status: GrantStatus,
    success: int,
    granted_by: str,
    company: str,
    linked_to: str | None,
    actor: Actor,
    allowed: bool,
) -> None:
    # Given a grant on demo that `granted_by` gave to a contact of `company`
    from chalicelib import services  # noqa: PLC0415 - the app's own store, as configured

    parts = (granted_by, company, linked_to or "x", actor.role, actor.relation, method, suffix)
    contact_id = "own-" + "-".join(part.strip("/")[:4] for part in parts)
    contact = matrix.seed.contact(contact_id, f"{contact_id}@{company}.example", company=company)
    if linked_to:
        uow = services.store().unit_of_work()
        uow.link_external(contact_id, linked_to)
        uow.commit()
    matrix.world.put_grant(matrix.project, contact, status, granted_by_company_id=granted_by)
    path = f"/projects/demo/grants/{contact_id}{suffix}"

    if allowed:
        # When a caller rule 2 allows changes it / Then it succeeds
        answer = matrix.api.call(method, path, _change_body(method), actor.headers)
        assert answer.status == success, answer.body
        matrix.world.settle()
    else:
        # When another company's manager tries / Then 403 and nothing changes
        with matrix.world.unchanged():
            answer = matrix.api.call(method, path, _change_body(method), actor.headers)
        assert_problem(answer, 403)


@pytest.mark.parametrize(
    ("granted_by", "company", "linked_to", "actor", "allowed"), GRANT_OWNERSHIP
)
def test_a_batch_removal_is_authorized_as_the_single_delete(
    matrix: Matrix,
    granted_by: str,
    company: str,
    linked_to: str | None,
    actor: Actor,
    allowed: bool,
) -> None:
    # Given a grant on demo that `granted_by` gave to a contact of `company`
    from chalicelib import services  # noqa: PLC0415 - the app's own store, as configured

    parts = (granted_by, company, linked_to or "x", actor.role, actor.relation)
    contact_id = "bat-" + "-".join(part[:4] for part in parts)
    contact = matrix.seed.contact(contact_id, f"{contact_id}@{company}.example", company=company)
    if linked_to:
        uow = services.store().unit_of_work()
        uow.link_external(contact_id, linked_to)
        uow.commit()
    matrix.world.put_grant(matrix.project, contact, GrantStatus.ACTIVATED, granted_by)
    body = {"remove": [contact_id]}

    if allowed:
        # When a caller rule 2 allows removes it in a batch / Then the item is the DELETE's 202
        answer = matrix.api.call("POST", "/projects/demo/grant-batches", body, actor.headers)
        assert answer.status == 207, answer.body
        assert answer.body["results"][0]["status"] == 202, answer.body
        matrix.world.settle()
    else:
        # When another company's manager tries / Then the item is a 403 and nothing changes
        with matrix.world.unchanged():
            answer = matrix.api.call("POST", "/projects/demo/grant-batches", body, actor.headers)
        assert answer.status == 207, answer.body
        assert answer.body["results"][0]["status"] == 403, answer.body
        assert answer.body["results"][0]["problem"]["type"] == "/problems/forbidden"
