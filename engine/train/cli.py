"""``medviewer --train`` and ``medviewer make-dataset`` argument parsing.

Shaped like torchvision's references/classification/train.py: ``get_args_parser``
then ``engine.train.run.main(args)``.  Examples::

    medviewer --train --data chest_ct --arch resnet50 --weights imagenet --freeze staged \\
        --hidden 256 --dropout 0.3 --weight-decay 1e-4 --scheduler plateau --patience 5 --out run1
    medviewer --train --data xray --label-from-name "bacteria|virus" --val-fraction .16 \\
        --test-fraction .2 --arch densenet201 --optimizer sgd --momentum .9 --augment medium --out run2
    medviewer make-dataset synth --classes normal,nodule,cavity --n 200 --size 96
    torchrun --nproc_per_node 2 -m engine.train --data DIR --out OUT   # DDP (see engine.train.ddp)
"""

from __future__ import annotations

import argparse
from pathlib import Path

from medviewer.viewer.display.windowspec import HELP as WINDOW_HELP
from medviewer.viewer.errors import UsageError


def _fraction(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not 0 <= v < 1:
        raise argparse.ArgumentTypeError("must be in [0, 1)")
    return v


def _positive_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError("must be >= 1")
    return v


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Defaults after every option that has one; the examples in the epilog keep their lines."""

    def _get_help_string(self, action: argparse.Action) -> str:
        if action.default is None or isinstance(action.default, bool) or action.default == "":
            return action.help or ""
        return super()._get_help_string(action)


# help for the options declared without one (kept apart so the declarations stay short)
OPTION_HELP = {
    "--val-fraction": "fraction of the images held out for validation",
    "--test-fraction": "fraction of the images held out for the test report",
    "--freeze": "what stays frozen: nothing, the backbone, or the backbone first then all (staged)",
    "--unfreeze-lr-factor": "learning-rate factor for the backbone once --freeze staged unfreezes it",
    "--dropout": "dropout before the classification layer",
    "--head-batchnorm": "BatchNorm in the head's hidden layers",
    "--image-size": "model input size in pixels (square)",
    "--resize": "how images reach the input size",
    "--optimizer": "optimiser",
    "--lr": "learning rate",
    "--momentum": "SGD momentum",
    "--nesterov": "Nesterov momentum for SGD",
    "--scheduler": "learning-rate schedule",
    "--plateau-patience": "epochs without improvement before the plateau schedule lowers the rate",
    "--min-lr": "lowest learning rate of the schedules",
    "--epochs": "training epochs",
    "--batch-size": "images per batch",
    "--seed": "random seed (split, initialisation, augmentation)",
    "--augment": "augmentation preset (the options below override its values)",
    "--intended-use": "written to the model card; the viewer warns unless 'validated'",
}


EXAMPLES = """examples:
  medviewer --train --data chest_ct --arch resnet50 --weights imagenet --freeze staged --out run1
  medviewer --train --data xray --label-from-name "bacteria|virus" --arch densenet201 --out run2
  torchrun --nproc_per_node 2 -m medviewer.engine.train --data DIR --out OUT   # several GPUs"""


def get_args_parser(add_help: bool = True) -> argparse.ArgumentParser:
    from medviewer.engine.registry import ARCHITECTURES

    p = argparse.ArgumentParser(prog="medviewer --train", add_help=add_help,
                                description="Train a classifier on a labelled image folder.",
                                epilog=EXAMPLES, formatter_class=_HelpFormatter)
    d = p.add_argument_group("data")
    d.add_argument("--data", type=Path, help="folder with one sub-folder per class (and optional split folders)")
    d.add_argument("--labels", type=Path, help="CSV path,label[,split] overriding folder labels")
    d.add_argument("--label-from-name", metavar="REGEX", help="class = first regex match in the file name")
    d.add_argument("--val-fraction", type=_fraction, default=0.15)
    d.add_argument("--test-fraction", type=_fraction, default=0.15)
    d.add_argument("--out", type=Path, default=Path("medviewer-train"), help="output folder")
    d.add_argument("--workers", type=_positive_int, default=2, help="decoding threads")
    m = p.add_argument_group("model")
    m.add_argument("--arch", default="resnet18", metavar="ARCH",
                   help=f"torchvision architecture, one of: {', '.join(sorted(ARCHITECTURES))}")
    m.add_argument("--weights", default="none", help="imagenet | none | PATH (.safetensors or state dict)")
    m.add_argument("--freeze", choices=("none", "backbone", "staged"), default="none")
    m.add_argument("--stage-epochs", type=int, default=None,
                   help="head-only epochs for --freeze staged (default: a third of --epochs)")
    m.add_argument("--unfreeze-lr-factor", type=float, default=0.1)
    m.add_argument("--dropout", type=float, default=0.0)
    m.add_argument("--hidden", default="", help="head widths, e.g. 256,128")
    m.add_argument("--head-batchnorm", action="store_true")
    m.add_argument("--image-size", type=_positive_int, default=224)
    m.add_argument("--resize", choices=("letterbox", "stretch", "center_crop"), default="letterbox")
    m.add_argument("--window", default="auto", help=WINDOW_HELP)
    m.add_argument("--cam-layer", default="", help="Grad-CAM layer (default: the registry's)")
    m.add_argument("--name", default="", help="model name in the card")
    m.add_argument("--intended-use", choices=("research", "demo", "validated"), default="research")
    m.add_argument("--half", action="store_true", help="store the weights as float16")
    m.add_argument("--modality", default="", metavar="CODE[,CODE]",
                   help="DICOM modality of training images that carry none (PNG/JPEG exports), e.g. CT; "
                        "recorded in the card for the viewer's input check")
    m.add_argument("--body-part", default="", metavar="TERM[,TERM]",
                   help="Body Part Examined of training images that carry none, e.g. CHEST")
    o = p.add_argument_group("optimisation")
    o.add_argument("--optimizer", choices=("adam", "adamw", "sgd", "adamax"), default="adamw")
    o.add_argument("--lr", type=float, default=1e-3)
    o.add_argument("--momentum", type=float, default=0.9)
    o.add_argument("--nesterov", action="store_true")
    o.add_argument("--weight-decay", type=float, default=0.0, help="L2 regularisation")
    o.add_argument("--scheduler", choices=("none", "step", "plateau", "cosine", "onecycle"), default="none")
    o.add_argument("--step-size", type=_positive_int, default=7, help="StepLR period (epochs)")
    o.add_argument("--gamma", type=float, default=0.1, help="StepLR / plateau factor")
    o.add_argument("--plateau-patience", type=int, default=2)
    o.add_argument("--min-lr", type=float, default=0.0)
    o.add_argument("--pct-start", type=float, default=0.3, help="OneCycle warm-up fraction")
    o.add_argument("--epochs", type=_positive_int, default=10)
    o.add_argument("--batch-size", type=_positive_int, default=32)
    o.add_argument("--patience", type=int, default=0, help="early stopping on val loss (0 = off)")
    o.add_argument("--no-restore-best", dest="restore_best", action="store_false",
                   help="keep the last epoch's weights; by default the lowest-val-loss epoch is handed "
                        "over when it is significantly more accurate on validation than the last one")
    o.add_argument("--no-precise-bn", dest="precise_bn", action="store_false",
                   help="keep BatchNorm's running statistics as training left them instead of "
                        "recomputing them with the final weights after each epoch")
    o.add_argument("--class-weights", default="none", help="auto | none | w1,w2,...")
    o.add_argument("--seed", type=int, default=0)
    o.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    o.add_argument("--no-amp", dest="amp", action="store_false", help="disable mixed precision on CUDA")
    a = p.add_argument_group("augmentation")
    a.add_argument("--augment", choices=("none", "light", "medium", "strong"), default="none")
    a.add_argument("--hflip", type=float, help="horizontal flip probability")
    a.add_argument("--vflip", type=float, help="vertical flip probability")
    a.add_argument("--rotation", type=float, help="max rotation in degrees")
    a.add_argument("--zoom", type=float, help="max zoom fraction")
    a.add_argument("--translation", type=float, help="max shift, fraction of the size")
    a.add_argument("--contrast", type=float, help="max contrast change fraction")
    r = p.add_argument_group("run")
    r.add_argument("--resume", action="store_true",
                   help="continue the run in --out (checkpoint.pt; search.db with --search); a larger "
                        "--epochs re-plans cosine/onecycle schedules")
    r.add_argument("--overwrite", action="store_true",
                   help="replace an earlier run in --out (its outputs are deleted first); without it, "
                        "--resume or an empty --out is required")
    r.add_argument("--test-only", action="store_true", help="evaluate OUT/model.safetensors on the test split")
    r.add_argument("--search", type=int, default=0, metavar="N", help="Optuna trials before the final run")
    r.add_argument("--search-epochs", type=int, default=0, help="epochs per trial (default --epochs)")
    r.add_argument("--no-report", dest="report", action="store_false", help="skip report.html and plots")
    r.add_argument("--gallery", type=int, default=12, help="misclassified images shown with Grad-CAM")
    add_research_args(p)
    for action in p._actions:
        if not action.help:
            action.help = next((OPTION_HELP[o] for o in action.option_strings if o in OPTION_HELP), None)
    return p


def add_research_args(p: argparse.ArgumentParser) -> None:
    """Confidence intervals, cross-validation, feature cache, TTA, logs, LR range test."""
    e = p.add_argument_group("evaluation and research")
    e.add_argument("--bootstrap", type=int, default=1000, metavar="N",
                   help="bootstrap resamples of the test set for 95%% confidence intervals (0 = none)")
    e.add_argument("--folds", type=int, default=0, metavar="K",
                   help="stratified K-fold cross-validation over train+val, grouped by patient, "
                        "then the final model on all of train+val (0 = off)")
    e.add_argument("--group-regex", metavar="REGEX",
                   help="patient of a non-DICOM image (or one without Patient ID): first match "
                        "(group 1 if any) in its path relative to --data")
    e.add_argument("--feature-cache", dest="feature_cache", action="store_const", const="on", default="auto",
                   help="train the head on cached backbone features (automatic with --freeze backbone "
                        "and no augmentation); with augmentation, on --feature-cache-copies fixed copies")
    e.add_argument("--no-feature-cache", dest="feature_cache", action="store_const", const="off",
                   help="never cache backbone features")
    e.add_argument("--feature-cache-copies", type=_positive_int, default=4, metavar="N",
                   help="augmented copies per training image with --feature-cache and augmentation")
    e.add_argument("--tta", action="store_true",
                   help="test-time augmentation (image + mirror) for the test and fold evaluation")
    e.add_argument("--tta-shift", type=float, default=0.0, metavar="F",
                   help="with --tta, also shifted copies by F x the image size (e.g. 0.05)")
    e.add_argument("--tensorboard", action="store_true", help="write TensorBoard events to OUT/tensorboard")
    e.add_argument("--lr-find", action="store_true",
                   help="learning-rate range test: plot loss against LR, suggest --lr, train nothing")
    e.add_argument("--lr-find-iters", type=_positive_int, default=100, metavar="N",
                   help="mini-batches of the range test")
    e.add_argument("--lr-find-range", default="1e-7,10", metavar="LO,HI", help="learning rates tested")


def parse(argv: list[str]) -> argparse.Namespace:
    from medviewer.engine.train.augment import make_spec
    from medviewer.engine.train.model import parse_hidden

    args = get_args_parser().parse_args(argv)
    if args.data is None and args.labels is None:
        raise UsageError("--train needs --data DIR (or --labels FILE.csv)")
    args.aug = make_spec(args.augment, hflip=args.hflip, vflip=args.vflip, rotation=args.rotation,
                         zoom=args.zoom, translation=args.translation, contrast=args.contrast)
    parse_hidden(args.hidden)
    if args.stage_epochs is None:
        args.stage_epochs = max(1, args.epochs // 3)
    if not 0 <= args.dropout < 1:
        raise UsageError("--dropout must be in [0, 1)")
    if args.val_fraction + args.test_fraction >= 1:
        raise UsageError("--val-fraction + --test-fraction must be below 1")
    check_research_args(args)
    from medviewer.viewer.display.windowspec import WindowSpec, WindowSpecError

    try:
        args.window = WindowSpec.parse(args.window).to_json()
    except WindowSpecError as exc:
        raise UsageError(f"--window: {exc}") from None
    from medviewer.engine.device import pick_device

    args.device = str(pick_device(args.device))
    return args


def check_research_args(args: argparse.Namespace) -> None:
    from medviewer.engine.train.folds import compile_group_regex
    from medviewer.engine.tta import MAX_SHIFT

    if args.bootstrap < 0:
        raise UsageError("--bootstrap must be 0 (off) or a number of resamples")
    if args.folds == 1 or args.folds < 0:
        raise UsageError("--folds must be at least 2 (or 0 for no cross-validation)")
    compile_group_regex(args.group_regex)
    if args.tta_shift and not args.tta:
        raise UsageError("--tta-shift needs --tta")
    if not 0 <= args.tta_shift <= MAX_SHIFT:
        raise UsageError(f"--tta-shift must be in [0, {MAX_SHIFT}]")
    try:
        lo, hi = (float(v) for v in args.lr_find_range.split(","))
    except ValueError:
        raise UsageError(f"--lr-find-range: expected LO,HI such as 1e-7,10, got {args.lr_find_range!r}") from None
    if not 0 < lo < hi:
        raise UsageError("--lr-find-range: need 0 < LO < HI")
    args.lr_find_range = [lo, hi]


def main_train(argv: list[str]) -> int:
    """``medviewer --train ...``: returns 0 ok, 1 ok with skipped images, 130 interrupted."""
    import os

    from medviewer.engine.threads import apply as apply_thread_policy
    from medviewer.engine.train.run import main

    args = parse(argv)
    if int(os.environ.get("WORLD_SIZE", "1") or 1) <= 1:
        # every CPU this process may use, whatever earlier work in the process set (the
        # viewer keeps one for its GUI thread); float summation order, and with it the
        # trained weights, depends on the thread count.  torchrun's ranks keep its setting.
        apply_thread_policy()
    return main(args)


def main_make_dataset(argv: list[str]) -> int:
    """``medviewer make-dataset OUT [--classes a,b,c] [--n N] [--size S] [--seed K]``."""
    from medviewer.engine.train.synth import DEFAULT_CLASSES, make_dataset

    p = argparse.ArgumentParser(prog="medviewer make-dataset",
                                description="Write a synthetic labelled dataset with lesion masks.")
    p.add_argument("out", type=Path)
    p.add_argument("--classes", default=",".join(DEFAULT_CLASSES))
    p.add_argument("--n", type=_positive_int, default=100, help="images per class")
    p.add_argument("--size", type=_positive_int, default=96)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--style", choices=("ct", "xray"), default="ct")
    a = p.parse_args(argv)
    out = make_dataset(a.out, a.classes.split(","), a.n, a.size, a.seed, style=a.style)
    print(f"wrote {a.n} images per class for {a.classes} to {out} (masks in {out / 'masks'})")
    return 0
