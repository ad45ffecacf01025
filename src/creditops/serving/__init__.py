"""Serving: the credit-decision API, its fast scoring path, and the decisions
it makes over the served version (the log they are written to lives in :mod:`creditops.store`)."""
