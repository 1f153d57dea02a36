"""Fixtures of the reliability tests: the demo project, and a way to change how tasks reach JSM."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

import pytest

from chalicelib import services
from chalicelib.config import get_settings
from chalicelib.jira import jsm_client
from tests.helpers import Seeder


@pytest.fixture
def demo(seed: Seeder) -> dict[str, Any]:
    """Project `demo` on service desk 1 (acme + integrator), with pm-1 and the developer dev-1."""
    return seed.demo()


def forget_jira_client() -> None:
    """Drop the cached settings, JSM client and workflow steps: the next task builds them anew."""
    get_settings.cache_clear()
    jsm_client.cache_clear()
    services.grant_steps.cache_clear()


@pytest.fixture
def jira_env() -> Callable[..., AbstractContextManager[None]]:
    """`with jira_env(HELPDESK_JIRA_URL=...):` runs the workflow tasks with those settings."""

    @contextmanager
    def environment(**values: str) -> Iterator[None]:
        try:
            with pytest.MonkeyPatch.context() as patch:
                for name, value in values.items():
                    patch.setenv(name, value)
                forget_jira_client()
                yield
        finally:
            forget_jira_client()  # with the environment restored

    return environment


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Give each test schemathesis generates (one per API operation) a node id of its own.

    schemathesis 4.32 names them `test[GET /path]`, but under pytest 9 they all get the bare
    function's node id, and pytest-xdist, which tracks tests by node id, then runs only the first.
    """
    for item in items:
        label = getattr(item, "operation_label", None)
        node_id = getattr(item, "_id", None)  # pytest 9 keeps the structured id there
        if label and node_id is not None and node_id.params is None:
            item._id = node_id.with_params(label)
