"""The vpagent web app (Gradio); as ``vpagent.apps``, the offline defaults apply first."""
