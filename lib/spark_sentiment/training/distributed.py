"""Training on several processes with Spark's TorchDistributor (``train.num_processes > 1``).

The same :func:`trainer.fit` runs in every process that ``torchrun`` starts; the HF Trainer sees the
torchrun environment and trains data-parallel (DDP: NCCL across GPUs, gloo on CPU). Rank 0 sends its
weights back as safetensors bytes, and the driver logs, packages and registers as in one process, so the
MLflow run and the registry see one model either way. ``train.distributed_local_mode`` runs the
processes on the driver node (its GPUs or cores) or, false, as Spark tasks on the executors.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from ..model.base import load_base
from .fit import Fitted

log = logging.getLogger(__name__)


def _process_main(cfg: Any, train: dict[str, list], evaluation: dict[str, list]) -> dict[str, Any] | None:
    """One torchrun process; returns rank 0's weights, curves and eval predictions (every rank the same)."""
    import torch
    from datasets import Dataset
    from safetensors.torch import save

    from spark_sentiment.training.fit import fit

    world = int(os.environ.get("WORLD_SIZE", "1"))
    if not torch.cuda.is_available():
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // world))  # processes share the node's cores
    fitted = fit(cfg, Dataset.from_dict(train), Dataset.from_dict(evaluation), report_to=[])
    payload = None
    if int(os.environ.get("RANK", "0")) == 0:
        weights = {k: v.detach().cpu().contiguous() for k, v in fitted.model.state_dict().items()}
        payload = {
            "weights": save(weights),
            "log_history": fitted.log_history,
            "metrics": fitted.metrics,
            "world_size": world,
        }
    # In local mode every process pickles its return value to the SAME output file and the last writer
    # wins; a rank that returned None there replaced rank 0's weights now and then (the intermittent
    # "None" result). Every rank returns rank 0's payload, so whichever writes last writes the same thing.
    if world > 1 and torch.distributed.is_available() and torch.distributed.is_initialized():
        box = [payload]
        torch.distributed.broadcast_object_list(box, src=0)
        payload = box[0]
    return payload


def fit_distributed(cfg: Any, train_ds: Any, eval_ds: Any):
    """Train under TorchDistributor; returns a :class:`trainer.Fitted` built on the driver from rank 0."""
    import mlflow
    import torch
    from pyspark.ml.torch.distributor import TorchDistributor
    from pyspark.sql import SparkSession
    from safetensors.torch import load

    if cfg.train.distributed_local_mode:
        use_gpu = torch.cuda.is_available()
    else:  # executors: GPUs only where tasks are given them
        use_gpu = SparkSession.active().conf.get("spark.task.resource.gpu.amount", None) is not None
    distributor = TorchDistributor(
        num_processes=cfg.train.num_processes, local_mode=cfg.train.distributed_local_mode, use_gpu=use_gpu
    )
    log.info(
        "TorchDistributor: %d processes, local_mode=%s, gpu=%s",
        cfg.train.num_processes,
        cfg.train.distributed_local_mode,
        use_gpu,
    )
    result = distributor.run(_process_main, cfg, train_ds.to_dict(), eval_ds.to_dict())
    if not result:
        raise RuntimeError("TorchDistributor returned no result from rank 0 (see the processes' log above)")
    model, tokenizer = load_base(cfg.model.base, cfg.model.labels, cfg.train.max_length, cfg.train.seed)
    model.load_state_dict(load(result["weights"]))
    for entry in result["log_history"]:  # the per-step curves the Trainer callback would have logged
        values = {k: float(v) for k, v in entry.items() if isinstance(v, (int, float)) and k not in ("step",)}
        mlflow.log_metrics(values, step=int(entry.get("step", 0)))
    mlflow.log_param("world_size", result["world_size"])
    return Fitted(model, tokenizer, result["log_history"], result["metrics"])
