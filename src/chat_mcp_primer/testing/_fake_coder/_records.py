"""What the fake remembers: users, tokens, templates, versions, workspaces and their builds.

Records hold only facts fixed when something happened (ids, creation times, the plan of a job). Every
status is derived from them and the clock by `_lifecycle`, never stored.
"""

from __future__ import annotations

import math
import random
import string
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from chat_mcp_primer.testing._fake_coder._config import FakeAgent, FakeTemplate, FakeVersion

Transition = Literal["start", "stop", "delete"]
TRANSITIONS: tuple[Transition, ...] = ("start", "stop", "delete")

# Coder session tokens are "<10-character key id>-<22-character secret>".
TOKEN_ID_LENGTH = 10
TOKEN_SECRET_LENGTH = 22
_TOKEN_ALPHABET = string.ascii_letters + string.digits
# A UUID carries 128 random bits (uuid4 fixes 6 of them).
_UUID_BITS = 128


class IdSource:
    """UUIDs and tokens from a seeded generator, so a test sees the same ids on every run."""

    def __init__(self, seed: int) -> None:
        self._random = random.Random(seed)

    def uuid(self) -> str:
        return str(uuid.UUID(int=self._random.getrandbits(_UUID_BITS), version=4))

    def token_part(self, length: int) -> str:
        return "".join(self._random.choice(_TOKEN_ALPHABET) for _ in range(length))


@dataclass(frozen=True, slots=True)
class UserRecord:
    id: str
    username: str
    email: str
    name: str
    admin: bool
    created_at: float


@dataclass(slots=True)
class TokenRecord:
    """A session token. The secret never appears in a repr."""

    key_id: str
    secret: str = field(repr=False)
    user_id: str
    revoked: bool = False

    @property
    def value(self) -> str:
        return f"{self.key_id}-{self.secret}"


@dataclass(frozen=True, slots=True)
class OrganizationRecord:
    id: str
    name: str
    display_name: str
    created_at: float


@dataclass(slots=True)
class VersionRecord:
    id: str
    template_id: str
    config: FakeVersion
    created_at: float
    job_id: str
    file_id: str
    preset_ids: tuple[str, ...]


@dataclass(slots=True)
class TemplateRecord:
    id: str
    organization_id: str
    config: FakeTemplate
    created_at: float
    updated_at: float
    created_by: str
    active_version_id: str
    version_ids: list[str]
    deleted: bool = False

    @property
    def name(self) -> str:
        return self.config.name


@dataclass(frozen=True, slots=True)
class BuildFailure:
    """How a build's job fails: Coder's ``job.error`` and ``job.error_code`` (e.g. ``INSUFFICIENT_QUOTA``)."""

    error: str
    error_code: str = ""


@dataclass(frozen=True, slots=True)
class JobPlan:
    """When a provisioner job is picked up, how long it runs and how it ends; a cancel replaces the plan.

    ``run_seconds`` is ``math.inf`` for a job that never finishes on its own.
    """

    created_at: float
    queue_seconds: float
    run_seconds: float
    cancel_seconds: float
    failure: BuildFailure | None = None
    canceled_at: float | None = None

    @property
    def started_at(self) -> float:
        return self.created_at + self.queue_seconds

    @property
    def finishes_at(self) -> float:
        return self.started_at + self.run_seconds if math.isfinite(self.run_seconds) else math.inf


@dataclass(frozen=True, slots=True)
class AgentRecord:
    """One agent of one start build: its id is new for every build."""

    id: str
    config: FakeAgent
    parent_id: str | None
    app_ids: tuple[tuple[str, str], ...]  # (slug, app id), in the agent's app order

    def app_id(self, slug: str) -> str:
        return dict(self.app_ids)[slug]


@dataclass(frozen=True, slots=True)
class ResourceRecord:
    id: str
    type: str
    name: str
    agents: tuple[AgentRecord, ...] = ()


@dataclass(slots=True)
class BuildRecord:
    id: str
    workspace_id: str
    number: int
    transition: Transition
    version_id: str
    initiator_id: str
    reason: str
    job_id: str
    job: JobPlan
    resources: tuple[ResourceRecord, ...]
    parameters: tuple[tuple[str, str], ...]
    preset_id: str | None

    @property
    def agents(self) -> tuple[AgentRecord, ...]:
        return tuple(agent for resource in self.resources for agent in resource.agents)


@dataclass(slots=True)
class WorkspaceRecord:
    id: str
    name: str
    owner_id: str
    organization_id: str
    template_id: str
    created_at: float
    ttl_ms: int | None
    autostart_schedule: str | None
    automatic_updates: str
    builds: list[BuildRecord] = field(default_factory=list)

    @property
    def latest_build(self) -> BuildRecord:
        return self.builds[-1]


def new_agents(ids: IdSource, agents: Sequence[FakeAgent]) -> tuple[AgentRecord, ...]:
    """Fresh agent records (new ids, new app ids) for a start build of a version with these agents."""
    by_name = {agent.name: ids.uuid() for agent in agents}
    records = []
    for agent in agents:
        slugs = [server.slug for server in agent.mcp_servers] + [app.slug for app in agent.apps]
        records.append(
            AgentRecord(
                id=by_name[agent.name],
                config=agent,
                parent_id=by_name[agent.parent] if agent.parent is not None else None,
                app_ids=tuple((slug, ids.uuid()) for slug in slugs),
            )
        )
    return tuple(records)
