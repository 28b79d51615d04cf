"""Real S3 and Redis servers on loopback, started for tests, the demo and the benchmarks.

Every server runs in a temporary directory, on a free 127.0.0.1 port, and is
stopped by its pid. Each module here knows one store; `base` holds what they share.
"""
