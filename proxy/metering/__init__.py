"""Usage metering: what each forwarded request used, read on the way through the relay, rolled up per
key, model and hour in Postgres. (Kept import-free: `proxy.config` imports the settings module.)"""
