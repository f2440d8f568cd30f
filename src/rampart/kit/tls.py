"""One TLS context trusting certifi's roots, what httpx builds for `verify=True`, built once:
httpx builds a new one for every client it makes (`httpx.post` makes one per call),
loading the bundle each time, ~20 ms of CPU. Pass it as `verify=`."""

from __future__ import annotations

import functools
import ssl


@functools.cache
def certifi_context() -> ssl.SSLContext:
    import certifi

    return ssl.create_default_context(cafile=certifi.where())
