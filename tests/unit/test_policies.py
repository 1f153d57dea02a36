"""Input rules that are not about roles: allowed email domains (seed 004) and active contacts."""

from __future__ import annotations

import pytest

from chalicelib.domain.models import ContactStatus
from chalicelib.domain.policies import (
    domain_allowed,
    email_domain,
    ensure_active,
    ensure_domain_allowed,
)
from chalicelib.errors import ContactOffboarded, ValidationFailed
from tests.fakes.builders import contact, project


@pytest.mark.parametrize(
    ("allowed", "email", "expected"),
    [
        ([], "anyone@anywhere.example", True),
        (["acme.example"], "ann@acme.example", True),
        (["acme.example"], "Ann@ACME.Example", True),
        (["ACME.example"], "ann@acme.example", True),
        (["acme.example", "integ.example"], "ivan@integ.example", True),
        (["acme.example"], "ann@eu.acme.example", False),
        (["acme.example"], "ann@acme.example.evil", False),
        (["acme.example"], "ann@other.example", False),
    ],
)
def test_domain_allowed(allowed, email, expected):
    # Given a project's allowed domains
    limited = project(allowed_email_domains=allowed)

    # When an email is checked
    # Then empty allows any, otherwise only an exact case-blind match (no subdomains)
    assert domain_allowed(limited, email) is expected


def test_refusal_names_the_allowed_domains_and_the_field():
    # Given a project limited to two domains
    limited = project(allowed_email_domains=["integ.example", "acme.example"])

    # When an email of another domain is checked
    with pytest.raises(ValidationFailed) as refused:
        ensure_domain_allowed(limited, "eve@other.example", "new_contact.email")

    # Then the 422 names the domain, the allowed ones and the field
    message = refused.value.message
    assert "other.example" in message
    assert "(acme.example, integ.example)" in message
    assert [e.field for e in refused.value.errors] == ["new_contact.email"]


def test_email_domain_is_the_lower_case_part_after_the_last_at():
    # Given / When / Then
    assert email_domain('"a@b"@Acme.Example') == "acme.example"


def test_offboarded_contacts_are_refused():
    # Given an active and an offboarded contact
    active = contact("ann")
    gone = contact("otto", status=ContactStatus.OFFBOARDED)

    # When each is checked
    ensure_active(active, "email")
    with pytest.raises(ValidationFailed) as refused:
        ensure_active(gone, "email")

    # Then only the offboarded one is refused, on the given field, as its own problem type
    assert [e.field for e in refused.value.errors] == ["email"]
    assert isinstance(refused.value, ContactOffboarded)
