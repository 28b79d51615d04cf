"""Benchmarks: s3s3 against `rclone copy` and a raw floor, between two SeaweedFS servers (see README.md)."""
