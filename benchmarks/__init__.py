"""Benchmarks: Warden against the bare stack (`warden bench`, `make bench`). Not tests."""
