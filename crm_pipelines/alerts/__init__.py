"""Alerts: failed runs, slow runs and high error rates, sent to a chat webhook or by e-mail."""
