"""The OpenAI Responses dialect (`/v1/responses`), translated onto the neuron's chat completions."""
