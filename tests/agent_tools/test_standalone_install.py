"""`pip install ./agent_tools` in a fresh venv without Django gives a working client and MCP server.

As an agent's machine would: a new virtualenv, `pip install ./agent_tools` (from a copy of the
directory, so the package carries everything it needs and the build's leftovers stay out of the
working tree), then the client and the MCP server (`python -m agent_tools` and the
`orchestrator-mcp` script, driven by the MCP SDK's own stdio client) run from that venv, outside
the checkout, against a real `make run`.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from tests import test_docs_examples
from tests.test_docs_examples import REPO

# The real `make run` on an embedded SQLite database (module-scoped, shared by the tests below).
make_run = test_docs_examples.make_run

THE_FOUR_TOOLS = {"send_task", "request_approval", "notify", "fetch_status"}

CLIENT_SCRIPT = """\
import json
import sys

import agent_tools
import agent_tools.server  # the MCP server's module too: nothing of Django behind either
from agent_tools import OrchestratorClient

client = OrchestratorClient.from_env()
session = client.create_session(role="finance", metadata={"via": "standalone-install"})
status = client.status_of(session.session_id)
print(json.dumps({
    "agent_tools": agent_tools.__file__,
    "session_id": str(session.session_id),
    "session_status": session.status,
    "fetched": {"kind": status.kind, "id": str(status.id), "status": status.status},
    "django_loaded": sorted(name for name in sys.modules if name.split(".")[0] in ("django", "orchestrator", "celery")),
}))
"""

MCP_SCRIPT = """\
import json
import os
import sys

import anyio
from mcp import Client
from mcp.client.stdio import StdioServerParameters


async def main():
    command, *args = sys.argv[2:]
    params = StdioServerParameters(
        command=command,
        args=args,
        env={name: os.environ[name] for name in ("ORCHESTRATOR_URL", "ORCHESTRATOR_TOKEN")},
        cwd=os.getcwd(),
    )
    async with Client(params, read_timeout_seconds=30) as client:
        tools = sorted(tool.name for tool in (await client.list_tools()).tools)
        result = await client.call_tool("fetch_status", {"id": sys.argv[1]})
    text = "".join(block.text for block in result.content if getattr(block, "type", None) == "text")
    print(json.dumps({"tools": tools, "is_error": result.is_error, "fetch_status": text}))


anyio.run(main)
"""


def run(command, *, cwd, env, timeout, what):
    """Run a command; on failure (or a timeout), fail the test saying what it was and what it printed."""
    try:
        result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"{what}: no answer within {timeout}s\nstdout:\n{exc.stdout}\nstderr:\n{exc.stderr}")
    if result.returncode != 0:
        pytest.fail(f"{what}: exit status {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}")
    return result


@pytest.fixture(scope="module")
def fresh_venv(tmp_path_factory):
    """A new virtualenv holding only `pip install ./agent_tools` (and what it pulls in); its `python`,
    its `bin`, the directory to run it in (outside the checkout) and the environment to run it with."""
    home = tmp_path_factory.mktemp("standalone")
    source, workdir = home / "src", home / "agent"
    leftovers = shutil.ignore_patterns("__pycache__", "build", "*.egg-info")
    shutil.copytree(REPO / "agent_tools", source / "agent_tools", ignore=leftovers)
    # The agent runs in a directory of its own: nothing importable beside it but what the venv installed.
    workdir.mkdir()
    # Nothing of the project's interpreter leaks in: no PYTHONPATH, no active venv, no Django settings.
    env = {
        name: value
        for name, value in os.environ.items()
        if name not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "DJANGO_SETTINGS_MODULE")
        and not name.startswith("ORCHESTRATOR_")
    }
    run([sys.executable, "-m", "venv", str(home / "venv")], cwd=home, env=env, timeout=120, what="python -m venv")
    bin_dir = home / "venv" / "bin"
    run(
        [str(bin_dir / "python"), "-m", "pip", "install", "--quiet", "./agent_tools"],
        cwd=source,
        env=env,
        timeout=300,
        what="pip install ./agent_tools into a fresh venv",
    )
    return {"python": str(bin_dir / "python"), "bin": bin_dir, "venv": home / "venv", "cwd": workdir, "env": env}


@pytest.fixture(scope="module")
def finance_token(make_run):
    """A token of role finance on the `make run` server, minted as docs/agents.md says."""
    result = run(
        [sys.executable, "manage.py", "issue_token", "--role", "finance"],
        cwd=REPO,
        env=make_run["env"],
        timeout=120,
        what="manage.py issue_token --role finance",
    )
    return result.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def agent_env(fresh_venv, make_run, finance_token):
    return {**fresh_venv["env"], "ORCHESTRATOR_URL": make_run["base"], "ORCHESTRATOR_TOKEN": finance_token}


@pytest.fixture(scope="module")
def created_session(fresh_venv, agent_env):
    """What the client script, run by the fresh venv, reports after creating a session and fetching its status."""
    script = fresh_venv["cwd"] / "create_session.py"
    script.write_text(CLIENT_SCRIPT)
    result = run(
        [fresh_venv["python"], str(script)],
        cwd=fresh_venv["cwd"],
        env=agent_env,
        timeout=60,
        what="OrchestratorClient in the fresh venv",
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def installed_in(fresh_venv, module_file):
    """Whether a module file lies in the fresh venv's site-packages (not in a source tree beside it)."""
    path = Path(module_file)
    return path.is_relative_to(fresh_venv["venv"]) and "site-packages" in path.parts


def serve_mcp_and_fetch_status(fresh_venv, agent_env, session_id, *server_command):
    """Start `server_command` as an MCP stdio server from the fresh venv's own MCP client, list its tools and
    call fetch_status on `session_id`."""
    script = fresh_venv["cwd"] / "drive_mcp.py"
    script.write_text(MCP_SCRIPT)
    result = run(
        [fresh_venv["python"], str(script), session_id, *server_command],
        cwd=fresh_venv["cwd"],
        env=agent_env,
        timeout=60,
        what=f"MCP client in the fresh venv driving {' '.join(server_command)}",
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_the_fresh_venv_has_no_django_and_its_agent_tools_come_from_the_install(fresh_venv):
    no_django = subprocess.run(
        [fresh_venv["python"], "-c", "import django"],
        cwd=fresh_venv["cwd"],
        env=fresh_venv["env"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert no_django.returncode != 0, "Django is importable in the fresh venv: the test proves nothing"
    assert "ModuleNotFoundError" in no_django.stderr, no_django.stderr

    where = run(
        [fresh_venv["python"], "-c", "import agent_tools; print(agent_tools.__file__)"],
        cwd=fresh_venv["cwd"],
        env=fresh_venv["env"],
        timeout=60,
        what="import agent_tools in the fresh venv",
    )
    assert installed_in(fresh_venv, where.stdout.strip()), f"agent_tools came from {where.stdout.strip()}, not the venv"
    assert (fresh_venv["bin"] / "orchestrator-mcp").is_file(), "the console script orchestrator-mcp is not installed"


def test_the_client_creates_a_session_on_make_run_and_fetches_its_status(
    fresh_venv, created_session, make_run, finance_token
):
    assert created_session["django_loaded"] == [], "the agent tools loaded the project or Django"
    assert installed_in(fresh_venv, created_session["agent_tools"]), created_session["agent_tools"]
    assert created_session["session_status"] == "pending"
    assert created_session["fetched"] == {
        "kind": "session",
        "id": created_session["session_id"],
        "status": "pending",
    }
    # The session is really there on the server, the finance role's own.
    response = requests.get(
        f"{make_run['base']}/api/v1/sessions/{created_session['session_id']}",
        headers={"Authorization": f"Bearer {finance_token}"},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    assert response.json()["role"] == "finance"
    assert response.json()["metadata"] == {"via": "standalone-install"}


def test_python_m_agent_tools_serves_mcp_from_the_fresh_venv(fresh_venv, agent_env, created_session):
    answer = serve_mcp_and_fetch_status(
        fresh_venv, agent_env, created_session["session_id"], fresh_venv["python"], "-m", "agent_tools"
    )

    assert THE_FOUR_TOOLS <= set(answer["tools"]), answer["tools"]
    assert not answer["is_error"], answer["fetch_status"]
    assert answer["fetch_status"] == "pending"


def test_the_orchestrator_mcp_script_serves_the_same_tools(fresh_venv, agent_env, created_session):
    answer = serve_mcp_and_fetch_status(
        fresh_venv, agent_env, created_session["session_id"], str(fresh_venv["bin"] / "orchestrator-mcp")
    )

    assert THE_FOUR_TOOLS <= set(answer["tools"]), answer["tools"]
    assert answer["fetch_status"] == "pending", answer
