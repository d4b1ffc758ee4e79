"""The gateway's HTTP app: factory and serve loop, middleware, plain routes, and the
proxy/relay every dialect sends its requests through."""
