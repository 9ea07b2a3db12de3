"""Sound evidence: one evaluation protocol for every set, and statistics that say what the seeds support.

``stats`` (mean, std, t-intervals, paired differences, verdicts), ``protocol`` (carve a validation split from the
training data, choose the learning rate on it for every set alike, test fresh networks) and ``compare`` (methods
over set seeds and evaluation seeds, paired); ``noise`` (the paper's waveform-noise robustness, evaluated with the
protocol).
"""

from ddfad_apps.evidence.compare import (
    Comparison, MethodResult, compare, eval_seeds_for, validated_choice, validation_score,
)
from ddfad_apps.evidence.protocol import Carved, EvalProtocol, SetEvaluation, evaluate_set, select_lr
from ddfad_apps.evidence.stats import Summary, paired_difference, summarize, t_interval, verdict

__all__ = ["Carved", "Comparison", "EvalProtocol", "MethodResult", "SetEvaluation", "Summary", "compare",
           "eval_seeds_for", "evaluate_set", "paired_difference", "select_lr", "summarize", "t_interval",
           "validated_choice", "validation_score", "verdict"]
