"""Downloader, safe extraction and the ``data`` command, against a Range-capable HTTP server on 127.0.0.1."""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import http.server
import io
import random
import re
import shutil
import stat
import tarfile
import threading
import warnings
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from ddfad_apps.cli.main import cli
from ddfad_apps.data import download as dl
from ddfad_apps.data.download import (
    ArchiveTooLargeError,
    ChecksumError,
    ContentMismatchError,
    ContentPin,
    DownloadError,
    UnsafeArchiveError,
    UnverifiedDownloadWarning,
    content_digest,
    download_dataset,
    download_file,
    safe_extract,
)

WAV = b"RIFF" + random.Random(0).randbytes(10_000)  # any bytes do; incompressible so archives are ~10 KiB
MEMBER = "free-spoken-digit-dataset-1.0.10/recordings/0_jackson_0.wav"


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def make_tar(members: dict[str, bytes], symlinks: dict[str, str] | None = None,
             hardlinks: dict[str, str] | None = None) -> bytes:
    """A .tar.gz built from ``name -> bytes`` (names kept verbatim, even unsafe ones) plus ``name -> link target``."""
    buf = io.BytesIO()
    # mtime=0 in the gzip header: the same members give the same bytes whichever second they are packed in.
    with gzip.GzipFile(fileobj=buf, mode="wb", mtime=0) as gz, tarfile.open(fileobj=gz, mode="w") as tf:
        links = [(tarfile.SYMTYPE, n, t) for n, t in (symlinks or {}).items()]
        links += [(tarfile.LNKTYPE, n, t) for n, t in (hardlinks or {}).items()]
        for kind, name, link in links:
            info = tarfile.TarInfo(name)
            info.type, info.linkname = kind, link
            tf.addfile(info)
        for name, payload in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            tf.addfile(info, io.BytesIO(payload))
    return buf.getvalue()


def make_zip(members: dict[str, bytes], symlinks: dict[str, str] | None = None) -> bytes:
    """A deflated .zip of ``name -> bytes`` plus Unix symlinks ``name -> target`` (as ``zip --symlinks`` writes)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, target in (symlinks or {}).items():
            info = zipfile.ZipInfo(name)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            zf.writestr(info, target)
        for name, payload in members.items():
            zf.writestr(zipfile.ZipInfo(name), payload, compress_type=zipfile.ZIP_DEFLATED)
    return buf.getvalue()


class FileServer:
    """Serves ``files`` (path -> bytes) and records each request's path, Range header, status and body size."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.requests: list[dict] = []
        self.honour_range = True
        self.cut_after: int | None = None  # send only this many body bytes, then drop the connection
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
                body = server.files.get(self.path)
                rng = self.headers.get("Range")
                record = {"path": self.path, "range": rng, "status": 404, "sent": 0}
                server.requests.append(record)
                if body is None:
                    self.send_error(404)
                    return
                start, status = 0, 200
                m = re.fullmatch(r"bytes=(\d+)-(\d*)", rng or "")
                if m and server.honour_range:
                    start = int(m.group(1))
                    end = int(m.group(2)) if m.group(2) else len(body) - 1
                    if start >= len(body):
                        record["status"] = 416
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(body)}")
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    body, status = body[start : end + 1], 206
                self.send_response(status)
                if status == 206:
                    full = len(server.files[self.path])
                    self.send_header("Content-Range", f"bytes {start}-{start + len(body) - 1}/{full}")
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Accept-Ranges", "bytes")
                self.end_headers()
                if server.cut_after is not None:
                    body = body[: server.cut_after]
                    self.close_connection = True
                # recorded before the body goes out: the client may finish and assert before this thread resumes
                record.update(status=status, sent=len(body))
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)

    def url(self, name: str) -> str:
        return f"{self.base_url}/{name}"


@pytest.fixture(autouse=True)
def isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Never touch the real cache, and ignore any mirror configured in the developer's shell."""
    monkeypatch.setenv("DDFAD_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("DDFAD_DATA", raising=False)
    monkeypatch.delenv("DDFAD_DOWNLOAD_BASE_URL", raising=False)


@pytest.fixture
def server() -> Iterator[FileServer]:
    srv = FileServer()
    srv.thread.start()
    try:
        yield srv
    finally:
        srv.httpd.shutdown()
        srv.httpd.server_close()
        srv.thread.join(timeout=5)


def use_test_archive(monkeypatch: pytest.MonkeyPatch, server: FileServer, filename: str, payload: bytes,
                     checksum: str | None = "from payload", content: ContentPin | None = None) -> None:
    """Point the fsdd registry entry at ``payload`` served as ``filename``, verified by ``checksum`` or ``content``.

    The real size caps stay; the real content pin is replaced by ``content``.
    """
    server.files["/" + filename] = payload
    checksum = sha256(payload) if checksum == "from payload" else checksum
    entry = dataclasses.replace(dl.SOURCES["fsdd"], filename=filename, checksum=checksum, content=content)
    monkeypatch.setitem(dl.SOURCES, "fsdd", entry)


def pin_of(members: dict[str, bytes], tmp_path: Path) -> ContentPin:
    """The content pin of the recordings in an FSDD-like archive's ``members`` (written out and hashed)."""
    folder = tmp_path / "pin-source"
    for name, payload in members.items():
        out = folder.joinpath(*name.split("/")[1:])  # strip the top folder, as the archive is unpacked
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(payload)
    files, digest = content_digest(folder, "recordings")
    return ContentPin("recordings", files, digest)


def tree(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


# ------------------------------------------------------------------------------------------------ download_dataset


@pytest.mark.parametrize("filename, build", [("fsdd.tar.gz", make_tar), ("fsdd.zip", make_zip)])
def test_download_verify_unpack(tmp_path, server, monkeypatch, filename, build):
    use_test_archive(monkeypatch, server, filename, build({MEMBER: WAV}))
    root = tmp_path / "data"
    folder = download_dataset("fsdd", root=root, base_url=server.base_url, progress=False)
    assert folder == (root / "fsdd").resolve()
    assert (folder / "recordings" / "0_jackson_0.wav").read_bytes() == WAV
    assert tree(root) == {".downloads", f".downloads/{filename}", "fsdd", "fsdd/recordings",
                          "fsdd/recordings/0_jackson_0.wav"}  # no .part, no temporary folders
    # Already there: no second request.
    n = len(server.requests)
    assert download_dataset("fsdd", root=root, base_url=server.base_url, progress=False) == folder
    assert len(server.requests) == n


def test_base_url_from_environment(tmp_path, server, monkeypatch):
    use_test_archive(monkeypatch, server, "fsdd.tar.gz", make_tar({MEMBER: WAV}))
    monkeypatch.setenv("DDFAD_DOWNLOAD_BASE_URL", server.base_url + "/")
    monkeypatch.setenv("DDFAD_DATA", str(tmp_path / "env-data"))
    folder = download_dataset("fsdd", progress=False)
    assert folder == (tmp_path / "env-data" / "fsdd").resolve()
    assert server.requests[0]["path"] == "/fsdd.tar.gz"


def test_archive_without_marker_leaves_no_dataset(tmp_path, server, monkeypatch):
    use_test_archive(monkeypatch, server, "fsdd.tar.gz", make_tar({"top/other/0_jackson_0.wav": WAV}))
    root = tmp_path / "data"
    with pytest.raises(DownloadError, match="recordings"):
        download_dataset("fsdd", root=root, base_url=server.base_url, progress=False)
    assert tree(root) == {".downloads", ".downloads/fsdd.tar.gz"}


def test_unknown_dataset_lists_valid_names(tmp_path):
    with pytest.raises(ValueError, match="fsdd, ravdess, urbansound8k"):
        download_dataset("timit", root=tmp_path)


def test_registry_matches_layouts():
    from ddfad_apps.data.layouts import LAYOUTS

    assert set(dl.SOURCES) == set(LAYOUTS)
    for name, source in dl.SOURCES.items():
        assert source.folder == LAYOUTS[name].folder_names[0]
    assert dl.SOURCES["ravdess"].checksum == "md5:bc696df654c87fed845eb13823edef8a"
    assert dl.SOURCES["urbansound8k"].checksum == "md5:9aa69802bbf37fb986f71ec1483a196e"


def test_every_archive_is_pinned_and_capped():
    for source in dl.SOURCES.values():
        assert source.checksum is not None or source.content is not None, source.name
        assert source.max_bytes > 0 and source.max_members > 0
    assert dl.SOURCES["fsdd"].content == ContentPin(
        "recordings", 3000, "1971de6d210a657fc0b609a5bb473095188386d232f7540824707d103ddfcd5d"
    )
    with pytest.raises(ValueError, match="pinned checksum or a pinned content"):
        dataclasses.replace(dl.SOURCES["fsdd"], checksum=None, content=None)


def test_fsdd_pin_matches_the_real_recordings(data_root):
    """The pinned digest is that of FSDD v1.0.10's recordings, the copy the tests use."""
    pin = dl.SOURCES["fsdd"].content
    assert content_digest(data_root / "fsdd", pin.subdir) == (pin.files, pin.sha256)


def test_unverified_archive_is_refused_deleted_and_never_reused(tmp_path, server, monkeypatch):
    """No published checksum: the archive is accepted only if its unpacked recordings match the pinned content."""
    good = {MEMBER: WAV}
    bad = {MEMBER: WAV[:-1] + b"!"}  # one byte changed
    pin = pin_of(good, tmp_path)
    root = tmp_path / "data"

    use_test_archive(monkeypatch, server, "fsdd.tar.gz", make_tar(bad), checksum=None, content=pin)
    for _run in range(2):  # the second run fetches again rather than trusting what the first one refused
        with pytest.raises(ContentMismatchError, match=r"recordings/.*1 file\(s\).*deleted"):
            download_dataset("fsdd", root=root, base_url=server.base_url, progress=False)
        assert tree(root) == {".downloads"}  # no archive, no .part, no data set, no temporary folder
    assert len(server.requests) == 2

    # An archive an older version left unverified under its final name is checked before it is reused.
    (root / ".downloads" / "fsdd.tar.gz").write_bytes(make_tar(bad))
    server.files["/fsdd.tar.gz"] = make_tar(good)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        folder = download_dataset("fsdd", root=root, base_url=server.base_url, progress=False)
    assert [type(w.message) for w in caught] == [UserWarning]  # "... was deleted ... Fetching it again."
    assert "Fetching it again" in str(caught[0].message)
    assert (folder / "recordings" / "0_jackson_0.wav").read_bytes() == WAV
    assert (root / ".downloads" / "fsdd.tar.gz").read_bytes() == make_tar(good)
    assert len(server.requests) == 3

    # The accepted archive is reused (checked again, without a request or a warning) once the folder is gone.
    shutil.rmtree(folder)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        download_dataset("fsdd", root=root, base_url=server.base_url, progress=False)
    assert (folder / "recordings" / "0_jackson_0.wav").read_bytes() == WAV
    assert len(server.requests) == 3


def test_corrupt_unverified_archive_is_refused(tmp_path, server, monkeypatch):
    payload = make_tar({MEMBER: WAV})
    use_test_archive(monkeypatch, server, "fsdd.tar.gz", payload[: len(payload) // 2], checksum=None,
                     content=pin_of({MEMBER: WAV}, tmp_path))
    root = tmp_path / "data"
    with pytest.raises(DownloadError, match=r"fsdd\.tar\.gz.*not a readable archive.*deleted"):
        download_dataset("fsdd", root=root, base_url=server.base_url, progress=False)
    assert tree(root) == {".downloads"}


@pytest.mark.slow  # 3,000 real files unpacked and hashed: a few seconds, more on a busy machine
def test_real_fsdd_from_a_mirror_is_verified_by_its_content(data_root, tmp_path, server):
    """The registry's own FSDD entry (no checksum): the real recordings pass, without any warning."""
    source = dl.SOURCES["fsdd"]
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:  # uncompressed: 21 MB of WAV barely compresses anyway
        tf.add(data_root / "fsdd" / "recordings", arcname="free-spoken-digit-dataset-1.0.10/recordings")
        tf.add(data_root / "fsdd" / "README.md", arcname="free-spoken-digit-dataset-1.0.10/README.md")
    server.files["/" + source.filename] = buf.getvalue()
    root = tmp_path / "data"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        folder = download_dataset("fsdd", root=root, base_url=server.base_url, progress=False)
    assert len(list((folder / "recordings").iterdir())) == 3000
    assert (root / ".downloads" / source.filename).is_file()


@pytest.mark.parametrize("filename, build", [("fsdd.tar.gz", make_tar), ("fsdd.zip", make_zip)])
def test_archive_bomb_is_refused_before_it_is_written(tmp_path, server, monkeypatch, filename, build):
    """A small archive inflating past FSDD's cap (64 MiB, three times the real data set) is not unpacked."""
    size = dl.SOURCES["fsdd"].max_bytes + 1
    payload = build({MEMBER: WAV, "free-spoken-digit-dataset-1.0.10/recordings/big.wav": bytes(size)})
    assert len(payload) < size // 100
    use_test_archive(monkeypatch, server, filename, payload)
    root = tmp_path / "data"
    with pytest.raises(ArchiveTooLargeError, match=f"{filename}.*more than 67,108,864 bytes"):
        download_dataset("fsdd", root=root, base_url=server.base_url, progress=False)
    assert tree(root) == {".downloads", f".downloads/{filename}"}  # verified by its checksum, so kept


@pytest.mark.parametrize("build", [make_tar, make_zip])
def test_too_many_members_are_refused(tmp_path, build):
    archive = tmp_path / ("a.zip" if build is make_zip else "a.tar.gz")
    archive.write_bytes(build({f"top/recordings/{i}.wav": b"x" for i in range(6)}))
    with pytest.raises(ArchiveTooLargeError, match="more than 5 members"):
        safe_extract(archive, tmp_path / "out" / "fsdd", strip_components=1, max_members=5)
    assert not (tmp_path / "out").exists()
    safe_extract(archive, tmp_path / "out" / "fsdd", strip_components=1, max_members=6, max_bytes=6)
    assert len(tree(tmp_path / "out" / "fsdd" / "recordings")) == 6


# ----------------------------------------------------------------------------------------------------- download_file


def test_resume_partial_download(tmp_path, server):
    payload = make_tar({MEMBER: WAV})
    server.files["/a.tar.gz"] = payload
    dest = tmp_path / "a.tar.gz"
    half = len(payload) // 2
    (tmp_path / "a.tar.gz.part").write_bytes(payload[:half])
    download_file(server.url("a.tar.gz"), dest, sha256(payload), progress=False)
    assert dest.read_bytes() == payload
    assert not (tmp_path / "a.tar.gz.part").exists()
    [req] = server.requests
    assert req["range"] == f"bytes={half}-"
    assert (req["status"], req["sent"]) == (206, len(payload) - half)


def test_dropped_connection_keeps_part_for_next_run(tmp_path, server):
    payload = make_tar({MEMBER: WAV})
    server.files["/a.tar.gz"] = payload
    server.cut_after = cut = len(payload) // 2
    dest = tmp_path / "a.tar.gz"
    with pytest.raises(DownloadError, match="resume"):
        download_file(server.url("a.tar.gz"), dest, sha256(payload), progress=False, chunk=64)
    assert not dest.exists() and (tmp_path / "a.tar.gz.part").stat().st_size == cut
    server.cut_after = None
    download_file(server.url("a.tar.gz"), dest, sha256(payload), progress=False)
    assert dest.read_bytes() == payload
    assert server.requests[-1]["range"] == f"bytes={cut}-"


def test_server_ignoring_range_restarts_from_zero(tmp_path, server):
    payload = make_tar({MEMBER: WAV})
    server.files["/a.tar.gz"] = payload
    server.honour_range = False
    dest = tmp_path / "a.tar.gz"
    (tmp_path / "a.tar.gz.part").write_bytes(b"garbage that must not be kept")
    download_file(server.url("a.tar.gz"), dest, sha256(payload), progress=False)
    assert dest.read_bytes() == payload
    assert server.requests[0]["status"] == 200


def test_complete_part_is_accepted_after_416(tmp_path, server):
    payload = make_tar({MEMBER: WAV})
    server.files["/a.tar.gz"] = payload
    (tmp_path / "a.tar.gz.part").write_bytes(payload)
    download_file(server.url("a.tar.gz"), tmp_path / "a.tar.gz", sha256(payload), progress=False)
    assert (tmp_path / "a.tar.gz").read_bytes() == payload
    assert [r["status"] for r in server.requests] == [416]


def test_wrong_checksum_leaves_nothing(tmp_path, server):
    payload = make_tar({MEMBER: WAV})
    server.files["/a.tar.gz"] = payload
    wrong = "md5:" + "0" * 32
    with pytest.raises(ChecksumError) as info:
        download_file(server.url("a.tar.gz"), tmp_path / "a.tar.gz", wrong, progress=False)
    assert "0" * 32 in str(info.value) and hashlib.md5(payload).hexdigest() in str(info.value)
    assert list(tmp_path.iterdir()) == []


def test_present_verified_file_is_not_fetched_again(tmp_path, server):
    payload = b"already here"
    (tmp_path / "a.bin").write_bytes(payload)
    download_file(server.url("a.bin"), tmp_path / "a.bin", sha256(payload), progress=False)
    assert server.requests == []


def test_missing_checksum_warns(tmp_path, server):
    server.files["/a.bin"] = b"x" * 100
    with pytest.warns(UnverifiedDownloadWarning, match="could not be verified"):
        download_file(server.url("a.bin"), tmp_path / "a.bin", None, progress=False)
    assert (tmp_path / "a.bin").read_bytes() == b"x" * 100


def test_http_error_is_a_download_error(tmp_path, server):
    with pytest.raises(DownloadError, match="HTTP 404"):
        download_file(server.url("nope"), tmp_path / "nope", None, progress=False)


# ------------------------------------------------------------------------------------------------------ safe_extract


def _unsafe_archives(tmp_path: Path) -> dict[str, tuple[str, bytes]]:
    outside = tmp_path / "abs-evil.txt"
    return {
        "tar-dotdot": ("bad.tar.gz", make_tar({MEMBER: WAV, "../evil.txt": b"x"})),
        "tar-absolute": ("bad.tar.gz", make_tar({MEMBER: WAV, str(outside): b"x"})),
        "tar-symlink": ("bad.tar.gz", make_tar({MEMBER: WAV}, symlinks={"top/link": "../../.."})),
        "tar-hardlink": ("bad.tar.gz", make_tar({MEMBER: WAV}, hardlinks={"top/link": "../../etc/passwd"})),
        "tar-through-symlink": ("bad.tar.gz", make_tar({"top/l/evil.txt": b"x"}, symlinks={"top/l": "."})),
        # each link looks inside on its own; x/l1/.. is the target's parent
        "tar-symlink-chain": ("bad.tar.gz", make_tar({MEMBER: WAV}, symlinks={"top/x/l1": "..", "top/l2": "x/l1/.."})),
        "tar-hardlink-to-symlink": ("bad.tar.gz", make_tar({MEMBER: WAV}, symlinks={"top/x/l1": ".."},
                                                           hardlinks={"top/hlink": "top/x/l1"})),
        "zip-symlink": ("bad.zip", make_zip({MEMBER: WAV}, symlinks={"top/link": "../../.."})),
        "zip-dotdot": ("bad.zip", make_zip({MEMBER: WAV, "top/../../evil.txt": b"x"})),
        "zip-absolute": ("bad.zip", make_zip({MEMBER: WAV, str(outside): b"x"})),
    }


@pytest.mark.parametrize("case", ["tar-dotdot", "tar-absolute", "tar-symlink", "tar-hardlink", "tar-through-symlink",
                                  "tar-symlink-chain", "tar-hardlink-to-symlink", "zip-dotdot", "zip-absolute",
                                  "zip-symlink"])
def test_unsafe_archive_is_refused_before_writing(tmp_path, case):
    filename, payload = _unsafe_archives(tmp_path)[case]
    work = tmp_path / "work"
    work.mkdir()
    archive = work / filename
    archive.write_bytes(payload)
    before = tree(tmp_path)
    with pytest.raises(UnsafeArchiveError) as info:
        safe_extract(archive, work / "out" / "fsdd", strip_components=1, marker="recordings")
    assert info.value.member in str(info.value)
    assert any(s in info.value.member for s in ("evil", "link", "/l"))
    assert tree(tmp_path) == before  # nothing written anywhere, not even the target's parent


def test_unsafe_download_leaves_no_dataset(tmp_path, server, monkeypatch):
    use_test_archive(monkeypatch, server, "fsdd.tar.gz", make_tar({MEMBER: WAV, "../evil.txt": b"x"}))
    root = tmp_path / "data"
    with pytest.raises(UnsafeArchiveError, match=r"\.\./evil\.txt"):
        download_dataset("fsdd", root=root, base_url=server.base_url, progress=False)
    assert not (root / "fsdd").exists()
    assert not (tmp_path / "evil.txt").exists() and not (root / "evil.txt").exists()


def test_extract_refuses_non_empty_target_unless_replace(tmp_path):
    archive = tmp_path / "a.tar.gz"
    archive.write_bytes(make_tar({MEMBER: WAV}))
    target = tmp_path / "fsdd"
    target.mkdir()
    (target / "keep.txt").write_text("user data")
    with pytest.raises(FileExistsError):
        safe_extract(archive, target, strip_components=1)
    assert tree(target) == {"keep.txt"}
    safe_extract(archive, target, strip_components=1, marker="recordings", replace=True)
    assert tree(target) == {"recordings", "recordings/0_jackson_0.wav"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.tar.gz", "fsdd"]


# ------------------------------------------------------------------------------------------------------------- CLI


def test_cli_list_found_and_missing(tmp_path, monkeypatch):
    data = tmp_path / "data"
    (data / "fsdd" / "recordings").mkdir(parents=True)
    (data / "UrbanSound8K" / "metadata").mkdir(parents=True)  # no csv: not a data set
    monkeypatch.setenv("DDFAD_DATA", str(data))
    result = CliRunner().invoke(cli, ["data", "list"])
    assert result.exit_code == 0, result.output
    lines = {line.split()[0]: line for line in result.output.splitlines() if not line.startswith("Searched")}
    assert "found" in lines["fsdd"] and str((data / "fsdd").resolve()) in lines["fsdd"]
    assert "missing" in lines["ravdess"] and "<root>/ravdess/Actor_01" in lines["ravdess"]
    assert "missing" in lines["urbansound8k"] and "metadata/UrbanSound8K.csv" in lines["urbansound8k"]

    empty = tmp_path / "empty"
    empty.mkdir()
    result = CliRunner().invoke(cli, ["data", "list", "--data-root", str(empty)])
    assert result.exit_code == 0, result.output
    assert result.output.count("missing") == 3  # an explicit root means that root only


def test_cli_download_end_to_end(tmp_path, server, monkeypatch):
    use_test_archive(monkeypatch, server, "fsdd.tar.gz", make_tar({MEMBER: WAV}))
    root = tmp_path / "data"
    runner = CliRunner()
    result = runner.invoke(cli, ["data", "download", "fsdd", "--data-root", str(root), "--base-url", server.base_url])
    assert result.exit_code == 0, result.output
    assert (root / "fsdd" / "recordings" / "0_jackson_0.wav").read_bytes() == WAV
    result = runner.invoke(cli, ["data", "list", "--data-root", str(root)])
    assert re.search(r"^fsdd\s+found\s", result.output, re.M), result.output

    # --force replaces the folder with a fresh copy.
    (root / "fsdd" / "recordings" / "stale.wav").write_bytes(b"old")
    result = runner.invoke(cli, ["data", "download", "fsdd", "--data-root", str(root), "--base-url",
                                 server.base_url, "--force"])
    assert result.exit_code == 0, result.output
    assert tree(root / "fsdd") == {"recordings", "recordings/0_jackson_0.wav"}


def test_cli_download_errors_and_warnings(tmp_path, server, monkeypatch):
    runner = CliRunner()
    result = runner.invoke(cli, ["data", "download", "timit", "--data-root", str(tmp_path)])
    assert result.exit_code != 0 and "fsdd" in result.output and "urbansound8k" in result.output

    use_test_archive(monkeypatch, server, "fsdd.tar.gz", make_tar({MEMBER: WAV}), checksum="md5:" + "0" * 32)
    result = runner.invoke(cli, ["data", "download", "fsdd", "--data-root", str(tmp_path / "a"), "--base-url",
                                 server.base_url])
    assert result.exit_code == 1 and "Error:" in result.output and "checksum mismatch" in result.output

    # No checksum: the content is checked, and a mismatch is an error, not a warning.
    use_test_archive(monkeypatch, server, "fsdd.tar.gz", make_tar({MEMBER: WAV}), checksum=None,
                     content=pin_of({MEMBER: b"other audio"}, tmp_path))
    result = runner.invoke(cli, ["data", "download", "fsdd", "--data-root", str(tmp_path / "b"), "--base-url",
                                 server.base_url])
    assert result.exit_code == 1 and "Error:" in result.output and "not the published data set" in result.output
    assert tree(tmp_path / "b") == {".downloads"}
