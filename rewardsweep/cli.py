"""The ``rewardsweep`` command: parse arguments, call one part, print. Nothing else.

User errors (:class:`rewardsweep.errors.UserError`) print as one line on stderr and exit
with status 2; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import sys

from rewardsweep.errors import UserError


def _add_pretrain(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("pretrain", help="MLE-pretrain (or reuse the cached) start checkpoint of a preset")
    p.add_argument("--model", default="tiny-synthetic", help="preset name or path to an MMSeg config")
    p.add_argument("--data-root", default=None, help="dataset folder (presets have a default)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--iters", type=int, default=None, help="training iterations (preset default)")
    p.add_argument("--cache-dir", default=None, help="where start checkpoints are cached")
    p.add_argument("--force", action="store_true", help="retrain even if a cached checkpoint exists")
    p.set_defaults(handler=_run_pretrain)


def _run_pretrain(args: argparse.Namespace) -> int:
    from rewardsweep.runners.pretrain import pretrain_command

    return pretrain_command(args)


def _add_launch(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("launch", help="run every (configuration, seed) of a study as a Ray Tune trial")
    p.add_argument("spec", help="search space YAML, e.g. search_spaces/baseline.yaml")
    p.add_argument("--address", default=None, help="join an existing Ray cluster (e.g. auto or HOST:6379)")
    p.add_argument("--dry-run", action="store_true", help="print the trial table and count; start nothing")
    p.add_argument("--storage", default=None, help="study folder root (overrides the spec's storage)")
    p.add_argument("--wandb", default=None, choices=["offline", "online", "disabled"],
                   help="W&B mode (overrides the spec)")
    p.add_argument("--retry-failed", action="store_true", help="also rerun trials recorded as failed")
    p.add_argument("--max-concurrent", type=int, default=None, help="cap on trials running at once")
    p.add_argument("--verbose", action="store_true", help="show Ray's and the trials' own log output")
    p.set_defaults(handler=_run_launch)


def _run_launch(args: argparse.Namespace) -> int:
    from rewardsweep.sweep.launch import launch_command

    return launch_command(args)


def _add_report(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="statistics, plots and tests against the control for a study")
    p.add_argument("target", nargs="*", help="study folder(s) or a spec path (default: the most recent study)")
    p.add_argument("--runs", default="runs", help="where studies live when no target is given")
    p.add_argument("--wandb", default=None, metavar="ENTITY/PROJECT", help="also collect runs logged online")
    p.add_argument("--study", default=None, help="study name (tag) to filter W&B runs by")
    p.add_argument("--correction", default="holm", choices=["holm", "fdr_bh"], help="multiple-testing adjustment")
    p.add_argument("--effect", type=float, default=0.5, help="improvement to detect, in mIoU points (for seeds needed)")
    p.add_argument("--alpha", type=float, default=0.05)
    p.add_argument("--power", type=float, default=0.8)
    p.add_argument("--margin", type=float, default=None, metavar="POINTS",
                   help="equivalence margin in mIoU points: test (TOST) whether configurations are within it of the control")
    p.add_argument("--no-plots", action="store_true")
    p.add_argument("--bootstrap-images", action="store_true",
                   help="also bootstrap the paired differences over seeds and val images (needs val_counts/)")
    p.add_argument("--wandb-summary", action="store_true", help="log the summary as a W&B run of job_type report")
    p.add_argument("--start", default=None, metavar="HASH",
                   help="report only records from this start checkpoint (hash prefix or dataset) when sources mix several")
    p.set_defaults(handler=_run_report)


def _run_report(args: argparse.Namespace) -> int:
    from rewardsweep.analysis.report import report_command

    return report_command(args)


def _add_class_weights(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("class-weights", help="count ground-truth pixels per class and write smoothed weights")
    p.add_argument("dataset", help="preset name (e.g. deeplabv3-r50-cityscapes, tiny-synthetic) or an MMSeg config")
    p.add_argument("--data-root", default=None, help="dataset folder (default: the preset's environment variable)")
    p.add_argument("--split", default="train", help="split to count: train, val, or another folder name (e.g. test)")
    p.add_argument("--smooth", type=float, default=0.05, help="smoothing s of w_c = 1/(n_c + s*sum n)")
    p.add_argument("--out", default=None, help="output JSON (default: <dataset>-class-weights.json)")
    p.add_argument("--workers", type=int, default=0, help="threads reading label files (default: up to 8)")
    p.set_defaults(handler=_run_class_weights)


def _run_class_weights(args: argparse.Namespace) -> int:
    from rewardsweep.runners.class_counts import class_weights_command

    return class_weights_command(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rewardsweep",
        description="Reward-optimisation fine-tuning of MMSegmentation models as a repeatable, seeded study.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for add in (_add_launch, _add_report, _add_pretrain, _add_class_weights):
        add(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except UserError as exc:
        print(f"rewardsweep: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("rewardsweep: interrupted; finished trials are kept, re-run the same command to resume",
              file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
