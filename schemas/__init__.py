"""Pydantic v2 models for every message, with a CloudEvents 1.0 envelope (structured mode)."""
