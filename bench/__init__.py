"""The performance benchmark: our bridge against the copy-paste baseline (see docs/performance.md)."""
