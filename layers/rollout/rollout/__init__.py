"""Rollout: the release control plane's shared package (domain logic and AWS adapters)."""
