"""OpenAI chat and legacy completions: relayed to the neuron as they are."""
