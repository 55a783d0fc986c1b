"""`ModelSpec`: a ``provider:model`` string and the SDKs' environment variables open a working adapter,
answering through the served fakes; every spec that cannot be built is one `ModelSpecError` line saying
what to do, before anything is opened."""

from __future__ import annotations

import subprocess
import sys

import pytest

from chat_mcp_primer import ChatMcpPrimerError
from chat_mcp_primer.model import Message, ModelRequest
from chat_mcp_primer.models import (
    AnthropicModel,
    ModelSpec,
    ModelSpecError,
    OpenAIChatModel,
    OpenAIResponsesModel,
)
from chat_mcp_primer.testing import FakeAnthropic, FakeAnthropicMessage, FakeOpenAI, FakeOpenAIAnswer

pytestmark = pytest.mark.anyio

OPENAI_KEY = "sk-test-not-a-real-key"
ANTHROPIC_KEY = "sk-ant-test-not-a-real-key"
HELLO = ModelRequest(messages=(Message.user("Hi"),), tools=(), step=0)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # the SDK clients run on asyncio


@pytest.mark.parametrize(
    ("provider", "adapter"), [("openai", OpenAIChatModel), ("openai-responses", OpenAIResponsesModel)]
)
async def test_an_openai_spec_answers_through_the_base_url_and_key_of_the_environment(
    provider: str, adapter: type[object]
) -> None:
    with FakeOpenAI([FakeOpenAIAnswer(text="Hello!")]) as fake:
        spec = ModelSpec.parse(
            f"{provider}:gpt-test", env={"OPENAI_API_KEY": OPENAI_KEY, "OPENAI_BASE_URL": fake.base_url}
        )
        async with spec.open() as model:
            response = await model.respond(HELLO)
    assert isinstance(model, adapter)
    assert response.text == "Hello!"
    [seen] = fake.requests
    assert (seen.body["model"], seen.had_key) == ("gpt-test", True)


async def test_an_anthropic_spec_answers_through_the_base_url_and_key_of_the_environment() -> None:
    with FakeAnthropic([FakeAnthropicMessage.text("Hello!")]) as fake:
        spec = ModelSpec.parse(
            "anthropic:claude-test", env={"ANTHROPIC_API_KEY": ANTHROPIC_KEY, "ANTHROPIC_BASE_URL": fake.base_url}
        )
        async with spec.open() as model:
            response = await model.respond(HELLO)
    assert isinstance(model, AnthropicModel)
    assert response.text == "Hello!"
    [seen] = fake.requests
    assert seen.body["model"] == "claude-test"
    assert ANTHROPIC_KEY in (
        seen.headers.get("x-api-key"),
        seen.headers.get("authorization", "").removeprefix("Bearer "),
    )


@pytest.mark.parametrize(
    ("spec", "env", "message"),
    [
        ("gpt-4.1-mini", {}, "a model is given as provider:model, e.g. openai:gpt-4.1-mini (got 'gpt-4.1-mini')"),
        ("openai:", {}, "a model is given as provider:model"),
        ("gemini:pro", {}, "unknown model provider 'gemini' in 'gemini:pro': use one of openai, openai-responses, "
         "anthropic"),
        ("openai:gpt-4.1-mini", {}, "openai:gpt-4.1-mini needs an API key: set OPENAI_API_KEY"),
        ("openai-responses:o4", {"OPENAI_API_KEY": ""}, "needs an API key: set OPENAI_API_KEY"),
        ("anthropic:claude", {"OPENAI_API_KEY": OPENAI_KEY}, "anthropic:claude needs an API key: set "
         "ANTHROPIC_API_KEY"),
    ],
    ids=["no-provider", "no-model", "unknown-provider", "no-key", "empty-key", "other-providers-key"],
)  # fmt: skip
def test_a_spec_that_cannot_be_built_says_what_to_do_in_one_line(spec: str, env: dict[str, str], message: str) -> None:
    with pytest.raises(ModelSpecError) as refused:
        ModelSpec.parse(spec, env=env)
    assert message in str(refused.value)
    assert "\n" not in str(refused.value)
    assert isinstance(refused.value, ValueError)
    assert isinstance(refused.value, ChatMcpPrimerError)


def test_a_spec_whose_sdk_is_not_installed_names_the_extra() -> None:
    blocked = (
        "import sys; sys.modules['anthropic'] = None\n"
        "from chat_mcp_primer.models import ModelSpec, ModelSpecError\n"
        "try:\n    ModelSpec.parse('anthropic:claude', env={'ANTHROPIC_API_KEY': 'k'})\n"
        "except ModelSpecError as refused:\n    print(refused)\n"
    )
    done = subprocess.run([sys.executable, "-c", blocked], capture_output=True, text=True, timeout=60, check=False)
    assert done.stdout.strip() == (
        "the model anthropic:claude needs the 'anthropic' extra (anthropic is not installed): "
        "pip install 'chat-mcp-primer[anthropic]'"
    )


def test_a_parsed_spec_never_shows_its_key() -> None:
    spec = ModelSpec.parse("openai:gpt-test", env={"OPENAI_API_KEY": OPENAI_KEY})
    assert OPENAI_KEY not in repr(spec)
    assert (spec.provider, spec.model, spec.base_url) == ("openai", "gpt-test", None)
