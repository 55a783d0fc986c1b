"""Coder vocabulary: agent selection and parsing of API objects, including malformed ones."""

from __future__ import annotations

from typing import Any

import pytest

from chat_mcp_primer.workspace.coder import (
    AgentSelectionError,
    AgentStatus,
    BuildActiveError,
    CoderAuthError,
    CoderBackend,
    CoderClient,
    CoderConflictError,
    CoderProtocolError,
    CoderServerError,
    CoderSettings,
    CoderWorkspaceDeletedError,
    JobStatus,
    LifecycleState,
    Preset,
    Workspace,
    WorkspaceAgent,
    WorkspaceBuild,
    select_agent,
    server_name,
)
from chat_mcp_primer.workspace.coder._app_urls import AppUrlError, WildcardHost
from chat_mcp_primer.workspace.coder._errors import error_from_body


def agent(name: str, *, parent: str | None = None, agent_id: str | None = None) -> WorkspaceAgent:
    return WorkspaceAgent(
        id=agent_id or f"id-{name}",
        name=name,
        status=AgentStatus.CONNECTED,
        lifecycle_state=LifecycleState.READY,
        parent_id=parent,
    )


def test_select_agent_prefers_the_coderd_chat_agent() -> None:
    chosen = select_agent([agent("main"), agent("helper-CODERD-CHAT")])
    assert chosen.name == "helper-CODERD-CHAT"


def test_select_agent_takes_the_first_root_agent_by_display_order_then_name() -> None:
    chosen = select_agent([agent("zeta"), agent("beta"), agent("alpha", parent="x")])
    assert chosen.name == "beta"


def test_select_agent_orders_as_the_reference_over_rest_lower_cased_name_then_name_then_id() -> None:
    # Coder's REST API has no display order: the reference's next keys decide, case-blind first.
    assert select_agent([agent("beta"), agent("Alpha")]).name == "Alpha"
    assert select_agent([agent("dev"), agent("Dev")]).name == "Dev"  # same lower-cased name: by name ("D" < "d")
    twins = [agent("main", agent_id="id-b"), agent("main", agent_id="id-a")]
    assert select_agent(twins).id == "id-a"


def test_two_coderd_chat_agents_are_a_selection_error() -> None:
    with pytest.raises(AgentSelectionError, match="several agents"):
        select_agent([agent("a-coderd-chat"), agent("b-coderd-chat")])


def test_no_root_agent_is_a_selection_error() -> None:
    with pytest.raises(AgentSelectionError, match="no root agent"):
        select_agent([agent("devcontainer", parent="root-id")])


def test_mcp_app_slugs_name_their_servers() -> None:
    assert server_name("mcp") == "mcp"
    assert server_name("github-mcp") == "github"


def build_json(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": "b1",
        "workspace_id": "w1",
        "transition": "start",
        "status": "running",
        "template_version_id": "v1",
        "job": {"id": "j1", "status": "succeeded"},
        "resources": [
            {
                "id": "r1",
                "agents": [{"id": "a1", "name": "main", "status": "connected", "lifecycle_state": "ready", "apps": []}],
            }
        ],
    }
    data.update(overrides)
    return data


def test_build_parses_its_agents_from_resources() -> None:
    build = WorkspaceBuild.from_json(build_json())
    assert build.job.status is JobStatus.SUCCEEDED
    assert [a.id for a in build.agents] == ["a1"]


def test_a_job_coder_cannot_tell_the_status_of_is_unknown_not_a_protocol_error() -> None:
    build = WorkspaceBuild.from_json(build_json(job={"id": "j1", "status": "unknown"}))
    assert build.job.status is JobStatus.UNKNOWN
    assert not build.job.status.active  # no build is known to be running: a new one may be asked for


@pytest.mark.parametrize(
    "overrides",
    [{"job": None}, {"status": "exploded"}, {"resources": "nope"}, {"id": 5}, {"transition": "sideways"}],
)
def test_malformed_build_is_a_protocol_error_naming_the_problem(overrides: dict[str, Any]) -> None:
    with pytest.raises(CoderProtocolError, match=r"build|job|resource"):
        WorkspaceBuild.from_json(build_json(**overrides))


def test_presets_read_the_capitalised_wire_keys() -> None:
    preset = Preset.from_json(
        {"ID": "p1", "Name": "Large", "Parameters": [{"Name": "cpu", "Value": "8"}], "Default": True}
    )
    assert preset.parameters == {"cpu": "8"}
    assert preset.default


@pytest.mark.parametrize(
    ("status", "body", "kind"),
    [
        (401, {"message": "You are signed out or your session has expired."}, CoderAuthError),
        (409, {"message": "A workspace build is already active."}, BuildActiveError),
        (409, {"message": 'Workspace "dev" already exists.'}, CoderConflictError),
        (410, {"message": 'Workspace "x" was deleted.'}, CoderWorkspaceDeletedError),
        (503, None, CoderServerError),
        (429, {"message": "Too many requests."}, CoderServerError),
    ],
)
def test_error_bodies_map_to_errors_users_catch_by_kind(
    status: int, body: dict[str, Any] | None, kind: type[Exception]
) -> None:
    error = error_from_body(status, body)
    assert type(error) is kind
    assert error.status == status


def test_name_taken_keeps_its_validations() -> None:
    error = error_from_body(
        409,
        {
            "message": 'Workspace "dev" already exists.',
            "validations": [{"field": "name", "detail": "This value is already in use and should be unique."}],
        },
    )
    assert error.validations[0].field == "name"
    assert "already in use" in str(error)


def workspace_json() -> dict[str, Any]:
    build = build_json()
    build["resources"][0]["agents"][0]["apps"] = [{"id": "app-1", "slug": "github-mcp", "health": "healthy"}]
    return {
        "id": "w1",
        "name": "dev",
        "owner_id": "u1",
        "owner_name": "alice",
        "template_id": "t1",
        "latest_build": build,
    }


@pytest.mark.parametrize("verify", [True, False])
def test_mcp_endpoints_follow_the_clients_tls_choice_and_keep_the_token_out_of_repr(verify: bool) -> None:
    client = CoderClient("https://coder.example", "secret-token", settings=CoderSettings(verify_tls=verify))
    workspace = Workspace.from_json(workspace_json())
    [endpoint] = CoderBackend(client).endpoints(workspace, workspace.latest_build.agents[0])
    assert endpoint.server == "github"
    assert endpoint.url == "https://coder.example/@alice/dev.main/apps/github-mcp/mcp"
    assert endpoint.verify_tls is verify
    # Bound to the deployment: the token it carries is never sent to another origin.
    assert endpoint.origin == "https://coder.example:443"
    assert not endpoint.off_origin
    # The token goes as the cookie Coder's app proxy strips, never as a header it would forward to the app.
    assert endpoint.headers == {"Cookie": "coder_session_token=secret-token"}
    assert "secret-token" not in repr(endpoint)


def workspace_with_app(app: dict[str, object]) -> Workspace:
    data = workspace_json()
    data["latest_build"]["resources"][0]["agents"][0]["apps"] = [app]
    return Workspace.from_json(data)


SUBDOMAIN_APP = {"id": "app-1", "slug": "mcp", "health": "disabled", "subdomain": True}


@pytest.mark.parametrize(
    "subdomain_name",
    ["mcp--main--dev--alice", None],  # None: an older coderd that does not send it; the same name, computed
)
def test_a_subdomain_apps_host_is_coderds_name_for_it_in_place_of_the_wildcard(subdomain_name: str | None) -> None:
    app = {**SUBDOMAIN_APP, **({"subdomain_name": subdomain_name} if subdomain_name else {})}
    workspace = workspace_with_app(app)
    client = CoderClient("https://coder.example.com:8443", "secret-token")
    wildcard = WildcardHost.parse("*.apps.example.com:8443")
    [endpoint] = CoderBackend(client).endpoints(workspace, workspace.latest_build.agents[0], wildcard=wildcard)
    assert endpoint.url == "https://mcp--main--dev--alice.apps.example.com:8443/mcp"
    assert endpoint.origin == "https://mcp--main--dev--alice.apps.example.com:8443"
    assert endpoint.headers == {"Cookie": "coder_session_token=secret-token"}


def test_a_suffix_wildcard_names_the_app_within_its_first_label() -> None:
    wildcard = WildcardHost.parse("*--apps.example.com")
    assert wildcard is not None
    assert wildcard.app_origin("https", "mcp--main--dev--alice") == "https://mcp--main--dev--alice--apps.example.com"


@pytest.mark.parametrize("name", ["evil.example/#", "mcp--main--dev--alice.other.example", "a b", "x@evil.example"])
def test_an_app_host_that_could_carry_the_token_elsewhere_is_refused(name: str) -> None:
    workspace = workspace_with_app({**SUBDOMAIN_APP, "subdomain_name": name})
    client = CoderClient("https://coder.example.com", "secret-token")
    backend = CoderBackend(client)
    with pytest.raises(AppUrlError, match="not a host label") as raised:
        backend.endpoints(workspace, workspace.latest_build.agents[0], wildcard=WildcardHost("*.apps.example.com"))
    assert isinstance(raised.value, CoderProtocolError)  # a malformed answer of coderd, as any other
    assert "secret-token" not in str(raised.value)


@pytest.mark.parametrize(
    "pattern", ["apps.example.com", "*.apps.example.com/path", "https://*.apps.example.com", "*.a*.example.com"]
)
def test_a_wildcard_that_is_not_a_host_pattern_is_refused(pattern: str) -> None:
    with pytest.raises(AppUrlError, match="not a host pattern"):
        WildcardHost.parse(pattern)


def test_a_deployment_without_a_wildcard_has_none() -> None:
    assert WildcardHost.parse("") is None
