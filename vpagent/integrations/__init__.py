"""vpagent as a tool inside other agent frameworks: a LangChain ``BaseTool``
(:mod:`vpagent.integrations.langchain`) and a smolagents ``Tool``
(:mod:`vpagent.integrations.smolagents`). Each module imports its framework only when used."""
