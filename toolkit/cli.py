"""The `latent-atlas` command: parse flags, build a frozen config, call one library function,
say where the results went. The only module that reads ``sys.argv`` or the environment."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from toolkit.errors import AtlasError

REPO_ROOT = Path(__file__).resolve().parent.parent
SHIPPED = REPO_ROOT / "artifacts" / "fashion-mnist"


def _data_dir(args: argparse.Namespace) -> Path | None:
    if getattr(args, "data", None):
        return Path(args.data)
    env = os.environ.get("LATENT_ATLAS_DATA")
    return Path(env) if env else None


def _add_data_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--data",
        metavar="DIR",
        help="folder with the four Fashion-MNIST IDX files, gzipped or not "
        "(default: $LATENT_ATLAS_DATA, else /usr/share/datasets/fashion-mnist)",
    )


# ---------------------------------------------------------------------------- train
def _train_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train the VAE, AE and classifier on Fashion-MNIST",
        description="Train the VAE, the AE and the classifier on the real Fashion-MNIST train "
        "split, evaluate them on the 10 000 test images, and save weights.pt + train.json "
        "for each under OUT/<model>/.",
    )
    _add_data_flag(p)
    p.add_argument(
        "--out", default="runs/fashion-mnist", help="output folder (default: %(default)s)"
    )
    p.add_argument(
        "--models",
        nargs="+",
        default=["vae", "ae", "classifier"],
        choices=["vae", "ae", "classifier"],
        help="which models to train (default: all three)",
    )
    p.add_argument(
        "--arch", default="mlp", choices=["mlp", "conv"], help="autoencoder architecture"
    )
    p.add_argument("--latent-dim", type=int, default=2, help="latent dimensions (default: 2)")
    p.add_argument("--hidden", type=int, default=512, help="width of the first hidden layer")
    p.add_argument("--beta", type=float, default=1.0, help="VAE KL weight β (default: 1)")
    p.add_argument("--epochs", type=int, default=50, help="autoencoder epochs (default: 50)")
    p.add_argument(
        "--classifier-epochs", type=int, default=15, help="classifier epochs (default: 15)"
    )
    p.add_argument("--batch-size", type=int, default=128, help="mini-batch size (default: 128)")
    p.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate (default: 1e-3)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    p.add_argument(
        "--train-limit", type=int, default=0, help="train on the first N images only (0: all)"
    )
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    p.set_defaults(func=_train)


def _train(args: argparse.Namespace) -> None:
    from toolkit.data import load_fashion_mnist
    from toolkit.train import TrainConfig, train_all

    for flag in ("latent_dim", "hidden", "epochs", "classifier_epochs", "batch_size"):
        if getattr(args, flag) < 1:
            raise AtlasError(f"--{flag.replace('_', '-')}: {getattr(args, flag)}, expected >= 1")
    cfg = TrainConfig(
        models=tuple(args.models), arch=args.arch, latent_dim=args.latent_dim,
        hidden=args.hidden, beta=args.beta, epochs=args.epochs,
        classifier_epochs=args.classifier_epochs, batch_size=args.batch_size, lr=args.lr,
        seed=args.seed, threads=args.threads, train_limit=args.train_limit,
        progress=not args.no_progress,
    )  # fmt: skip
    data = load_fashion_mnist(_data_dir(args))
    train_all(data, cfg, Path(args.out))
    print(f"trained models written to {args.out}/")


COMMANDS: list[Callable[[argparse._SubParsersAction], None]] = [_train_parser]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="latent-atlas",
        description="See and measure what an autoencoder's latent space has learned.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in COMMANDS:
        add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except AtlasError as exc:
        print(f"latent-atlas {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"latent-atlas {args.command}: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
