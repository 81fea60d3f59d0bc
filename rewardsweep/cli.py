"""The ``rewardsweep`` command: parse arguments, call one part, print. Nothing else.

Exit status: 0 done; 1 ``launch`` finished but some trial of the study failed or diverged
(``--allow-failures``: 0), or it stopped because storage, the start checkpoint or a node's
code failed; 2 a user error (:class:`rewardsweep.errors.UserError`, one line on stderr;
also bad arguments); 130 interrupted (Ctrl+C); 143 stopped by SIGTERM. A closed stdout (``| head -1``)
ends the command quietly (status 1).
Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import re
import sys

from rewardsweep import __version__
from rewardsweep.errors import UserError
from rewardsweep.shell import make_output_safe, silence_broken_pipe


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
    p.add_argument("--address", default=None,
                   help="join a Ray cluster: auto (the `ray start` cluster of this node) or HOST:6379; local: a "
                        "private Ray even if RAY_ADDRESS is set (default: RAY_ADDRESS, else a private Ray)")
    p.add_argument("--dry-run", action="store_true", help="print the trial table and count; start nothing")
    p.add_argument("--storage", default=None, help="study folder root (overrides the spec's storage)")
    p.add_argument("--wandb", default=None, choices=["offline", "online", "disabled"],
                   help="W&B mode (overrides the spec)")
    p.add_argument("--retry-failed", action="store_true", help="also rerun trials recorded as failed")
    p.add_argument("--retry-diverged", action="store_true",
                   help="also rerun trials recorded as diverged (e.g. made diverged by a damaged start file under 0.3.0)")
    p.add_argument("--max-concurrent", type=int, default=None, help="cap on trials running at once")
    p.add_argument("--verbose", action="store_true", help="show Ray's and the trials' own log output")
    p.add_argument("--allow-failures", action="store_true",
                   help="exit 0 even when trials of the study failed or diverged (default: exit 1)")
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
    p.add_argument("--wandb-summary", action="store_true",
                   help="log the report as the study's W&B run (job_type report; WANDB_* as for the trials)")
    p.add_argument("--out", default=None, metavar="DIR",
                   help="write the report into DIR instead of <study>/report (e.g. a read-only shared study)")
    p.add_argument("--all-configs", action="store_true",
                   help="also report configurations the study's spec (as last launched) no longer names")
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


def _add_init(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("init", help="write one of the shipped studies (search spaces) into this folder")
    p.add_argument("name", nargs="?", default=None, help="which study (default: baseline, the main job)")
    p.add_argument("--list", action="store_true", help="list the shipped studies and stop")
    p.add_argument("--force", action="store_true", help="overwrite NAME.yaml if it exists")
    p.set_defaults(handler=_run_init)


def _run_init(args: argparse.Namespace) -> int:
    from rewardsweep.shipped import init_command

    return init_command(args)


def build_parser() -> argparse.ArgumentParser:
    from rewardsweep.links import doc_url

    parser = argparse.ArgumentParser(
        prog="rewardsweep",
        description="Reward-optimisation fine-tuning of MMSegmentation models as a repeatable, seeded study.",
        epilog="exit status: 0 ok, 1 launch: some trial failed or diverged, or the launch stopped on a "
               "fault, 2 usage or input error, 130 interrupted, 143 stopped by SIGTERM. "
               f"Start with `rewardsweep init`; documentation: {doc_url('')}",
    )
    parser.add_argument("--version", action="version", version=f"rewardsweep {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in (_add_init, _add_launch, _add_report, _add_pretrain, _add_class_weights):
        add(sub)
    return parser


_NUMBER = re.compile(r"^-\d|^-\.\d")


def _unknown_flags(parser: argparse.ArgumentParser, argv: list[str]) -> list[str]:
    """Options that neither the command nor its subcommand knows. argparse itself reports
    ``rewardsweep --foo`` as a missing command and ``launch --foo`` as a missing SPEC."""
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices
    known = set(parser._option_string_actions)
    for token in argv:
        if token == "--":
            break
        if token in commands:
            known |= set(commands[token]._option_string_actions)
            break
    unknown = []
    for token in argv:
        if token == "--":
            break
        flag = token.split("=", 1)[0]
        if token.startswith("-") and token != "-" and not _NUMBER.match(token) \
                and not any(k.startswith(flag) for k in known):  # argparse accepts unique prefixes
            unknown.append(flag)
    return unknown


def main(argv: list[str] | None = None) -> int:
    make_output_safe()
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser()
    unknown = _unknown_flags(parser, argv)
    if unknown:
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except UserError as exc:
        print(f"rewardsweep: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("rewardsweep: interrupted; finished trials are kept, re-run the same command to resume",
              file=sys.stderr)
        return 130
    except BrokenPipeError:
        return silence_broken_pipe()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
