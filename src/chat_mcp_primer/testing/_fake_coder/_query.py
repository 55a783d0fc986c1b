"""``GET /workspaces``: Coder's search query (``q=owner:me name:foo``), pagination, filtering and order.

Terms are ``key:value`` separated by spaces (double quotes group); a bare term is a name, ``owner/name``
an owner and a name. ``name:`` matches a substring, the others exactly, all case-insensitively. Unknown
keys and bad values are 400 with ``validations``, as coderd's ``searchquery.Workspaces`` does.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from chat_mcp_primer.testing._fake_coder._lifecycle import build_status, is_deleted, job_view
from chat_mcp_primer.testing._fake_coder._records import UserRecord, WorkspaceRecord
from chat_mcp_primer.testing._fake_coder._state import CoderState
from chat_mcp_primer.testing._fake_coder._wire import ApiError, go_quote, parse_go_bool, parse_uuid

WORKSPACE_STATUSES = frozenset(
    {"pending", "starting", "running", "stopping", "stopped", "failed", "canceling", "canceled", "deleting", "deleted"}
)
_KNOWN_KEYS = ("owner", "template", "name", "status", "deleted", "id")
# A bare term "owner/name" and a term "key:value" each have two parts.
_OWNER_AND_NAME = 2
_KEY_AND_VALUE = 2
# Query parameters are Go int32s.
_INT32_MAX = 2**31 - 1


@dataclass(frozen=True, slots=True)
class WorkspaceFilter:
    owner: str | None = None
    template: str | None = None
    name: str | None = None
    status: str | None = None
    deleted: bool = False
    ids: tuple[str, ...] = ()


def parse_query(query: str) -> WorkspaceFilter:
    if not query.strip():
        return WorkspaceFilter()
    values: dict[str, list[str]] = {}
    for element in _split(query.lower(), " ", keep_quotes=True):
        if element.startswith(":") or element.endswith(":"):
            raise _invalid_query("q", f"Query element {go_quote(element)} cannot start or end with ':'")
        parts = _split(element, ":", keep_quotes=False)
        if len(parts) == 1:
            owner_and_name = _split(element, "/", keep_quotes=False)
            if len(owner_and_name) > _OWNER_AND_NAME:
                raise _invalid_query("q", f"Query element {go_quote(element)} can only contain 1 '/'")
            if len(owner_and_name) == _OWNER_AND_NAME:
                values.setdefault("owner", []).append(owner_and_name[0])
            values.setdefault("name", []).append(owner_and_name[-1])
        elif len(parts) == _KEY_AND_VALUE:
            values.setdefault(parts[0], []).append(parts[1])
        else:
            raise _invalid_query("q", f"Query element {go_quote(element)} can only contain 1 ':'")
    errors = [(key, f"{go_quote(key)} is not a valid query param") for key in values if key not in _KNOWN_KEYS]
    status = _first(values, "status")
    if status is not None and status not in WORKSPACE_STATUSES:
        errors.append(("status", f'Query param "status" has invalid value: {go_quote(status)} is not a valid value'))
    deleted = False
    if (raw_deleted := _first(values, "deleted")) is not None:
        try:
            deleted = parse_go_bool(raw_deleted)
        except ValueError:
            errors.append(("deleted", f'Query param "deleted" must be a valid boolean: {go_quote(raw_deleted)}'))
    ids = []
    for raw_ids in values.get("id", []):
        for raw_id in raw_ids.split(","):
            try:
                ids.append(parse_uuid(raw_id.strip()))
            except ValueError:
                errors.append(("id", f'Query param "id" has invalid value: {go_quote(raw_id)} is not a valid uuid'))
    if errors:
        raise ApiError(400, "Invalid workspace search query.", validations=errors)
    return WorkspaceFilter(
        owner=_first(values, "owner"),
        template=_first(values, "template"),
        name=_first(values, "name"),
        status=status,
        deleted=deleted,
        ids=tuple(ids),
    )


def parse_pagination(params: Mapping[str, str]) -> tuple[int, int]:
    """``(limit, offset)``; a limit of 0 means no limit."""
    errors = []
    parsed = []
    for key in ("limit", "offset"):
        raw = params.get(key, "")
        value = int(raw) if raw.isdigit() else -1 if raw else 0
        if not 0 <= value <= _INT32_MAX:
            errors.append((key, f"Query param {go_quote(key)} must be a valid 32-bit positive integer"))
        parsed.append(value)
    if errors:
        raise ApiError(400, "Query parameters have invalid values.", validations=errors)
    return parsed[0], parsed[1]


def select_workspaces(state: CoderState, viewer: UserRecord, wanted: WorkspaceFilter) -> list[WorkspaceRecord]:
    """Every workspace ``viewer`` may read that matches, in coderd's order: running first, then by owner
    and name. ``owner:me`` is the viewer; without an owner term an admin sees everyone's workspaces."""
    now = state.now()
    owner_id: str | None = None
    if wanted.owner is not None:
        owner = viewer if wanted.owner == "me" else state.user_by_username(wanted.owner)
        if owner is None:
            return []
        owner_id = owner.id
    selected = []
    for workspace in state.workspaces.values():
        if not state.can_read(viewer, workspace) or is_deleted(workspace, now) != wanted.deleted:
            continue
        if owner_id is not None and workspace.owner_id != owner_id:
            continue
        if wanted.ids and workspace.id not in wanted.ids:
            continue
        template = state.templates[workspace.template_id]
        if wanted.template is not None and template.name.lower() != wanted.template:
            continue
        if wanted.name is not None and wanted.name not in workspace.name.lower():
            continue
        latest = workspace.latest_build
        status = build_status(job_view(latest.job, now).status, latest.transition)
        if wanted.status is not None and status != wanted.status:
            continue
        selected.append((status != "running", state.users[workspace.owner_id].username.lower(), workspace))
    selected.sort(key=lambda row: (row[0], row[1], row[2].name.lower()))
    return [row[2] for row in selected]


def _first(values: dict[str, list[str]], key: str) -> str | None:
    found = values.get(key)
    return found[0] if found else None


def _split(text: str, delimiter: str, *, keep_quotes: bool) -> list[str]:
    """Split on ``delimiter`` outside double quotes, dropping empty parts (coderd's
    ``splitQueryParameterByDelimiter``)."""
    parts = []
    current = []
    quoted = False
    for char in text:
        if char == '"':
            quoted = not quoted
            if keep_quotes:
                current.append(char)
        elif char == delimiter and not quoted:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return [part for part in parts if part]


def _invalid_query(field: str, detail: str) -> ApiError:
    return ApiError(400, "Invalid workspace search query.", validations=[(field, detail)])
