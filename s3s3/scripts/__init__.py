"""The original s3s3's service modules: `python -m s3s3.scripts.listen` and `python -m s3s3.scripts.bucket`."""
