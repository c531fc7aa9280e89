"""Command line: `python -m keras_kd demo [--select | --train-teacher] ...`."""

import argparse
import os
import sys


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m keras_kd",
        description="keras_kd's main job: distil a teacher into a phone-sized student and compare.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser(
        "demo",
        help="scratch vs distilled phone-sized student, tested for a significant gain",
        description=(
            "On the embedded Fashion-MNIST subset and its shipped teacher: train the "
            "phone-sized student from scratch (the variant the selection chose on validation) "
            "and distilled, for several seeds; compare the two on the test split with "
            "McNemar's exact test; export the "
            "distilled student to int8 TFLite and check it in LiteRT. Offline."
        ),
    )
    demo.add_argument("--output", default="demo_output",
                      help="folder for the .tflite file, the plot and results.md (default: demo_output)")
    demo.add_argument("--seeds", type=int, default=3, help="student seeds (default: 3)")
    demo.add_argument("--epochs", type=int, default=None, help="student epochs (default: the chosen setting's)")
    demo.add_argument("--quiet", action="store_true", help="only the table and the verdict")
    demo.add_argument("--with-keras-distillation", action="store_true",
                      help="also distil the same student with Keras's keras.distillation (a row more)")
    demo.add_argument("--select", action="store_true",
                      help="instead, run the validation search that chose the default setting")
    demo.add_argument("--train-teacher", action="store_true",
                      help="instead, retrain the shipped teachers (seeds 0, 1, and 2 for the selection) "
                           "on the training split (about 8 minutes each)")
    args = parser.parse_args(argv)

    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    import dataclasses

    from keras_kd._internal import optional as _optional

    try:
        _optional.require_extra("demo", "`python -m keras_kd demo`")
    except ImportError as error:
        parser.exit(1, f"{error}\n")
    from keras_kd import demo as demo_module

    if args.seeds < 1:
        parser.error(f"--seeds must be >= 1. Received: {args.seeds}")
    setting = demo_module.DEFAULT
    if args.epochs is not None:
        if args.epochs < 1:
            parser.error(f"--epochs must be >= 1. Received: {args.epochs}")
        setting = dataclasses.replace(setting, epochs=args.epochs)
    if args.train_teacher:
        train, val, _ = demo_module.load()
        for seed, path in enumerate(demo_module.SELECTION_TEACHER_PATHS):
            demo_module.train_teacher(train, val, path, seed=seed)
        return 0
    if args.select:
        demo_module.select(seeds=max(args.seeds, 2), setting=setting)
        return 0
    demo_module.run(args.output, args.seeds, setting, verbose=0 if args.quiet else 1,
                    with_peer=args.with_keras_distillation)
    return 0


if __name__ == "__main__":
    sys.exit(main())
