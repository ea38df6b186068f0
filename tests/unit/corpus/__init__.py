"""Inputs built in the tests for the bad-input corpus: zips crafted byte by byte, and friends."""
