"""One root exception: everything the library raises on purpose is a `ChatMcpPrimerError`, and the tree in
its docstring names every public exception."""

from __future__ import annotations

import inspect

import chat_mcp_primer
from chat_mcp_primer import ChatMcpPrimerError, CoderError, RuntimeClosedError, SessionError, ToolArgumentError
from chat_mcp_primer._errors import __doc__ as tree
from chat_mcp_primer.workspace import coder


def public_exceptions() -> dict[str, type[BaseException]]:
    found: dict[str, type[BaseException]] = {}
    for module in (chat_mcp_primer, coder):
        for name in module.__all__:
            value = getattr(module, name)
            if inspect.isclass(value) and issubclass(value, BaseException):
                found[name] = value
    return found


def test_every_public_exception_is_under_the_root_and_drawn_in_its_tree() -> None:
    exceptions = public_exceptions()
    assert {"CoderError", "SessionError", "RuntimeClosedError", "ToolArgumentError"} <= set(exceptions)
    for name, exception in exceptions.items():
        assert issubclass(exception, ChatMcpPrimerError), name
        assert name in (tree or ""), f"{name} is missing from the tree in chat_mcp_primer._errors"


def test_the_errors_a_caller_catches_by_kind_keep_their_standard_bases() -> None:
    assert issubclass(RuntimeClosedError, RuntimeError)  # code written against the old base still catches it
    assert issubclass(coder.BuildTimeoutError, TimeoutError)
    assert not issubclass(ToolArgumentError, CoderError)  # a model's bad argument is not a Coder failure
    assert issubclass(SessionError, ChatMcpPrimerError)
