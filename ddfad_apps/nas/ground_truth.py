"""Ground truth: each architecture trained on the whole training set, computed once per data set and space.

It is a study of its own (proxy ``full``) in the same storage, so it is shared by every proxy and every
sample, computed in parallel by the same workers, and grows on demand: asking for architectures it already
holds costs nothing.  Its trials use the ``arch`` encoding over the whole space, so every request agrees on
the parameter's choices.
"""

from __future__ import annotations

from dataclasses import replace

from ddfad_apps.nas.job import NASJob
from ddfad_apps.nas.proxies import ProxySpec, proxy_spec
from ddfad_apps.nas.study import study_name


def ground_truth_job(job: NASJob, truth: ProxySpec | None = None) -> NASJob:
    """The ground-truth study matching ``job``'s data set and space (``truth`` defaults to proxy ``full``)."""
    truth = truth or proxy_spec("full")
    if not truth.whole_data:
        raise ValueError(f"the ground truth must train on the whole training set, got method {truth.method!r}")
    space = job.search_space()
    name = study_name(job.dataset, space.name, truth.digest(), None, "full", features=job.features_tag())
    return replace(job, study=name, proxy=truth, archs=[space.key(c) for c in space.configs()], sampler="grid",
                   n_trials=None)
