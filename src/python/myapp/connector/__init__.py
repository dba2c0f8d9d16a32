"""Connector: delivers the API's audit events to configured webhooks, signed and retried."""
