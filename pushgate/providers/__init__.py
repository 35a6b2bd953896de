"""Delivery providers: FCM HTTP v1, APNs and Web Push, behind one protocol."""
