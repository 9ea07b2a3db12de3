"""Audio data sets: find them on disk, list a split's clips, decode them to fixed-length waveforms.

``list_clips(name, split)`` is the entry point; it returns a :class:`ClipList` whose ``load()`` decodes audio.
"""

from ddfad_apps.data.audio_io import AudioReadError, read_audio
from ddfad_apps.data.clips import ClipList, EmptyClassError, WaveformSet
from ddfad_apps.data.locate import DatasetNotFoundError, cache_dir, find_dataset_dir
from ddfad_apps.data.registry import DATASETS, DatasetSpec, list_clips

__all__ = [
    "AudioReadError", "ClipList", "DATASETS", "DatasetNotFoundError", "DatasetSpec", "EmptyClassError",
    "WaveformSet", "cache_dir", "find_dataset_dir", "list_clips", "read_audio",
]
