"""The package says what it needs: every import declared for its part, the licence shipped, the right Python."""

from __future__ import annotations

import ast
import fnmatch
import importlib.metadata
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT / "src" / "chat_mcp_primer"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
PROJECT = PYPROJECT["project"]
# The optional parts of the package and the extra that installs each; the rest is the library itself. A part
# is a top-level subpackage or module, or a pattern of module paths below one: each model adapter is the
# part of its own SDK, while `chat_mcp_primer.models` itself imports none.
EXTRA_OF_PART = {
    "cli": "cli",
    "gateway": "cli",
    "testing": "testing",
    "pytest_plugin": "testing",
    "models/_openai*": "openai",
    "models/_anthropic*": "anthropic",
    "redis": "redis",
}
# What the program that loads a part provides, so no extra declares it: pytest loads its plugin.
PROVIDED_BY_HOST = {"pytest_plugin": {"pytest"}}


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_names(requirements: list[str]) -> set[str]:
    return {canonical(re.split(r"[\s\[<>=!~;]", requirement, maxsplit=1)[0]) for requirement in requirements}


def declared(extra: str | None) -> set[str]:
    """The distributions installed for ``extra`` (None: the core dependencies), following this package's
    own extras (``chat-mcp-primer[testing]``), but not including them by name."""
    requirements = PROJECT["dependencies"] if extra is None else PROJECT["optional-dependencies"][extra]
    names = requirement_names(requirements)
    for requirement in requirements:
        if canonical(requirement.partition("[")[0]) == canonical(PROJECT["name"]):
            for inner in re.findall(r"[A-Za-z0-9._-]+", requirement.partition("[")[2]):
                names |= declared(inner)
    return names - {canonical(PROJECT["name"])}


def own_declared(extra: str | None) -> set[str]:
    """What ``extra`` lists itself, without what comes with the core or another extra."""
    requirements = PROJECT["dependencies"] if extra is None else PROJECT["optional-dependencies"][extra]
    return requirement_names(requirements) - {canonical(PROJECT["name"])}


def part_of(path: Path) -> str | None:
    module = path.relative_to(SOURCE).with_suffix("").as_posix()  # e.g. "cli/_app", "pytest_plugin"
    return next((part for part in EXTRA_OF_PART if in_part(module, part)), None)


def in_part(module: str, part: str) -> bool:
    """Whether ``module`` (a path below the package, without ".py") is ``part`` or inside it."""
    return fnmatch.fnmatchcase(module, part) or fnmatch.fnmatchcase(module, f"{part}/*")


def imported_modules(path: Path) -> Iterator[str]:
    """The top-level names of the absolute imports in ``path``, wherever they are (lazy ones too)."""
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name.partition(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module is not None:
            yield node.module.partition(".")[0]


def imports_by_part() -> dict[str | None, dict[str, set[str]]]:
    """For each part (None: the library), the distributions it imports, each with the files importing it."""
    distributions = importlib.metadata.packages_distributions()
    found: dict[str | None, dict[str, set[str]]] = {None: {}, **{part: {} for part in EXTRA_OF_PART}}
    for path in sorted(SOURCE.rglob("*.py")):
        for module in imported_modules(path):
            if module in sys.stdlib_module_names or module in ("__future__", "chat_mcp_primer"):
                continue
            names = distributions.get(module) or [f"<no installed distribution provides {module!r}>"]
            for name in names:
                found[part_of(path)].setdefault(canonical(name), set()).add(str(path.relative_to(ROOT)))
    return found


@pytest.mark.parametrize("part", [None, *EXTRA_OF_PART], ids=lambda part: part or "library")
def test_every_package_a_part_imports_is_declared_for_it(part: str | None) -> None:
    extra = EXTRA_OF_PART.get(part) if part else None
    allowed = declared(None) | (declared(extra) if extra else set()) | PROVIDED_BY_HOST.get(part or "", set())
    undeclared = {name: sorted(files) for name, files in imports_by_part()[part].items() if name not in allowed}
    assert undeclared == {}, f"imported but not declared in pyproject.toml ({extra or 'dependencies'}): {undeclared}"


@pytest.mark.parametrize("extra", [None, *sorted(set(EXTRA_OF_PART.values()))], ids=lambda extra: extra or "library")
def test_every_package_declared_for_a_part_is_imported_by_it(extra: str | None) -> None:
    parts = [part for part, its_extra in EXTRA_OF_PART.items() if its_extra == extra] if extra else [None]
    imported = {name for part in parts for name in imports_by_part()[part]}
    unused = own_declared(extra) - imported
    assert unused == set(), f"declared in pyproject.toml ({extra or 'dependencies'}) but never imported: {unused}"


def test_the_command_without_the_cli_extra_says_what_to_install() -> None:
    blocked = "import runpy, sys; sys.modules['typer'] = None; runpy.run_module('chat_mcp_primer', run_name='__main__')"
    done = subprocess.run([sys.executable, "-c", blocked], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr.splitlines() == [
        "chat-mcp-primer: the command line needs the 'cli' extra (typer is not installed): "
        "pip install 'chat-mcp-primer[cli]'"
    ]
    assert PROJECT["scripts"]["chat-mcp-primer"] == "chat_mcp_primer._console:main"


def test_the_mit_licence_is_shipped_and_declared() -> None:
    licence = (ROOT / "LICENSE").read_text()
    assert licence.startswith("MIT License\n")
    assert "Copyright (c) 2026 the chat-mcp-primer developers" in licence
    assert PROJECT["license"] == "MIT"
    assert PROJECT["license-files"] == ["LICENSE"]
    metadata = importlib.metadata.metadata(PROJECT["name"])  # what an installer shows
    assert metadata["License-Expression"] == "MIT"
    assert metadata.get_all("License-File") == ["LICENSE"]


# -- the Makefile's interpreter check ---------------------------------------------------------------


def python_claiming(directory: Path, version: tuple[int, int, int]) -> Path:
    """An executable that runs this Python but reports ``version`` through ``sys.version_info``."""
    directory.mkdir(parents=True, exist_ok=True)
    script = directory / "python"
    fake = f"import sys; sys.version_info = {version!r}; exec(sys.argv[1])"
    script.write_text(f'#!/bin/sh\n[ "$1" = -c ] && exec "{sys.executable}" -c "{fake}" "$2"\nexit 1\n')
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return script


def make(directory: Path, python: Path | str) -> subprocess.CompletedProcess[str]:
    """``make --dry-run`` of the virtualenv target in a copy of the build files: nothing is built."""
    for name in ("Makefile", "pyproject.toml", "constraints.txt"):
        if not (directory / name).exists():
            shutil.copy(ROOT / name, directory / name)
    environment = {key: value for key, value in os.environ.items() if not key.startswith("MAKE")}
    return subprocess.run(
        ["make", "--dry-run", "--no-print-directory", f"PYTHON={python}", ".venv/.installed"],
        cwd=directory,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def existing_venv(directory: Path, version: tuple[int, int, int]) -> None:
    python_claiming(directory / ".venv" / "bin", version)
    stamp = directory / ".venv" / ".installed"
    stamp.touch()
    newer = max((directory / name).stat().st_mtime for name in ("pyproject.toml", "constraints.txt")) + 10
    os.utime(stamp, (newer, newer))


needs_make = pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
THIS = (sys.version_info.major, sys.version_info.minor, sys.version_info.micro)


@needs_make
def test_make_with_an_older_python_says_in_one_line_that_it_needs_3_11(tmp_path: Path) -> None:
    done = make(tmp_path, python_claiming(tmp_path / "old", (3, 10, 13)))
    assert done.returncode != 0
    [line] = (done.stdout + done.stderr).splitlines()
    assert "needs Python 3.11 or later" in line
    assert "is 3.10" in line
    assert not (tmp_path / ".venv").exists()


@needs_make
def test_make_rebuilds_a_venv_made_by_another_python(tmp_path: Path) -> None:
    make(tmp_path, sys.executable)  # copies the build files
    existing_venv(tmp_path, (3, 10, 13))
    done = make(tmp_path, sys.executable)
    assert done.returncode == 0, done.stderr
    commands = done.stdout.splitlines()
    assert commands[0] == "rm -rf .venv"
    assert f"{sys.executable} -m venv .venv" in commands[1]


@needs_make
def test_make_rebuilds_a_venv_whose_python_no_longer_runs(tmp_path: Path) -> None:
    make(tmp_path, sys.executable)
    existing_venv(tmp_path, THIS)
    (tmp_path / ".venv" / "bin" / "python").write_text("#!/bin/sh\nexit 127\n")  # its interpreter was removed
    done = make(tmp_path, sys.executable)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0] == "rm -rf .venv"


@needs_make
def test_make_keeps_a_venv_made_by_the_same_python(tmp_path: Path) -> None:
    make(tmp_path, sys.executable)
    existing_venv(tmp_path, THIS)
    done = make(tmp_path, sys.executable)
    assert done.returncode == 0, done.stderr
    assert "is up to date" in done.stdout


# -- a plain install: the library without its extras ------------------------------------------------

# A wheel, a fresh virtualenv and some 30 packages: about 20 s on this project's machine; the bound only
# turns an index that stopped answering into a failure.
INSTALL_TIMEOUT_S = 600
# The extras' packages that the core dependencies bring anyway: the MCP SDK serves over Starlette and
# uvicorn, and its types are pydantic models. The others (typer, rich, sniffio) are what the extras add.
BROUGHT_BY_THE_CORE = {"starlette", "uvicorn", "pydantic"}
# Run in the plain install: imports every module of the library (not the optional parts, nor `__main__`,
# which would run the command), and prints the modules and the distributions installed.
IMPORT_THE_LIBRARY = """
import fnmatch, importlib, importlib.metadata, json, pathlib, chat_mcp_primer
root = pathlib.Path(chat_mcp_primer.__file__).parent
modules = []
for path in sorted(root.rglob("*.py")):
    parts = path.relative_to(root).with_suffix("").parts
    module = "/".join(parts)
    if any(fnmatch.fnmatchcase(module, p) or fnmatch.fnmatchcase(module, p + "/*") for p in OPTIONAL):
        continue
    if parts == ("__main__",):
        continue
    modules.append(".".join(("chat_mcp_primer", *parts)).removesuffix(".__init__"))
    importlib.import_module(modules[-1])
installed = sorted(dist.metadata["Name"] for dist in importlib.metadata.distributions())
print(json.dumps({"modules": modules, "installed": installed}))
"""


def pip(*arguments: str | Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "pip", "--disable-pip-version-check", *map(str, arguments)],
        capture_output=True,
        text=True,
        timeout=INSTALL_TIMEOUT_S,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]


@pytest.fixture(scope="module")
def plain_install(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The Python of a fresh virtualenv holding what ``pip install chat-mcp-primer`` installs: a wheel built
    from this checkout and the dependencies its metadata names (the core ones; no extra), at the versions
    of constraints.txt. Installing the wheel with its dependencies, rather than with ``--no-deps`` and a
    list, is what a user's install does: it checks the wheel's metadata too."""
    root = tmp_path_factory.mktemp("plain-install")
    pip("wheel", "--quiet", "--no-deps", "--wheel-dir", root / "dist", ROOT)
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", root / "venv"], check=True, timeout=60)
    python = root / "venv" / "bin" / "python"
    [wheel] = (root / "dist").glob("*.whl")
    pip("--python", python, "install", "--quiet", "--no-compile", "--constraint", ROOT / "constraints.txt", wheel)
    return python


def run_in(python: Path, *arguments: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [python, *map(str, arguments)], capture_output=True, text=True, timeout=INSTALL_TIMEOUT_S, check=False
    )


def library_modules() -> list[str]:
    modules = []
    for path in sorted(SOURCE.rglob("*.py")):
        parts = path.relative_to(SOURCE).with_suffix("").parts
        if part_of(path) is None and parts != ("__main__",):
            modules.append(".".join(("chat_mcp_primer", *parts)).removesuffix(".__init__"))
    return modules


def test_a_plain_install_imports_the_whole_library_without_the_extras(plain_install: Path) -> None:
    done = run_in(plain_install, "-c", f"OPTIONAL = {sorted(EXTRA_OF_PART)!r}\n{IMPORT_THE_LIBRARY}")
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout)
    assert found["modules"] == library_modules()
    assert "chat_mcp_primer.runtime" in found["modules"]
    installed = {canonical(name) for name in found["installed"]}
    assert canonical(PROJECT["name"]) in installed
    assert installed & (own_declared("cli") | own_declared("testing")) == BROUGHT_BY_THE_CORE


def test_a_plain_install_says_the_test_kit_needs_the_testing_extra(plain_install: Path) -> None:
    done = run_in(plain_install, "-c", "import chat_mcp_primer.testing")
    assert done.returncode == 1
    assert done.stderr.splitlines()[-1] == (
        "ModuleNotFoundError: chat_mcp_primer.testing needs the 'testing' extra (sniffio is not installed): "
        "pip install 'chat-mcp-primer[testing]'"
    )


def test_a_plain_install_s_command_says_it_needs_the_cli_extra(plain_install: Path) -> None:
    done = run_in(plain_install.parent / "chat-mcp-primer", "--help")
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr.splitlines() == [
        "chat-mcp-primer: the command line needs the 'cli' extra (typer is not installed): "
        "pip install 'chat-mcp-primer[cli]'"
    ]


def test_pytest_runs_without_the_testing_extra_and_a_fixture_says_what_to_install(
    plain_install: Path, tmp_path: Path
) -> None:
    """The plugin is registered by every install: without the extra it must not break a project's tests."""
    pip(
        "--python",
        plain_install,
        "install",
        "--quiet",
        "--no-compile",
        "--constraint",
        ROOT / "constraints.txt",
        "pytest",
    )
    (tmp_path / "test_project.py").write_text(
        "def test_unrelated():\n    assert True\n\n\ndef test_with_the_kit(mock_clock):\n    assert False\n"
    )
    done = run_in(plain_install, "-m", "pytest", "-q", "-p", "no:cacheprovider", tmp_path / "test_project.py")
    assert done.returncode == 1, done.stdout + done.stderr
    assert done.stdout.splitlines()[-1].startswith("1 passed, 1 error")
    assert (
        "chat_mcp_primer.testing needs the 'testing' extra (sniffio is not installed): "
        "pip install 'chat-mcp-primer[testing]'"
    ) in done.stdout
