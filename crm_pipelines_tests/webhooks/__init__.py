"""Tests of the webhook receiver."""
