"""Anthropic Messages, translated onto the neuron's OpenAI chat completions and back."""
