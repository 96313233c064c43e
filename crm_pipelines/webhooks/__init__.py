"""Webhook receiver: signature verification, per-provider parsing, the inbox table and the HTTP app."""
