"""Checksummed downloads into the mkcell cache (pooch for the transfer)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import warnings
from pathlib import Path
from urllib.parse import unquote, urlparse
from urllib.request import url2pathname

from .._settings import MkcellError, MkcellWarning, logger, settings
from .._utils import atomic_path, write_text_atomic

HASHES_FILE = "hashes.json"
TIMEOUT = (5, 60)
"""Seconds to connect and between received bytes: without network, fail at once."""
_SCHEMES = ("https", "http", "ftp", "file")


def cache_dir() -> Path:
    """Return the mkcell cache folder: ``$MKCELL_CACHE`` if set, else ``mk.settings.cache_dir``."""
    env = os.environ.get("MKCELL_CACHE")
    return Path(env).expanduser() if env else Path(settings.cache_dir).expanduser()


def file_sha256(path: str | os.PathLike) -> str:
    """Return the sha256 hex digest of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fetch(
    url: str,
    *,
    sha256: str | None = None,
    dest_dir: str | os.PathLike | None = None,
    filename: str | None = None,
    progress: bool = True,
) -> Path:
    """Download ``url`` into the cache once, checking its sha256, and return the local path.

    The file is written under a temporary name and renamed only once its checksum
    matches, so the cache never holds a partial or corrupt file. A file already at the
    destination (a previous download, or one placed there by hand) is used without
    network if its checksum matches.

    Parameters
    ----------
    url
        ``https://``, ``http://``, ``ftp://`` or ``file://`` address.
    sha256
        Expected sha256 (64 hex digits). ``None``: the hash of the first download is
        recorded in ``<cache>/hashes.json`` (with a :class:`MkcellWarning`) and later
        calls are checked against it.
    dest_dir
        Folder to keep the file in (default ``<cache>/downloads``).
    filename
        Local file name (default: the last part of the URL path).
    progress
        Show a progress bar while downloading.

    Returns
    -------
    Path of the verified local file.

    Raises
    ------
    MkcellError
        Checksum mismatch (the download is deleted) or failed download (one line naming
        the URL and where to place the file by hand).
    """
    scheme = urlparse(url).scheme
    if scheme not in _SCHEMES:
        msg = (
            f"cannot download {url!r}: unsupported scheme {scheme!r}; "
            f"use one of {', '.join(_SCHEMES)}"
        )
        raise MkcellError(msg)
    dest = Path(dest_dir).expanduser() if dest_dir is not None else cache_dir() / "downloads"
    dest = dest / (filename or _filename(url))
    if sha256 is not None and not _is_sha256(str(sha256).lower()):
        msg = f"sha256={sha256!r} for {url} is not 64 hex digits; pass the file's sha256 or None"
        raise MkcellError(msg)
    expected = sha256.lower() if sha256 is not None else _recorded_hash(url)

    if dest.is_file():
        got = file_sha256(dest)
        if expected is None:
            _record_hash(url, got, dest)
        elif got != expected:
            msg = (
                f"{dest} does not match its checksum (expected sha256 {expected}, got {got}); "
                "delete the file to download it again, or place the right file there"
            )
            raise MkcellError(msg)
        logger.info("using cached %s", dest)
        return dest

    with atomic_path(dest) as tmp:
        try:
            _download(url, tmp, progress=progress)
        except Exception as err:  # noqa: BLE001 - any transfer error becomes one clean line
            reason = " ".join(str(err).split()) or type(err).__name__
            reason = reason if len(reason) <= 160 else reason[:157] + "..."
            msg = (
                f"could not download {url} ({type(err).__name__}: {reason}); without network, "
                f"download it by hand and place it at {dest}"
            )
            raise MkcellError(msg) from None
        got = file_sha256(tmp)
        if expected is not None and got != expected:
            msg = (
                f"checksum mismatch for {url}: expected sha256 {expected}, got {got}; the download "
                f"was deleted — retry, or if the file changed upstream update the registry entry "
                f"(or its line in {cache_dir() / HASHES_FILE})"
            )
            raise MkcellError(msg)
    if expected is None:
        _record_hash(url, got, dest)
    logger.info("downloaded %s to %s", url, dest)
    return dest


def _download(url: str, path: Path, *, progress: bool = True) -> None:
    """Transfer ``url`` to ``path`` (the one network call; tests replace it)."""
    scheme = urlparse(url).scheme
    if scheme == "file":
        shutil.copyfile(url2pathname(urlparse(url).path), path)
        return
    import pooch

    if scheme == "ftp":
        downloader = pooch.FTPDownloader(progressbar=progress, timeout=TIMEOUT[1])
    else:
        downloader = pooch.HTTPDownloader(progressbar=progress, timeout=TIMEOUT)
    downloader(url, str(path), None)


def _filename(url: str) -> str:
    name = unquote(Path(urlparse(url).path).name)
    if not name or name in {".", ".."}:
        msg = f"cannot tell a file name from {url}; pass filename="
        raise MkcellError(msg)
    return name


def _is_sha256(value: object) -> bool:
    return (
        isinstance(value, str) and len(value) == 64 and all(c in "0123456789abcdef" for c in value)
    )


def _hashes_path() -> Path:
    return cache_dir() / HASHES_FILE


def _load_hashes() -> dict[str, str]:
    path = _hashes_path()
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        msg = (
            f"cannot read the recorded checksums in {path} ({err}); delete the file to start afresh"
        )
        raise MkcellError(msg) from None
    return data if isinstance(data, dict) else {}


def _recorded_hash(url: str) -> str | None:
    value = _load_hashes().get(url)
    return value.lower() if _is_sha256(str(value).lower()) else None


def _record_hash(url: str, sha256: str, dest: Path) -> None:
    hashes = _load_hashes()
    hashes[url] = sha256
    write_text_atomic(_hashes_path(), json.dumps(hashes, indent=1, sort_keys=True) + "\n")
    msg = (
        f"the registry has no checksum for {url}; recorded sha256 {sha256} of {dest.name} in "
        f"{_hashes_path()} and later downloads are checked against it"
    )
    warnings.warn(msg, MkcellWarning, stacklevel=3)
