#!/usr/bin/env bash
# Install ddfad-apps and everything it needs, on a fresh machine, into the current Python.
#
# torch is installed first and explicitly: torch 2.14.1 / torchvision 0.29.1 are the builds available offline on
# the project's machines; torchaudio 2.11.0's wheel runs on top of them (its transforms only need libtorch ops).
# Then the project itself with its test extras.  Override TORCH_SPEC for another torch (e.g. a CPU-only index).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
TORCH_SPEC=${TORCH_SPEC:-"torch==2.14.1 torchvision==0.29.1"}
$PY -m pip install --disable-pip-version-check -q $TORCH_SPEC
$PY -m pip install --disable-pip-version-check -q "torchaudio==2.11.0" --no-deps
$PY -m pip install --disable-pip-version-check -q -e ".[test,postgres]"
$PY -c "import torch, torchaudio, avalanche, optuna, librosa, mlflow; print('ddfad-apps installed: torch', torch.__version__, 'torchaudio', torchaudio.__version__)"
