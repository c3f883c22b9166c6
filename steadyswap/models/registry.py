"""The model registry: one declarative table of FaceFusion 3.5's face models and their I/O contracts.

Facts (file, release tag, template, input size, normalisation, source conversion, licence) are as
FaceFusion 3.5.0 declares them in its model sets (facefusion/face_detector.py, face_landmarker.py,
face_recognizer.py, face_masker.py, processors/modules/face_swapper/core.py,
processors/modules/face_enhancer/core.py). Files live under one URL pattern with a
sibling ``.hash`` file holding the CRC32 (8 lower-case hex digits) of the model file.

Input convention for every entry: ``tensor = (pixel / 255 - mean) / std`` per channel, NCHW float32,
channels RGB unless ``bgr`` is set, NHWC where ``layout`` says so (the occluders).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from steadyswap.errors import UsageError

Task = Literal["swapper", "detector", "landmarker", "recognizer", "converter", "occluder", "parser", "enhancer"]
"""``converter``: a helper another model needs (crossface embeddings for swappers, fan_68_5 points for 2dfan4)."""
SourceKind = Literal["emap", "normed", "converted", "converted_normed", "image"]
"""How a swapper's ``source`` input is made from ArcFace embeddings (averaged over the source photos):

emap: mean raw embedding @ the model's last initializer (512×512) / its norm (inswapper).
normed: mean of the L2-normalised embeddings (hyperswap).
converted: the converter model applied to the mean raw embedding (ghost).
converted_normed: the same, then L2-normalised (simswap, hififace).
image: an aligned RGB crop of the source photo in [0, 1] instead of an embedding (blendswap, uniface).
"""

TAGS = ("models-3.0.0", "models-3.1.0", "models-3.2.0", "models-3.3.0", "models-3.4.0")
ASSETS_URL = "https://github.com/facefusion/facefusion-assets/releases/download/{tag}/{file}"
"""Where FaceFusion's release assets live; ``{tag}`` is one of TAGS, ``{file}`` a file name."""
MIRROR_URL = "https://huggingface.co/facefusion/{tag}/resolve/main/{file}"
"""FaceFusion's second download host: the same files under the same tags."""
ASSET_HOSTS = (ASSETS_URL, MIRROR_URL)
"""Hosts tried in order for each file, as FaceFusion's download providers are."""

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
HALF = (0.5, 0.5, 0.5)
ZERO = (0.0, 0.0, 0.0)
ONE = (1.0, 1.0, 1.0)


@dataclass(frozen=True)
class ModelSpec:
    """One model file and how to feed it.

    Attributes:
        name: the value of its ``--face-*-model`` flag.
        task: what it does.
        family: the decoder / pre-processing it shares with others (``inswapper``, ``scrfd`` ...).
        file_stem: the file name without ``.onnx`` (FaceFusion's name for the asset).
        tag: the facefusion-assets release holding it.
        vendor, licence: as FaceFusion records them (licence governs the weights, not steadyswap).
        size: square input side in pixels (a detector's default, changeable when the graph allows).
        template: alignment template for the 5-point warp, if aligned.
        mean, std: input normalisation, see the module docstring.
        bgr: the network reads BGR (as FaceFusion feeds OpenCV-decoded frames).
        layout: the image input's layout, "nchw" or "nhwc".
        source: swappers only, see ``SourceKind``.
        converter: the helper model this one needs: a swapper's embedding converter; 2dfan4's fan_68_5.
        source_template, source_size: ``image`` sources only, how the source crop is aligned.
        denormalise: swappers and enhancers, the output is in normalised units (``x * std + mean``), else [0, 1].
        pixel_boosts: swappers only, the crop sides allowed for ``--face-swapper-pixel-boost``.
        weight_input: enhancers only, the graph has a second input ``weight`` (1,) float64 (codeformer's fidelity,
            ``--face-enhancer-weight``), fed when the graph declares it, as FaceFusion does.
        sizes: detectors only, the input sides FaceFusion offers for ``--face-detector-size`` (square).
        fp16_safe: the GPU engine may run it in fp16 without first checking against fp32
            (``engine.gpu.precision``): its file is fp16.
        inputs, outputs: the graph's inputs by name and outputs by position, with shapes.
        crc32: the published CRC32 if known; None means "read the sibling .hash file".
    """

    name: str
    task: Task
    family: str
    file_stem: str
    tag: str
    vendor: str
    licence: str
    size: int | None = None
    template: str | None = None
    mean: tuple[float, float, float] = ZERO
    std: tuple[float, float, float] = ONE
    bgr: bool = False
    layout: Literal["nchw", "nhwc"] = "nchw"
    source: SourceKind | None = None
    converter: str | None = None
    source_template: str | None = None
    source_size: int | None = None
    denormalise: bool = False
    pixel_boosts: tuple[int, ...] = ()
    weight_input: bool = False
    sizes: tuple[int, ...] = ()
    fp16_safe: bool = False
    inputs: tuple[str, ...] = ()
    outputs: tuple[str, ...] = ()
    crc32: str | None = None

    @property
    def file_name(self) -> str:
        return f"{self.file_stem}.onnx"

    @property
    def hash_name(self) -> str:
        return f"{self.file_stem}.hash"

    def url(self, pattern: str = ASSETS_URL) -> str:
        return pattern.format(tag=self.tag, file=self.file_name)

    def hash_url(self, pattern: str = ASSETS_URL) -> str:
        return pattern.format(tag=self.tag, file=self.hash_name)

    @property
    def hash_source(self) -> str:
        """Where the expected CRC32 comes from."""
        return f"published CRC32 {self.crc32}" if self.crc32 else f"CRC32 in {self.hash_url()}"


def _swapper(name: str, family: str, tag: str, vendor: str, licence: str, size: int, template: str,
             mean: tuple[float, float, float], std: tuple[float, float, float], source: SourceKind,
             boosts: tuple[int, ...], **extra: object) -> ModelSpec:
    source_input = "source (n,3,H,W) RGB [0,1]" if source == "image" else "source (n,512)"
    return ModelSpec(
        name=name, task="swapper", family=family, file_stem=name, tag=tag, vendor=vendor, licence=licence,
        size=size, template=template, mean=mean, std=std, source=source, pixel_boosts=boosts,
        inputs=(f"target (n,3,{size},{size})", source_input), outputs=(f"output (n,3,{size},{size})",),
        **extra,  # type: ignore[arg-type]
    )


# Pixel-boost crop sides: FaceFusion's choices that are whole multiples of the model size (space to depth
# needs that; FaceFusion also lists 384 for blendswap_256 and 768 for simswap_unofficial_512, which fail there).
def _enhancer(name: str, vendor: str, licence: str, size: int, template: str = "ffhq_512",
              weight_input: bool = False) -> ModelSpec:
    """A face enhancer: BGR crop in [-1, 1] (mean = std = 0.5) in, the same crop size out in [-1, 1]."""
    inputs = (f"input (1,3,{size},{size}) BGR [-1,1]",) + (("weight (1,) float64",) if weight_input else ())
    return ModelSpec(name=name, task="enhancer", family="enhancer", file_stem=name, tag="models-3.0.0",
                     vendor=vendor, licence=licence, size=size, template=template, mean=HALF, std=HALF, bgr=True,
                     denormalise=True, weight_input=weight_input, inputs=inputs,
                     outputs=(f"output (1,3,{size},{size}) BGR [-1,1]",))


_B128 = (128, 256, 384, 512, 768, 1024)
_B256 = (256, 512, 768, 1024)
_ANCHOR_SIZES = (160, 320, 480, 512, 640)
"""retinaface and scrfd take any multiple of 32; these are FaceFusion's choices (yolo_face and yunet: 640 only)."""
_ANCHOR_OUTPUTS = tuple(f"{what}_{stride} {shape}" for what, shape in
                        (("score", "(A,1)"), ("bbox", "(A,4) distances in strides"), ("kps", "(A,10)"))
                        for stride in (8, 16, 32))
_YUNET_OUTPUTS = tuple(f"{what}_{stride} {shape}" for what, shape in
                       (("cls", "(1,A,1)"), ("obj", "(1,A,1)"), ("bbox", "(1,A,4) dx,dy,log w,log h"),
                        ("kps", "(1,A,10)")) for stride in (8, 16, 32))

_TABLE: tuple[ModelSpec, ...] = (
    # Swappers (processors/modules/face_swapper/core.py).
    _swapper("blendswap_256", "blendswap", "models-3.0.0", "mapooon", "Non-Commercial", 256, "ffhq_512",
             ZERO, ONE, "image", _B256, source_template="arcface_112_v2", source_size=112),
    *(_swapper(f"ghost_{i}_256", "ghost", "models-3.0.0", "ai-forever", "Apache-2.0", 256, "arcface_112_v1",
               HALF, HALF, "converted", _B256, converter="crossface_ghost", denormalise=True) for i in (1, 2, 3)),
    _swapper("hififace_unofficial_256", "hififace", "models-3.1.0", "GuijiAI", "Unknown", 256, "mtcnn_512",
             HALF, HALF, "converted_normed", _B256, converter="crossface_hififace", denormalise=True),
    *(ModelSpec(
        name=f"hyperswap_1{v}_256", task="swapper", family="hyperswap", file_stem=f"hyperswap_1{v}_256",
        tag="models-3.3.0", vendor="FaceFusion", licence="ResearchRAIL", size=256, template="arcface_128",
        mean=HALF, std=HALF, source="normed", denormalise=True, pixel_boosts=_B256,
        inputs=("target (n,3,256,256)", "source (n,512)"),
        outputs=("output (n,3,256,256)", "mask (n,1,256,256) [0,1], when the file has it"),
    ) for v in "abc"),
    *(_swapper(name, "inswapper", "models-3.0.0", "InsightFace", "Non-Commercial", 128, "arcface_128",
               ZERO, ONE, "emap", _B128, fp16_safe=name.endswith("fp16"))
      for name in ("inswapper_128", "inswapper_128_fp16")),
    _swapper("simswap_256", "simswap", "models-3.0.0", "neuralchen", "Non-Commercial", 256, "arcface_112_v1",
             IMAGENET_MEAN, IMAGENET_STD, "converted_normed", _B256, converter="crossface_simswap"),
    _swapper("simswap_unofficial_512", "simswap", "models-3.0.0", "neuralchen", "Non-Commercial", 512,
             "arcface_112_v1", ZERO, ONE, "converted_normed", (512, 1024), converter="crossface_simswap"),
    _swapper("uniface_256", "uniface", "models-3.0.0", "xc-csc101", "Unknown", 256, "ffhq_512",
             HALF, HALF, "image", _B256, source_template="ffhq_512", source_size=256, denormalise=True),
    # Embedding converters: ArcFace space -> a swapper's identity space.
    *(ModelSpec(
        name=f"crossface_{family}", task="converter", family="crossface", file_stem=f"crossface_{family}",
        tag="models-3.4.0", vendor="FaceFusion", licence="Unknown",  # FaceFusion's model set states none
        inputs=("input (1,512)",), outputs=("embedding (1,512)",),
    ) for family in ("ghost", "hififace", "simswap")),
    # Face enhancers (processors/modules/face_enhancer/core.py): every file in models-3.0.0.
    _enhancer("codeformer", "sczhou", "S-Lab-1.0", 512, weight_input=True),
    *(_enhancer(f"gfpgan_{v}", "TencentARC", "Apache-2.0", 512) for v in ("1.2", "1.3", "1.4")),
    _enhancer("gpen_bfr_256", "yangxy", "Non-Commercial", 256, template="arcface_128"),
    *(_enhancer(f"gpen_bfr_{size}", "yangxy", "Non-Commercial", size) for size in (512, 1024, 2048)),
    _enhancer("restoreformer_plus_plus", "wzhouxiff", "Apache-2.0", 512),
    # Detectors (face_detector.py): BGR frames, letterboxed top-left into size×size.
    ModelSpec(name="retinaface", task="detector", family="retinaface", file_stem="retinaface_10g",
              tag="models-3.0.0", vendor="InsightFace", licence="Non-Commercial", size=640, sizes=_ANCHOR_SIZES,
              mean=HALF, std=(128 / 255,) * 3, bgr=True, inputs=("input (1,3,H,W)",), outputs=_ANCHOR_OUTPUTS),
    ModelSpec(name="scrfd", task="detector", family="scrfd", file_stem="scrfd_2.5g",
              tag="models-3.0.0", vendor="InsightFace", licence="Non-Commercial", size=640, sizes=_ANCHOR_SIZES,
              mean=HALF, std=(128 / 255,) * 3, bgr=True, inputs=("input (1,3,H,W)",), outputs=_ANCHOR_OUTPUTS),
    ModelSpec(name="yolo_face", task="detector", family="yolo_face", file_stem="yoloface_8n",
              tag="models-3.0.0", vendor="derronqi", licence="GPL-3.0", size=640, sizes=(640,), bgr=True,
              inputs=("input (1,3,640,640)",), outputs=("output (1,20,A): cx,cy,w,h,score,5×(x,y,conf)",)),
    ModelSpec(name="yunet", task="detector", family="yunet", file_stem="yunet_2023_mar",
              tag="models-3.4.0", vendor="OpenCV", licence="MIT", size=640, sizes=(640,), std=(1 / 255,) * 3, bgr=True,
              inputs=("input (1,3,640,640)",), outputs=_YUNET_OUTPUTS),
    # Landmarker (face_landmarker.py): 256 crop of the box scaled so its long side is 195 px.
    ModelSpec(name="2dfan4", task="landmarker", family="2dfan4", file_stem="2dfan4", tag="models-3.0.0",
              vendor="breadbread1984", licence="MIT", size=256, bgr=True, converter="fan_68_5",
              inputs=("input (n,3,256,256)",),
              outputs=("landmarks (n,68,3) x,y in 64-px heatmap space", "heatmaps (n,68,64,64)")),
    # 5 → 68 points (face_landmarker.py), loaded beside 2dfan4: points in a unit square by the ffhq_512 template.
    ModelSpec(name="fan_68_5", task="converter", family="fan_68_5", file_stem="fan_68_5", tag="models-3.0.0",
              vendor="FaceFusion", licence="OpenRAIL-M", template="ffhq_512",
              inputs=("input (1,5,2) five points, ffhq_512 template units",),
              outputs=("landmarks (1,68,2) the same units",)),
    # Recognizer (face_recognizer.py).
    ModelSpec(name="arcface_w600k_r50", task="recognizer", family="arcface", file_stem="arcface_w600k_r50",
              tag="models-3.0.0", vendor="InsightFace", licence="Non-Commercial", size=112,
              template="arcface_112_v2", mean=HALF, std=HALF, inputs=("input (n,3,112,112)",),
              outputs=("embedding (n,512)",)),
    # Face masker (face_masker.py): the occluders see the crop as BGR in [0, 1], NHWC, and give the share of
    # each pixel that is face (not covered); the parsers give 19 class logits (face_masks.REGION_CLASSES).
    *(ModelSpec(name=name, task="occluder", family="xseg", file_stem=name, tag=tag, vendor="DeepFaceLab",
                licence="GPL-3.0", size=256, bgr=True, layout="nhwc", inputs=("input (n,256,256,3) BGR [0,1]",),
                outputs=("output (n,256,256,1) [0,1]",))
      for name, tag in (("xseg_1", "models-3.1.0"), ("xseg_2", "models-3.1.0"), ("xseg_3", "models-3.2.0"))),
    *(ModelSpec(name=name, task="parser", family="bisenet", file_stem=name, tag=tag, vendor="yakhyo",
                licence="MIT", size=512, mean=IMAGENET_MEAN, std=IMAGENET_STD, inputs=("input (n,3,512,512)",),
                outputs=("output (n,19,512,512) class logits",))
      for name, tag in (("bisenet_resnet_18", "models-3.1.0"), ("bisenet_resnet_34", "models-3.0.0"))),
)

MODELS: dict[str, ModelSpec] = {spec.name: spec for spec in _TABLE}
"""Every known model by flag name."""

EMBEDDED = {"swapper": "classic", "detector": "mediapipe", "landmarker": "mediapipe", "recognizer": "none"}
"""The built-in choice per task: no model file, handled outside this registry."""


def get_model(name: str, task: Task | None = None) -> ModelSpec:
    """The entry named ``name`` (flag name or file stem), optionally of one task; UsageError otherwise."""
    spec = MODELS.get(name) or next((s for s in _TABLE if s.file_stem == name), None)
    if spec is None or (task is not None and spec.task != task):
        choices = ", ".join(s.name for s in _TABLE if task is None or s.task == task)
        what = f"{task} model" if task else "model"
        raise UsageError(f"unknown {what} '{name}' (known: {choices})")
    return spec


def models_for(task: Task) -> list[ModelSpec]:
    """All entries of one task, in table order."""
    return [spec for spec in _TABLE if spec.task == task]


def requirements(spec: ModelSpec) -> list[ModelSpec]:
    """The files ``spec`` needs to run: itself and its converter, if any."""
    return [spec] + ([MODELS[spec.converter]] if spec.converter else [])
