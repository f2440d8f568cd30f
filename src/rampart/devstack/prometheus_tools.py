"""Prometheus, promtool, Alertmanager and amtool for tests and the incident simulation.

They are not on PyPI, so they come from Debian's packages (`prometheus`,
`prometheus-alertmanager`) without installing them system-wide: `apt-get download` works
as any user, and `dpkg-deb -x` unpacks the .deb into a cache directory we own. Binaries
already on PATH win. As root with empty apt lists, `apt-get update` runs once first.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
from pathlib import Path

from rampart.devstack import DevStackError

# Which Debian package ships each binary, and under which name in usr/bin.
PACKAGES = {
    "prometheus": ("prometheus", "prometheus"),
    "promtool": ("prometheus", "promtool"),
    "alertmanager": ("prometheus-alertmanager", "prometheus-alertmanager"),
    "amtool": ("prometheus-alertmanager", "amtool"),
}


def default_cache() -> Path:
    return Path(os.environ.get("RAMPART_TOOLS_DIR") or Path.home() / ".cache" / "rampart-tools")


def ensure_binary(name: str, cache: Path | None = None) -> Path:
    """Path of an executable `name`, downloading and unpacking its Debian package if needed."""
    if name not in PACKAGES:
        raise ValueError(f"unknown tool {name!r}; known: {', '.join(sorted(PACKAGES))}")
    package, debian_name = PACKAGES[name]
    on_path = shutil.which(name) or shutil.which(debian_name)
    if on_path:
        return Path(on_path)
    cache = cache or default_cache()
    binary = cache / "root" / "usr" / "bin" / debian_name
    if binary.exists():
        return binary
    cache.mkdir(parents=True, exist_ok=True)
    # Parallel test processes may ask at once: one downloads, the others wait.
    with open(cache / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not binary.exists():
            _unpack(_download(package, cache / "debs"), cache / "root")
    if not binary.exists():
        raise DevStackError(f"package {package} did not contain usr/bin/{debian_name}")
    return binary


def _download(package: str, into: Path) -> Path:
    apt_get = shutil.which("apt-get")
    if not apt_get:
        raise DevStackError(f"{package}: no apt-get here; install {package} so it is on PATH")
    into.mkdir(parents=True, exist_ok=True)
    result = _apt_download(apt_get, package, into)
    if result.returncode != 0 and os.geteuid() == 0:
        subprocess.run(  # noqa: S603 - fixed argv, no shell
            [apt_get, "update", "-qq"], capture_output=True, check=False
        )
        result = _apt_download(apt_get, package, into)
    debs = sorted(into.glob(f"{package}_*.deb"))
    if result.returncode != 0 or not debs:
        raise DevStackError(
            f"apt-get download {package} failed: {result.stderr.strip()[-300:]}"
            f" (run `apt-get update` as root, or install {package})"
        )
    return debs[-1]


def _apt_download(apt_get: str, package: str, into: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - fixed argv, no shell
        [apt_get, "download", "-q", package], cwd=into, capture_output=True, text=True, check=False
    )


def _unpack(deb: Path, root: Path) -> None:
    root.mkdir(parents=True, exist_ok=True)
    dpkg_deb = shutil.which("dpkg-deb") or "/usr/bin/dpkg-deb"
    result = subprocess.run(  # noqa: S603 - fixed argv, no shell
        [dpkg_deb, "-x", str(deb), str(root)], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise DevStackError(f"dpkg-deb -x {deb.name} failed: {result.stderr.strip()[-300:]}")
