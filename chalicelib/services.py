"""Composition root: the domain services wired to their AWS and Jira adapters, built once."""

from __future__ import annotations

from functools import lru_cache

from .config import get_settings
from .domain.contacts import ContactService
from .domain.grants import GrantService
from .domain.projects import ProjectService
from .events import EventBridgePublisher
from .jira import jsm_client
from .mail import SesMailer
from .store.repository import DynamoStore
from .workflows.starter import StepFunctionsStarter


@lru_cache(maxsize=1)
def store() -> DynamoStore:
    return DynamoStore()


@lru_cache(maxsize=1)
def grants() -> GrantService:
    return GrantService(store(), StepFunctionsStarter(), SesMailer(), EventBridgePublisher(),
                        reset_url=get_settings().password_reset_url)


@lru_cache(maxsize=1)
def projects() -> ProjectService:
    return ProjectService(store(), jsm_client())


@lru_cache(maxsize=1)
def contacts() -> ContactService:
    return ContactService(store())
