"""The request path: authenticate, check, forward to the provider, relay the answer."""
