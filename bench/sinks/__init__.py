"""Upstream sinks the bench points pushgate at: nginx answering as a Web Push service, as FCM
HTTP v1 (with an OAuth token endpoint) and as APNs over HTTP/2; and the test suite's Python
fake Web Push service with added latency."""
