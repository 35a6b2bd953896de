"""pushgate: a self-hosted push notification service (FCM HTTP v1, APNs, Web Push)."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("pushgate")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0"
