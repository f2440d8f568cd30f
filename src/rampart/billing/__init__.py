"""Billing: Stripe webhooks (verified, replay-protected, deduplicated) set a tenant's plan;
every plan change is appended to billing_events."""
