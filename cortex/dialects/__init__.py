"""Client dialects the gateway speaks; the neurons speak OpenAI only."""
