"""Getting a task's missing raw files: what a task declares (`RemoteFile`), how the harness downloads it.

A task says how its data can be obtained through `TaskSpec.fetch`: one `RemoteFile`
(destination, https URL, the sha256 it must have) per file that can be downloaded,
one line of text per step a person has to do. `bench data status` shows that plan and
`bench data fetch` carries it out with `fetch_file`, so the command knows no task's
sources and a plugin's task is fetched exactly like a built-in one.

Downloads are checksum-verified and atomic: a file with the wrong sha256 is never
written, a present file with the right one is never downloaded again. Setting
``CRYSTALBENCH_OFFLINE=1`` (or the run option ``offline``) turns downloads off.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from crystalbench.contract.errors import DataUnavailableError
from crystalbench.contract.store import atomic_write, file_sha256

if TYPE_CHECKING:
    from crystalbench.contract.context import RunContext

__all__ = ["RemoteFile", "Downloader", "OFFLINE_ENV", "downloads_off", "http_download", "fetch_file"]

OFFLINE_ENV = "CRYSTALBENCH_OFFLINE"
_TRUE = ("1", "true", "yes", "on")


@dataclass(frozen=True)
class RemoteFile:
    """A raw file that can be downloaded: where it goes, where it comes from, the sha256 it must have.

    note: a few words shown after the download (e.g. the file's licence or origin).
    """

    dest: Path
    url: str
    sha256: str
    note: str = ""


Downloader = Callable[[str], bytes]


def downloads_off(ctx: RunContext) -> bool:
    """True when downloads are off: the run option ``offline``, else ``$CRYSTALBENCH_OFFLINE``."""
    value = ctx.options.get("offline")
    text = str(value).strip() if value is not None else os.environ.get(OFFLINE_ENV, "").strip()
    return text.lower() in _TRUE


def http_download(url: str) -> bytes:
    """The real downloader (tests replace it): the whole body of an HTTPS GET."""
    import urllib.request

    if not url.startswith("https://"):
        raise DataUnavailableError(f"refusing to download {url}: not an https URL")
    with urllib.request.urlopen(url, timeout=120) as resp:  # noqa: S310 (https only, checked above)
        return bytes(resp.read())


def fetch_file(rf: RemoteFile, download: Downloader | None = None) -> bool:
    """Download `rf` into place atomically after checking its sha256; False when it was already there.

    A file that is present with the wrong checksum is replaced; a download with the wrong
    checksum writes nothing and raises DataUnavailableError.
    """
    if rf.dest.is_file() and file_sha256(rf.dest) == rf.sha256:
        return False
    try:
        payload = (download or http_download)(rf.url)
    except DataUnavailableError:
        raise
    except Exception as exc:  # network, HTTP, TLS: all mean "not downloadable from here now"
        raise DataUnavailableError(f"download of {rf.url} failed: {type(exc).__name__}: {str(exc)[:200]}") from None
    got = hashlib.sha256(payload).hexdigest()
    if got != rf.sha256:
        raise DataUnavailableError(
            f"{rf.url}: sha256 {got} is not the expected {rf.sha256}; nothing written to {rf.dest}")
    atomic_write(rf.dest, payload)
    return True
