"""``sew-bench tradeoff``: WER against inference time of early exit, in the form of the SEW paper's Figure 1.

    sew-bench tradeoff ckpt/checkpoint_best.pt --data manifests --split dev-other
    sew-bench tradeoff ckpt/checkpoint_best.pt --data manifests --split dev-other --criteria entropy \\
        --entropy-thresholds 0.001 0.0035 0.01 --presets sew_d_tiny sew_tiny --out-dir tradeoff

For a ``sew_ctc_early_exit`` checkpoint and a manifest split: decodes the split greedily without early exit (the
plain CTC model: no branch runs) and with early exit at each threshold of each criterion, one utterance at a time
(exit decisions are per utterance), timing the model's forward passes (median over ``--repeats`` passes over the
split), and writes ``tradeoff.csv`` (one row per point: WER, CER, forward seconds, real-time factor, mean layers
used, exit-layer histogram) and ``tradeoff.png`` (WER against inference time: the no-exit point labelled with the
model's preset, one curve per criterion with each threshold marked). ``--presets`` adds timing-only points (random
weights, no WER: vertical lines) for this plugin's presets on the same utterances, to place the model among them.
"""
import csv
import logging
import os
import statistics
import time
from typing import Dict, List, NamedTuple, Optional, Sequence

import torch

from manifests.atomic import atomic_file, atomic_open

logger = logging.getLogger(__name__)

DEFAULT_GRIDS = {
    "entropy": [0.0005, 0.001, 0.002, 0.0035, 0.005, 0.01, 0.02, 0.04],
    "confidence": [0.99, 0.98, 0.97, 0.955, 0.93, 0.9, 0.85, 0.8],
}
CSV_FIELDS = ["point", "criterion", "threshold", "wer", "cer", "forward_seconds", "audio_seconds", "rtf",
              "mean_layers", "num_layers", "exit_layer_histogram"]


class Point(NamedTuple):
    point: str  # "no exit", "exit", or "preset <name>" (timing only)
    criterion: str
    threshold: Optional[float]
    wer: Optional[float]
    cer: Optional[float]
    forward_seconds: float
    audio_seconds: float
    mean_layers: Optional[float]
    num_layers: Optional[int]
    exit_layer_histogram: Dict[str, int]

    @property
    def rtf(self) -> float:
        return self.forward_seconds / self.audio_seconds

    def row(self) -> Dict[str, object]:
        hist = " ".join(f"{k}:{v}" for k, v in self.exit_layer_histogram.items())
        return {"point": self.point, "criterion": self.criterion,
                "threshold": "" if self.threshold is None else f"{self.threshold:g}",
                "wer": "" if self.wer is None else f"{self.wer:.2f}",
                "cer": "" if self.cer is None else f"{self.cer:.2f}",
                "forward_seconds": f"{self.forward_seconds:.4f}", "audio_seconds": f"{self.audio_seconds:.2f}",
                "rtf": f"{self.rtf:.5f}", "mean_layers": "" if self.mean_layers is None else f"{self.mean_layers:.3f}",
                "num_layers": "" if self.num_layers is None else self.num_layers, "exit_layer_histogram": hist}


def preset_label(backbone_cfg) -> str:
    """The preset whose architecture ``backbone_cfg`` (a checkpoint's ``model.w2v_args.model``) has, else a
    description ("sew_d, 4 layers, D=256")."""
    from ..models.presets import PRESETS

    name = backbone_cfg.get("_name")
    name = {"squeeze_wav2vec2": "sew", "squeeze_wav2vec2_deberta": "sew_d",
            "feat_mlp_wav2vec2": "w2v2_mlp"}.get(name, name)
    shape = (backbone_cfg.get("encoder_layers"), backbone_cfg.get("encoder_embed_dim"),
             backbone_cfg.get("encoder_attention_heads"), backbone_cfg.get("encoder_ffn_embed_dim"))
    for preset, p in PRESETS.items():
        if p.model == name and shape == (p.layers, p.dim, p.heads, 4 * p.dim) and \
                backbone_cfg.get("conv_pos") == p.conv_pos:
            return preset
    return f"{name}, {shape[0]} layers, D={shape[1]}"


def _measure(model, utterances, repeats: int, device: str, normalize: bool, exit_rule, progress: bool):
    """(emissions of the first pass, median forward seconds over ``repeats`` passes), one utterance at a time."""
    from ..evaluate.splits import compute_emissions

    times, emissions = [], None
    for _ in range(repeats):
        out, seconds = compute_emissions(model, utterances, max_samples=1, device=device, normalize=normalize,
                                         progress=progress, exit_rule=exit_rule)
        emissions = emissions or out
        times.append(seconds)
    return emissions, statistics.median(times)


def sweep(model, dictionary, utterances, grids: Dict[str, Sequence[float]], repeats: int = 3, device: str = "cpu",
          normalize: bool = False, progress: bool = False) -> List[Point]:
    """The no-exit point, then one point per (criterion, threshold) of ``grids``."""
    from ..decoding import build_decoder
    from ..evaluate.splits import exit_summary
    from ..modules.early_exit import ExitRule
    from ..evaluate.scoring import decode_all, score

    decoder = build_decoder("viterbi", dictionary)
    audio_s = sum(u.num_samples for u in utterances) / 16000
    num_layers = model.num_layers
    emissions, seconds = _measure(model, utterances, repeats, device, normalize, None, progress)
    result = score(emissions, decode_all(decoder, emissions))
    points = [Point("no exit", "", None, result.get("wer"), result.get("cer"), seconds, audio_s, float(num_layers),
                    num_layers, {str(num_layers): len(utterances)})]
    for criterion, thresholds in grids.items():
        for threshold in thresholds:
            rule = ExitRule(criterion, threshold).check()
            emissions, seconds = _measure(model, utterances, repeats, device, normalize, rule, progress)
            result = score(emissions, decode_all(decoder, emissions))
            stats = exit_summary(emissions, num_layers)
            points.append(Point("exit", criterion, threshold, result.get("wer"), result.get("cer"), seconds, audio_s,
                                stats["mean_layers"], num_layers, stats["exit_layer_histogram"]))
            logger.info("%s %g: WER %s, %.3f s", criterion, threshold, result.get("wer"), seconds)
    return points


def time_presets(presets: Sequence[str], utterances, repeats: int = 3) -> List[Point]:
    """Timing-only points: each preset's backbone (random weights, no heads) on the same utterances, batch 1."""
    from ..evaluate.splits import load_audio
    from ..models.presets import build_preset

    waves = [torch.from_numpy(load_audio(u, 16000)).unsqueeze(0) for u in utterances]
    audio_s = sum(u.num_samples for u in utterances) / 16000
    points = []
    for name in presets:
        model = build_preset(name)
        model.remove_pretraining_modules()
        model.eval()
        times = []
        with torch.inference_mode():
            for _ in range(repeats):
                start = time.perf_counter()
                for w in waves:
                    model.extract_features(w, None)
                times.append(time.perf_counter() - start)
        points.append(Point(f"preset {name}", "", None, None, None, statistics.median(times), audio_s, None,
                            model.cfg.encoder_layers, {}))
        del model
    return points


def write_csv(path: str, points: Sequence[Point]) -> None:
    with atomic_open(path, "w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=CSV_FIELDS)
        writer.writeheader()
        for p in points:
            writer.writerow(p.row())


def plot(path: str, points: Sequence[Point], model_label: str, title: str) -> None:
    """WER (y) against forward seconds (x): no-exit star, a line per criterion with thresholds annotated, and
    timing-only presets as vertical dotted lines. PNG, matplotlib's Agg backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.8), dpi=100)
    colors = {"entropy": "tab:blue", "confidence": "tab:orange"}
    for criterion in [c for c in colors if any(p.criterion == c for p in points)]:
        curve = sorted((p for p in points if p.criterion == criterion and p.wer is not None),
                       key=lambda p: p.forward_seconds)
        ax.plot([p.forward_seconds for p in curve], [p.wer for p in curve], "o-", color=colors[criterion], ms=4,
                lw=1, label=f"early exit, {criterion} threshold")
        for p in curve:
            ax.annotate(f"{p.threshold:g}", (p.forward_seconds, p.wer), textcoords="offset points", xytext=(4, 3),
                        fontsize=7, color=colors[criterion])
    for p in points:
        if p.point == "no exit" and p.wer is not None:
            ax.plot([p.forward_seconds], [p.wer], "*", color="black", ms=12, label=f"{model_label}, no exit")
    ymax = max((p.wer for p in points if p.wer is not None), default=1.0)
    for p in points:
        if p.point.startswith("preset "):
            ax.axvline(p.forward_seconds, color="gray", ls=":", lw=1)
            ax.text(p.forward_seconds, ymax, f" {p.point[7:]}\n (time only)", fontsize=7, color="gray",
                    va="top", rotation=90)
    ax.set_xlabel(f"inference time (s): forward passes over {points[0].audio_seconds:.0f} s of audio, batch 1")
    ax.set_ylabel("WER (%), greedy")
    ax.set_title(title, fontsize=9)
    if any(p.point.startswith("preset ") for p in points):  # presets can be far slower: log scale, plain labels
        from matplotlib.ticker import FormatStrFormatter

        ax.set_xscale("log")
        for axis_formatter in (ax.xaxis.set_major_formatter, ax.xaxis.set_minor_formatter):
            axis_formatter(FormatStrFormatter("%g"))
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=2, frameon=False)
    fig.tight_layout()
    try:
        with atomic_file(path, suffix=".png") as tmp:
            fig.savefig(tmp, format="png")
    finally:
        plt.close(fig)


def format_points(points: Sequence[Point]) -> str:
    lines = [f"{'point':<22}{'threshold':>10}{'WER %':>8}{'CER %':>8}{'fwd s':>9}{'RTF':>9}{'layers':>8}  exits"]
    for p in points:
        r = p.row()
        name = p.point if p.point != "exit" else f"exit {p.criterion}"
        lines.append(f"{name:<22}{r['threshold']:>10}{r['wer'] or '-':>8}{r['cer'] or '-':>8}{p.forward_seconds:>9.3f}"
                     f"{p.rtf:>9.4f}{r['mean_layers'] or '-':>8}  {r['exit_layer_histogram']}")
    return "\n".join(lines)


class TradeoffResult(NamedTuple):
    points: List[Point]
    label: str  # the model's preset (or a description of its architecture)
    title: str  # the plot's title
    exit_layers: List[int]
    num_layers: int
    utterances: int
    out_dir: str  # where tradeoff.csv and tradeoff.png were written


def run_tradeoff(checkpoint: str, data: str, split: str, grids: Dict[str, Sequence[float]],
                 presets: Sequence[str] = (), repeats: int = 3, device: str = "cpu", out_dir: Optional[str] = None,
                 title: Optional[str] = None, progress: bool = True) -> TradeoffResult:
    """The whole benchmark (see the module docstring): sweep ``grids`` (criterion -> thresholds), add the timing
    points of ``presets``, write ``tradeoff.csv`` and ``tradeoff.png`` into ``out_dir`` (default
    ``<checkpoint dir>/tradeoff-<split>``). Raises ValueError for a checkpoint without exit branches, a split without
    references or an unknown preset."""
    from ..checkpoints.ctc import load_ctc_model
    from ..evaluate.splits import read_split
    from ..models.presets import PRESETS

    unknown = [p for p in presets if p not in PRESETS]
    if unknown:
        raise ValueError(f"unknown preset(s) {' '.join(unknown)}; choose from {', '.join(PRESETS)}")
    utterances = read_split(data, split)
    model, dictionary, cfg = load_ctc_model(checkpoint, data, device)
    if not hasattr(model, "forward_early_exit"):
        raise ValueError(f"{checkpoint} has no exit branches (model {cfg.model._name}); train them with "
                         f"recipes/finetuning/early_exit_joint.yaml or early_exit_two_stage.yaml")
    if any(u.words is None for u in utterances):
        raise ValueError(f"{data}/{split}.wrd is missing: the trade-off needs reference transcripts")
    normalize = bool(getattr(cfg.task, "normalize", False))
    points = sweep(model, dictionary, utterances, grids, repeats, device, normalize, progress)
    points += time_presets(presets, utterances, repeats)
    label = preset_label(cfg.model.w2v_args.model)
    out_dir = out_dir or os.path.join(os.path.dirname(os.path.abspath(checkpoint)), f"tradeoff-{split}")
    os.makedirs(out_dir, exist_ok=True)
    write_csv(os.path.join(out_dir, "tradeoff.csv"), points)
    title = title or (f"early exit on {split} ({len(utterances)} utterances): {label}, exits after layers "
                      f"{', '.join(map(str, model.exit_layers))} of {model.num_layers}")
    plot(os.path.join(out_dir, "tradeoff.png"), points, label, title)
    return TradeoffResult(points, label, title, list(model.exit_layers), model.num_layers, len(utterances), out_dir)
