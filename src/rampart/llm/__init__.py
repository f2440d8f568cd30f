"""LLM providers that score assessments and write roadmaps.

``base`` defines the provider seam and error types, ``schemas`` the results every provider
returns, and ``offline`` the deterministic rule-based provider (the default and last fallback).
"""
