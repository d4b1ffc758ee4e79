"""Grammar-constrained decoding with xgrammar.

`formats` turns request fields (response_format, tools / tool_choice) into a
`GrammarSpec`: plain JSON, no library objects. `compiler` compiles specs per model
off the event loop, cached and time-bounded. The engine side (a matcher per
constrained sequence, the token bitmask in the sampler) is
`neuron.engine.constraints`.
"""
