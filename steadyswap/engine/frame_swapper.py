"""FaceSwapper: the per-frame engine object — analyse, track, smooth, select, swap, paste.

It keeps tracking state between calls, so a service can feed it frames from its own video
pipeline one at a time or in batches. ``steadyswap.api.swap_file`` drives it for whole files.
"""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from steadyswap.analysis.base import FaceAnalyzer
from steadyswap.analysis.cuts import SceneCutDetector
from steadyswap.analysis.face_map import DEFAULT_SOURCE, FaceMap, Person, load_face_map, run_inputs
from steadyswap.analysis.hands import HandFinder
from steadyswap.analysis.selection import FaceSelector, descriptors, pick_face
from steadyswap.blend.face_masks import FaceMasker
from steadyswap.blend.colour import ColourMatcher
from steadyswap.blend.degrade import BlurMatcher
from steadyswap.blend.hold import StillHold
from steadyswap.blend.occlusion import occlude
from steadyswap.blend.paste import paste_patches
from steadyswap.config import RunConfig
from steadyswap.enhance.tone import ToneSmoother
from steadyswap.errors import NoFaceError
from steadyswap.io import read_image
from steadyswap.swap.base import SourceFace, Swapper
from steadyswap.swap.sources import check_faces, source_names
from steadyswap.tracking import cadence
from steadyswap.tracking.smoothing import LandmarkSmoother
from steadyswap.tracking.tracker import FaceTracker
from steadyswap.types import Faces, SwapPatch, check_shape

if TYPE_CHECKING:
    from steadyswap.enhance.onnx_enhancer import FaceEnhancer

log = logging.getLogger(__name__)


@dataclass
class FrameResult:
    """What happened to one frame: the output image, the faces swapped (smoothed) and raw, the hands
    kept in front of them (``analysis.hands``' frame-space mask; None: none found, or the occluder is off),
    and the patches ``paste_patches`` was given, each with its final mask (after every mask type, the hand
    occluder, the enhancer and every later stage): ``blend.paste.paste_mask(image.shape, patches)`` is the
    frame-space paste mask. ``requests``: the (source, faces) pairs handed to the swapper, in order: what the GPU
    engine swaps in this frame on the device."""

    image: np.ndarray
    faces: Faces
    raw_faces: Faces
    scene_cut: bool
    hands: np.ndarray | None = None
    patches: list[SwapPatch] = field(default_factory=list)
    requests: list[tuple[SourceFace, Faces]] = field(default_factory=list)


@dataclass
class _Waiting:
    """A frame the analysis holds until the next keyframe's detection says how to find its faces
    (``tracking.cadence``): its picture, the hand picture and number ``analyse`` got, its scene-cut flag and the
    detections its caller gave (the GPU engine's; None: the analyser finds them if they are needed)."""

    image: np.ndarray
    hand_picture: np.ndarray | None
    number: int
    cut: bool
    found: Faces | None


@dataclass
class Analysed:
    """A frame after analysis and tracking, before smoothing and swapping."""

    image: np.ndarray
    raw: Faces
    cut: bool
    active_tracks: set[int]
    hands: np.ndarray | None = None
    number: int = 0
    """The frame's number in its video (``push``'s index; else the swapper's count of frames analysed)."""


def build_analyzer(config: RunConfig) -> FaceAnalyzer:
    """The analyser named by the config: the embedded MediaPipe mesh, or an ONNX detector.

    Raises:
        UsageError: a landmarker model named beside the MediaPipe mesh (which brings its own landmarks).
    """
    from steadyswap.assembly import build_analyzer as build_model_analyzer

    model = build_model_analyzer(config)  # None for the embedded mesh, after checking the landmarker choice
    if model is not None:
        return model
    from steadyswap.analysis.mediapipe_mesh import MediaPipeAnalyzer

    # In video mode the mesh re-runs its face detector on every frame while it tracks fewer faces
    # than its maximum; "one" asks for a single face so tracking alone carries it (about 1.5x faster).
    max_faces = 1 if config.face_selector_mode == "one" and not config.face_map else 8
    return MediaPipeAnalyzer(max_faces=max_faces, min_score=config.face_detector_score,
                             analysis_size=config.analysis_size)


def build_recognizer(config: RunConfig):
    """The ArcFace recognizer named by ``--face-recognizer-model``, or None ('none')."""
    if config.face_recognizer_model == "none":
        return None
    from steadyswap.assembly import build_recognizer as build_model_recognizer

    return build_model_recognizer(config, required=True)


def build_masker(config: RunConfig) -> FaceMasker | None:
    """The ``blend.face_masks.FaceMasker`` of ``--face-mask-types``, or None when only box is asked for."""
    from steadyswap.assembly import build_masker as build_model_masker

    return build_model_masker(config)


def build_enhancer(config: RunConfig) -> FaceEnhancer | None:
    """The face enhancer of ``--processors face_swapper face_enhancer`` (onnxruntime), or None."""
    if not config.enhances:
        return None
    from steadyswap.assembly import build_enhancer as build_model_enhancer

    return build_model_enhancer(config)


def build_swapper(config: RunConfig) -> Swapper:
    """The swapper named by the config: the embedded classic warp, or an ONNX model."""
    if config.face_swapper_model == "classic":
        from steadyswap.swap.classic import ClassicSwapper

        return ClassicSwapper(config.face_mask_blur, config.face_mask_padding, config.face_mask_forehead)
    from steadyswap.assembly import build_swapper as build_model_swapper

    return build_model_swapper(config)


class FaceSwapper:
    """Swaps the source identity into frames, keeping temporal state between calls.

    ``swap_frame``/``swap_frames`` answer at once (causal smoothing). ``push``/``flush`` let the
    smoother look ``config.smoothing_lookahead`` frames ahead (zero-phase, no lag): each push returns
    the frames that became final, in order, and ``flush`` returns the rest at the end of a stream.

    Args:
        sources: source photos (paths or H×W×3 uint8 RGB arrays); the largest face of each is used, and
            several combine into one identity (``steadyswap.swap.sources``); a photo without a face is left
            out with a warning.
        config: run options (defaults: embedded analyser, classic swapper, One-Euro smoothing).
        fps: frame rate of the frames to come (sets the smoothing time step).
        analyzer, swapper: use these instead of building the ones ``config`` names (the GPU engine
            passes its device-side detector and a swapper that leaves the pixel work to the device; the masks
            of ``--face-mask-types`` are then the given swapper's work too).
        enhance: run the face enhancer ``config`` names, if any; False when the caller enhances (the GPU engine,
            on the device).

    Raises:
        NoFaceError: no face in any source photo (naming them).

    Example:
        >>> swapper = FaceSwapper(["face.jpg"])                     # doctest: +SKIP
        >>> out = swapper.swap_frame(rgb_frame)                      # doctest: +SKIP
    """

    def __init__(self, sources: list[str | Path | np.ndarray], config: RunConfig | None = None,
                 fps: float = 30.0, analyzer: FaceAnalyzer | None = None, swapper: Swapper | None = None,
                 enhance: bool = True) -> None:
        self.config = (config or RunConfig()).validate()
        cfg = self.config
        self.analyzer = analyzer or build_analyzer(cfg)
        self.masker = None if swapper is not None else build_masker(cfg)
        """Occlusion, area and region masks (None: only the swapper's own), applied to every patch before colour."""
        self.swapper = swapper or build_swapper(cfg)
        self.enhancer = build_enhancer(cfg) if enhance else None
        self.face_map: FaceMap | None = load_face_map(cfg.face_map) if cfg.face_map else None
        self.inputs = run_inputs(sources, None, cfg.face_map)
        """The files this swapper reads (source photos, face map and its photos): never an output."""
        named = {DEFAULT_SOURCE: list(sources)}
        if self.face_map is not None:
            named.update({name: [path] for name, path in self.face_map.sources.items()})
        wanted = {DEFAULT_SOURCE} if self.face_map is None else {p.source for p in self.face_map.people} - {None}
        prepared = {name: self._prepare(named[name]) for name in sorted(wanted)}  # type: ignore[type-var]
        self.source: SourceFace | None = prepared.get(DEFAULT_SOURCE)
        people = self.face_map.people if self.face_map else [Person(cfg.reference_frame_number, None, DEFAULT_SOURCE)]  # type: ignore[arg-type]
        self.people = people
        self.person_sources: list[SourceFace | None] = [prepared.get(p.source) if p.source else None for p in people]  # type: ignore[arg-type]
        self.cuts = SceneCutDetector()
        self.tracker = FaceTracker()
        self.smoother = LandmarkSmoother(cfg.face_smoothing, fps, cfg.smoothing_min_cutoff, cfg.smoothing_beta,
                                         cfg.smoothing_d_cutoff, cfg.smoothing_ema_alpha, cfg.smoothing_lookahead)
        mode = "reference" if self.face_map is not None else cfg.face_selector_mode
        self.selector = FaceSelector(mode, max_distance=cfg.reference_face_distance, recognizer=build_recognizer(cfg))
        log.debug("analyser %s, swapper %s, recognizer %s, selector %s, smoothing %s (lookahead %d)",
                  self.analyzer.name, self.swapper.name, getattr(self.selector.recognizer, "name", "none"), mode,
                  cfg.face_smoothing, cfg.smoothing_lookahead)
        self.colour = ColourMatcher(strength=cfg.color_strength)
        """The colour stage's per-track state (the GPU engine applies it on the device)."""
        self.degrade = BlurMatcher(enabled=cfg.face_degrade != "none")
        """The blur/grain stage's per-track state, after colour (the GPU engine applies it on the device)."""
        self.hold = StillHold(enabled=cfg.face_hold != "none")
        """Each track's last patch, pasted again while the target's face does not change (both paths)."""
        self.hand_finder = HandFinder() if cfg.hand_occluder == "on" else None
        """The hand occluder (``--hand-occluder``): hands found per frame, cut out of the masks."""
        self.tone = ToneSmoother()
        """The enhancer's per-track tone smoothing (the GPU engine applies it on the device)."""
        self._waiting: deque[Analysed] = deque()
        """Frames analysed and waiting for the smoother's lookahead."""
        self._analysed = 0
        self.interval = cfg.detection_interval
        """Frames per detection (``--face-detector-interval``): keyframes are the frames whose number it divides,
        scene cuts and the first frame; the frames between wait in ``_held`` for the next keyframe."""
        self._held: deque[_Waiting] = deque()
        self._keyframe: Faces | None = None
        """The last keyframe's faces, tracked; None: the next frame is a keyframe (start, after a cut)."""

    def _prepare(self, sources: list[str | Path | np.ndarray]) -> SourceFace:
        if not sources:
            raise NoFaceError("no source photo given")
        images = [s if isinstance(s, np.ndarray) else read_image(s) for s in sources]
        for image in images:
            check_shape("source image", image, (None, None, 3), np.uint8)
        faces = self.analyzer.analyze(images, video=False)
        names = source_names(sources)
        kept = check_faces(names, faces)
        log.debug("source identity from %s", ", ".join(names[i] for i in kept))
        return self.swapper.prepare_source([images[i] for i in kept], [faces[i] for i in kept])

    @property
    def needs_references(self) -> bool:
        """Whether ``set_references`` must be called with target frames before swapping."""
        return self.selector.mode == "reference"

    @property
    def reference_frames(self) -> list[int]:
        """Target frame indices that ``set_references`` needs, one per person."""
        return [person.frame for person in self.people]

    def set_references(self, frames: list[np.ndarray]) -> None:
        """Describe each person from their target frame (``reference_frames`` order).

        Without a face map, every face of the reference frame becomes a person, and only the one at
        ``--reference-face-position`` maps to the source: faces are then told apart by comparing them
        with each other, not only with a threshold.

        Raises:
            NoFaceError: a reference frame has no face.
        """
        rows = []
        if self.face_map is None:
            image = frames[0]
            faces = self.analyzer.analyze([image], video=False)[0]
            if len(faces) == 0:
                raise NoFaceError(f"no face in the reference frame {self.people[0].frame}")
            chosen = pick_face(faces, None, self.config.reference_face_position)
            self.people = [Person(self.people[0].frame, tuple(box), DEFAULT_SOURCE if i == chosen else None)
                           for i, box in enumerate(faces.boxes.tolist())]
            self.person_sources = [self.source if i == chosen else None for i in range(len(faces))]
            self.selector.references = descriptors(image, faces, self.selector.recognizer)
            return
        for person, image in zip(self.people, frames, strict=True):
            faces = self.analyzer.analyze([image], video=False)[0]
            if len(faces) == 0:
                raise NoFaceError(f"no face in the reference frame {person.frame}")
            chosen = faces[pick_face(faces, np.asarray(person.box, np.float32))]
            rows.append(descriptors(image, chosen, self.selector.recognizer)[0])
        self.selector.references = np.stack(rows)

    def push(self, image: np.ndarray, index: int | None = None, hand_picture: np.ndarray | None = None,
             found: Faces | None = None) -> list[FrameResult]:
        """Analyse the next frame; return the frames that are now final (in order, possibly none).
        ``index``: the frame's number in its video, for the debug log and the degrade stage's grain (default:
        this swapper's count of frames analysed). ``hand_picture``, ``found``: see ``analyse``."""
        return [result for analysed in self.analyse(image, index, hand_picture, found)
                for result in self.accept(analysed)]

    def analyse(self, image: np.ndarray, index: int | None = None, hand_picture: np.ndarray | None = None,
                found: Faces | None = None) -> list[Analysed]:
        """The first half of ``push``: scene cut, faces, tracks, hands; the frames whose analysis is now complete,
        in order. With a detection interval above 1 a frame between keyframes waits for the next keyframe
        (``tracking.cadence``), so this returns none, one or several frames; ``finish_analysis`` gives the last
        ones. Touches only analysis state, so a thread can analyse frame t+1 while another runs ``accept`` on
        frame t. ``hand_picture``: the frame at ``analysis.hands.hand_size``, where ``image`` is only a thumbnail
        (the GPU engine's); default ``image``. ``found``: the frame's detections, where the caller made them (the
        GPU engine detects every frame of a step on the device); used only where the analyser would run."""
        check_shape("frame", image, (None, None, 3), np.uint8)
        cut = self.cuts.update(image)
        number = self._analysed if index is None else index
        self._analysed += 1
        if cut:
            log.debug("scene cut at frame %d: tracks reset", number)
        done = self._detect_held() if cut else []  # nothing after a cut tells where the faces before it were
        self._held.append(_Waiting(image, hand_picture, number, cut, found))
        if cut or self._keyframe is None or number % self.interval == 0:  # keyframes by number: the same in segments
            done += self._close_span()
        return done

    def finish_analysis(self) -> list[Analysed]:
        """The frames still waiting for a keyframe, analysed (the last of them becomes one): call at the end of a
        stream, after its last ``analyse``. ``flush`` calls it."""
        return self._close_span() if self._held else []

    def _close_span(self) -> list[Analysed]:
        """Detect the newest held frame (a keyframe) and give the frames held before it the faces ``cadence``
        carries from the last keyframe, or their own detections where it says they must be detected."""
        key = self._held.pop()
        if key.cut:  # the frames held before it were detected when it came
            self.analyzer.reset()
            self.tracker.reset()
            if self.hand_finder is not None:
                self.hand_finder.reset()
        fresh = self._faces_of(key)
        rows = None
        if self._held and self._keyframe is not None:
            rows = cadence.pairs(self._keyframe, fresh, cadence.confident(self.config.face_detector_score))
        if rows is None:
            done = self._detect_held()
        else:
            assert self._keyframe is not None
            carried = cadence.carry(self._keyframe, fresh, rows, len(self._held))
            done = [self._track(self._held.popleft(), faces) for faces in carried]
        done.append(self._track(key, fresh))
        self._keyframe = done[-1].raw
        return done

    def _detect_held(self) -> list[Analysed]:
        held, self._held = list(self._held), deque()
        return [self._track(frame, self._faces_of(frame)) for frame in held]

    def _faces_of(self, held: _Waiting) -> Faces:
        return held.found if held.found is not None else self.analyzer.analyze([held.image], video=True)[0]

    def _track(self, held: _Waiting, faces: Faces) -> Analysed:
        """A frame's faces tracked and its hands found, in frame order."""
        raw = self.tracker.update(faces)
        hands = None
        if self.hand_finder is not None and len(raw):  # no face, nothing to keep a hand in front of
            hands = self.hand_finder.find(held.image if held.hand_picture is None else held.hand_picture)
        return Analysed(held.image, raw, held.cut, self.tracker.active_ids, hands, held.number)

    def accept(self, analysed: Analysed) -> list[FrameResult]:
        """The second half of ``push``: smooth, select, swap and paste the frames now final."""
        self.smoother.push(analysed.raw)
        self.smoother.forget(analysed.active_tracks)
        self._waiting.append(analysed)
        return self._drain(final=False)

    def flush(self) -> list[FrameResult]:
        """Finish every frame still waiting for a keyframe or for lookahead (call at the end of a stream)."""
        return [result for analysed in self.finish_analysis() for result in self.accept(analysed)] + \
            self._drain(final=True)

    def _drain(self, final: bool) -> list[FrameResult]:
        done = []
        while (smoothed := self.smoother.pop(final)) is not None:
            frame = self._waiting.popleft()
            done.append(self._swap(frame.image, smoothed, frame.raw, frame.cut, frame.hands, frame.number))
        return done

    def _swap(self, image: np.ndarray, smoothed: Faces, raw: Faces, cut: bool,
              hands: np.ndarray | None, number: int) -> FrameResult:
        chosen, people = self.selector.select(image, smoothed)
        patches, swapped, requests = [], [], []
        for person in np.unique(people):
            source = self.person_sources[int(person)]
            if source is None:
                continue
            rows = np.flatnonzero(people == person)
            targets = chosen[rows]
            requests.append((source, targets))
            made = self.swapper.swap(source, [image], [targets])[0]
            if self.masker is not None:
                made = self.masker.apply(image, made, targets)
            made = occlude(made, hands, image.shape[1::-1])
            if self.enhancer is not None:
                made = self.enhancer.enhance(image, targets.kps, made, self.tone)
            patches += [self.degrade.degrade_patch(self.colour.correct_patch(patch), number) for patch in made]
            swapped += rows.tolist()
        faces = chosen[sorted(swapped)]
        patches = self.hold.hold_patches(image, patches)
        return FrameResult(paste_patches(image, patches) if patches else image, faces, raw, cut, hands, patches,
                           requests)

    def process(self, image: np.ndarray, found: Faces | None = None) -> FrameResult:
        """Swap one frame now (causal smoothing; the frame is detected, whatever the detection interval) and say
        what was done. ``found``: see ``analyse``."""
        return (self.push(image, found=found) + self.flush())[-1]

    def swap_frame(self, image: np.ndarray) -> np.ndarray:
        """One RGB frame in, the swapped frame out; frames with no selected face come back as is."""
        return self.process(image).image

    def swap_frames(self, images: list[np.ndarray]) -> list[np.ndarray]:
        """A batch of consecutive frames, in order, each answered causally."""
        return [self.process(image).image for image in images]

    def swap_image(self, image: np.ndarray) -> FrameResult:
        """A still photo: analysed without temporal state or smoothing."""
        faces = self.tracker.update(self.analyzer.analyze([image], video=False)[0])
        hands = self.hand_finder.find(image, video=False) if self.hand_finder is not None and len(faces) else None
        result = self._swap(image, faces, faces, False, hands, 0)
        self.reset_tracking()
        return result

    def reset_tracking(self) -> None:
        """Forget every track and scene and drop frames still waiting (after a seek, or for a new video), so
        what follows depends only on the frames to come (and the reference faces), not on earlier frames."""
        self.analyzer.reset()
        if self.hand_finder is not None:
            self.hand_finder.reset()
        self.cuts.reset()
        self.tracker.reset(renumber=True)
        self.smoother.reset()
        self.selector.reset()
        self.colour.reset()
        self.tone.reset()
        self.degrade.reset()
        self.hold.reset()
        self._waiting.clear()
        self._held.clear()
        self._keyframe = None
        self._analysed = 0

    def close(self) -> None:
        self.analyzer.close()
        self.swapper.close()
        if self.hand_finder is not None:
            self.hand_finder.close()

    def __enter__(self) -> FaceSwapper:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
