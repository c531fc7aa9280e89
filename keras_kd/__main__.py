"""Command line: `python -m keras_kd demo [--select] ...`."""

import argparse
import os
import sys


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m keras_kd",
        description="keras_kd's main job: distil a teacher into a small student and compare.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser(
        "demo",
        help="teacher vs scratch student vs distilled student vs int8 TFLite",
        description=(
            "Train a teacher, a student from scratch and the same student distilled "
            "(cached teacher logits, temperature annealing), export the distilled student "
            "to TFLite int8, evaluate everything on the test split (mean ± std over seeds) "
            "and plot the learning curves. Offline by default: scikit-learn's bundled digits."
        ),
    )
    demo.add_argument("--dataset", default="digits",
                      help="'digits' (default, bundled with scikit-learn) or a tfds name: mnist, fashion_mnist")
    demo.add_argument("--data-dir", default=None,
                      help="tfds data directory (default: $TFDS_DATA_DIR, else tfds's own, which downloads)")
    demo.add_argument("--output", default="demo_output",
                      help="folder for the .tflite file, the plot and results.md (default: demo_output)")
    demo.add_argument("--seeds", type=int, default=3, help="student seeds (default: 3)")
    demo.add_argument("--epochs", type=int, default=None, help="student epochs (default: the chosen setting's)")
    demo.add_argument("--teacher-epochs", type=int, default=None,
                      help="teacher epochs (default: the chosen setting's)")
    demo.add_argument("--quiet", action="store_true", help="no per-epoch progress lines")
    demo.add_argument("--select", action="store_true",
                      help="instead, run the validation-split search that chose the default setting")
    args = parser.parse_args(argv)

    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    import dataclasses

    from keras_kd import demo as demo_module

    if args.seeds < 1:
        parser.error(f"--seeds must be >= 1. Received: {args.seeds}")
    if args.select:
        demo_module.select(args.dataset, args.data_dir, seeds=max(args.seeds, 2))
        return 0
    setting = demo_module.DIGITS if args.dataset == "digits" else demo_module.TFDS
    if args.epochs is not None:
        setting = dataclasses.replace(setting, epochs=args.epochs)
    if args.teacher_epochs is not None:
        setting = dataclasses.replace(setting, teacher_epochs=args.teacher_epochs)
    demo_module.run(args.dataset, args.data_dir, args.output, args.seeds, setting,
                    verbose=0 if args.quiet else 2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
