"""A plain Avalanche experiment (Naive + ReplayPlugin) whose replay memory is distilled: the one-line change.

Everything below is the usual Avalanche recipe - a class-incremental benchmark, a model, ``Naive`` with a
``ReplayPlugin`` and an ``EvaluationPlugin`` - except the ``storage_policy=`` argument, which swaps Avalanche's
default (experience-balanced random exemplars) for :class:`strategies.DistilledMemory`: after each experience
every new class is distilled into ``--mem-per-class`` synthetic FD-MFCC clips.  ``--memory default`` runs the
same experiment with Avalanche's own buffer for comparison.  ``--strategy eeil`` runs
:class:`strategies.EEIL` instead, which owns the replay (no ``ReplayPlugin``: it would replay a second memory)
and adds cross-distillation and balanced fine-tuning.  ``storage.check_stream`` refuses an impossible budget or
input shape before anything trains.

    python scripts/example_avalanche_replay.py --dataset fsdd --method dm
    python scripts/example_avalanche_replay.py --dataset fsdd --memory default
    python scripts/example_avalanche_replay.py --dataset fsdd --method dm --strategy eeil
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # spinning OpenMP threads slow small CPU models a lot

import torch  # noqa: E402
from avalanche.evaluation.metrics import accuracy_metrics, forgetting_metrics, loss_metrics  # noqa: E402
from avalanche.logging import InteractiveLogger  # noqa: E402
from avalanche.training import Naive  # noqa: E402
from avalanche.training.plugins import EvaluationPlugin, ReplayPlugin  # noqa: E402

from ddfad_apps.continual.benchmarks import feature_benchmark  # noqa: E402
from ddfad_apps.features import load_features  # noqa: E402
from ddfad_apps.models import build_model  # noqa: E402
from strategies import EEIL, DistilledMemory, MLflowLogger  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", default="fsdd")
    p.add_argument("--data-root", default=None)
    p.add_argument("--memory", choices=["distilled", "default"], default="distilled")
    p.add_argument("--method", default="mtt", help="distillation method: mtt, dm, dc, dsa, herding, ...")
    p.add_argument("--mem-per-class", type=int, default=20)
    p.add_argument("--experiences", type=int, default=5)
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--strategy", choices=["naive", "eeil"], default="naive",
                   help="naive: Naive + ReplayPlugin; eeil: strategies.EEIL (its own replay, distillation, fine-tuning)")
    p.add_argument("--tracking-uri", default=None, help="also log the metrics to this MLflow store")
    args = p.parse_args()

    splits = load_features(args.dataset, args.data_root)
    benchmark = feature_benchmark(splits.train, splits.test, args.experiences, seed=args.seed)
    torch.manual_seed(args.seed)
    model = build_model("convnet", splits.train.num_classes, splits.train.input_shape, width=32)
    mem_size = args.mem_per_class * splits.train.num_classes

    # the one line: a distilled memory as Avalanche's replay storage policy
    storage = (DistilledMemory(mem_size, args.mem_per_class, method=args.method, model_kwargs={"width": 32},
                               progress=True)
               if args.memory == "distilled" else None)
    if storage is not None:
        storage.check_stream(benchmark.train_stream)  # budget, clips per class, input shape: before any training
    if args.strategy == "eeil" and storage is None:
        p.error("--strategy eeil needs --memory distilled (EEIL takes one of the strategies' class memories)")

    loggers = [InteractiveLogger()]
    if args.tracking_uri:
        loggers.append(MLflowLogger(experiment="avalanche-replay", run_name=f"{args.dataset}-{args.memory}",
                                    tracking_uri=args.tracking_uri, params=vars(args)))
    common = {
        "model": model,
        "optimizer": torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9),
        "criterion": torch.nn.CrossEntropyLoss(),
        "train_mb_size": 64, "train_epochs": args.epochs, "eval_mb_size": 512,
        "evaluator": EvaluationPlugin(accuracy_metrics(experience=True, stream=True),
                                      loss_metrics(epoch=True), forgetting_metrics(experience=True, stream=True),
                                      loggers=loggers),
    }
    if args.strategy == "eeil":
        strategy = EEIL(storage_policy=storage, finetune_epochs=args.epochs, **common)
    else:
        strategy = Naive(plugins=[ReplayPlugin(mem_size=mem_size, storage_policy=storage)], **common)
    for t, experience in enumerate(benchmark.train_stream):
        print(f"experience {t}: classes {sorted(experience.classes_in_this_experience)}")
        strategy.train(experience)
        strategy.eval(benchmark.test_stream[: t + 1])
    for logger in loggers:
        if isinstance(logger, MLflowLogger):
            logger.close()


if __name__ == "__main__":
    main()
