from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any

from chat_mcp_primer.model._messages import Message


@dataclass(frozen=True, slots=True)
class WorkspaceBinding:
    """Which workspace a chat works in: the workspace, its build, and the agent picked in that build.

    Identifiers only. ``agent_id`` is unset while a build is still provisioning.
    """

    workspace_id: str
    build_id: str | None = None
    agent_id: str | None = None


@dataclass(frozen=True, slots=True)
class Chat:
    """A conversation and the workspace it is bound to. Immutable: a turn returns the updated chat.

    ``parent_id`` marks a sub-agent chat; only root chats are given workspace-provisioning tools.
    """

    id: str
    owner: str
    workspace: WorkspaceBinding | None = None
    messages: tuple[Message, ...] = ()
    parent_id: str | None = None
    metadata: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))

    def __post_init__(self) -> None:
        # A copy nobody can change: the chat is immutable all the way down, whatever mapping was passed.
        object.__setattr__(self, "metadata", MappingProxyType(dict(self.metadata)))

    @property
    def workspace_id(self) -> str | None:
        return self.workspace.workspace_id if self.workspace else None

    @property
    def build_id(self) -> str | None:
        return self.workspace.build_id if self.workspace else None

    @property
    def agent_id(self) -> str | None:
        return self.workspace.agent_id if self.workspace else None

    @property
    def is_root(self) -> bool:
        return self.parent_id is None

    def with_workspace(self, workspace: WorkspaceBinding | None) -> Chat:
        return replace(self, workspace=workspace)

    def with_messages(self, messages: tuple[Message, ...]) -> Chat:
        return replace(self, messages=messages)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "owner": self.owner,
            "parent_id": self.parent_id,
            "workspace": None
            if self.workspace is None
            else {
                "workspace_id": self.workspace.workspace_id,
                "build_id": self.workspace.build_id,
                "agent_id": self.workspace.agent_id,
            },
            "messages": [message.to_dict() for message in self.messages],
            "metadata": dict(self.metadata),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Chat:
        workspace = data.get("workspace")
        return cls(
            id=data["id"],
            owner=data["owner"],
            parent_id=data.get("parent_id"),
            workspace=None
            if workspace is None
            else WorkspaceBinding(
                workspace_id=workspace["workspace_id"],
                build_id=workspace.get("build_id"),
                agent_id=workspace.get("agent_id"),
            ),
            messages=tuple(Message.from_dict(m) for m in data.get("messages", ())),
            metadata=dict(data.get("metadata", {})),
        )
