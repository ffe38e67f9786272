"""sew-fairseq: SEW / SEW-D / wav2vec 2.0 models as a fairseq plugin (``common.user_dir``)."""
import sys

from setuptools import find_packages, setup

# fairseq 0.12.2 does not import on Python >= 3.11; fairseq-fixed ships the same `fairseq` module fixed.
FAIRSEQ = "fairseq-fixed==0.12.3.1" if sys.version_info >= (3, 11) else "fairseq==0.12.2"

setup(
    name="sew-fairseq",
    version="0.1.0",
    description="SEW and SEW-D speech models (Wu et al. 2021) as a fairseq plugin",
    long_description=open("README.md", encoding="utf-8").read() if __import__("os").path.exists("README.md") else "",
    long_description_content_type="text/markdown",
    python_requires=">=3.8",
    packages=find_packages(include=["sew_fairseq", "sew_fairseq.*", "manifests", "manifests.*"]),
    install_requires=[
        FAIRSEQ,
        "torch>=1.13",
        "numpy>=1.21.3",
        "omegaconf>=2.0",
        "hydra-core>=1.0",
        "soundfile>=0.12",
        "sentencepiece",
        "flashlight-text==0.0.7",
        "editdistance",
        "tqdm",
        "soxr",  # resampling: demo corpus, sew-transcribe, corpus builders
        "tensorboardX",  # fairseq's common.tensorboard_logdir
        "espeakng-loader",  # demo corpus: espeak-ng library and voices
        "matplotlib>=3.5",  # sew-bench tradeoff's plot
    ],
    extras_require={
        "test": ["pytest>=7", "transformers>=4.40", "onnx>=1.16", "onnxruntime>=1.18", "openvino>=2025.0",
                 "nncf>=2.16"],
        "hf": ["transformers>=4.40"],
        "onnx": ["onnx>=1.16", "onnxruntime>=1.18"],
        "openvino": ["onnx>=1.16", "onnxruntime>=1.18", "openvino>=2025.0", "nncf>=2.16"],
    },
    entry_points={
        "console_scripts": [
            "sew-bench=sew_fairseq.cli.bench:main",
            "sew-convert=sew_fairseq.cli.convert:main",
            "sew-average=sew_fairseq.cli.average:main",
            "sew-train=sew_fairseq.cli.train:main",
            "sew-log-summary=manifests.training_log:main",  # the light layer: no torch, no fairseq
            "sew-infer=sew_fairseq.cli.infer:main",
            "sew-transcribe=sew_fairseq.cli.transcribe:main",
            "sew-align=sew_fairseq.cli.align:main",
            "sew-lm=manifests.lexicon:main",
            "sew-score=manifests.sclite:main",
            "sew-demo-data=manifests.demo:main",
            "sew-manifest=manifests.__main__:main",  # not via sew_fairseq: no fairseq import
        ],
    },
)
