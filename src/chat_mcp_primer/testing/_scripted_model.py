from __future__ import annotations

import itertools
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import TypeAlias

from chat_mcp_primer.clock import Clock, SystemClock
from chat_mcp_primer.model import ModelRequest, ModelResponse, ModelStreamItem, TextDelta, ToolCall

ScriptStep: TypeAlias = (
    ModelResponse | Callable[[ModelRequest], ModelResponse] | Callable[[ModelRequest], Awaitable[ModelResponse]]
)


class ScriptExhaustedError(AssertionError):
    """The model was asked for more steps than its script has."""


def call(name: str, arguments: str = "{}", *, call_id: str | None = None) -> ToolCall:
    """A tool call for a script; ids are generated when not given."""
    return ToolCall(id=call_id or f"call-{next(_ids)}", name=name, arguments=arguments)


_ids = itertools.count(1)
# A word and the spaces after it: how a scripted answer streams.
_WORDS = re.compile(r"\S+\s*|\s+")


class ScriptedModel:
    """A `Model` that plays a script, one entry per step, and records what it was offered.

    An entry is a `ModelResponse`, or a function of the `ModelRequest` returning one (sync or async),
    for a model that reacts to the tools it sees. It streams too (`stream`: the same steps, the text a
    word at a time), so streamed turns are as deterministic as plain ones. `offered[i]` lists the tool
    names offered at step i, across every turn the model played, and `notes[i]` the runtime's notes of
    that step (which workspace servers failed or offer no tools). `request_times[i]` is ``clock.now()``
    when step i was asked (give it the test's `MockClock` to assert when each step happened; default: the
    real clock).
    """

    def __init__(self, script: Sequence[ScriptStep], *, clock: Clock | None = None) -> None:
        self._script = list(script)
        self._clock: Clock = clock if clock is not None else SystemClock()
        self.requests: list[ModelRequest] = []
        self.request_times: list[float] = []

    @property
    def offered(self) -> list[tuple[str, ...]]:
        return [request.tool_names for request in self.requests]

    @property
    def notes(self) -> list[tuple[str, ...]]:
        return [request.notes for request in self.requests]

    def first_step_offering(self, predicate: Callable[[str], bool]) -> int | None:
        """The index of the first recorded step that offered a tool name matching ``predicate``."""
        for index, names in enumerate(self.offered):
            if any(predicate(name) for name in names):
                return index
        return None

    async def stream(self, request: ModelRequest) -> AsyncIterator[ModelStreamItem]:
        """The same step as `respond`, streamed: its text a word at a time (`TextDelta`), then the response."""
        response = await self.respond(request)
        for piece in _WORDS.findall(response.text):
            yield TextDelta(piece)
        yield response

    async def respond(self, request: ModelRequest) -> ModelResponse:
        position = len(self.requests)
        self.requests.append(request)
        self.request_times.append(self._clock.now())
        if position >= len(self._script):
            raise ScriptExhaustedError(f"the script has {len(self._script)} steps; step {position + 1} was asked")
        entry = self._script[position]
        if isinstance(entry, ModelResponse):
            return entry
        answer = entry(request)
        if isinstance(answer, ModelResponse):
            return answer
        return await answer
