"""Does the swap keep the source's identity? The share of sampled frames where the output face is closer to the
source than the target face is, with dlib's face recognizer.

Usage: PYTHONPATH=.:DLIB_DIR python scripts/identity_share.py [--clips ...] [--frames 120] [--step 6] [-- run flags]
(DLIB_DIR: ``pip install --target DLIB_DIR dlib-bin face-recognition-models``)

Per clip: the first ``--frames`` frames are swapped with ``FaceSwapper`` (default options unless run flags follow
``--``; frame by frame, or with ``--as-file`` as a file run swaps them: lookahead smoothing, detection interval),
and every ``--step``-th frame's largest face is described by dlib (128-d descriptor, 5-point shape predictor
placed on the face mesh's box), in the output and in the target. Printed: frames where the output is
closer to the source descriptor than the target is (share), and the mean distances source-output and
source-target (below 0.6 dlib calls two faces the same person).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from multi_source_classic import Identity  # noqa: E402

from steadyswap.cli.main import build_parser  # noqa: E402
from steadyswap.cli.run import build_config  # noqa: E402
from steadyswap.engine.frame_swapper import FaceSwapper  # noqa: E402
from steadyswap.io import VideoReader, read_image  # noqa: E402

MEDIA = ROOT.parent / "shared" / "media"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", nargs="+", default=["liveportrait_d3", "liveportrait_d0", "tpsmm_driving"])
    parser.add_argument("--source", type=Path, default=MEDIA / "image" / "liveportrait_s1.jpg")
    parser.add_argument("--frames", type=int, default=120)
    parser.add_argument("--step", type=int, default=6)
    parser.add_argument("--as-file", action="store_true",
                        help="swap as a file run does (lookahead, detection interval); default: frame by frame")
    parser.add_argument("run_flags", nargs="*", help="steadyswap run flags (after --)")
    args = parser.parse_args()
    run_parser, _ = build_parser()
    config = build_config(run_parser.parse_args(["run", "-s", "x.jpg", "-t", "x.mp4", "-o", "y.mp4", *args.run_flags]))
    identity = Identity()
    source = read_image(args.source)
    reference = identity(source)
    print("| clip | frames closer to the source than the target is | distance source-output | source-target |")
    print("| --- | --- | --- | --- |")
    for name in args.clips:
        closer, out_d, tgt_d = [], [], []
        with VideoReader(MEDIA / "video" / f"{name}.mp4", 0, args.frames, high_bit_depth=False) as reader, \
                FaceSwapper([source], config, reader.info.fps) as swapper:
            frames = list(reader)
            if args.as_file:  # lookahead smoothing and the detection interval, as a file run has them
                results = [r for frame in frames for r in swapper.push(frame.image, frame.index)] + swapper.flush()
            else:
                results = [swapper.process(frame.image) for frame in frames]
            for frame, result in zip(frames, results, strict=True):
                if frame.index % args.step:
                    continue
                out, tgt = identity(result.image), identity(frame.image)
                if out is None or tgt is None:
                    continue
                out_d.append(float(np.linalg.norm(out - reference)))
                tgt_d.append(float(np.linalg.norm(tgt - reference)))
                closer.append(out_d[-1] < tgt_d[-1])
        print(f"| {name} | {sum(closer)}/{len(closer)} ({100 * np.mean(closer):.0f}%) | {np.mean(out_d):.3f} | "
              f"{np.mean(tgt_d):.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
