"""`python -m agent_tools`: the MCP server over stdio."""

from agent_tools.server import main

main()
