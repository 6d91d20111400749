"""`train`: fine-tune a classifier for the user's classes from image-level labels, into models/NAME."""

from __future__ import annotations

import argparse

from ..cli import real, whole
from .data import TrainingError
from .trainer import Settings, train

PROPOSAL_KINDS = ("heatmaps", "selective_search", "windows")

HELP = "train a model for your own classes from image-level labels (folder per class, CSV, dataset, zip)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    d = Settings()
    parser.add_argument("source", help="a folder with a subfolder per class (and 'background' for photos with none), "
                                       "a .zip of one, a saved dataset folder, or hf:DIR")
    parser.add_argument("--out", required=True, help="the model folder to write, e.g. models/NAME")
    parser.add_argument("--image-labels", default="folders",
                        help="'folders' (the class folder: the first under the source, whatever lies below "
                             "it; default) or a CSV of image,label "
                             "('a;b' for several labels; background/none for a negative)")
    parser.add_argument("--wsddn", action="store_true",
                        help="also train OICR's refinement streams over region proposals (--method wsddn --score oicr)")
    parser.add_argument("--refine", type=whole(1, 10), default=d.refine,
                        help="OICR's refinement streams, 1-10 (default: %(default)s)")
    parser.add_argument("--proposals", default="heatmaps",
                        help="WSDDN's region proposals: heatmaps, plus selective_search and/or windows, comma-separated "
                             "(default: %(default)s; measured best on raccoon-dev's even half)")
    parser.add_argument("--tune-blocks", type=whole(0), default=d.tune_blocks, metavar="N",
                        help="also fine-tune the backbone's last N stages and its final conv (what CAM reads); "
                             "0: the head only (default: %(default)s)")
    parser.add_argument("--tune-lr", type=real(0, above=True), default=d.tune_lr,
                        help="learning rate of the fine-tuned backbone layers (default: %(default)s)")
    parser.add_argument("--epochs", type=whole(1), default=d.epochs, help="at most this many epochs (default: %(default)s)")
    parser.add_argument("--patience", type=whole(1), default=d.patience,
                        help="stop after N epochs without a better held-out loss (default: %(default)s)")
    parser.add_argument("--lr", type=real(0, above=True), default=d.lr, help="learning rate (default: %(default)s)")
    parser.add_argument("--val-fraction", type=real(0, 0.9), default=d.val_fraction,
                        help="images held out to measure accuracy (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=d.seed, help="random seed (default: %(default)s)")
    parser.add_argument("--backbone", default=d.backbone, help="registry model to fine-tune (default: %(default)s)")
    parser.add_argument("--overwrite", action="store_true", help="replace the model folder if it exists")
    parser.add_argument("--restart", action="store_true", help="drop an interrupted run's checkpoint and start again")
    parser.add_argument("--threads", type=whole(1), default=None, help="CPU threads (default: the libraries')")


def proposal_kinds(text: str) -> tuple[str, ...]:
    """The --proposals list, checked (heatmaps always included)."""
    kinds = tuple(dict.fromkeys(["heatmaps"] + [k.strip() for k in text.split(",") if k.strip()]))
    unknown = [k for k in kinds if k not in PROPOSAL_KINDS]
    if unknown:
        raise TrainingError(f"--proposals: unknown {', '.join(unknown)} (choose from {', '.join(PROPOSAL_KINDS)})")
    return kinds


def run(args: argparse.Namespace) -> int:
    kinds = proposal_kinds(args.proposals)
    settings = Settings(backbone=args.backbone, epochs=args.epochs, patience=args.patience, lr=args.lr,
                        val_fraction=args.val_fraction, seed=args.seed, wsddn=args.wsddn,
                        refine=args.refine, proposals=kinds, tune_blocks=args.tune_blocks,
                        tune_lr=args.tune_lr)
    result = train(args.source, args.out, settings, args.image_labels, args.overwrite, args.restart)
    m = result.card["metrics"]
    print(f"{result.folder}: {', '.join(result.card['classes'])}; held-out accuracy {m['val_accuracy']:.1%} on "
          f"{m['val_images']} images; {result.card['training']['seconds']:.0f} s. "
          f"Use it with --model {result.folder}")
    return 0
