"""Distilled FD-MFCC back to playable audio: inverse DCT, NNLS mel inversion, fast Griffin-Lim, de-emphasis.

``functional`` holds the pure batched torch code, ``transforms`` the module wrapper, ``writer`` the WAV-folder
export that :func:`ddfad_apps.data.folder.list_folder` reads back, ``figures`` the paper's Figure 6, ``fidelity``
the measures of how faithful a reconstruction is, and ``page`` the self-contained listening page.
"""

from ddfad_apps.reconstruct.fidelity import (
    PeakStats, RoundTrip, audio_accuracy, frame_rate_line, log_spectral_distance, peak_stats, roundtrip_accuracy,
    spectral_convergence_to,
)
from ddfad_apps.reconstruct.figures import plot_original_vs_distilled
from ddfad_apps.reconstruct.functional import (
    db_to_power, de_emphasis, fd_mfcc_to_audio, griffin_lim, istft, mel_to_stft_magnitude, mfcc_to_mel_db,
    spectral_convergence,
)
from ddfad_apps.reconstruct.page import write_listening_page
from ddfad_apps.reconstruct.transforms import FDMFCCInverse
from ddfad_apps.reconstruct.writer import write_audio_dataset

__all__ = [
    "FDMFCCInverse", "PeakStats", "RoundTrip", "audio_accuracy", "db_to_power", "de_emphasis", "fd_mfcc_to_audio",
    "frame_rate_line", "griffin_lim", "istft", "log_spectral_distance", "mel_to_stft_magnitude", "mfcc_to_mel_db", "peak_stats",
    "plot_original_vs_distilled", "roundtrip_accuracy", "spectral_convergence", "spectral_convergence_to",
    "write_audio_dataset", "write_listening_page",
]
