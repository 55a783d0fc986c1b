"""Rich parameter values for a build, resolved and validated like Coder's ``ParameterResolver``.

Precedence: a preset's values, then values in the request, then the previous build's values, then the
default. An immutable parameter cannot change after the first build; a required one must get a value.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from chat_mcp_primer.testing._fake_coder._config import FakeParameter, FakePreset
from chat_mcp_primer.testing._fake_coder._records import VersionRecord
from chat_mcp_primer.testing._fake_coder._wire import ApiError, go_quote

_BOOL_VALUES = frozenset({"true", "false"})


def preset_for(version: VersionRecord, preset_id: str) -> FakePreset:
    """The version's preset with that id; 400 when it belongs to no preset of this version."""
    for candidate_id, preset in zip(version.preset_ids, version.config.presets, strict=True):
        if candidate_id == preset_id:
            return preset
    raise ApiError(
        400,
        "Invalid template version preset.",
        detail=f"preset {preset_id} does not belong to template version {version.id}",
    )


def matching_preset_id(version: VersionRecord, values: Sequence[tuple[str, str]]) -> str | None:
    """The preset whose every value the request repeats, as coderd picks one when none was named."""
    given = dict(values)
    for preset_id, preset in zip(version.preset_ids, version.config.presets, strict=True):
        if preset.parameters and all(given.get(name) == value for name, value in preset.parameters.items()):
            return preset_id
    return None


def resolve_parameters(
    version: VersionRecord,
    requested: Sequence[tuple[str, str]],
    previous: Mapping[str, str],
    preset: FakePreset | None,
) -> tuple[tuple[str, str], ...]:
    """The (name, value) pairs the build records, one per parameter of the version, in its order."""
    provided = dict(requested)
    if preset is not None:
        provided.update(preset.parameters)
    resolved = []
    for parameter in version.config.parameters:
        value = _resolve(parameter, provided.get(parameter.name), previous.get(parameter.name))
        resolved.append((parameter.name, value))
    return tuple(resolved)


def _resolve(parameter: FakeParameter, given: str | None, previous: str | None) -> str:
    def invalid(detail: str) -> ApiError:
        return ApiError(400, f"Unable to validate parameter {go_quote(parameter.name)}", detail=detail)

    if not parameter.mutable and given is not None and previous is not None and given != previous:
        raise invalid(
            f"Parameter {go_quote(parameter.name)} is not mutable, so it can't be updated after creating a workspace."
        )
    if parameter.required and given is None and previous is None:
        raise invalid(f"Parameter {go_quote(parameter.name)} is required but not provided")
    value = given if given is not None else previous if previous is not None else parameter.default_value or ""
    if parameter.options and value not in parameter.options:
        raise invalid(f"parameter value must match one of options: {', '.join(parameter.options)}")
    if parameter.type == "number":
        try:
            float(value)
        except ValueError:
            raise invalid(f"{go_quote(value)} is not a number") from None
    if parameter.type == "bool" and value not in _BOOL_VALUES:
        raise invalid('boolean value can be either "true" or "false"')
    return value
