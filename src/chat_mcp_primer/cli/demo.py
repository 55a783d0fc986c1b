"""``chat-mcp-primer demo``: the whole story on an embedded Coder simulator, or on a real deployment.

The simulator unless ``--coder-url`` is given: the demo never reads ``CODER_URL``, so a shell set up for
a real deployment does not send the demo there by accident.
"""

from __future__ import annotations

import sys
from typing import Annotated

import anyio
import typer
from rich.console import Console
from rich.table import Table

from chat_mcp_primer.cli._app import EXIT_FAILURE, EXIT_INTERRUPTED, EXIT_OK, LogLevel, app, configure_logging
from chat_mcp_primer.cli._demo_run import DemoSummary, run_demo, unique_workspace_name
from chat_mcp_primer.cli._demo_simulator import DemoError
from chat_mcp_primer.cli._options import non_negative_seconds, parse_coder_url, positive_seconds
from chat_mcp_primer.model import ModelError
from chat_mcp_primer.models import MODEL_PROVIDERS, ModelSpec, ModelSpecError
from chat_mcp_primer.workspace.coder import CoderError
from chat_mcp_primer.workspace_mcp import PrimerSettings, Strategy

# A few seconds, as a real MCP server takes to connect to its backends after the agent starts it.
DEFAULT_COLD_START_S = 3.0
# How long the scripted model keeps working without the workspace tools before it gives up on them:
# the primer's own 30 s budget, so a demo never outlasts what the library would wait for.
DEFAULT_PATIENCE_S = 30.0

CODER_TOKEN_ENV = "CODER_SESSION_TOKEN"
# The TCP port range, for --server-port.
MIN_PORT = 1
MAX_PORT = 65535

STRATEGIES: dict[str, Strategy] = {"primed": "primed", "reference": "reference"}
_SOURCE_STYLES = {"coder": "cyan", "agent": "magenta", "primer": "yellow", "chat": "green", "tool": "blue"}


def _render_summary(console: Console, summary: DemoSummary) -> None:
    table = Table(title="Summary", show_header=False)
    rows = {
        "tools offered": "yes" if summary.ok else "no",
        "server ready": _seconds(summary.server_ready_s),
        "tools offered at": _seconds(summary.tools_offered_s),
        "delay (offered - ready)": _seconds(summary.delay_s),
        "primer attempts": str(summary.primer_attempts),
        "first step with workspace tools": str(summary.first_step_with_workspace_tools),
        "steps": str(summary.steps),
        "model's answer": summary.message,
    }
    for key, value in rows.items():
        table.add_row(key, value)
    console.print(table)


def _model_spec(value: str | None) -> ModelSpec | None:
    """``--model``, checked before anything runs: a bad spec, a missing key or extra is a usage error."""
    if value is None:
        return None
    try:
        return ModelSpec.parse(value)
    except ModelSpecError as exc:
        raise typer.BadParameter(str(exc), param_hint="'--model'") from None


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f} s"


@app.command("demo")
def demo(
    cold_start: Annotated[
        float,
        typer.Option(
            "--cold-start", callback=non_negative_seconds, help="Seconds the workspace MCP server takes to come up."
        ),
    ] = DEFAULT_COLD_START_S,
    no_server: Annotated[bool, typer.Option("--no-server", help="Simulate an MCP server that never comes up.")] = False,
    strategy: Annotated[
        str,
        typer.Option(
            "--strategy",
            help="primed (this library) or reference (Coder's chat daemon, gaps included), for comparison.",
        ),
    ] = "primed",
    max_wait: Annotated[
        float,
        typer.Option(
            "--max-wait", callback=positive_seconds, help="The primer's budget in seconds (PrimerSettings.max_wait)."
        ),
    ] = PrimerSettings().max_wait,
    patience: Annotated[
        float,
        typer.Option(
            "--patience",
            callback=non_negative_seconds,
            help="Seconds the scripted model keeps working without the workspace tools (a real one decides itself).",
        ),
    ] = DEFAULT_PATIENCE_S,
    json_output: Annotated[bool, typer.Option("--json", help="Print the summary as one JSON object.")] = False,
    coder_url: Annotated[
        str | None,
        typer.Option(
            "--coder-url",
            callback=parse_coder_url,
            help="Run against this Coder deployment instead of the simulator (CODER_URL is never read).",
        ),
    ] = None,
    token: Annotated[
        str | None,
        typer.Option("--token", envvar=CODER_TOKEN_ENV, show_default=False, help="Session token for --coder-url."),
    ] = None,
    template: Annotated[str | None, typer.Option("--template", help="Template name for --coder-url.")] = None,
    keep: Annotated[
        bool, typer.Option("--keep", help="With --coder-url: keep the demo's workspace instead of deleting it.")
    ] = False,
    server_port: Annotated[
        int | None,
        typer.Option(
            "--server-port",
            min=MIN_PORT,
            max=MAX_PORT,
            help="Simulator: the port of the workspace MCP server process (default: a free one).",
        ),
    ] = None,
    model_spec: Annotated[
        str | None,
        typer.Option(
            "--model",
            metavar="PROVIDER:MODEL",
            show_default=False,
            help=(
                f"Hold the conversation with a real model ({', '.join(p + ':<model>' for p in MODEL_PROVIDERS)}) "
                "instead of the scripted one; keys and base URLs from OPENAI_API_KEY and OPENAI_BASE_URL, or "
                "ANTHROPIC_API_KEY and ANTHROPIC_BASE_URL."
            ),
        ),
    ] = None,
    log_level: Annotated[
        LogLevel,
        typer.Option("--log-level", case_sensitive=False, help="Library events at this level and above go to stderr."),
    ] = LogLevel.WARNING,
) -> None:
    """Run a scripted chat that creates a workspace and uses its MCP tools as soon as they are offered.

    On the embedded simulator unless --coder-url is given; there, the workspace gets a unique name and is
    deleted at the end unless --keep. With --model a real model holds the same conversation. Exit status:
    0 the tools were offered; 1 they never were, or the demo failed (the reason printed, a model's
    error among them); 2 usage error; 130 interrupted.
    """
    if strategy not in STRATEGIES:
        raise typer.BadParameter(f"choose one of {', '.join(STRATEGIES)}", param_hint="--strategy")
    if coder_url is not None and not token:
        raise typer.BadParameter(
            f"--coder-url needs a session token: pass --token or set {CODER_TOKEN_ENV}", param_hint="'--token'"
        )
    model = _model_spec(model_spec)
    configure_logging(log_level)
    console = Console(stderr=json_output)
    workspace_name = unique_workspace_name()

    def say(at: float, source: str, what: str) -> None:
        style = _SOURCE_STYLES.get(source, "white")
        console.print(f"[dim]{at:6.2f}s[/dim] [{style}]{source:>6}[/{style}]  {what}", highlight=False)

    try:
        summary = anyio.run(
            lambda: run_demo(
                cold_start_s=None if no_server else cold_start,
                patience_s=patience,
                primer=PrimerSettings(strategy=STRATEGIES[strategy], max_wait=max_wait),
                say=say,
                coder_url=coder_url,
                token=token if coder_url is not None else None,
                template=template,
                workspace_name=workspace_name,
                keep=keep,
                server_port=server_port,
                model=model,
            )
        )
    except KeyboardInterrupt:
        if coder_url is not None and not keep:
            typer.echo(
                f"Interrupted: the demo's workspace {workspace_name}, if it was created, stays in Coder.", err=True
            )
        raise typer.Exit(EXIT_INTERRUPTED) from None
    except (CoderError, DemoError, ModelError) as exc:
        # One plain line on stderr: rich would wrap a long reason at the console's width.
        typer.echo(f"demo failed: {exc}", err=True)
        raise typer.Exit(EXIT_FAILURE) from None
    if json_output:
        sys.stdout.write(summary.to_json() + "\n")
    else:
        _render_summary(console, summary)
    if not summary.ok:
        console.print("[red]The workspace's MCP tools never appeared.[/red]")
        raise typer.Exit(EXIT_FAILURE)
    raise typer.Exit(EXIT_OK)


if __name__ == "__main__":
    app()
