"""`python -m fol_core COMMAND ...`: each command is a module with add_arguments(parser) and run(args)."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Callable
from contextlib import nullcontext
from typing import Any

import torch
from threadpoolctl import threadpool_limits

from .errors import UserError, one_line

COMMANDS = {
    "localize": "fol_core.commands",
    "bench": "fol_core.bench",
    "prelabel": "fol_core.bootstrap.prelabel",
    "export": "fol_core.bootstrap.export",
    "eval": "fol_core.evaluation.command",
    "tsne": "fol_core.tsne",
    "train": "fol_core.training.command",
    "improve": "fol_core.training.improve",
}
"""Command name -> module; the module's HELP is the command's one-line help."""


def whole(low: int, high: int | None = None) -> Callable[[str], int]:
    """An argparse type: a whole number from `low` (to `high`), so that a flag out of range gets argparse's one-line
    error naming it, before any work, instead of a traceback or a silent default."""
    def count(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"a whole number is needed, got {text!r}") from None
        if value < low or (high is not None and value > high):
            span = f"at least {low}" if high is None else f"from {low} to {high}"
            raise argparse.ArgumentTypeError(f"{span}, got {value}")
        return value
    return count


def real(low: float, high: float | None = None, above: bool = False) -> Callable[[str], float]:
    """An argparse type, as `whole` for a number: from `low` (strictly above it if `above`) to `high`."""
    def number(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"a number is needed, got {text!r}") from None
        if not (value > low if above else value >= low) or (high is not None and not value <= high):  # NaN too
            span = f"{'above' if above else 'at least'} {low}" + ("" if high is None else f" and at most {high}")
            raise argparse.ArgumentTypeError(f"{span}, got {text}")
        return value
    return number


def add_model_arguments(parser: argparse.ArgumentParser, resumed: bool = False) -> None:
    """--model and how it runs; `resumed`: a command that carries on a project, whose own model is the default."""
    from .models import DEFAULT_MODEL, PRECISIONS, list_models

    parser.add_argument("--model", default=None if resumed else DEFAULT_MODEL, metavar="MODEL",
                        help=f"classifier: {', '.join(list_models())} or a trained model's folder, e.g. models/NAME "
                             f"(default: {_default(DEFAULT_MODEL, resumed)})")
    parser.add_argument("--weights", default=None, help="weights file for the model (torchvision models)")
    parser.add_argument("--threads", type=whole(1), default=None, help="CPU threads for the model, BLAS and OpenMP "
                        "(default: the libraries'; on a machine busy with other work 1 can be several times faster)")
    parser.add_argument("--precision", choices=PRECISIONS, default=None,
                        help="dtype of the passes that need no gradient: auto (bf16 where the CPU or GPU computes "
                             "it natively, else fp32), fp32 or bf16 (default: auto, or $FOL_PRECISION)")


def add_method_arguments(parser: argparse.ArgumentParser, several: bool = False, resumed: bool = False) -> None:
    """--method (or --methods) and one flag per method parameter, generated from the methods' declarations."""
    from .methods import DEFAULT_METHOD, METHODS

    if several:
        parser.add_argument("--methods", default=",".join(METHODS), help="comma-separated (default: %(default)s)")
    else:
        parser.add_argument("--method", default=None if resumed else DEFAULT_METHOD, choices=list(METHODS),
                            help=f"default: {_default(DEFAULT_METHOD, resumed)}")
    helps: dict[str, list[str]] = {}
    for method in METHODS.values():
        for p in method.params:
            helps.setdefault(p.name, [])
            if p.describe() not in helps[p.name]:
                helps[p.name].append(p.describe())
    for name, texts in helps.items():
        parser.add_argument(f"--{name.replace('_', '-')}", default=None, help=" | ".join(texts))


def _default(value: str, resumed: bool) -> str:
    return f"the project's, else {value}" if resumed else value


def method_params(args: argparse.Namespace, method: str) -> dict[str, Any]:
    """The parameters of `method` the user set on the command line, checked (ParamError); the rest keep
    the method's defaults."""
    from .methods import get_method

    return {p.name: p.parse(getattr(args, p.name)) for p in get_method(method).params
            if getattr(args, p.name, None) is not None}


DESCRIPTION = ("fol: find objects in photos with an ImageNet classifier alone. "
               "`python -m fol_core COMMAND -h` lists a command's options.")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fol_core", description=DESCRIPTION)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    modules = {}
    for name, module_name in COMMANDS.items():
        modules[name] = importlib.import_module(module_name)
        p = sub.add_parser(name, help=modules[name].HELP, description=modules[name].HELP)
        modules[name].add_arguments(p)
    args = parser.parse_args(argv)
    if args.command is None:  # what there is to do, not only that a command is missing
        parser.print_help(sys.stderr)
        return 2
    if getattr(args, "precision", None):
        os.environ["FOL_PRECISION"] = args.precision  # read where models load, Ray's workers included
    threads = getattr(args, "threads", None)
    if threads:
        torch.set_num_threads(threads)
    try:
        with threadpool_limits(threads) if threads else nullcontext():
            return int(modules[args.command].run(args) or 0)
    except UserError as exc:  # what a command did not report itself: one line, no traceback
        print(f"error: {one_line(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
