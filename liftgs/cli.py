"""The ``liftgs`` command: tyro subcommands, each imported only when it is run.

Every subcommand is a dataclass with a ``main(self) -> None`` method; tyro builds its flags from the
fields. Keeping the imports lazy makes ``liftgs --help`` instant and keeps heavy dependencies (torch,
nerfstudio) out of commands that do not need them.
"""

from __future__ import annotations

import importlib
import sys

import tyro

SUBCOMMANDS: dict[str, tuple[str, str]] = {
    # name: ("module:Class", one-line help). Each owner adds its own line.
    "generate": ("liftgs.data.synthetic.generate:GenerateCommand", "generate the synthetic benchmark"),
    "eval": ("liftgs.eval.command:EvalCommand", "score a checkpoint: Acc@0.25/0.5, mask IoU, JSON, plots"),
    "ground": ("liftgs.ground:GroundCommand", "ground one query in one scene: JSON, optional 3DGS .ply"),
    "bench model": ("liftgs.benchmarks.model:BenchModel", "time the encoder per scene and query latency"),
    "bench render": ("liftgs.benchmarks.render:RenderBenchmark", "time rasterize: fwd, fwd+bwd, memory"),
    "bench train": ("liftgs.benchmarks.train:BenchTrain", "time ns-train liftgs steps: s/step, scenes/s"),
    "bench gsplat": (
        "liftgs.benchmarks.gsplat_parity:GsplatParity",
        "torch backend vs gsplat CUDA kernels: agreement and speed (GPU)",
    ),
    "export-checkpoint": ("liftgs.nerfstudio.export:ExportCheckpoint", "ns-train run -> LIFT-GS checkpoint"),
    "bench scene-file": (
        "liftgs.benchmarks.scene_file:BenchSceneFile",
        "time 3DGS PLY files of 100k / 1M splats: load, encode, first answer",
    ),
    "bench words": (
        "liftgs.benchmarks.held_out_words:BenchHeldOutWords",
        "how the text encoder places the benchmark's held-out words",
    ),
    "bench categories": (
        "liftgs.benchmarks.categories:BenchCategories",
        "how well a checkpoint grounds 'the <category>.' in every scene",
    ),
    "bench separability": (
        "liftgs.benchmarks.separability:BenchSeparability",
        "how well the encoder's input voxels tell the categories apart",
    ),
    "bench viewer": ("liftgs.benchmarks.viewer:BenchViewer", "time the live viewer: query -> colors"),
    "import-scannet": ("liftgs.data.import_scannet:ImportScanNetCommand", "import ScanNet + its annotations"),
    "pseudo-label": ("liftgs.pseudo.command:PseudoLabelCommand", "2D pseudo-labels (SAM+CLIP or stand-in)"),
    "lift-features": (
        "liftgs.pseudo.lift_dataset:LiftFeaturesCommand",
        "lift stored pseudo-labels onto the points (encoder inputs)",
    ),
    "experiments": ("liftgs.experiments.command:ExperimentsCommand", "train + score the grid: md/json/plots"),
}


def _usage() -> str:
    width = max((len(name) for name in SUBCOMMANDS), default=0)
    lines = ["usage: liftgs SUBCOMMAND [OPTIONS]", "", "subcommands:"]
    lines += [f"  {name.ljust(width)}  {help_text}" for name, (_, help_text) in SUBCOMMANDS.items()]
    lines.append("\nRun `liftgs <subcommand> --help` for its options.")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(_usage())
        return
    # Two-word subcommands ("bench render") take precedence over one-word ones.
    two_words = " ".join(args[:2])
    name, rest = (two_words, args[2:]) if two_words in SUBCOMMANDS else (args[0], args[1:])
    if name not in SUBCOMMANDS:
        raise SystemExit(f"liftgs: unknown subcommand {name!r}; choose one of: {', '.join(SUBCOMMANDS)}")
    target, help_text = SUBCOMMANDS[name]
    module_name, class_name = target.split(":")
    config_cls = getattr(importlib.import_module(module_name), class_name)
    config = tyro.cli(config_cls, args=rest, prog=f"liftgs {name}", description=help_text)
    config.main()


if __name__ == "__main__":
    main()
