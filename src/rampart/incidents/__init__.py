"""Incidents: Alertmanager's notifications, received on an authenticated webhook, stored one
row per alert firing, listed by `rampart incidents`."""
