"""``qfx train FLOW.yaml``: the training subcommand (the main ``qfx`` CLI registers it)."""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import torch

from qfx.data.cifar10 import UnsafePickleError
from qfx.training import distributed as qdist
from qfx.training.checkpoint import CheckpointError
from qfx.training.config import ConfigError, load_train_config, run_training

__all__ = ["register", "run_train_command", "main"]


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``train`` subcommand; its handler is ``args.func(args) -> exit code``.

    Example:
        >>> parser = argparse.ArgumentParser(prog="qfx")
        >>> _ = register(parser.add_subparsers(dest="command"))
        >>> args = parser.parse_args(["train", "flow.yaml", "--epochs", "2"])
        >>> args.func is run_train_command, args.epochs
        (True, 2)
    """
    p = subparsers.add_parser(
        "train", help="train a model described by a flow YAML",
        description="Train the model of a flow YAML (dataset, model, training, optional "
                    "quantization) and write a pickle-free checkpoint, history.json and "
                    "training.png to its out_dir.",
    )
    p.add_argument("config", type=Path, metavar="FLOW.yaml", help="flow / training config")
    p.add_argument("--out-dir", type=Path, help="override out_dir (default: runs/<name>)")
    p.add_argument("--device", help="override training.device (cpu, cuda, cuda:1, ...)")
    p.add_argument("--epochs", type=int, help="override training.epochs")
    p.add_argument("--seed", type=int, help="override training.seed")
    p.add_argument("--data-root", help="override dataset.root (CIFAR-10 folder)")
    p.add_argument("--resume", type=Path, metavar="CHECKPOINT.npz",
                   help="continue from a checkpoint written by qfx train")
    p.add_argument("--threads", type=int, metavar="N",
                   help="torch CPU threads (1 is often fastest for small models)")
    p.add_argument("--nproc", type=int, metavar="N",
                   help="override training.nproc: train with DistributedDataParallel on N local "
                        "processes (gloo on cpu, NCCL on cuda; batch_size is per process). "
                        "Under torchrun (torchrun --nproc-per-node N -m qfx train FLOW.yaml) "
                        "the world comes from torchrun")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=run_train_command)
    return p


def run_train_command(args: argparse.Namespace) -> int:
    """Run ``qfx train`` for parsed ``args``; returns the exit code (0 ok, 2 bad input).

    Example:
        >>> run_train_command(parser.parse_args(["train", "flow.yaml"]))  # doctest: +SKIP
        0
    """
    def fail(err: Exception) -> int:
        if getattr(args, "debug", False):  # the main qfx parser's --debug: show the traceback
            raise err
        print(f"qfx train: error: {err}", file=sys.stderr)
        return 2

    try:
        if args.threads is not None:
            if args.threads < 1:
                raise ValueError(f"--threads must be >= 1, got {args.threads}")
            torch.set_num_threads(args.threads)
        config = load_train_config(args.config)
        overrides = {k: v for k, v in (("device", args.device), ("epochs", args.epochs),
                                       ("seed", args.seed),
                                       ("nproc", getattr(args, "nproc", None)))
                     if v is not None}
        if overrides:
            config.override_training(**overrides)
        if args.data_root is not None:
            config.dataset_options["root"] = args.data_root
        if args.out_dir is not None:
            config.out_dir = args.out_dir
        elif config.out_dir is None:
            config.out_dir = Path("runs") / config.name
        measure = None
        if config.training.budget:  # the flow's export estimate, as `qfx flow run` trains to
            from qfx.flows.flow import budget_measure, load_flow

            measure = budget_measure(load_flow(args.config))
        result = run_training(config, progress=not args.no_progress, resume_from=args.resume,
                              measure=measure)
    except (ConfigError, CheckpointError, UnsafePickleError, FileNotFoundError,
            ValueError) as err:
        return fail(err)
    rank, _ = qdist.world()
    if qdist.is_distributed():  # under torchrun: rank 0 reports, every rank leaves the group
        qdist.barrier()
        torch.distributed.destroy_process_group()
    if rank != 0:
        return 0
    last = result.history[-1] if result.history else {}
    measure = (f"test loss ({config.training.loss}) {last['test_loss']:.4g}"
               if math.isnan(result.final_test_acc) and last else
               f"test accuracy {result.final_test_acc:.4f} (best {result.best_test_acc:.4f})")
    print(f"trained {config.model} on {config.dataset}: {len(result.history)} epochs, "
          f"{measure}, {result.seconds:.1f} s")
    if last.get("int_bits"):
        print(f"learned formats: {len(last['int_bits'])} quantizers")
    print(f"checkpoint: {result.checkpoint}")
    print(f"history: {result.out_dir / 'history.json' if result.out_dir else None}")
    print(f"plot: {result.plot}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Standalone entry point (``python -m qfx.cli.train train FLOW.yaml``).

    Example:
        >>> main(["train", "flows/digits_cnn.yaml", "--epochs", "1"])  # doctest: +SKIP
        0
    """
    parser = argparse.ArgumentParser(prog="qfx")
    sub = parser.add_subparsers(dest="command", required=True)
    register(sub)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
