"""The vpagent web app (Gradio). Importing vpagent first applies its network-silencing defaults."""

import vpagent  # noqa: F401  (before gradio is imported: analytics off, hubs offline)
