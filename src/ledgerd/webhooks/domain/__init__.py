"""Webhook endpoints, their filters and secrets, signatures, retries: plain Python, stdlib only."""
