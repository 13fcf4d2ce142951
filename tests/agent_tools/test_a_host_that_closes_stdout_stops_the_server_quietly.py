"""A host that closes the MCP server's stdout (it exited, or stopped reading) stops the server with one
line on stderr, not the task group's traceback of every writer that met the broken pipe."""

import json
import subprocess
import sys

from tests.agent_tools.conftest import INITIALIZE, REPO_ROOT


def test_the_server_stops_with_one_line_when_its_stdout_is_closed():
    process = subprocess.Popen(
        [sys.executable, "-m", "agent_tools"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={"ORCHESTRATOR_URL": "http://127.0.0.1:9", "ORCHESTRATOR_TOKEN": "unused"},
        cwd=REPO_ROOT,
        text=True,
    )
    process.stdin.write(json.dumps(INITIALIZE) + "\n")
    process.stdin.flush()
    assert json.loads(process.stdout.readline())["id"] == 1
    process.stdout.close()  # the host stops reading

    for request_id in range(2, 5):
        process.stdin.write(json.dumps({"jsonrpc": "2.0", "id": request_id, "method": "ping"}) + "\n")
    process.stdin.close()
    stderr = process.stderr.read()
    process.wait(timeout=60)

    assert "the host closed stdout; stopping." in stderr
    assert "Traceback" not in stderr and "BrokenPipeError" not in stderr, stderr
