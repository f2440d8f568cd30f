"""Rampart. The package root hands this project's settings to the kit, which reads them
through small sections and never imports `rampart.config` itself (kit/settings.py)."""

from rampart.kit import settings as _kit_settings


def _settings() -> object:
    from rampart.config import get_settings

    return get_settings()


_kit_settings.provide(_settings)
