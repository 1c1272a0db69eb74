"""`latent-atlas train`: train the VAE, the AE and the classifier on a dataset."""

from __future__ import annotations

import argparse
from pathlib import Path

from latent_atlas.commands import flags


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train a VAE, an AE and a classifier on a dataset",
        description="Train the VAE, the AE and the classifier on the train split of --data "
        "(sized for its image shape and class count), evaluate them on its test split, and "
        "save weights.pt + train.json for each under OUT/<model>/. Sizes left unset follow the "
        "dataset: --hidden is twice the pixel count rounded up to a power of two (64..512); "
        "the epochs are 50 (autoencoders) and 15 (classifier) times sqrt(60000 / train "
        "images); one torch thread for images smaller than 28x28. On Fashion-MNIST the "
        "defaults are the shipped models' settings.",
    )
    flags.add_data_flag(p)
    p.add_argument("--out", help="output folder (default: runs/<dataset name>)")
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
    p.add_argument("--hidden", type=int, help="width of the first hidden layer (default: sized)")
    p.add_argument("--beta", type=float, default=1.0, help="VAE KL weight β (default: 1)")
    p.add_argument("--epochs", type=int, help="autoencoder epochs (default: sized)")
    p.add_argument("--classifier-epochs", type=int, help="classifier epochs (default: sized)")
    p.add_argument("--batch-size", type=int, default=128, help="mini-batch size (default: 128)")
    p.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate (default: 1e-3)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    p.add_argument(
        "--train-limit", type=int, default=0, help="train on the first N images only (0: all)"
    )
    p.add_argument("--no-progress", action="store_true", help=flags.PROGRESS_HELP)
    flags.add_overwrite_flag(p, "existing weights.pt and train.json in --out")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> None:
    from latent_atlas.toolkit.data import load_dataset
    from latent_atlas.toolkit.train import TrainConfig, train_all

    cfg = TrainConfig(
        models=tuple(args.models), arch=args.arch, latent_dim=args.latent_dim,
        hidden=args.hidden, beta=args.beta, epochs=args.epochs,
        classifier_epochs=args.classifier_epochs, batch_size=args.batch_size, lr=args.lr,
        seed=args.seed, threads=args.threads, train_limit=args.train_limit,
        progress=not args.no_progress,
    )  # fmt: skip
    data = load_dataset(flags.data_source(args), train=True, class_names=flags.class_names(args))
    out = Path(args.out) if args.out else Path("runs") / data.name
    train_all(data, cfg, out, args.overwrite)
    print(f"trained models written to {out}/")
