"""Benchmarks: the physical floor, a faust-streaming peer, and our flows, measured in one run."""
