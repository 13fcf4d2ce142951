"""`python -m orchestrator.agent_tools`: the MCP server over stdio."""

from orchestrator.agent_tools.server import main

main()
