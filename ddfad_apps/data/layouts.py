"""How each supported data set looks on disk, written once for loaders, ``data list`` and ``data download``.

The first of ``folder_names`` is where :func:`ddfad_apps.data.download.download_dataset` puts a data set; the
others are names people commonly get from unpacking the upstream archives by hand, so those are found too.
"""

from __future__ import annotations

from ddfad_apps.data.locate import Layout

FSDD = Layout(
    name="fsdd",
    folder_names=("fsdd", "free-spoken-digit-dataset", "free-spoken-digit-dataset-master"),
    marker="recordings",
    description="Free Spoken Digit Dataset: recordings/{digit}_{speaker}_{index}.wav",
)

RAVDESS = Layout(
    name="ravdess",
    folder_names=("ravdess", "ravdess-speech-16k", "Audio_Speech_Actors_01-24"),
    marker="Actor_01",
    description="RAVDESS speech: Actor_01..Actor_24/MM-VV-EE-II-SS-RR-AA.wav (or .flac)",
)

URBANSOUND8K = Layout(
    name="urbansound8k",
    folder_names=("UrbanSound8K", "urbansound8k"),
    marker="metadata/UrbanSound8K.csv",
    description="UrbanSound8K: metadata/UrbanSound8K.csv plus audio/fold1..fold10/*.wav",
)

LAYOUTS: dict[str, Layout] = {layout.name: layout for layout in (FSDD, RAVDESS, URBANSOUND8K)}
