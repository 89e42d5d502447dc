"""The process side: serving, workers, resources, metrics, access log, health, the local stack."""
