"""vpagent as a Model Context Protocol server (`vpagent mcp`): tools, trace resources, and the
image-input policy the agent-framework integrations share.

Build one around an agent with :class:`vpagent.mcp_server.server.McpFrontEnd`; run it with
:mod:`vpagent.mcp_server.transports`. Importing this package loads neither the ``mcp`` SDK nor
the agent.
"""
