"""Fetch the official archives of the supported data sets and unpack them where :mod:`locate` looks.

Downloads are large (UrbanSound8K is about 6 GiB) and links are flaky, so a download resumes from its ``.part``
file, is only trusted once its checksum matches, and is unpacked through :func:`safe_extract`, which checks every
member before writing anything and moves the result into place only when it is complete.
"""

from __future__ import annotations

import copy
import hashlib
import http.client
import os
import re
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from tqdm import tqdm

from ddfad_apps import __version__
from ddfad_apps.data.layouts import FSDD, LAYOUTS, RAVDESS, URBANSOUND8K
from ddfad_apps.data.locate import ENV_DATA, default_data_root

ENV_BASE_URL = "DDFAD_DOWNLOAD_BASE_URL"
DOWNLOADS_DIR = ".downloads"
_USER_AGENT = f"ddfad-apps/{__version__} (+python-urllib)"


class DownloadError(RuntimeError):
    """A download or unpacking step failed; the message says what to do next."""


class ChecksumError(DownloadError):
    """The downloaded bytes are not the published archive."""

    def __init__(self, path: Path, algorithm: str, expected: str, actual: str) -> None:
        super().__init__(
            f"{path.name}: {algorithm} checksum mismatch: expected {expected}, got {actual}. "
            "The partial download was deleted; run the download again."
        )
        self.algorithm = algorithm
        self.expected = expected
        self.actual = actual


class UnsafeArchiveError(DownloadError):
    """An archive member would be written (or link) outside the extraction folder."""

    def __init__(self, archive: Path, member: str, reason: str) -> None:
        super().__init__(f"{archive.name}: refusing unsafe member {member!r}: {reason}. Nothing was extracted.")
        self.member = member


class UnverifiedDownloadWarning(UserWarning):
    """A file was used although no checksum was known to verify it."""


def _parse_checksum(checksum: str | None) -> tuple[str, str] | None:
    """``'md5:abc…'`` -> ``('md5', 'abc…')``; ``None`` stays ``None``."""
    if checksum is None:
        return None
    algorithm, sep, digest = checksum.partition(":")
    algorithm = algorithm.strip().lower()
    digest = digest.strip().lower()
    if not sep or algorithm not in hashlib.algorithms_guaranteed or not re.fullmatch(r"[0-9a-f]+", digest):
        raise ValueError(f"checksum must look like 'sha256:<hex>' or 'md5:<hex>', got {checksum!r}")
    return algorithm, digest


def _new_hash(algorithm: str) -> "hashlib._Hash":
    # md5 only detects corruption here; saying so keeps FIPS-mode Pythons from refusing it.
    return hashlib.new(algorithm, usedforsecurity=False)


@dataclass(frozen=True)
class ArchiveSource:
    """Where one data set's official archive lives and how it unpacks.

    ``checksum`` is ``'md5:<hex>'`` or ``'sha256:<hex>'`` as published by the host, or ``None`` when no digest is
    published (then the download is used unverified and a :class:`UnverifiedDownloadWarning` is issued).
    ``strip_components`` leading path parts are dropped from every member (like ``tar --strip-components``) and
    the rest lands in ``<root>/<folder>``, so that ``<root>/<folder>/<layout marker>`` exists afterwards.
    """

    name: str
    url: str
    filename: str
    checksum: str | None
    strip_components: int
    folder: str

    def __post_init__(self) -> None:
        _parse_checksum(self.checksum)  # fail at import time, not after a 6 GiB download


SOURCES: dict[str, ArchiveSource] = {
    # GitHub publishes no digest for tag archives, so this one cannot be verified (a warning says so).
    # The tarball holds free-spoken-digit-dataset-1.0.10/recordings/*.wav.
    "fsdd": ArchiveSource(
        name="fsdd",
        url="https://github.com/Jakobovski/free-spoken-digit-dataset/archive/refs/tags/v1.0.10.tar.gz",
        filename="free-spoken-digit-dataset-1.0.10.tar.gz",
        checksum=None,
        strip_components=1,
        folder=FSDD.folder_names[0],
    ),
    # Zenodo record 1188976; the zip holds Actor_01..Actor_24 at its top level.
    "ravdess": ArchiveSource(
        name="ravdess",
        url="https://zenodo.org/records/1188976/files/Audio_Speech_Actors_01-24.zip?download=1",
        filename="Audio_Speech_Actors_01-24.zip",
        checksum="md5:bc696df654c87fed845eb13823edef8a",
        strip_components=0,
        folder=RAVDESS.folder_names[0],
    ),
    # Zenodo record 1203745; the tarball holds UrbanSound8K/{metadata,audio}.
    "urbansound8k": ArchiveSource(
        name="urbansound8k",
        url="https://zenodo.org/records/1203745/files/UrbanSound8K.tar.gz?download=1",
        filename="UrbanSound8K.tar.gz",
        checksum="md5:9aa69802bbf37fb986f71ec1483a196e",
        strip_components=1,
        folder=URBANSOUND8K.folder_names[0],
    ),
}


def get_source(name: str) -> ArchiveSource:
    """The registry entry for ``name``, or a ``ValueError`` listing the valid names."""
    try:
        return SOURCES[name]
    except KeyError:
        raise ValueError(f"unknown data set {name!r}; valid names: {', '.join(sorted(SOURCES))}") from None


def source_url(source: ArchiveSource, base_url: str | None = None) -> str:
    """The URL to fetch: ``<base_url>/<filename>`` for a mirror (argument, then ``$DDFAD_DOWNLOAD_BASE_URL``)."""
    base = base_url or os.environ.get(ENV_BASE_URL)
    if not base:
        return source.url
    return base.rstrip("/") + "/" + urllib.parse.quote(source.filename)


# --------------------------------------------------------------------------------------------------- download


def _file_digest(path: Path, algorithm: str, chunk: int = 1 << 20) -> str:
    h = _new_hash(algorithm)
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def _content_range(header: str | None) -> tuple[int | None, int | None]:
    """``'bytes 100-199/200'`` -> ``(100, 200)``; ``'bytes */200'`` -> ``(None, 200)``; unknown parts are ``None``."""
    m = re.fullmatch(r"\s*bytes\s+(?:(\d+)-\d+|\*)/(\d+|\*)\s*", header or "")
    if not m:
        return None, None
    start = int(m.group(1)) if m.group(1) is not None else None
    total = int(m.group(2)) if m.group(2) != "*" else None
    return start, total


def _finish(part: Path, dest: Path, parsed: tuple[str, str] | None, digest: str | None) -> Path:
    """Accept ``part`` as ``dest`` if its digest matches (or warn when nothing can be checked)."""
    if parsed is None:
        warnings.warn(
            f"{dest.name}: no checksum is published for this file, so it could not be verified.",
            UnverifiedDownloadWarning,
            stacklevel=3,
        )
    else:
        algorithm, expected = parsed
        actual = digest if digest is not None else _file_digest(part, algorithm)
        if actual != expected:
            part.unlink(missing_ok=True)
            raise ChecksumError(dest, algorithm, expected, actual)
    part.replace(dest)
    return dest


def download_file(
    url: str,
    dest: str | os.PathLike,
    checksum: str | None = None,
    progress: bool = True,
    chunk: int = 1 << 20,
    timeout: float = 30,
) -> Path:
    """Download ``url`` to ``dest``, resuming ``dest.part`` and trusting the result only when ``checksum`` matches.

    A ``dest`` that is already there with the right checksum is kept as is.  Bytes go to ``<dest>.part`` first; a
    part left by an interrupted run is continued with an HTTP Range request (a server that answers 200 instead of
    206 is read from byte zero).  On a checksum mismatch the part is deleted and :class:`ChecksumError` raised;
    on a dropped connection the part is kept so the next call resumes.  With ``checksum=None`` nothing can be
    verified and an :class:`UnverifiedDownloadWarning` is issued.
    """
    dest = Path(dest)
    parsed = _parse_checksum(checksum)
    part = dest.with_suffix(dest.suffix + ".part")

    if dest.is_file():
        if parsed is None:
            warnings.warn(
                f"{dest.name}: reusing an earlier download that could not be verified (no checksum is published).",
                UnverifiedDownloadWarning,
                stacklevel=2,
            )
            return dest
        if _file_digest(dest, parsed[0], chunk) == parsed[1]:
            return dest
        dest.unlink()  # corrupt or stale: fetch it again
    dest.parent.mkdir(parents=True, exist_ok=True)

    for _attempt in range(2):  # a second attempt only after throwing away a part the server would not continue
        offset = part.stat().st_size if part.is_file() else 0
        request = urllib.request.Request(url, headers={"User-Agent": _USER_AGENT})
        if offset:
            request.add_header("Range", f"bytes={offset}-")
        try:
            response = urllib.request.urlopen(request, timeout=timeout)
        except urllib.error.HTTPError as e:
            if e.code == 416 and offset:
                # The part already reaches (or passes) the end of the file.
                _, total = _content_range(e.headers.get("Content-Range"))
                e.close()
                if parsed is not None and _file_digest(part, parsed[0], chunk) == parsed[1]:
                    return _finish(part, dest, parsed, parsed[1])
                if parsed is None and total == offset:
                    return _finish(part, dest, parsed, None)
                part.unlink()
                continue
            raise DownloadError(f"could not download {url}: HTTP {e.code} {e.reason}") from e
        except (urllib.error.URLError, OSError) as e:
            reason = getattr(e, "reason", e)
            raise DownloadError(f"could not download {url}: {reason}") from e

        with response:
            length = response.headers.get("Content-Length")
            length = int(length) if length and length.isdigit() else None
            if offset and response.status == 206:
                start, _ = _content_range(response.headers.get("Content-Range"))
                if start != offset:
                    part.unlink()
                    continue
                mode = "ab"
            else:
                offset, mode = 0, "wb"  # no resume offered: start over
            total = offset + length if length is not None else None

            hasher = _new_hash(parsed[0]) if parsed else None
            if hasher is not None and offset:
                with open(part, "rb") as f:
                    while block := f.read(chunk):
                        hasher.update(block)
            received = offset
            bar = tqdm(
                total=total, initial=offset, unit="B", unit_scale=True, unit_divisor=1024,
                desc=dest.name, disable=not progress, leave=False,
            )
            try:
                with bar, open(part, mode) as out:
                    while block := response.read(chunk):
                        out.write(block)
                        if hasher is not None:
                            hasher.update(block)
                        received += len(block)
                        bar.update(len(block))
            except (http.client.HTTPException, OSError) as e:
                raise DownloadError(
                    f"download of {url} broke off after {received} bytes ({e!r}); run it again to resume"
                ) from e
        if total is not None and received != total:
            raise DownloadError(
                f"download of {url} stopped after {received} of {total} bytes; run it again to resume"
            )
        return _finish(part, dest, parsed, hasher.hexdigest() if hasher is not None else None)
    raise DownloadError(f"could not download {url}: the server would not continue or restart the download")


# ---------------------------------------------------------------------------------------------------- extract


def _relative_member(archive: Path, name: str, strip: int) -> PurePosixPath | None:
    """Member name -> path below the target after stripping, or ``None`` when nothing is left of it."""
    raw = name.replace("\\", "/")
    if raw.startswith("/") or re.match(r"^[A-Za-z]:", raw):
        raise UnsafeArchiveError(archive, name, "absolute path")
    parts = [p for p in raw.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise UnsafeArchiveError(archive, name, "'..' in path")
    parts = parts[strip:]
    return PurePosixPath(*parts) if parts else None


def _inside(path: str) -> bool:
    """Is a normalised relative posix path inside the target (not the target's parent or beyond)?"""
    norm = os.path.normpath(path).replace("\\", "/")
    return not (norm == ".." or norm.startswith("../") or norm.startswith("/"))


def _plan_tar(archive: Path, tf: tarfile.TarFile, strip: int) -> list[tarfile.TarInfo]:
    """Check every tar member and return renamed copies to extract (stripped, links rewritten)."""
    planned: list[tarfile.TarInfo] = []
    original: dict[str, str] = {}  # stripped name -> name in the archive, for error messages
    symlinks: set[PurePosixPath] = set()
    for member in tf.getmembers():
        rel = _relative_member(archive, member.name, strip)
        if not (member.isreg() or member.isdir() or member.issym() or member.islnk()):
            raise UnsafeArchiveError(archive, member.name, "device, fifo or other special file")
        if rel is None:
            continue
        new = copy.copy(member)
        new.name = str(rel)
        if member.issym():
            if member.linkname.startswith("/") or not _inside(str(rel.parent / member.linkname)):
                raise UnsafeArchiveError(archive, member.name, f"symlink to {member.linkname!r} points outside")
            symlinks.add(rel)
        elif member.islnk():
            try:
                link = _relative_member(archive, member.linkname, strip)
            except UnsafeArchiveError:
                link = None
            if link is None:
                raise UnsafeArchiveError(archive, member.name, f"hard link to {member.linkname!r} points outside")
            new.linkname = str(link)
        planned.append(new)
        original[new.name] = member.name
    # A path that runs through a symlink from the archive can resolve somewhere the names do not show.
    for new in planned:
        paths = [PurePosixPath(new.name)]
        if new.issym():
            paths.append(PurePosixPath(os.path.normpath(str(PurePosixPath(new.name).parent / new.linkname))))
        elif new.islnk():
            paths.append(PurePosixPath(new.linkname))
        for path in paths:
            if any(parent in symlinks for parent in path.parents):
                raise UnsafeArchiveError(
                    archive, original[new.name], "path goes through a symlink inside the archive"
                )
    return planned


def _plan_zip(archive: Path, zf: zipfile.ZipFile, strip: int) -> list[tuple[zipfile.ZipInfo, PurePosixPath]]:
    """Check every zip member; zip symlinks are written as plain files by this module, so they cannot escape."""
    planned = []
    for info in zf.infolist():
        rel = _relative_member(archive, info.filename, strip)
        if rel is not None:
            planned.append((info, rel))
    return planned


def _archive_kind(archive: Path) -> str:
    name = archive.name.lower()
    if name.endswith(".zip"):
        return "zip"
    if name.endswith((".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz")):
        return "tar"
    if zipfile.is_zipfile(archive):
        return "zip"
    if tarfile.is_tarfile(archive):
        return "tar"
    raise DownloadError(f"{archive.name}: not a .zip, .tar, .tar.gz or .tgz archive")


def safe_extract(
    archive: str | os.PathLike,
    target: str | os.PathLike,
    strip_components: int = 0,
    marker: str | None = None,
    replace: bool = False,
) -> Path:
    """Unpack a .zip/.tar/.tar.gz/.tgz into ``target`` without letting any member escape it.

    Every member is checked before anything is written: absolute paths, ``..``, links pointing outside and
    special files raise :class:`UnsafeArchiveError` naming the member.  Members are unpacked into a temporary
    sibling of ``target`` that replaces ``target`` only at the end (and only if ``marker``, when given, exists in
    it), so a failed run never leaves a half data set that looks complete.  An existing non-empty ``target`` is
    an error unless ``replace`` is true.
    """
    archive, target = Path(archive), Path(target)
    kind = _archive_kind(archive)
    if target.exists() and not replace and not (target.is_dir() and not any(target.iterdir())):
        raise FileExistsError(f"{target} already exists and is not empty; remove it or extract with replace")

    with (zipfile.ZipFile(archive) if kind == "zip" else tarfile.open(archive, "r:*")) as handle:
        if isinstance(handle, zipfile.ZipFile):
            zip_plan = _plan_zip(archive, handle, strip_components)
        else:
            tar_plan = _plan_tar(archive, handle, strip_components)

        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.extract-", dir=target.parent))
        try:
            if isinstance(handle, zipfile.ZipFile):
                for info, rel in zip_plan:
                    out = tmp.joinpath(*rel.parts)
                    if info.is_dir():
                        out.mkdir(parents=True, exist_ok=True)
                        continue
                    out.parent.mkdir(parents=True, exist_ok=True)
                    with handle.open(info) as src, open(out, "wb") as dst:
                        shutil.copyfileobj(src, dst, 1 << 20)
            else:
                # The "data" filter re-checks each member against the real file system as a second line of defence.
                extra = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
                handle.extractall(tmp, members=tar_plan, **extra)
            if marker is not None and not (tmp / marker).exists():
                top = sorted(p.name for p in tmp.iterdir())[:10]
                raise DownloadError(
                    f"{archive.name} unpacked (stripping {strip_components} leading folder(s)) without "
                    f"'{marker}'; top level holds {top}. The archive may have changed upstream."
                )
            _move_into_place(tmp, target, replace)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return target


def _move_into_place(tmp: Path, target: Path, replace: bool) -> None:
    """Swap ``tmp`` in as ``target`` with renames, deleting what was there only after the swap."""
    old: Path | None = None
    if target.is_dir() and not any(target.iterdir()):
        target.rmdir()
    elif target.exists() or target.is_symlink():
        if not replace:
            raise FileExistsError(f"{target} already exists and is not empty")
        old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
        old.rmdir()
        target.rename(old)
    tmp.rename(target)
    if old is not None:
        if old.is_dir() and not old.is_symlink():
            shutil.rmtree(old, ignore_errors=True)
        else:
            old.unlink(missing_ok=True)


# ---------------------------------------------------------------------------------------------------- data set


def download_root(root: str | os.PathLike | None = None) -> Path:
    """Where downloads go: ``root``, else ``$DDFAD_DATA`` (where the user said data lives), else the cache."""
    if root is not None:
        return Path(root).expanduser()
    if os.environ.get(ENV_DATA):
        return Path(os.environ[ENV_DATA]).expanduser()
    return default_data_root()


def download_dataset(
    name: str,
    root: str | os.PathLike | None = None,
    base_url: str | None = None,
    force: bool = False,
    progress: bool = True,
) -> Path:
    """Download, verify and unpack data set ``name`` into ``<root>/<folder_names[0]>`` and return that folder.

    The archive is kept in ``<root>/.downloads/`` so an interrupted run resumes and a repeated one does not
    fetch it again.  A data set already in place is returned untouched unless ``force``, which fetches and
    unpacks afresh (replacing the folder only once the new copy is complete).  ``base_url`` (or
    ``$DDFAD_DOWNLOAD_BASE_URL``) points at a mirror serving ``<base_url>/<filename>``.
    """
    source = get_source(name)
    layout = LAYOUTS[name]
    root = download_root(root)
    target = root / source.folder
    if layout.matches(target) and not force:
        return target.resolve()
    if target.exists() and not force and not (target.is_dir() and not any(target.iterdir())):
        raise FileExistsError(
            f"{target} exists but has no '{layout.marker}', so it is not a complete {name} data set; "
            "remove it or pass --force to replace it"
        )

    archive = root / DOWNLOADS_DIR / source.filename
    if force:
        archive.unlink(missing_ok=True)
        archive.with_suffix(archive.suffix + ".part").unlink(missing_ok=True)
    download_file(source_url(source, base_url), archive, source.checksum, progress=progress)
    safe_extract(archive, target, source.strip_components, marker=layout.marker, replace=force)
    return target.resolve()
