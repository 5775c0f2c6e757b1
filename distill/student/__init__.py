"""Student training: SFT data, the Trainer loop, several processes, evaluation against the agent."""
