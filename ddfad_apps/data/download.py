"""Fetch the official archives of the supported data sets and unpack them where :mod:`locate` looks.

Downloads are large (UrbanSound8K is about 6 GiB) and links are flaky, so a download resumes from its ``.part``
file, is only trusted once its checksum matches, and is unpacked through :func:`safe_extract`, which checks every
member before writing anything and moves the result into place only when it is complete.

Nothing from a mirror (``--base-url``, ``$DDFAD_DOWNLOAD_BASE_URL``) is used unverified: every archive has either a
pinned checksum or, where the host publishes none (FSDD's GitHub tarball), a pinned digest of its unpacked audio
(:class:`ContentPin`); such an archive gets its final name only after its content matched.  Each data set also caps
what its archive may unpack to (bytes and members), so an archive bomb is refused before it is written out, and no
archive may hold a symbolic or hard link at all.
"""

from __future__ import annotations

import copy
import gzip
import hashlib
import http.client
import lzma
import os
import re
import shutil
import stat
import tarfile
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import warnings
import zipfile
import zlib
from collections.abc import Callable
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

    def extend(self, text: str) -> DownloadError:
        """Append ``text`` to the message (what was done about the failure), keeping the error's type."""
        self.args = (f"{self.args[0]} {text}", *self.args[1:])
        return self


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


class ArchiveTooLargeError(DownloadError):
    """An archive would unpack to more bytes or members than its data set can hold (an archive bomb)."""

    def __init__(self, archive: Path, what: str, limit: int, found: int) -> None:
        super().__init__(
            f"{archive.name}: refusing to unpack: it holds more than {limit:,} {what} (counted {found:,} before "
            "stopping), far more than the data set has. Nothing was extracted."
        )
        self.what = what
        self.limit = limit
        self.found = found


class ContentMismatchError(DownloadError):
    """The unpacked files are not the data set's published content."""

    def __init__(self, archive: Path, subdir: str, expected: ContentPin, files: int, digest: str) -> None:
        super().__init__(
            f"{archive.name}: the unpacked '{subdir}/' holds {files} file(s) with content digest sha256:{digest}, "
            f"expected {expected.files} file(s) with sha256:{expected.sha256}. This is not the published data set "
            "(a mirror may serve another version); nothing was extracted."
        )
        self.files = files
        self.digest = digest


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
class ContentPin:
    """The exact unpacked content of a data set whose archive has no published checksum.

    ``files`` regular files lie under ``<data set folder>/<subdir>`` (recursively) and their
    :func:`content_digest` is ``sha256``.  Files outside ``subdir`` (README, scripts) are not pinned: loaders do
    not read them, and the size caps bound them.
    """

    subdir: str
    files: int
    sha256: str

    def __post_init__(self) -> None:
        if self.files <= 0 or not re.fullmatch(r"[0-9a-f]{64}", self.sha256):
            raise ValueError(f"ContentPin needs a positive file count and a sha256 hex digest, got {self!r}")


def content_digest(folder: str | os.PathLike, subdir: str) -> tuple[int, str]:
    """``(number of files, sha256)`` of the regular files under ``folder/subdir``, as :class:`ContentPin` pins.

    The digest is sha256 over the sorted lines ``<path relative to folder>\\0<sha256 of the file>\\n``, so it
    changes when any file is added, removed, renamed or altered.  Symbolic links are not followed or counted.
    """
    folder = Path(folder)
    lines = []
    for dirpath, _dirs, names in os.walk(folder / subdir):
        for name in names:
            path = Path(dirpath, name)
            if path.is_file() and not path.is_symlink():
                rel = path.relative_to(folder).as_posix()
                lines.append(f"{rel}\0{_file_digest(path, 'sha256')}\n")
    h = hashlib.sha256()
    for line in sorted(lines):
        h.update(line.encode())
    return len(lines), h.hexdigest()


@dataclass(frozen=True)
class ArchiveSource:
    """Where one data set's official archive lives and how it unpacks.

    ``checksum`` is ``'md5:<hex>'`` or ``'sha256:<hex>'`` as published by the host, or ``None`` when no digest is
    published; then ``content`` must pin the unpacked data instead, so that nothing is ever used unverified.
    ``strip_components`` leading path parts are dropped from every member (like ``tar --strip-components``) and
    the rest lands in ``<root>/<folder>``, so that ``<root>/<folder>/<layout marker>`` exists afterwards.
    ``max_bytes`` and ``max_members`` cap what the archive may unpack to (a margin over the real data set), so a
    small archive that would inflate to gigabytes is refused before anything is written.
    """

    name: str
    url: str
    filename: str
    checksum: str | None
    strip_components: int
    folder: str
    max_bytes: int
    max_members: int
    content: ContentPin | None = None

    def __post_init__(self) -> None:
        _parse_checksum(self.checksum)  # fail at import time, not after a 6 GiB download
        if self.checksum is None and self.content is None:
            raise ValueError(f"{self.name}: an archive source needs a pinned checksum or a pinned content digest")
        if self.max_bytes <= 0 or self.max_members <= 0:
            raise ValueError(f"{self.name}: max_bytes and max_members must be positive")


_MiB, _GiB = 1 << 20, 1 << 30

SOURCES: dict[str, ArchiveSource] = {
    # GitHub publishes no digest for tag archives (and does not promise byte-stable ones), so the unpacked
    # recordings are pinned instead: the 3,000 WAVs of tag v1.0.10 (git tree d04322e3 of recordings/, unchanged up
    # to commit 26eb9aaf), hashed from the copy in shared/data/fsdd.  The tarball holds
    # free-spoken-digit-dataset-1.0.10/{recordings/*.wav, README.md, utils/, ...}: 3,016 members, 21.1 MB.
    "fsdd": ArchiveSource(
        name="fsdd",
        url="https://github.com/Jakobovski/free-spoken-digit-dataset/archive/refs/tags/v1.0.10.tar.gz",
        filename="free-spoken-digit-dataset-1.0.10.tar.gz",
        checksum=None,
        strip_components=1,
        folder=FSDD.folder_names[0],
        max_bytes=64 * _MiB,
        max_members=6_000,
        content=ContentPin(
            subdir="recordings", files=3000, sha256="1971de6d210a657fc0b609a5bb473095188386d232f7540824707d103ddfcd5d"
        ),
    ),
    # Zenodo record 1188976; the zip holds Actor_01..Actor_24 at its top level.
    "ravdess": ArchiveSource(
        name="ravdess",
        url="https://zenodo.org/records/1188976/files/Audio_Speech_Actors_01-24.zip?download=1",
        filename="Audio_Speech_Actors_01-24.zip",
        checksum="md5:bc696df654c87fed845eb13823edef8a",
        strip_components=0,
        folder=RAVDESS.folder_names[0],
        # 1,440 WAVs at 48 kHz/16 bit (about 0.6 GB) in 24 folders.
        max_bytes=2 * _GiB,
        max_members=3_000,
    ),
    # Zenodo record 1203745; the tarball holds UrbanSound8K/{metadata,audio}.
    "urbansound8k": ArchiveSource(
        name="urbansound8k",
        url="https://zenodo.org/records/1203745/files/UrbanSound8K.tar.gz?download=1",
        filename="UrbanSound8K.tar.gz",
        checksum="md5:9aa69802bbf37fb986f71ec1483a196e",
        strip_components=1,
        folder=URBANSOUND8K.folder_names[0],
        # 8,732 WAVs (about 6-7 GB) in 10 folds, plus metadata and macOS side files.
        max_bytes=16 * _GiB,
        max_members=40_000,
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


def _finish(
    part: Path, dest: Path, parsed: tuple[str, str] | None, digest: str | None,
    verify: Callable[[Path], None] | None = None,
) -> Path:
    """Accept ``part`` as ``dest`` if its digest matches and ``verify`` passes (warn when nothing can be checked).

    Only an accepted file is renamed to ``dest``, so a later run never mistakes a refused one for a good one.
    """
    if parsed is None and verify is None:
        warnings.warn(
            f"{dest.name}: no checksum is published for this file, so it could not be verified.",
            UnverifiedDownloadWarning,
            stacklevel=3,
        )
    elif parsed is not None:
        algorithm, expected = parsed
        actual = digest if digest is not None else _file_digest(part, algorithm)
        if actual != expected:
            part.unlink(missing_ok=True)
            raise ChecksumError(dest, algorithm, expected, actual)
    if verify is not None:
        _verify_or_delete(part, dest, verify)
    part.replace(dest)
    return dest


def _verify_or_delete(path: Path, dest: Path, verify: Callable[[Path], None]) -> None:
    """Run ``verify(path)``; when it refuses the file (a :class:`DownloadError`), delete it and re-raise.

    Other failures (an interrupt, a full disk) say nothing about the file, so it stays for the next run, which
    verifies it again before using it.
    """
    try:
        verify(path)
    except DownloadError as e:
        path.unlink(missing_ok=True)
        e.extend(f"The downloaded {dest.name} was deleted so that no later run reuses it.")
        raise


def download_file(
    url: str,
    dest: str | os.PathLike,
    checksum: str | None = None,
    progress: bool = True,
    chunk: int = 1 << 20,
    timeout: float = 30,
    verify: Callable[[Path], None] | None = None,
) -> Path:
    """Download ``url`` to ``dest``, resuming ``dest.part`` and trusting the result only when ``checksum`` matches.

    A ``dest`` that is already there with the right checksum is kept as is.  Bytes go to ``<dest>.part`` first; a
    part left by an interrupted run is continued with an HTTP Range request (a server that answers 200 instead of
    206 is read from byte zero).  On a checksum mismatch the part is deleted and :class:`ChecksumError` raised;
    on a dropped connection the part is kept so the next call resumes.

    ``verify(path)``, when given, is a further check (such as unpacking and comparing the content) run on the
    complete file before it gets the name ``dest``, and on a ``dest`` already there before it is reused; a file it
    refuses with a :class:`DownloadError` is deleted (an existing ``dest`` is then fetched again).  With neither
    ``checksum`` nor ``verify`` nothing can be verified and an :class:`UnverifiedDownloadWarning` is issued.
    """
    dest = Path(dest)
    parsed = _parse_checksum(checksum)
    part = dest.with_suffix(dest.suffix + ".part")

    if dest.is_file():
        intact = parsed is None or _file_digest(dest, parsed[0], chunk) == parsed[1]
        if intact and verify is not None:
            try:
                _verify_or_delete(dest, dest, verify)
                return dest
            except DownloadError as e:
                warnings.warn(f"{e} Fetching it again.", stacklevel=2)
        elif intact and parsed is None:
            warnings.warn(
                f"{dest.name}: reusing an earlier download that could not be verified (no checksum is published).",
                UnverifiedDownloadWarning,
                stacklevel=2,
            )
            return dest
        elif intact:
            return dest
        dest.unlink(missing_ok=True)  # corrupt, stale or refused: fetch it again
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
                    return _finish(part, dest, parsed, parsed[1], verify)
                if parsed is None and total == offset:
                    return _finish(part, dest, parsed, None, verify)
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
        return _finish(part, dest, parsed, hasher.hexdigest() if hasher is not None else None, verify)
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


class _Budget:
    """Counts members and unpacked bytes against a data set's caps while an archive is planned."""

    def __init__(self, archive: Path, max_bytes: int | None, max_members: int | None) -> None:
        self.archive, self.max_bytes, self.max_members = archive, max_bytes, max_members
        self.bytes = self.members = 0

    def add(self, size: int) -> None:
        self.members += 1
        self.bytes += size
        if self.max_members is not None and self.members > self.max_members:
            raise ArchiveTooLargeError(self.archive, "members", self.max_members, self.members)
        if self.max_bytes is not None and self.bytes > self.max_bytes:
            raise ArchiveTooLargeError(self.archive, "bytes unpacked", self.max_bytes, self.bytes)


def _plan_tar(archive: Path, tf: tarfile.TarFile, strip: int, budget: _Budget) -> list[tarfile.TarInfo]:
    """Check every tar member and return renamed (stripped) copies to extract.

    Only regular files and folders are accepted.  Links are refused outright rather than followed: a chain of
    links that each look harmless can still resolve outside the target, and Python's own ``data`` filter is
    missing on some 3.10 releases.  Members are read one at a time, so a header bomb stops at the member cap.
    """
    planned: list[tarfile.TarInfo] = []
    for member in tf:
        rel = _relative_member(archive, member.name, strip)
        if member.issym() or member.islnk():
            raise UnsafeArchiveError(archive, member.name, f"link to {member.linkname!r} (links are not accepted)")
        if member.issparse() or not (member.isreg() or member.isdir()):
            raise UnsafeArchiveError(archive, member.name, "device, fifo, sparse or other special file")
        budget.add(member.size if member.isreg() else 0)  # tar writes exactly the size its header declares
        if rel is None:
            continue
        new = copy.copy(member)
        new.name = str(rel)
        planned.append(new)
    return planned


def _plan_zip(
    archive: Path, zf: zipfile.ZipFile, strip: int, budget: _Budget
) -> list[tuple[zipfile.ZipInfo, PurePosixPath]]:
    """Check every zip member; symbolic links (by their Unix mode) are refused as in tar archives.

    ``zipfile`` stops each member at the size its directory entry declares, so the declared sizes bound what is
    written.
    """
    planned = []
    for info in zf.infolist():
        rel = _relative_member(archive, info.filename, strip)
        if stat.S_ISLNK(info.external_attr >> 16):
            raise UnsafeArchiveError(archive, info.filename, "symbolic link (links are not accepted)")
        budget.add(info.file_size)
        if rel is not None:
            planned.append((info, rel))
    return planned


def _archive_kind(archive: Path) -> str:
    name = archive.name.lower().removesuffix(".part")
    if name.endswith(".zip"):
        return "zip"
    if name.endswith((".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz")):
        return "tar"
    if zipfile.is_zipfile(archive):
        return "zip"
    if tarfile.is_tarfile(archive):
        return "tar"
    raise DownloadError(f"{archive.name}: not a .zip, .tar, .tar.gz or .tgz archive")


# What a truncated or corrupt archive raises while it is read (gzip.BadGzipFile is an OSError, not a disk error).
_FILTER_ERRORS = getattr(tarfile, "FilterError", ())
_CORRUPT = (tarfile.TarError, zipfile.BadZipFile, EOFError, gzip.BadGzipFile, zlib.error, lzma.LZMAError)


def _check_content(archive: Path, folder: Path, content: ContentPin) -> None:
    files, digest = content_digest(folder, content.subdir)
    if (files, digest) != (content.files, content.sha256):
        raise ContentMismatchError(archive, content.subdir, content, files, digest)


def safe_extract(
    archive: str | os.PathLike,
    target: str | os.PathLike,
    strip_components: int = 0,
    marker: str | None = None,
    replace: bool = False,
    max_bytes: int | None = None,
    max_members: int | None = None,
    content: ContentPin | None = None,
) -> Path:
    """Unpack a .zip/.tar/.tar.gz/.tgz into ``target`` without letting any member escape it.

    Every member is checked before anything is written: absolute paths, ``..``, any symbolic or hard link and
    special files raise :class:`UnsafeArchiveError` naming the member, and more than ``max_members`` members or
    ``max_bytes`` unpacked bytes raise :class:`ArchiveTooLargeError`.  Members are unpacked into a temporary
    sibling of ``target`` that replaces ``target`` only at the end, and only if ``marker`` (when given) exists in
    it and the files pinned by ``content`` (when given) match (else :class:`ContentMismatchError`), so a failed
    run never leaves a half or unverified data set.  An existing non-empty ``target`` is an error unless
    ``replace`` is true.  A corrupt archive raises :class:`DownloadError`.
    """
    archive, target = Path(archive), Path(target)
    kind = _archive_kind(archive)
    if target.exists() and not replace and not (target.is_dir() and not any(target.iterdir())):
        raise FileExistsError(f"{target} already exists and is not empty; remove it or extract with replace")

    budget = _Budget(archive, max_bytes, max_members)
    try:
        with (zipfile.ZipFile(archive) if kind == "zip" else tarfile.open(archive, "r:*")) as handle:
            if isinstance(handle, zipfile.ZipFile):
                zip_plan = _plan_zip(archive, handle, strip_components, budget)
            else:
                tar_plan = _plan_tar(archive, handle, strip_components, budget)

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
                    # The "data" filter re-checks each member against the real file system as a second line of
                    # defence where this Python has it.
                    extra = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
                    handle.extractall(tmp, members=tar_plan, **extra)
                if marker is not None and not (tmp / marker).exists():
                    top = sorted(p.name for p in tmp.iterdir())[:10]
                    raise DownloadError(
                        f"{archive.name} unpacked (stripping {strip_components} leading folder(s)) without "
                        f"'{marker}'; top level holds {top}. The archive may have changed upstream."
                    )
                if content is not None:
                    _check_content(archive, tmp, content)
                _move_into_place(tmp, target, replace)
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
    except _FILTER_ERRORS as e:  # only reached if the checks above missed something
        raise UnsafeArchiveError(archive, e.tarinfo.name, str(e)) from e
    except _CORRUPT as e:
        raise DownloadError(f"{archive.name}: not a readable archive ({e}); nothing was extracted.") from e
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
    fetch it again.  It is unpacked within the data set's size caps; an archive without a published checksum
    is unpacked from its ``.part`` file and renamed only once its content matched the pinned digest (a refused
    one is deleted, and one left by an earlier run is checked again before it is reused).  A data set already
    in place is returned untouched unless ``force``, which fetches and unpacks afresh (replacing the folder only
    once the new copy is complete).  ``base_url`` (or
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

    def unpack(path: Path) -> None:
        safe_extract(
            path, target, source.strip_components, marker=layout.marker, replace=force,
            max_bytes=source.max_bytes, max_members=source.max_members, content=source.content,
        )

    url = source_url(source, base_url)
    if source.checksum is None:
        # Only the unpacked content vouches for these bytes, so unpacking is part of accepting the download.
        download_file(url, archive, None, progress=progress, verify=unpack)
    else:
        # Verified by its checksum: kept even if unpacking fails, since fetching it again would give the same bytes.
        download_file(url, archive, source.checksum, progress=progress)
        unpack(archive)
    return target.resolve()
