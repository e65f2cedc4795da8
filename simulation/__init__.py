"""Simulated inputs for tests, benchmarks and the demo, Django-free: tiny phantom CTs,
held-out shots of our own renderer and simulated C-arm shots through a phantom. No
production engine imports this package (import-linter checks it)."""
