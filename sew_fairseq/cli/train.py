"""``sew-train``: ``fairseq-hydra-train`` with this plugin loaded first.

    sew-train --config-dir recipes/pretraining --config-name sew_d_tiny task.data=/path/to/manifests

Same arguments as ``fairseq-hydra-train``. Differences:

* ``common.user_dir`` defaults to this package (pass it to override);
* the plugin's fairseq fixes (``sew_fairseq.compat``) are applied before fairseq starts, including the ones
  fairseq-hydra-train cannot get from ``common.user_dir`` because it imports the user dir only after it
  has decided how to launch: data-parallel training on CPU (``common.cpu=true
  distributed_training.distributed_world_size=N`` spawns N gloo processes) and fp16 recipes on CPU.
"""
import os
import sys
import warnings
from typing import List, Optional, Sequence

USAGE = __doc__ + """
Hydra's own help: sew-train --hydra-help ; the composed config: sew-train ... --cfg job
"""


def with_user_dir(argv: Sequence[str]) -> List[str]:
    """``argv`` plus ``common.user_dir=<this package>`` unless a user dir is already given.

    The override goes in front of the user's first override, not at the end: Hydra takes its overrides as one
    run of positional arguments, so one appended after options such as ``--cfg job`` would be refused."""
    args = list(argv)
    if not any(a.lstrip("+").startswith("common.user_dir=") for a in args):
        package = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        overrides = [i for i, a in enumerate(args) if "=" in a and not a.startswith("-")]
        args.insert(overrides[0] if overrides else len(args), f"common.user_dir={package}")
    return args


#: Warnings every fairseq-hydra-train run prints that say nothing about the user's run: fairseq-fixed 0.12.3.1
#: calls ``hydra.main`` without ``version_base`` and matches each yaml to a ConfigStore schema of the same name
#: (both deprecated in Hydra 1.1 and 1.2), recipes in fairseq's style carry ``# @package _group_`` headers, and
#: fairseq's RawAudioDataset indexes with a list (deprecated in torch 2.x). The behaviour they announce is the
#: one these recipes are written for.
KNOWN_WARNINGS = (
    r"\s*The version_base parameter is not specified",
    r"(?s).*is validated against ConfigStore schema with the same name",
    r".*Usage of deprecated keyword in package header '# @package _group_'",
    r"Using a non-tuple sequence for multidimensional indexing is deprecated",
)


def quiet_known_warnings() -> None:
    for message in KNOWN_WARNINGS:
        warnings.filterwarnings("ignore", message=message, category=UserWarning)


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in ("-h", "--help"):
        print(USAGE)
        return 0
    quiet_known_warnings()
    import sew_fairseq  # noqa: F401  applies the compatibility fixes before fairseq starts
    from fairseq_cli.hydra_train import cli_main

    sys.argv = ["sew-train"] + with_user_dir(argv)
    cli_main()
    return 0


if __name__ == "__main__":
    sys.exit(main())
