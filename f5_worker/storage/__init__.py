"""Where the worker keeps voices and results: a local directory or an S3-compatible bucket.

Both backends implement one small interface (``Storage``) over ``/``-separated
keys. The bucket is used when RunPod's ``BUCKET_ENDPOINT_URL``,
``BUCKET_ACCESS_KEY_ID`` and ``BUCKET_SECRET_ACCESS_KEY`` are set; otherwise the
network volume (``<NETWORK_VOLUME_PATH>/f5-worker``) or ``./data`` is used.
Results can only be handed out as links from a bucket (presigned GET URLs).
"""
