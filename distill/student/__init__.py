"""The student VLM: the embedded model, training, evaluation against the agent, serving."""
