"""What several gateways in front of one fleet share: the Responses store, cold-load
leases and in-flight counts, kept in this process (`memory`) or in Redis (`redis`).

`open_state(config, metrics)` builds the backend `[state]` names; `state_ctx` is the app's
cleanup context that exchanges in-flight counts while the gateway runs and closes the
backend after it.
"""
