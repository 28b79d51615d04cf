"""The listener and the webhook: announcements in, copies out, acknowledged once every destination holds them.

Announcements arrive through a Delivery (s3s3.listen.delivery: pubsub, a
stream or a list), are parsed once (s3s3.listen.messages) and copied by the
Listener (s3s3.listen.listener); s3s3.listen.webhook turns S3 event
notifications over HTTP into announcements; s3s3.listen.metrics and
s3s3.listen.backlog are what /metrics and /healthz show. This package never
imports the bucket sync's.
"""

from __future__ import annotations
