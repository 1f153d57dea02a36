"""The User Access and Activity Log tabs over HTTP: adding access the three ways (SPEC §1 rule 3),
idempotency, allowed email domains (rule 7), removal, password reset (rule 6), retry, and the
paginated reads."""

from __future__ import annotations

from typing import Any

import pytest

from chalicelib import services
from chalicelib.domain.models import ContactStatus
from local.stack import LocalStack
from tests.api.expect import World, assert_problem, header
from tests.helpers import (
    ACME_PM,
    ACME_USER,
    INTEGRATOR_PM,
    PLATFORM_ADMIN,
    SERVICE,
    Api,
    Seeder,
    activity_actions,
    settled_grant,
)

GRANTS = "/projects/demo/grants"
DEV = "/projects/demo/grants/dev-1"
# JSM answers the first user search slowly: the activation stays pending for ~1.5 s.
SLOW_ACTIVATION = {
    "method": "GET",
    "path_regex": "user/search",
    "status": None,
    "delay_ms": 1500,
    "times": 1,
}
# JSM refuses the bot (403): the activation is caught and fails (JiraAuthError).
FAILING_ACTIVATION = {"method": "GET", "path_regex": "user/search", "status": 403, "times": 1}
SLOW_REMOVAL = {
    "method": "DELETE",
    "path_regex": r"/organization/\d+/user$",
    "status": None,
    "delay_ms": 1500,
    "times": 1,
}
FAILING_REMOVAL = {
    "method": "DELETE",
    "path_regex": r"/organization/\d+/user$",
    "status": 403,
    "times": 1,
}


def faults(stack: LocalStack, *rules: dict[str, Any]) -> None:
    assert stack.jira is not None
    stack.jira.set_faults(list(rules))


def add(api: Api, body: dict[str, Any], headers: dict[str, str] = ACME_PM) -> Any:
    return api.post(GRANTS, body, headers)


class Steps:
    """Given-steps that run a grant's lifecycle and wait until it is over."""

    def __init__(self, api: Api, stack: LocalStack, world: World) -> None:
        self.api = api
        self.stack = stack
        self.world = world

    def settled(
        self,
        contact_id: str = "dev-1",
        headers: dict[str, str] = ACME_PM,
        project_id: str = "demo",
    ) -> dict[str, Any] | None:
        """The grant once its run is over (None once removed). A grant shows its outcome a
        moment before its execution ends, and a new change waits for that end (409)."""
        grant = settled_grant(self.api, project_id, contact_id, headers)
        self.world.settle()
        return grant

    def activated(self, contact_id: str = "dev-1", headers: dict[str, str] = ACME_PM) -> Any:
        """Given: the contact's grant on `demo`, added and activated."""
        answer = add(self.api, {"contact_id": contact_id}, headers)
        assert answer.status == 202, answer.body
        grant = self.settled(contact_id, headers)
        assert grant is not None
        assert grant["status"] == "activated", grant
        return grant

    def failed_activation(self, contact_id: str = "dev-1") -> Any:
        """Given: the contact's grant on `demo`, whose activation failed."""
        faults(self.stack, FAILING_ACTIVATION)
        assert add(self.api, {"contact_id": contact_id}).status == 202
        grant = self.settled(contact_id)
        assert grant is not None
        assert grant["status"] == "activation_failed", grant
        return grant


@pytest.fixture
def steps(api: Api, stack: LocalStack, world: World) -> Steps:
    return Steps(api, stack, world)


def contact(api: Api, email: str) -> Any:
    """The whole contact (a platform admin sees every company's; rule 12 hides it from others)."""
    return api.get(f"/contacts?email={email}", PLATFORM_ADMIN).body["contact"]


# --- adding access --------------------------------------------------------------------------


def test_add_an_existing_company_contact(api: Api, seed: Seeder, steps: Steps) -> None:
    # Given project demo and acme's developer dev-1 (a Console User)
    seed.demo()

    # When acme's project manager gives dev-1 access
    answer = add(api, {"contact_id": "dev-1"})

    # Then 202 with the pending grant and where to follow it
    assert answer.status == 202, answer.body
    assert header(answer, "Location") == "/projects/demo/grants/dev-1"
    grant = answer.body
    assert grant["status"] == "activation_pending"
    assert grant == {
        "project_id": "demo",
        "contact_id": "dev-1",
        "email": "dana.dev@acme.example",
        "name": "Dana Dev",
        "status": "activation_pending",
        "jira_account_id": None,
        "account_created": False,
        "requested_by": "pm-1",
        "requested_at": grant["requested_at"],
        "updated_at": grant["updated_at"],
        "error": None,
        "expires_at": None,
        "granted_by_company_id": "acme",
        "outside_allowed_domains": False,
    }
    assert grant["requested_at"].endswith("Z")
    # (the started workflow may already have activated it: only the request's entry is ours)
    assert activity_actions(api, "demo", "dev-1")[:1] == ["grant.requested"]
    # And the grant activates in the background
    assert steps.settled()["status"] == "activated"  # type: ignore[index]


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"contact_id": "dev-1", "email": "dana.dev@acme.example"},
        {
            "contact_id": "dev-1",
            "new_contact": {"email": "n@acme.example", "name": "N", "kind": "company"},
        },
        {
            "contact_id": "dev-1",
            "email": "dana.dev@acme.example",
            "new_contact": {"email": "n@acme.example", "name": "N", "kind": "company"},
        },
        {"contact_id": None, "email": None},
    ],
    ids=["none", "contact_id and email", "contact_id and new_contact", "all three", "nulls"],
)
def test_exactly_one_way_to_name_the_contact(
    api: Api, seed: Seeder, world: World, body: dict[str, Any]
) -> None:
    # Given
    seed.demo()

    # When the body names the contact in none or several ways
    with world.unchanged():
        answer = add(api, body)

    # Then 422 saying so, and no grant, contact or activity
    problem = assert_problem(answer, 422)
    assert "exactly one of contact_id, email, new_contact" in problem["errors"][0]["message"]


@pytest.mark.parametrize(
    ("contact_id", "company", "console_user"),
    [
        ("int-1", "integrator", True),
        ("sales-1", "acme", False),
        ("ghost", None, True),
    ],
    ids=["another company's contact", "no Console User profile", "unknown contact"],
)
def test_contact_id_must_be_a_console_user_of_the_actors_company(
    api: Api,
    seed: Seeder,
    world: World,
    contact_id: str,
    company: str | None,
    console_user: bool,
) -> None:
    # Given a contact that is not an acme Console User (or none at all)
    seed.demo()
    if company:
        seed.contact(contact_id, f"{contact_id}@{company}.example", company, console_user)

    # When acme's project manager names it by id
    with world.unchanged():
        answer = add(api, {"contact_id": contact_id})

    # Then 422 on contact_id and nothing changes
    assert_problem(answer, 422, field="contact_id")


@pytest.mark.parametrize("expires_at", ["garbage", "2026-12-01", "2026-12-01T10:00:00+02:00", 42])
def test_expires_at_must_be_an_iso_utc_timestamp(
    api: Api, seed: Seeder, world: World, expires_at: Any
) -> None:
    # Given
    seed.demo()

    # When the grant's expiry is not a timestamp like the API's own
    with world.unchanged():
        answer = add(api, {"contact_id": "dev-1", "expires_at": expires_at})

    # Then 422 on expires_at and nothing changes
    assert_problem(answer, 422, field="expires_at")


@pytest.mark.parametrize(
    ("body", "field"),
    [({"contact_id": "dev-1"}, "contact_id"), ({"email": "dana.dev@acme.example"}, "email")],
    ids=["by contact_id", "by email"],
)
def test_an_offboarded_contact_is_its_own_problem(
    api: Api, seed: Seeder, world: World, body: dict[str, str], field: str
) -> None:
    # Given a contact HR offboarded
    seed.demo()
    offboard("dev-1")

    # When acme's project manager adds it
    with world.unchanged():
        answer = add(api, body)

    # Then 422 of the type SPEC §2 names for it, on the field that named the contact
    assert_problem(answer, 422, field=field, slug="contact-offboarded")


def offboard(contact_id: str) -> None:
    """What HR offboarding leaves on the contact (its status, as `OffboardingService` writes it)."""
    store = services.store()
    contact = store.get_contact(contact_id)
    assert contact is not None
    uow = store.unit_of_work()
    uow.change_contact_status(contact_id, ContactStatus.OFFBOARDED)
    uow.commit()


def test_an_unknown_email_must_be_created_with_new_contact(
    api: Api, seed: Seeder, world: World
) -> None:
    # Given
    seed.demo()

    # When acme's project manager names an email nobody has
    with world.unchanged():
        answer = add(api, {"email": "nobody@globex.example"})

    # Then 422 telling to create it with new_contact
    problem = assert_problem(answer, 422, field="email")
    assert "new_contact" in problem["errors"][0]["message"]


def test_an_email_of_another_company_makes_an_external(api: Api, seed: Seeder) -> None:
    # Given a contact of globex, a company foreign to the project
    seed.demo()
    seed.contact("eve-1", "eve@globex.example", company="globex", name="Eve")

    # When the integrator's supervisor adds it by email
    answer = add(api, {"email": "EVE@globex.example"}, INTEGRATOR_PM)

    # Then the grant is accepted and Eve becomes an external linked to the integrator
    assert answer.status == 202, answer.body
    assert answer.body["contact_id"] == "eve-1"
    assert contact(api, "eve@globex.example")["external_for"] == ["integrator"]
    assert activity_actions(api, "demo", "eve-1")[:2] == [
        "contact.external_linked",
        "grant.requested",
    ]


def test_a_new_company_contact_is_created_with_its_groups(api: Api, seed: Seeder) -> None:
    # Given
    seed.demo()

    # When acme's project manager creates a company contact with groups
    new = {"email": "Nia@acme.example", "name": "Nia New", "kind": "company", "groups": ["qa"]}
    answer = add(api, {"new_contact": new})

    # Then the grant names the service-assigned contact, created in acme with its groups
    assert answer.status == 202, answer.body
    contact_id = answer.body["contact_id"]
    assert header(answer, "Location") == f"/projects/demo/grants/{contact_id}"
    assert answer.body["email"] == "nia@acme.example"
    assert contact(api, "nia@acme.example") == {
        "contact_id": contact_id,
        "email": "nia@acme.example",
        "name": "Nia New",
        "company_id": "acme",
        "console_user": False,
        "groups": ["qa"],
        "external_for": [],
        "status": "active",
    }
    items = api.get(f"/projects/demo/activity?contact_id={contact_id}", ACME_PM).body["items"]
    created = next(e for e in items if e["action"] == "contact.created")
    assert created["detail"]["kind"] == "company"
    assert created["actor"]["id"] == "pm-1"


def test_a_new_external_contact_is_linked_to_the_actors_company(api: Api, seed: Seeder) -> None:
    # Given
    seed.demo()

    # When the integrator's supervisor creates an external contact
    new = {"email": "xena@freelance.example", "name": "Xena", "kind": "external"}
    answer = add(api, {"new_contact": new}, INTEGRATOR_PM)

    # Then the contact has no company and is an external of the integrator
    assert answer.status == 202, answer.body
    created = contact(api, "xena@freelance.example")
    assert created["company_id"] is None
    assert created["external_for"] == ["integrator"]
    assert created["groups"] == []
    actions = activity_actions(api, "demo", created["contact_id"])
    assert actions[:2] == ["contact.created", "grant.requested"]


def test_a_new_contact_with_an_existing_email_is_a_conflict(
    api: Api, seed: Seeder, world: World
) -> None:
    # Given dev-1 exists
    seed.demo()

    # When a new contact is created with its email (another case)
    new = {"email": "DANA.DEV@acme.example", "name": "Dana Again", "kind": "company"}
    with world.unchanged():
        answer = add(api, {"new_contact": new})

    # Then 409 and nothing changes
    assert_problem(answer, 409, detail="dana.dev@acme.example")


def test_a_second_grant_is_a_conflict(api: Api, seed: Seeder, world: World, steps: Steps) -> None:
    # Given dev-1 already has access
    seed.demo()
    steps.activated()

    # When it is added again (no Idempotency-Key)
    with world.unchanged():
        answer = add(api, {"contact_id": "dev-1"})

    # Then 409 and nothing changes
    assert_problem(answer, 409, detail="already has a grant")


def test_adding_a_failed_grant_again_retries_it(api: Api, seed: Seeder, steps: Steps) -> None:
    # Given dev-1's activation failed
    seed.demo()
    failed = steps.failed_activation()
    assert failed["error"]["code"] == "JiraAuthError"

    # When it is added again
    answer = add(api, {"contact_id": "dev-1"})

    # Then it is retried and activates
    assert answer.status == 202, answer.body
    assert answer.body["status"] == "activation_pending"
    assert answer.body["error"] is None
    assert steps.settled()["status"] == "activated"  # type: ignore[index]


# --- Idempotency-Key ------------------------------------------------------------------------


def test_a_repeat_with_the_same_key_returns_the_first_response(
    api: Api, seed: Seeder, steps: Steps
) -> None:
    # Given
    seed.demo()
    key = {**ACME_PM, "Idempotency-Key": "add-dev-1-7f3a"}

    # When the same request is sent twice with the same key (the second after activation)
    first = add(api, {"contact_id": "dev-1"}, key)
    steps.settled()
    second = add(api, {"contact_id": "dev-1"}, key)

    # Then both get the first 202 response, and the grant was requested once
    assert first.status == 202, first.body
    assert second.status == 202, second.body
    assert second.body == first.body
    assert header(second, "Location") == "/projects/demo/grants/dev-1"
    assert activity_actions(api, "demo", "dev-1").count("grant.requested") == 1


def test_the_same_key_with_another_body_is_refused(api: Api, seed: Seeder, world: World) -> None:
    # Given a grant requested with a key
    seed.demo()
    seed.contact("dev-2", "dave@acme.example")
    key = {**ACME_PM, "Idempotency-Key": "k-1"}
    assert add(api, {"contact_id": "dev-1"}, key).status == 202

    # When the key is reused for another contact
    with world.unchanged():
        answer = add(api, {"contact_id": "dev-2"}, key)

    # Then 422 on the key, and dev-2 gets nothing
    assert_problem(answer, 422, field="Idempotency-Key")


def test_a_refused_request_does_not_burn_its_key(api: Api, seed: Seeder) -> None:
    # Given a request refused for a missing contact
    seed.demo()
    key = {**ACME_PM, "Idempotency-Key": "k-2"}
    assert_problem(add(api, {"contact_id": "dev-2"}, key), 422)

    # When the contact is synced and the same request sent again with the same key
    seed.contact("dev-2", "dave@acme.example")
    answer = add(api, {"contact_id": "dev-2"}, key)

    # Then it is processed
    assert answer.status == 202, answer.body


# --- allowed email domains (rule 7) ---------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"contact_id": "out-1"}, "contact_id"),
        ({"email": "olly@outsiders.example"}, "email"),
        (
            {"new_contact": {"email": "nia@elsewhere.example", "name": "Nia", "kind": "external"}},
            "new_contact.email",
        ),
        (
            {"new_contact": {"email": "nia@eu.acme.example", "name": "Nia", "kind": "company"}},
            "new_contact.email",
        ),
    ],
    ids=["by id", "by email", "new external", "subdomain of an allowed domain"],
)
def test_emails_outside_the_allowed_domains_are_refused(
    api: Api, seed: Seeder, world: World, body: dict[str, Any], field: str
) -> None:
    # Given a project limited to two domains and an acme contact on another domain
    seed.project(allowed_email_domains=["acme.example", "Integrator.example"])
    seed.contact("out-1", "olly@outsiders.example")

    # When access is requested for an email outside them
    with world.unchanged():
        answer = add(api, body)

    # Then 422 naming the allowed domains, and nothing changes
    problem = assert_problem(answer, 422, field=field)
    assert "acme.example, integrator.example" in problem["detail"]


def test_allowed_domains_match_case_blind(api: Api, seed: Seeder) -> None:
    # Given a project limited to acme.example
    seed.project(allowed_email_domains=["acme.example"])
    new = {"email": "Nia@ACME.Example", "name": "Nia", "kind": "company"}

    # When / Then
    assert add(api, {"new_contact": new}).status == 202


def test_grants_outside_new_allowed_domains_are_flagged(
    api: Api, seed: Seeder, steps: Steps
) -> None:
    # Given dev-1 (acme.example) was granted on a project open to every domain
    seed.demo()
    steps.activated()

    # When the project is limited to the integrator's domain
    seed.project(allowed_email_domains=["integrator.example"])

    # Then the existing grant stays, flagged as outside the allowed domains
    [listed] = api.get(GRANTS, ACME_PM).body["items"]
    assert listed["contact_id"] == "dev-1"
    assert listed["status"] == "activated"
    assert listed["outside_allowed_domains"] is True
    assert api.get(DEV, ACME_PM).body["outside_allowed_domains"] is True


# --- removing access ------------------------------------------------------------------------


def test_remove_while_activation_is_pending_is_a_conflict_with_retry_after(
    api: Api, seed: Seeder, stack: LocalStack, world: World, steps: Steps
) -> None:
    # Given an activation that takes a while
    seed.demo()
    faults(stack, SLOW_ACTIVATION)
    assert add(api, {"contact_id": "dev-1"}).status == 202

    # When the grant is removed while still pending
    with world.unchanged(settle=False):
        answer = api.delete(DEV, ACME_PM)

    # Then 409 with Retry-After, and the activation goes on undisturbed
    assert_problem(answer, 409, detail="activated")
    assert header(answer, "Retry-After") == "5"
    assert steps.settled()["status"] == "activated"  # type: ignore[index]


def test_remove_twice_answers_the_same(
    api: Api, seed: Seeder, stack: LocalStack, steps: Steps
) -> None:
    # Given an activated grant whose removal takes a while
    seed.demo()
    steps.activated()
    faults(stack, SLOW_REMOVAL)

    # When it is removed twice
    first = api.delete(DEV, ACME_PM)
    second = api.delete(DEV, ACME_PM)

    # Then both answer 202 with the same deletion_pending grant; one removal was requested
    assert first.status == 202, first.body
    assert second.status == 202, second.body
    assert first.body["status"] == "deletion_pending"
    assert second.body == first.body
    assert header(first, "Location") == "/projects/demo/grants/dev-1"
    assert activity_actions(api, "demo", "dev-1").count("grant.removal_requested") == 1
    # And the grant goes away
    assert steps.settled() is None
    assert_problem(api.get(DEV, ACME_PM), 404)
    assert activity_actions(api, "demo", "dev-1")[-1] == "grant.removed"


def test_removing_a_grant_that_does_not_exist_is_not_found(
    api: Api, seed: Seeder, world: World
) -> None:
    seed.demo()
    with world.unchanged():
        assert_problem(api.delete(DEV, ACME_PM), 404)


def test_a_manager_removes_only_contacts_of_their_company(
    api: Api, seed: Seeder, world: World, steps: Steps
) -> None:
    # Given acme's dev-1 has access
    seed.demo()
    steps.activated()

    # When the integrator's supervisor removes it
    with world.unchanged():
        answer = api.delete(DEV, INTEGRATOR_PM)

    # Then 403 (rule 2: their company's contacts and its externals only)
    assert_problem(answer, 403)


def test_removing_an_externals_last_grant_unlinks_it(api: Api, seed: Seeder, steps: Steps) -> None:
    # Given a globex contact made an external of the integrator by its grant
    seed.demo()
    seed.contact("eve-1", "eve@globex.example", company="globex", name="Eve")
    assert add(api, {"email": "eve@globex.example"}, INTEGRATOR_PM).status == 202
    steps.settled("eve-1", INTEGRATOR_PM)

    # When the integrator removes it
    assert api.delete("/projects/demo/grants/eve-1", INTEGRATOR_PM).status == 202

    # Then, once removed, Eve is no longer linked to the integrator (rule 5)
    assert steps.settled("eve-1", INTEGRATOR_PM) is None
    assert contact(api, "eve@globex.example")["external_for"] == []


# --- password reset (rule 6) ----------------------------------------------------------------


def test_password_reset_emails_the_forgot_password_link(
    api: Api, seed: Seeder, stack: LocalStack, steps: Steps
) -> None:
    # Given an activated grant (its activation email already sent)
    assert stack.mailbox is not None
    seed.demo()
    steps.activated()
    before = len(stack.mailbox.messages())

    # When acme's project manager sends a password reset
    answer = api.post(f"{DEV}/password-reset", {}, ACME_PM)

    # Then 202 with the grant, an email with the portal's forgot-password link, and an entry
    assert answer.status == 202, answer.body
    assert answer.body["status"] == "activated"
    messages = stack.mailbox.messages()
    assert len(messages) == before + 1
    email = messages[0]
    assert email["to"] == ["dana.dev@acme.example"]
    assert "Demo project" in email["subject"]
    link = f"{stack.jira_url}/servicedesk/customer/user/forgotpassword"
    assert link in email["text"]
    assert link in email["html"]
    items = api.get("/projects/demo/activity?contact_id=dev-1", ACME_PM).body["items"]
    assert items[0]["action"] == "grant.password_reset_sent"
    assert items[0]["actor"] == {"type": "user", "id": "pm-1", "email": "priya.pm@acme.example"}
    assert items[0]["contact"] == {"id": "dev-1", "email": "dana.dev@acme.example"}


def test_password_reset_honours_the_idempotency_key_and_sends_at_most_one_per_5_minutes(
    api: Api, seed: Seeder, stack: LocalStack, steps: Steps
) -> None:
    # Given an activated grant
    assert stack.mailbox is not None
    seed.demo()
    steps.activated()
    before = len(stack.mailbox.messages())
    keyed = {**ACME_PM, "Idempotency-Key": "reset-1"}

    # When the same reset is sent three times with one Idempotency-Key
    answers = [api.post(f"{DEV}/password-reset", {}, keyed) for _ in range(3)]

    # Then one email and one entry, and every repeat answers the first response
    assert [a.status for a in answers] == [202, 202, 202]
    assert answers[1].body == answers[2].body == answers[0].body
    assert len(stack.mailbox.messages()) == before + 1

    # When another reset (another key, or none) follows within 5 minutes
    again = api.post(f"{DEV}/password-reset", {}, ACME_PM)

    # Then 429 with the seconds to wait, and nothing sent or logged
    assert_problem(again, 429)
    assert 0 < int(header(again, "Retry-After") or 0) <= 300
    assert len(stack.mailbox.messages()) == before + 1
    items = api.get("/projects/demo/activity?contact_id=dev-1", ACME_PM).body["items"]
    assert [e["action"] for e in items].count("grant.password_reset_sent") == 1


def test_password_reset_needs_an_activated_grant(
    api: Api, seed: Seeder, world: World, steps: Steps
) -> None:
    # Given a failed grant
    seed.demo()
    steps.failed_activation()

    # When a password reset is asked for
    with world.unchanged():
        answer = api.post(f"{DEV}/password-reset", {}, ACME_PM)

    # Then 409: no email, no activity
    assert_problem(answer, 409, detail="activation_failed")


def test_password_reset_while_pending_is_a_conflict(
    api: Api, seed: Seeder, stack: LocalStack, world: World, steps: Steps
) -> None:
    # Given an activation that takes a while
    seed.demo()
    faults(stack, SLOW_ACTIVATION)
    assert add(api, {"contact_id": "dev-1"}).status == 202

    # When a password reset is asked for meanwhile
    with world.unchanged(settle=False):
        answer = api.post(f"{DEV}/password-reset", {}, ACME_PM)

    # Then 409
    assert_problem(answer, 409, detail="activation_pending")
    steps.settled()


# --- retry ----------------------------------------------------------------------------------


def test_retry_a_failed_activation(api: Api, seed: Seeder, steps: Steps) -> None:
    # Given a failed activation
    seed.demo()
    steps.failed_activation()

    # When it is retried
    answer = api.post(f"{DEV}/retry", {}, ACME_PM)

    # Then 202, pending again without its error, then activated
    assert answer.status == 202, answer.body
    assert answer.body["status"] == "activation_pending"
    assert answer.body["error"] is None
    assert steps.settled()["status"] == "activated"  # type: ignore[index]
    actions = activity_actions(api, "demo", "dev-1")
    assert actions == [
        "grant.requested",
        "grant.activation_failed",
        "grant.requested",
        "grant.activated",
    ]


def test_retry_a_failed_removal(api: Api, seed: Seeder, stack: LocalStack, steps: Steps) -> None:
    # Given a removal that failed
    seed.demo()
    steps.activated()
    faults(stack, FAILING_REMOVAL)
    assert api.delete(DEV, ACME_PM).status == 202
    assert steps.settled()["status"] == "deletion_failed"  # type: ignore[index]

    # When it is retried
    answer = api.post(f"{DEV}/retry", {}, ACME_PM)

    # Then the removal runs again and the grant goes away
    assert answer.status == 202, answer.body
    assert answer.body["status"] == "deletion_pending"
    assert steps.settled() is None


def test_retry_only_a_failed_grant(api: Api, seed: Seeder, world: World, steps: Steps) -> None:
    # Given an activated grant
    seed.demo()
    steps.activated()

    # When it is retried
    with world.unchanged():
        answer = api.post(f"{DEV}/retry", {}, ACME_PM)

    # Then 409, nothing started
    assert_problem(answer, 409, detail="activated")


# --- reads ----------------------------------------------------------------------------------


def test_a_grant_that_does_not_exist_is_not_found(api: Api, seed: Seeder) -> None:
    seed.demo()
    assert_problem(api.get(DEV, ACME_USER), 404)


def test_grants_are_paginated(api: Api, seed: Seeder) -> None:
    # Given five grants
    seed.demo()
    ids = ["dev-1", "dev-2", "dev-3", "dev-4", "dev-5"]
    for contact_id in ids[1:]:
        seed.contact(contact_id, f"{contact_id}@acme.example")
    for contact_id in ids:
        assert add(api, {"contact_id": contact_id}).status == 202

    # When a member pages through them two at a time
    pages, cursor = [], None
    while True:
        query = "?limit=2" + (f"&cursor={cursor}" if cursor else "")
        answer = api.get(GRANTS + query, ACME_USER)
        assert answer.status == 200, answer.body
        pages.append([g["contact_id"] for g in answer.body["items"]])
        cursor = answer.body["next_cursor"]
        if cursor is None:
            break

    # Then every grant comes exactly once, at most two a page, with name and status
    seen = [contact_id for page in pages for contact_id in page]
    assert sorted(seen) == ids
    assert all(len(page) <= 2 for page in pages)
    assert len(pages) >= 3
    everything = api.get(GRANTS, ACME_USER).body
    assert everything["next_cursor"] is None
    assert {g["contact_id"] for g in everything["items"]} == set(ids)
    assert all(g["name"] and g["email"] and g["status"] for g in everything["items"])


def test_activity_is_newest_first_paginated_and_filtered(
    api: Api, seed: Seeder, steps: Steps
) -> None:
    # Given a history: link, two grants activated, one password reset
    seed.demo()
    seed.contact("dev-2", "dave@acme.example")
    steps.activated("dev-1")
    steps.activated("dev-2")
    assert api.post(f"{DEV}/password-reset", {}, ACME_PM).status == 202

    # When the whole log is read, and then paged three at a time
    whole = api.get("/projects/demo/activity?limit=100", SERVICE).body
    paged, cursor = [], None
    while True:
        query = "?limit=3" + (f"&cursor={cursor}" if cursor else "")
        answer = api.get("/projects/demo/activity" + query, ACME_USER)
        assert answer.status == 200, answer.body
        assert len(answer.body["items"]) <= 3
        paged += answer.body["items"]
        cursor = answer.body["next_cursor"]
        if cursor is None:
            break

    # Then it is newest first, the pages add up to the whole, and each entry is complete
    items = whole["items"]
    assert whole["next_cursor"] is None
    assert [e["at"] for e in items] == sorted((e["at"] for e in items), reverse=True)
    assert [e["id"] for e in items] == sorted((e["id"] for e in items), reverse=True)
    assert paged == items
    assert items[0]["action"] == "grant.password_reset_sent"
    assert items[-1]["action"] == "helpdesk.linked"
    assert len(items) == 6
    for entry in items:
        assert set(entry) == {"project_id", "at", "id", "action", "actor", "contact", "detail"}

    # When it is filtered by contact
    filtered = api.get("/projects/demo/activity?contact_id=dev-2", ACME_USER).body["items"]

    # Then only that contact's entries come, newest first
    assert [e["action"] for e in filtered] == ["grant.activated", "grant.requested"]
    assert {e["contact"]["id"] for e in filtered} == {"dev-2"}
    first_page = api.get("/projects/demo/activity?contact_id=dev-2&limit=1", ACME_USER).body
    rest = api.get(
        f"/projects/demo/activity?contact_id=dev-2&limit=1&cursor={first_page['next_cursor']}",
        ACME_USER,
    ).body
    assert first_page["items"] + rest["items"] == filtered


# --- who may change a grant: the company that gave it (rule 2) -------------------------------


def test_linking_a_contact_as_an_external_never_lets_a_company_remove_anothers_grant(
    api: Api, seed: Seeder, steps: Steps, world: World
) -> None:
    # Given acme's developer granted on demo by acme, and an integrator project of its own
    seed.demo()
    seed.project("ip", customer_company_id="integrator", integrator_company_id=None)
    assert add(api, {"contact_id": "dev-1"}).status == 202
    steps.settled("dev-1")
    # ...where the integrator adds dev-1 by email (dev-1 becomes the integrator's external)
    answer = api.post("/projects/ip/grants", {"email": "dana.dev@acme.example"}, INTEGRATOR_PM)
    assert answer.status == 202, answer.body
    assert answer.body["granted_by_company_id"] == "integrator"
    steps.settled("dev-1", INTEGRATOR_PM, project_id="ip")

    # When the integrator's manager removes acme's grant on demo
    with world.unchanged():
        refused = api.delete("/projects/demo/grants/dev-1", INTEGRATOR_PM)

    # Then 403: acme gave it; and acme's grant shows who gave it
    assert_problem(refused, 403)
    assert api.get("/projects/demo/grants/dev-1", ACME_PM).body["granted_by_company_id"] == "acme"
    # ...while the integrator may remove the grant it gave
    assert api.delete("/projects/ip/grants/dev-1", INTEGRATOR_PM).status == 202


def test_the_contacts_own_company_may_remove_a_grant_another_company_gave_it(
    api: Api, seed: Seeder, steps: Steps
) -> None:
    # Given the integrator gave acme's developer access to demo (by email)
    seed.demo()
    answer = api.post("/projects/demo/grants", {"email": "dana.dev@acme.example"}, INTEGRATOR_PM)
    assert answer.status == 202, answer.body
    steps.settled("dev-1", INTEGRATOR_PM)

    # When acme's manager (dev-1's own company) removes it / Then it may (rule 2)
    assert api.delete("/projects/demo/grants/dev-1", ACME_PM).status == 202
