"""How the classic swapper should use several source photos: measured on the shared clips.

Usage: PYTHONPATH=. python scripts/multi_source_classic.py [--frames 240] [--step 6] [--margin 8]
(identity needs dlib: ``pip install --target DIR dlib-bin face-recognition-models`` and DIR on PYTHONPATH)

Three ways, each run through ``run_video`` with the quality monitor on:
- ``first``: the first photo only (what steadyswap did before several sources were used);
- ``pose``: the alternative, defined here: per frame and tracked face, the photo whose head pose (yaw, pitch
  from the mesh) is closest to the target face's, kept until another is closer by ``--margin`` degrees
  (hysteresis), with colour statistics kept per photo;
- ``merged``: what steadyswap does (``swap.texture``): one texture, every photo warped onto the most frontal
  one's mesh, colour-matched to it and averaged with weights that favour the triangles each photo sees face-on.

Figures per clip: identity distance (dlib's 128-d face descriptor of the output face, every ``--step``-th
frame, to the mean descriptor of the source photos: below 0.6 dlib calls it the same person; ``target`` is
the unswapped clip), and the flicker the swap adds (target minus output mean face-region temporal PSNR,
dB, from the quality monitor). Two sets of sources: three frames of one person at different head poses
(``liveportrait_d3.mp4`` frames 0, 21 and 162: yaw about 0, -25 and +23 degrees), and the five shared
portraits (five people).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

from steadyswap.analysis import mesh_topology
from steadyswap.analysis.mediapipe_mesh import MediaPipeAnalyzer
from steadyswap.blend.skin import source_keep
from steadyswap.config import RunConfig
from steadyswap.engine.frame_swapper import FaceSwapper
from steadyswap.engine.pipeline import run_video
from steadyswap.io import VideoReader, read_image
from steadyswap.swap.base import SourceFace
from steadyswap.swap.classic import ClassicSwapper, source_pyramid
from steadyswap.swap.sources import largest_faces
from steadyswap.types import Faces, SwapPatch

MEDIA = Path(__file__).resolve().parents[2] / "shared" / "media"
POSE_FRAMES = (0, 21, 162)
PHOTOS = ("liveportrait_s1.jpg", "liveportrait_s12.jpg", "liveportrait_s42.jpg", "fr_obama.jpg", "tpsmm_source.png")
CLIPS = ("liveportrait_d0.mp4", "liveportrait_d3.mp4", "liveportrait_d6.mp4", "liveportrait_d10.mp4",
         "tpsmm_driving.mp4")


class PoseChoiceSwapper(ClassicSwapper):
    """Per tracked face, the photo of closest head pose; another photo takes over only when it is closer
    by ``margin`` degrees."""

    def __init__(self, margin: float | None = None) -> None:
        super().__init__()
        self.margin = 8.0 if margin is None else margin
        self._chosen: dict[int, int] = {}

    def prepare_source(self, images: list[np.ndarray], faces: list[Faces]) -> SourceFace:
        chosen = largest_faces(images, faces)
        points = [face.landmarks[0, :mesh_topology.MESH_POINTS] for _, face in chosen]
        data = {"pyramids": [source_pyramid(np.dstack([image, source_keep(image, p, self.oval)]), p)
                             for (image, _), p in zip(chosen, points)],
                "poses": mesh_topology.head_pose(np.stack(points))}
        return SourceFace(image=chosen[0][0], faces=chosen[0][1], data=data)

    def _swap_face(self, source: SourceFace, frame: np.ndarray, face: Faces) -> SwapPatch:
        track = int(face.track_ids[0])
        pose = mesh_topology.head_pose(face.landmarks[:, :mesh_topology.MESH_POINTS])[0]
        d = np.linalg.norm(source.data["poses"] - pose, axis=1)
        current = self._chosen.get(track)
        best = int(np.argmin(d))
        if current is None or d[best] < d[current] - self.margin:
            current = best
        if track >= 0:
            self._chosen[track] = current
        one = SourceFace(source.image, source.faces, data={"pyramid": source.data["pyramids"][current]})
        n = len(source.data["pyramids"])
        face = face[[0]]
        face.track_ids = np.array([track * n + current if track >= 0 else -1])  # colour state per photo
        patch = super()._swap_face(one, frame, face)
        patch.track_id = track
        return patch

    def reset(self) -> None:
        super().reset()
        self._chosen.clear()


def frames_of(clip: Path, wanted: tuple[int, ...]) -> list[np.ndarray]:
    with VideoReader(clip, high_bit_depth=False) as reader:
        return [frame.image for frame in reader if frame.index in wanted]


class Identity:
    """dlib's face descriptor of the largest mesh face of an image (None without a face)."""

    def __init__(self) -> None:
        import dlib

        spec = importlib.util.find_spec("face_recognition_models")  # its __init__ needs pkg_resources: not imported
        assert spec is not None and spec.origin, "face-recognition-models is not installed"
        models = Path(spec.origin).parent / "models"
        self.dlib = dlib
        self.shape = dlib.shape_predictor(str(models / "shape_predictor_5_face_landmarks.dat"))
        self.net = dlib.face_recognition_model_v1(str(models / "dlib_face_recognition_resnet_model_v1.dat"))
        self.mesh = MediaPipeAnalyzer(max_faces=1)

    def __call__(self, image: np.ndarray) -> np.ndarray | None:
        faces = self.mesh.analyze([image], video=False)[0]
        if not len(faces):
            return None
        x0, y0, x1, y1 = (int(v) for v in faces.boxes[int(np.argmax(faces.areas))])
        shape = self.shape(image, self.dlib.rectangle(x0, y0, x1, y1))
        return np.asarray(self.net.compute_face_descriptor(image, shape), np.float32)


def mean_distance(identity: Identity, video: Path, reference: np.ndarray, step: int, frames: int) -> float:
    with VideoReader(video, 0, frames, high_bit_depth=False) as reader:
        found = [identity(frame.image) for frame in reader if frame.index % step == 0]
    return float(np.mean([np.linalg.norm(d - reference) for d in found if d is not None]))


def swap(sources: list[np.ndarray], swapper: ClassicSwapper, clip: Path, out: Path, frames: int) -> float:
    """Run the clip's first ``frames`` frames; the flicker the swap adds (dB)."""
    report = out.with_suffix(".json")
    config = RunConfig(trim_frame_end=frames, quality_report=str(report), output_video_quality=90)
    run_video(lambda fps: FaceSwapper(sources, config, fps, swapper=swapper), clip, out, config)
    return float(json.loads(report.read_text())["summary"]["flicker_added_face"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=240, help="frames of each clip (from the first)")
    parser.add_argument("--step", type=int, default=6, help="identity on every STEP-th frame")
    parser.add_argument("--margin", type=float, default=None, help="pose hysteresis in degrees (default: the swapper's)")
    args = parser.parse_args()
    identity = Identity()
    sets = {"one person, 3 poses": frames_of(MEDIA / "video" / "liveportrait_d3.mp4", POSE_FRAMES),
            "5 shared portraits": [read_image(MEDIA / "image" / name) for name in PHOTOS]}
    ways = {"first": lambda sources: (sources[:1], ClassicSwapper()),
            "pose": lambda sources: (sources, PoseChoiceSwapper(args.margin)),
            "merged": lambda sources: (sources, ClassicSwapper())}
    print("| sources | clip | way | identity distance (target) | added flicker, dB |\n| --- | --- | --- | --- | --- |")
    with tempfile.TemporaryDirectory() as folder:
        for label, sources in sets.items():
            found = [identity(image) for image in sources]
            reference = np.mean([d for d in found if d is not None], axis=0)
            for name in CLIPS:
                if label.startswith("one person") and name == "liveportrait_d3.mp4":
                    continue  # its frames are the sources
                clip = MEDIA / "video" / name
                target = mean_distance(identity, clip, reference, args.step, args.frames)
                for way, build in ways.items():
                    used, swapper = build(sources)
                    out = Path(folder) / f"{way}.mp4"
                    flicker = swap(used, swapper, clip, out, args.frames)
                    distance = mean_distance(identity, out, reference, args.step, args.frames)
                    print(f"| {label} | {name} | {way} | {distance:.3f} ({target:.3f}) | {flicker:+.2f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
