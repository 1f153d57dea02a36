"""The support-access switch's email (rule 8): sent once the change is stored, exactly once per
change — by the request, or, when SES failed or the request died after the commit, by the
sweeper from the outbox stored with the change."""

from __future__ import annotations

from datetime import timedelta

import pytest

from chalicelib.domain.models import Role, utc_now
from chalicelib.domain.support_access import OWED_AFTER, SupportAccessService
from tests.fakes.adapters import RecordingEvents, RecordingMailer
from tests.fakes.builders import CUSTOMER, principal, project
from tests.fakes.store import InMemoryStore

ADMIN = principal(Role.COMPANY_ADMIN, company=CUSTOMER, sub="u-admin")
TEAM = "support-team@example.com"


def _service() -> tuple[SupportAccessService, InMemoryStore, RecordingMailer]:
    store, mailer = InMemoryStore(), RecordingMailer()
    store.seed(project())
    return SupportAccessService(store, mailer, RecordingEvents(), TEAM), store, mailer


def test_a_change_is_emailed_once_and_owes_nothing() -> None:
    service, store, mailer = _service()

    service.change(ADMIN, "p1", True, "incident 42", "Support")

    assert [(m.kind, m.to) for m in mailer.sent] == [("support_access", TEAM)]
    assert store.get_project("p1").support_access.notified is True  # type: ignore[union-attr]
    assert service.deliver_owed_emails(utc_now() + timedelta(hours=1)) == 0
    assert len(mailer.sent) == 1


def test_an_email_that_failed_after_the_change_is_delivered_by_the_sweeper_once() -> None:
    # Given SES failing when the change is made
    service, store, mailer = _service()
    mailer.failing = True
    changed = service.change(ADMIN, "p1", True, "incident 42", "Support")

    # Then the change stands, with its email owed
    assert changed.enabled is True
    assert mailer.sent == []
    assert store.get_project("p1").support_access.notified is False  # type: ignore[union-attr]

    # When SES is back and the sweeper runs (too early, then in time, then again)
    mailer.failing = False
    assert service.deliver_owed_emails(utc_now()) == 0  # the request may still be sending
    later = utc_now() + OWED_AFTER + timedelta(seconds=1)
    assert service.deliver_owed_emails(later) == 1
    assert service.deliver_owed_emails(later) == 0

    # Then the support team got exactly one email about the change
    assert [m.kind for m in mailer.sent] == ["support_access"]


def test_the_request_and_the_sweeper_racing_send_one_email() -> None:
    # Given a change whose email is owed (the request's send failed)
    service, store, mailer = _service()
    mailer.failing = True
    service.change(ADMIN, "p1", True, "incident 42", "Support")
    mailer.failing = False
    owed = store.projects_owing_support_email()

    # When two deliveries of that change run (the sweeper twice, say, or a retried request)
    later = utc_now() + OWED_AFTER + timedelta(seconds=1)
    service.deliver_owed_emails(later)
    service._deliver(owed[0])  # a second delivery that read the outbox before the first marked it

    # Then one email: the delivery is keyed by the change
    assert len(mailer.sent) == 1


def test_a_project_put_that_read_an_older_switch_does_not_overwrite_a_change() -> None:
    # Given a project read by the console's directory sync, then support access switched on
    from chalicelib.errors import StaleState  # noqa: PLC0415

    service, store, _ = _service()
    read = store.get_project("p1")
    assert read is not None
    service.change(ADMIN, "p1", True, "incident 42", "Support")

    # When the sync writes back the project it read
    uow = store.unit_of_work()
    uow.put_project(read, expected_organization_id=read.organization_id)

    # Then the write loses instead of switching support access back off
    with pytest.raises(StaleState):
        uow.commit()
    assert store.get_project("p1").support_access.enabled is True  # type: ignore[union-attr]
