"""Distilled FD-MFCC back to playable audio: inverse DCT, NNLS mel inversion, fast Griffin-Lim, de-emphasis.

``functional`` holds the pure batched torch code, ``transforms`` the module wrapper, ``writer`` the WAV-folder
export that :func:`ddfad_apps.data.folder.list_folder` reads back, and ``figures`` the paper's Figure 6.
"""

from ddfad_apps.reconstruct.figures import plot_original_vs_distilled
from ddfad_apps.reconstruct.functional import (
    db_to_power, de_emphasis, fd_mfcc_to_audio, griffin_lim, istft, mel_to_stft_magnitude, mfcc_to_mel_db,
    spectral_convergence,
)
from ddfad_apps.reconstruct.transforms import FDMFCCInverse
from ddfad_apps.reconstruct.writer import write_audio_dataset

__all__ = [
    "FDMFCCInverse", "db_to_power", "de_emphasis", "fd_mfcc_to_audio", "griffin_lim", "istft",
    "mel_to_stft_magnitude", "mfcc_to_mel_db", "plot_original_vs_distilled", "spectral_convergence",
    "write_audio_dataset",
]
