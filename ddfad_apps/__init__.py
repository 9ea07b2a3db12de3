"""ddfad-apps: dataset distillation for audio (DDFAD) and its applications.

Sub-packages, one idea each:

- ``ddfad_apps.data``      audio data sets (FSDD, RAVDESS, UrbanSound8K, folders), locating and downloading them
- ``ddfad_apps.features``  FD-MFCC (and MFCC, LPCC) extraction: pure functions plus thin ``nn.Module`` wrappers
- ``ddfad_apps.models``    ConvNet / ResNet18 / VGG11 for FD-MFCC input, usable with ``torch.func.functional_call``
- ``ddfad_apps.training``  whole-data training and evaluation loops
- ``ddfad_apps.tracking``  MLflow logging helpers
- ``ddfad_apps.cli``       the ``ddfad-apps`` command line
"""

__version__ = "0.1.0"

import os as _os

# Small-tensor torch code on a few shared cores: OpenMP threads that spin while waiting for work make it
# 3x slower when idle cores are scarce, and far slower under load (scripts/bench_features.py).  Passive
# waits are set here, before this package's modules import torch, unless the user chose otherwise; it has
# no effect if torch's OpenMP runtime already started.
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
# Activations of a training step are tens of MB; glibc maps each one afresh and the kernel faults it in 4 KiB at a
# time (a third of the CPU time here).  2 MiB pages for torch's large CPU tensors: 0.74-0.77x the wall time of a
# ConvNet step (scripts/bench_allocator.py).  Read by torch at its first large allocation.
_os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")

import warnings as _warnings

# Avalanche imports qpsolvers for its GEM plugin at import time, which warns that no QP solver is installed; this
# toolkit never runs GEM, so the warning (on every command that touches Avalanche) says nothing to its users.
_warnings.filterwarnings("ignore", message="no QP solver found", category=UserWarning, module="qpsolvers")
