"""The workspace tools' descriptions, in one place for the chat's tools and ``serve-mcp``'s.

The two differ only in which workspace a tool acts on: the chat's own, or one the caller names by id or
name. That difference is a `Subject`, not a second text.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Subject:
    """Which workspace the tools act on, as their descriptions and messages name it."""

    # The workspace a tool acts on: "the chat's workspace".
    workspace: str
    # The workspace create_workspace makes: "a workspace for this chat".
    new_workspace: str
    # What create_workspace does with a workspace the subject already has, or "".
    reuse: str = ""

    @property
    def workspace_capitalized(self) -> str:
        return self.workspace[:1].upper() + self.workspace[1:]


CHAT = Subject(
    workspace="the chat's workspace",
    new_workspace="a workspace for this chat",
    reuse=" If the chat already has a workspace that is building or running, it is reused instead.",
)
NAMED = Subject(workspace="the workspace", new_workspace="a workspace")


def describe(tool: str, subject: Subject) -> str:
    """The description of the workspace tool named ``tool`` (`KeyError` for another name)."""
    texts = {
        "list_templates": "List the workspace templates available to create a workspace from (id, name, description).",
        "create_workspace": (
            f"Create {subject.new_workspace} from a template and wait until its agent is ready.{subject.reuse}"
        ),
        "start_workspace": f"Start {subject.workspace} if it is stopped, and wait until its agent is ready.",
        "stop_workspace": (
            f"Stop {subject.workspace} and wait until the stop has finished. Its tools stop being available until "
            "it is started again."
        ),
        "restart_workspace": (
            f"Restart {subject.workspace} (stop, then start on the same template version) and wait until its agent "
            "is ready."
        ),
        "update_workspace": (
            f"Update {subject.workspace} to a template version (default: the template's active version): stop it, "
            "start it on that version, and wait until its agent is ready. One already running that version is "
            "not rebuilt."
        ),
        "workspace_status": (
            f"Show {subject.workspace}: status, template and version, whether it is outdated, its agents (status "
            "and lifecycle) and their MCP apps with their health. Never changes anything."
        ),
    }
    return texts[tool]


# The arguments' descriptions, shared by both sets of tools.
TEMPLATE_ID = "Template id from list_templates."
WORKSPACE_NAME = "Name of the new workspace (letters, digits, hyphens)."
PARAMETERS = "Template parameter values by name."
PRESET_ID = "Template version preset id."
TEMPLATE_VERSION_ID = "Target template version id (default: the template's active version)."
WORKSPACE_REFERENCE = "Workspace id or name (case-insensitive)."
WAIT = (
    "Wait until the workspace's agent is ready (default true). With false, answer as soon as the build that "
    "brings the workspace up is posted (after any stop it needs), with its build_id; then call "
    "workspace_status until its status is running."
)
# The message of a result that answered before its build finished (``wait: false``).
BUILD_CONTINUES = "The build continues in Coder; call workspace_status until its status is running."
