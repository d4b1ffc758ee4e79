"""Where a request goes: the catalogue of models and aliases, placement of cold loads,
the router, the load/unload lifecycle and the evictor."""
