"""A listening page for an audio export: ``DIR/audio/index.html``, originals beside distilled clips, per class.

Every player's audio and every waveform/spectrogram image is embedded as a ``data:`` URI, so the page is one
self-contained file: no network, no external JS or CSS, and it plays the same from the file system, from a copied
folder and inside MLflow's artifact viewer (which shows HTML from a ``blob:`` URL in a sandboxed iframe, where a
relative ``src`` would not reach the other artifacts).  A few lines of inline script mark each player
``data-state="ok"`` once the browser has decoded its header (or ``"error"``) and count them at the top, and mark
each image the same way once decoded; the browser test reads those marks.
"""

from __future__ import annotations

import base64
import html
import io
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from PIL import Image  # matplotlib's own dependency

from ddfad_apps.data.audio_io import read_many
from ddfad_apps.data.clips import ClipList
from ddfad_apps.reconstruct.fidelity import peak_stats
from ddfad_apps.reconstruct.figures import DB_RANGE, _spectrogram_db
from ddfad_apps.reconstruct.writer import MANIFEST

PAGE_FILE = "index.html"
AUDIO_DIR = "audio"
PNG_COLOURS = 32


@dataclass
class _Clip:
    title: str
    wave: np.ndarray  # float32 (T,), as it is played
    note: str


def _wav_uri(wave: np.ndarray, sample_rate: int) -> str:
    buffer = io.BytesIO()
    sf.write(buffer, np.clip(wave, -1.0, 1.0), sample_rate, format="WAV", subtype="PCM_16")
    return "data:audio/wav;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _picture_uri(wave: np.ndarray, sample_rate: int, color: str, dpi: int = 80) -> str:
    """Waveform over dB spectrogram, small (about 260 x 150 px), as a PNG data URI."""
    fig = Figure(figsize=(3.25, 1.9), dpi=dpi)
    FigureCanvasAgg(fig)
    ax_wave, ax_spec = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": (1, 2), "hspace": 0.05})
    fig.subplots_adjust(left=0.02, right=0.98, top=0.98, bottom=0.02)
    duration = len(wave) / sample_rate
    peak = float(np.abs(wave).max()) or 1.0
    ax_wave.plot(np.arange(len(wave)) / sample_rate, wave / peak, lw=0.4, color=color)
    ax_wave.set_ylim(-1.05, 1.05)
    n_fft = 1 << (int(0.032 * sample_rate) - 1).bit_length()
    ax_spec.imshow(_spectrogram_db(torch.from_numpy(wave.astype(np.float32)), n_fft).numpy(), origin="lower",
                   aspect="auto", cmap="magma", extent=(0, duration, 0, sample_rate / 2000), vmin=-DB_RANGE, vmax=0)
    ax_wave.set_xlim(0, duration)
    for ax in (ax_wave, ax_spec):
        ax.set_axis_off()
    fig.canvas.draw()
    # 32 colours: a quarter of the bytes of a full-colour PNG (a spectrogram barely compresses), looks the same
    image = Image.fromarray(np.asarray(fig.canvas.buffer_rgba())[..., :3]).quantize(PNG_COLOURS)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _card(clip: _Clip, kind: str, sample_rate: int) -> str:
    color = "#1f77b4" if kind == "original" else "#ff7f0e"
    return (
        f'<figure class="clip {kind}"><figcaption>{html.escape(clip.title)}</figcaption>'
        f'<img alt="waveform and spectrogram of {html.escape(clip.title)}" '
        f'src="{_picture_uri(clip.wave, sample_rate, color)}">'
        f'<audio controls preload="metadata" src="{_wav_uri(clip.wave, sample_rate)}"></audio>'
        f'<div class="note">{html.escape(clip.note)}</div></figure>'
    )


def _originals(real_clips: ClipList | None, classes: list[str], per_class: int) -> dict[str, list[_Clip]]:
    """The first ``per_class`` real clips of each class, read at the data set's rate and length."""
    if real_clips is None or per_class == 0:
        return {}
    chosen: list[tuple[str, Path]] = []
    for name in classes:
        if name not in real_clips.classes:
            continue
        label = real_clips.classes.index(name)
        paths = [p for p, y in zip(real_clips.paths, real_clips.labels) if y == label][:per_class]
        chosen.extend((name, p) for p in paths)
    if not chosen:
        return {}
    waves, kept = read_many([p for _, p in chosen], real_clips.sample_rate, real_clips.num_samples,
                            on_error="skip", progress=False)
    out: dict[str, list[_Clip]] = {}
    for row, i in enumerate(kept):
        name, path = chosen[i]
        wave = waves[row].numpy().astype(np.float32)
        peak = float(peak_stats(waves[row]).peak)
        out.setdefault(name, []).append(_Clip(Path(path).name, wave, f"original, peak {peak:.2f}"))
    return out


_STYLE = """
body { font: 14px system-ui, sans-serif; margin: 1.5em; color: #222; background: #fff; }
h1 { font-size: 1.4em; } h2 { font-size: 1.15em; margin: 1.2em 0 0.3em; border-bottom: 1px solid #ddd; }
.row { display: flex; flex-wrap: wrap; gap: 10px; align-items: flex-start; margin: 0.3em 0; }
.kind { width: 6.5em; font-weight: 600; padding-top: 2em; }
figure.clip { margin: 0; padding: 6px; border: 1px solid #ddd; border-radius: 6px; width: 262px; }
figure.original { background: #f2f7fc; } figure.distilled { background: #fdf5ee; }
figure.clip img { display: block; width: 260px; height: 152px; }
figure.clip audio { width: 260px; height: 32px; margin-top: 4px; }
figcaption { font-size: 0.85em; margin-bottom: 3px; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
.note { font-size: 0.8em; color: #555; } .state-error { color: #b00; }
"""

_SCRIPT = """
(function () {
  var players = document.querySelectorAll("audio");
  var status = document.getElementById("players");
  function update() {
    var ok = document.querySelectorAll('audio[data-state="ok"]').length;
    var bad = document.querySelectorAll('audio[data-state="error"]').length;
    status.textContent = ok + " of " + players.length + " players ready" + (bad ? ", " + bad + " failed" : "");
    status.className = bad ? "state-error" : "";
  }
  players.forEach(function (a) {
    function ok() { a.dataset.state = "ok"; update(); }
    function bad() { a.dataset.state = "error"; update(); }
    // a source may have loaded, or failed, before this script ran: look first, then listen
    if (a.error) { bad(); } else if (a.readyState >= 1) { ok(); } else { a.addEventListener("loadedmetadata", ok); }
    a.addEventListener("error", bad);
  });
  document.querySelectorAll("img").forEach(function (img) {
    function mark() { img.dataset.state = img.naturalWidth > 0 ? "ok" : "error"; }
    if (img.complete) { mark(); } else { img.addEventListener("load", mark); img.addEventListener("error", mark); }
  });
  update();
})();
"""


def write_listening_page(
    folder: str | Path, real_clips: ClipList | None = None, per_class: int = 3, max_classes: int | None = None,
) -> Path:
    """Write ``folder/audio/index.html`` for the export in ``folder/audio`` and return its path.

    Per class: up to ``per_class`` original clips (the first of that class in ``real_clips``, the split the set was
    distilled from; none when it is ``None``) above up to ``per_class`` distilled clips, each with a player, a
    waveform and a spectrogram.  The distilled clips are the exported WAVs themselves (peak-normalised; the note
    gives the gain the export applied).
    """
    if per_class < 1:
        raise ValueError(f"per_class must be at least 1, got {per_class}")
    audio_dir = Path(folder) / AUDIO_DIR
    manifest_path = audio_dir / MANIFEST
    if not manifest_path.exists():
        raise FileNotFoundError(f"{manifest_path} not found: write the audio export first (`ddfad-apps reconstruct`)")
    manifest = json.loads(manifest_path.read_text())
    sample_rate = int(manifest["sample_rate"])
    classes = list(manifest["classes"])[: max_classes or None]
    distilled: dict[str, list[_Clip]] = {}
    for clip in manifest["clips"]:
        name = clip["class"]
        if name not in classes or len(distilled.get(name, [])) >= per_class:
            continue
        path = audio_dir / clip["path"]
        try:
            wave, rate = sf.read(str(path), dtype="float32", always_2d=False)
        except (OSError, RuntimeError) as exc:
            raise ValueError(f"cannot read exported clip {path}: {exc}") from exc
        if rate != sample_rate:
            raise ValueError(f"{path} has {rate} Hz, the manifest says {sample_rate} Hz")
        gain = clip.get("gain")
        gain_note = f", gain {20 * np.log10(gain):+.1f} dB" if gain else ""
        peak = float(peak_stats(torch.from_numpy(wave)).peak)
        distilled.setdefault(name, []).append(_Clip(Path(clip["path"]).name, wave, f"distilled, peak {peak:.2f}"
                                                    f"{gain_note}"))
    originals = _originals(real_clips, classes, per_class)

    meta = manifest.get("source_meta") or {}
    method = manifest.get("method") or "?"
    recon = manifest.get("reconstruction", {})
    title = f"{method} distilled set: {manifest.get('num_clips', '?')} clips, {len(manifest['classes'])} classes"
    summary = (f"{sample_rate} Hz, {manifest.get('duration', '?')} s; reconstruction: {recon.get('algorithm', '?')},"
               f" {recon.get('n_iter', '?')} iterations, {recon.get('synthesis_overlap', 1)}x overlapped synthesis,"
               f" normalised to peak {recon.get('peak', '?')}")
    if meta.get("dataset"):
        summary = f"data set {meta['dataset']}; " + summary
    parts = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>{html.escape(title)}</h1><p>{html.escape(summary)}</p>",
        ('<p>Blue: original clips of the training split; orange: distilled clips. Images: waveform (peak-normalised)'
         f' over the spectrogram (0-{sample_rate // 2000} kHz, {DB_RANGE:.0f} dB range). <span id="players"></span></p>'),
    ]
    for name in classes:
        parts.append(f'<section class="class"><h2>{html.escape(name)}</h2>')
        for kind, clips in (("original", originals.get(name, [])), ("distilled", distilled.get(name, []))):
            if not clips:
                continue
            parts.append(f'<div class="row"><div class="kind">{kind}</div>')
            parts.extend(_card(c, kind, sample_rate) for c in clips)
            parts.append("</div>")
        parts.append("</section>")
    parts.append(f"<script>{_SCRIPT}</script></body></html>")
    page = audio_dir / PAGE_FILE
    tmp = page.with_name(f".{PAGE_FILE}.tmp")
    tmp.write_text("\n".join(parts), encoding="utf-8")
    tmp.replace(page)
    return page
