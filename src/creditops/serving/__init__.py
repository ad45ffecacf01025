"""Serving: the credit-decision API, its fast scoring path, decisions and the prediction log."""
