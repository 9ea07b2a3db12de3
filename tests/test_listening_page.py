"""The listening page (``DIR/audio/index.html``): self-contained, and it works in a real headless browser.

The page is built from a small export of real FSDD clips (the ``fsdd_root`` fixture; fails when absent).  The
browser test runs Debian's ``chromium`` (``apt-get install -y chromium``): it loads the page, lets its inline
script mark every player and image once the browser has decoded it, and reads those marks from the DOM; any
console message (a script error included) fails it; a screenshot must not be blank.  Without chromium the
browser test skips, which CI (``DDFAD_STRICT_TESTS=1``) turns into a failure.
"""

from __future__ import annotations

import base64
import io
import json
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from ddfad_apps.data.audio_io import read_many
from ddfad_apps.data.registry import list_clips
from ddfad_apps.distill.synthetic_set import SyntheticSet
from ddfad_apps.features.config import FeatureConfig
from ddfad_apps.features.normalize import FeatureStats
from ddfad_apps.reconstruct import write_audio_dataset, write_listening_page

SR = 8000
PER_CLASS = 2
CLASSES = ["0", "1", "2"]
BROWSERS = ("chromium", "chromium-browser", "google-chrome")


class _Media(HTMLParser):
    """Every tag's attributes, in document order."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, {k: v or "" for k, v in attrs}))

    def of(self, tag: str) -> list[dict[str, str]]:
        return [a for t, a in self.tags if t == tag]


def parse(path: Path) -> _Media:
    parser = _Media()
    parser.feed(path.read_text(encoding="utf-8"))
    return parser


def data_bytes(uri: str, mime: str) -> bytes:
    prefix = f"data:{mime};base64,"
    assert uri.startswith(prefix), uri[:60]
    return base64.b64decode(uri[len(prefix):], validate=True)


@pytest.fixture(scope="module")
def export(fsdd_root: Path, tmp_path_factory) -> tuple[Path, object]:
    """A run folder with a 3-class, 2-clips-per-class export of real clips, and the training clip list."""
    torch.set_num_threads(1)
    train = list_clips("fsdd", "train", data_root=fsdd_root.parent)
    labels = torch.tensor(train.labels)
    idx = [int((labels == c).nonzero()[-1 - k]) for c in range(3) for k in range(2)]  # not the page's originals
    waves, _ = read_many([train.paths[i] for i in idx], SR, train.num_samples, progress=False)
    config = FeatureConfig()
    feats = config.extract(waves, SR)
    stats = FeatureStats.fit(feats)
    syn = SyntheticSet(stats.apply(feats), torch.tensor([0, 0, 1, 1, 2, 2]), CLASSES, "mtt", lr=0.01, stats=stats,
                       meta={})
    folder = tmp_path_factory.mktemp("run")
    write_audio_dataset(syn, folder / "audio", SR, config, 1.0, n_iter=4)
    return folder, train


@pytest.fixture(scope="module")
def page(export) -> Path:
    folder, train = export
    return write_listening_page(folder, train, per_class=PER_CLASS)


def test_page_is_self_contained_with_originals_beside_distilled(export, page: Path) -> None:
    folder, train = export
    assert page == folder / "audio" / "index.html"
    text = page.read_text(encoding="utf-8")
    media = parse(page)
    # nothing outside the file: no links, scripts or styles from elsewhere, no network
    assert not re.search(r"https?://", text)
    assert not media.of("link") and all("src" not in a for a in media.of("script"))
    players, images = media.of("audio"), media.of("img")
    assert len(players) == len(images) == 2 * PER_CLASS * len(CLASSES)
    assert [a["class"] for a in media.of("figure")] == ["clip original"] * PER_CLASS + ["clip distilled"] * PER_CLASS \
        + (["clip original"] * PER_CLASS + ["clip distilled"] * PER_CLASS) * (len(CLASSES) - 1)
    for attrs in images:
        assert data_bytes(attrs["src"], "image/png")[:8] == b"\x89PNG\r\n\x1a\n"
    decoded = []
    for attrs in players:
        assert "controls" in attrs
        wave, rate = sf.read(io.BytesIO(data_bytes(attrs["src"], "audio/wav")), dtype="float32")
        assert rate == SR and wave.shape == (SR,)
        decoded.append(wave)
    # the originals are the first clips of each class in the training list, as the data set reads them
    first = [train.paths[train.labels.index(c)] for c in range(len(CLASSES))]
    originals, _ = read_many(first, SR, train.num_samples, progress=False)
    for c in range(len(CLASSES)):
        np.testing.assert_allclose(decoded[2 * PER_CLASS * c], originals[c].numpy(), atol=1e-4)
    # the distilled players play the exported WAVs
    manifest = json.loads((folder / "audio" / "manifest.json").read_text())
    for c, name in enumerate(CLASSES):
        for k in range(PER_CLASS):
            exported = sf.read(str(folder / "audio" / f"{name}/{name}_{k}.wav"), dtype="float32")[0]
            np.testing.assert_array_equal(decoded[2 * PER_CLASS * c + PER_CLASS + k], exported)
    gain_db = 20 * np.log10(manifest["clips"][0]["gain"])
    assert f"gain {gain_db:+.1f} dB" in text


def test_page_needs_an_export(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match=r"audio/manifest\.json"):
        write_listening_page(tmp_path)
    with pytest.raises(ValueError, match="per_class"):
        write_listening_page(tmp_path, per_class=0)


# --- in a real browser -----------------------------------------------------------------------------------


def browser() -> str:
    for name in BROWSERS:
        path = shutil.which(name)
        if path:
            return path
    pytest.skip("no headless browser (chromium) installed: apt-get install -y chromium")


def run_browser(exe: str, page: Path, profile: Path, *args: str) -> subprocess.CompletedProcess:
    """Headless chromium on ``page`` with its own profile (tests may run side by side), console to stderr."""
    cmd = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run",
           f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0", "--virtual-time-budget=10000",
           *args, page.resolve().as_uri()]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=180, check=False)
    assert done.returncode == 0, f"{cmd} exited {done.returncode}: {done.stderr[-2000:]}"
    return done


def console_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if ":CONSOLE" in line]


def states(dom: str, tag: str) -> list[str]:
    return [m.group(1) if m else "none" for m in
            (re.search(r'data-state="(\w+)"', t) for t in re.findall(rf"<{tag}\b[^>]*>", dom))]


def test_page_plays_in_headless_chromium(page: Path, tmp_path) -> None:
    exe = browser()
    n = 2 * PER_CLASS * len(CLASSES)
    done = run_browser(exe, page, tmp_path / "profile", "--dump-dom")
    assert states(done.stdout, "audio") == ["ok"] * n, "every player's source must load"
    assert states(done.stdout, "img") == ["ok"] * n, "every image must decode"
    assert f"{n} of {n} players ready" in done.stdout
    assert console_lines(done.stderr) == []

    # the same checks catch a broken page: an undecodable source, a missing image, a script error
    broken = tmp_path / "broken.html"
    text = page.read_text(encoding="utf-8")
    text = re.sub(r'(<audio [^>]*src=")data:audio/wav;base64,[^"]+', r"\1data:audio/wav;base64,AAAA", text, count=1)
    text = re.sub(r'(<img [^>]*src=")data:image/png;base64,[^"]+', r"\1missing.png", text, count=1)
    broken.write_text(text.replace("</body>", "<script>throw new Error('boom')</script></body>"), encoding="utf-8")
    bad = run_browser(exe, broken, tmp_path / "profile2", "--dump-dom")
    assert states(bad.stdout, "audio").count("error") == 1 and states(bad.stdout, "img").count("error") == 1
    assert any("boom" in line for line in console_lines(bad.stderr))

    shot = tmp_path / "page.png"
    run_browser(exe, page, tmp_path / "profile3", f"--screenshot={shot}", "--window-size=1280,1000")
    import matplotlib.image

    pixels = matplotlib.image.imread(str(shot))[..., :3]
    assert pixels.shape[:2] == (1000, 1280)
    colours = np.unique((pixels * 255).astype(np.uint8).reshape(-1, 3), axis=0)
    assert len(colours) > 100 and pixels.std() > 0.05, "the screenshot is blank"
