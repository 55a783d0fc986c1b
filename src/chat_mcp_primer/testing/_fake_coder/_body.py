"""Request bodies decoded the way coderd's ``httpapi.Read`` does: Go's ``encoding/json`` into a struct,
then go-playground validation.

Unknown fields are ignored and ``null`` leaves a field at its zero value, as in Go. A body that does not
decode is 400 "Request body must be valid JSON."; a field that fails validation is 400 "Validation
failed." with one ``validations`` entry per field.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from chat_mcp_primer.testing._fake_coder._wire import NIL_UUID, ApiError, parse_uuid

FieldKind = Literal["string", "uuid", "int", "bool", "parameters"]

# `codersdk.NameValid`: what the `workspace_name` validation tag checks.
_NAME_PATTERN = re.compile(r"^[a-zA-Z0-9]+(?:-[a-zA-Z0-9]+)*$")
NAME_MAX_LENGTH = 32
_RESERVED_NAMES = frozenset({"new", "create"})
# Go's int64 range, for `ttl_ms`.
_INT64_MIN = -(2**63)
_INT64_MAX = 2**63 - 1
_GO_TYPES = {"string": "string", "uuid": "uuid.UUID", "int": "int64", "bool": "bool", "parameters": "[]"}
_JSON_TYPES = {str: "string", bool: "bool", int: "number", float: "number", list: "array", dict: "object"}


@dataclass(frozen=True, slots=True)
class BodySpec:
    """The fields of one Go request struct: JSON name -> kind."""

    struct: str
    fields: Mapping[str, FieldKind]


CREATE_WORKSPACE = BodySpec(
    "CreateWorkspaceRequest",
    {
        "template_id": "uuid",
        "template_version_id": "uuid",
        "name": "string",
        "autostart_schedule": "string",
        "ttl_ms": "int",
        "rich_parameter_values": "parameters",
        "automatic_updates": "string",
        "template_version_preset_id": "uuid",
    },
)
CREATE_BUILD = BodySpec(
    "CreateWorkspaceBuildRequest",
    {
        "template_version_id": "uuid",
        "transition": "string",
        "dry_run": "bool",
        "orphan": "bool",
        "rich_parameter_values": "parameters",
        "log_level": "string",
        "template_version_preset_id": "uuid",
        "reason": "string",
    },
)


def name_is_valid(name: str) -> bool:
    """`codersdk.NameValid`: 1-32 letters and digits joined by single hyphens, not ``new`` or ``create``."""
    return 0 < len(name) <= NAME_MAX_LENGTH and name not in _RESERVED_NAMES and bool(_NAME_PATTERN.match(name))


def validation_failed(field: str, tag: str, value: object) -> ApiError:
    detail = f'Validation failed for tag "{tag}" with value: "{value}"'
    return ApiError(400, "Validation failed.", validations=[(field, detail)])


def read_body(raw: bytes, spec: BodySpec) -> dict[str, Any]:
    """The body's known fields, decoded; absent and ``null`` fields and nil UUIDs are left out."""
    if not raw.strip():
        raise _invalid_json("EOF")
    try:
        value = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise _invalid_json(f"invalid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise _invalid_json(f"json: cannot unmarshal {_json_type(value)} into Go value of type codersdk.{spec.struct}")
    decoded: dict[str, Any] = {}
    for name, kind in spec.fields.items():
        if name not in value or value[name] is None:
            continue
        field_value = _decode_field(spec.struct, name, kind, value[name])
        if kind == "uuid" and field_value == NIL_UUID:
            continue  # Go cannot tell the nil UUID from an absent one
        decoded[name] = field_value
    return decoded


def _decode_field(struct: str, name: str, kind: FieldKind, value: object) -> Any:
    def mismatch() -> ApiError:
        return _invalid_json(
            f"json: cannot unmarshal {_json_type(value)} into Go struct field {struct}.{name} of type {_GO_TYPES[kind]}"
        )

    if kind in ("string", "uuid"):
        if not isinstance(value, str):
            raise mismatch()
        if kind == "uuid":
            try:
                return parse_uuid(value)
            except ValueError as exc:
                raise _invalid_json(str(exc)) from None
        return value
    if kind == "bool":
        if not isinstance(value, bool):
            raise mismatch()
        return value
    if kind == "int":
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise mismatch()
        if isinstance(value, float) and not value.is_integer():
            raise mismatch()
        if not _INT64_MIN <= int(value) <= _INT64_MAX:
            raise mismatch()
        return int(value)
    if not isinstance(value, list):
        raise mismatch()
    parameters = []
    for item in value:
        if not isinstance(item, dict):
            raise _invalid_json(
                f"json: cannot unmarshal {_json_type(item)} into Go struct field {struct}.{name} "
                "of type codersdk.WorkspaceBuildParameter"
            )
        pair = []
        for key in ("name", "value"):
            part = item.get(key)
            if part is not None and not isinstance(part, str):
                raise _invalid_json(
                    f"json: cannot unmarshal {_json_type(part)} into Go struct field "
                    f"WorkspaceBuildParameter.{name}.{key} of type string"
                )
            pair.append(part or "")
        parameters.append((pair[0], pair[1]))
    return parameters


def _json_type(value: object) -> str:
    return _JSON_TYPES.get(type(value), "value")


def _invalid_json(detail: str) -> ApiError:
    return ApiError(400, "Request body must be valid JSON.", detail=detail)
