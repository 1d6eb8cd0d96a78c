"""``python -m mlbench prefetch SUITE``: fetch every pretrained backbone weight a suite needs on
a machine with internet, and say what an offline compute node needs (issue 28;
:mod:`mlbench.models.hub`)."""

from __future__ import annotations

import sys


def register(sub) -> None:
    from mlbench.commands.common import add_suite_argument

    p = sub.add_parser(
        "prefetch", help="fetch a suite's pretrained weights ahead, for offline compute nodes",
        description="Downloads the pretrained weights of every backbone of SUITE that uses "
        "them (model.pretrained: true, no model.weights file for it) into the standard cache "
        "($HF_HOME/hub, or torch's hub cache), or with --dir saves each as DIR/BACKBONE.pth; "
        "then prints what a compute node without internet needs (HF_HUB_OFFLINE=1 and the "
        "cache, or the model.weights mapping).",
    )
    add_suite_argument(p)
    p.add_argument("--dir", metavar="DIR",
                   help="also save each backbone's weights as DIR/BACKBONE.pth (files to copy "
                   "to the cluster and name in model.weights)")
    p.set_defaults(func=_cmd_prefetch)


def _cmd_prefetch(args) -> int:
    from pathlib import Path

    from mlbench.commands.common import quote
    from mlbench.models.hub import prefetch
    from mlbench.suite import SuiteError, load_suite
    from mlbench.suite.grid import backbone_weights
    from mlbench.suite.schema import as_list

    try:
        suite = load_suite(args.suite, overrides=args.overrides, train_keys=False)
    except (SuiteError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    model = suite.config["model"]
    files = backbone_weights(model["weights"], as_list(suite.config["grid"]["backbone"]))
    needed = [b for b, file in files.items() if file is None]
    if not model["pretrained"] or not needed:
        why = "model.pretrained is false" if not model["pretrained"] else \
            "every backbone has its model.weights file"
        print(f"{args.suite}: nothing to fetch ({why}); a compute node needs no download")
        return 0
    folder = Path(args.dir) if args.dir else None
    got = {}
    for backbone in needed:
        try:
            got[backbone] = prefetch(backbone, folder)
        except (ValueError, RuntimeError, OSError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        print(f"{backbone}: {got[backbone]}")
    if folder is None:
        import huggingface_hub.constants as hf

        print("\nOn the compute node (no internet), with this cache copied or shared:\n"
              f"  export HF_HUB_OFFLINE=1 HF_HOME={quote(Path(hf.HF_HOME))}\n"
              f"  python -m mlbench run {quote(args.suite)}")
    else:
        print("\nCopy these files to the compute node and name them in the suite (paths as "
              "seen there):\nmodel:\n  weights:")
        for backbone, file in got.items():
            print(f"    {backbone}: {file.resolve()}")
        if len(got) == 1:
            print(f"or: python -m mlbench run {quote(args.suite)} --set "
                  f"model.weights={quote(next(iter(got.values())).resolve())}")
    return 0
