"""The gateway's view of its neurons: node state, the poller that refreshes it, and the
HTTP client that speaks the neuron's lifecycle API."""
