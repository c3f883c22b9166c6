"""Print ``blend.areas.CANONICAL_68``: the mesh points of ``MESH_68`` on the committed test portraits, each face
mapped onto the five-point template's unit square by its own five points, averaged over the faces.

    PYTHONPATH=. python scripts/canonical_areas.py
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from steadyswap.analysis.mediapipe_mesh import MediaPipeAnalyzer
from steadyswap.blend.align import similarity_matrix, template_points
from steadyswap.blend.areas import FIVE_TEMPLATE, MESH_68
from steadyswap.io import read_image

PORTRAITS = ("fr_biden_512.jpg", "fr_obama_512.jpg", "liveportrait_s12.jpg", "liveportrait_s1_512.jpg",
             "liveportrait_s42.jpg")


def main() -> None:
    folder = Path(__file__).resolve().parents[1] / "tests" / "data" / "image"
    unit = template_points(FIVE_TEMPLATE, 1)
    placed = []
    with MediaPipeAnalyzer(max_faces=1) as analyzer:
        for name in PORTRAITS:
            faces = analyzer.analyze([read_image(folder / name)])[0]
            matrix = similarity_matrix(faces.kps[0], unit)
            points = faces.landmarks[0][list(MESH_68.values())].astype(np.float64)
            placed.append(points @ matrix[:, :2].T + matrix[:, 2])
    mean = np.mean(placed, axis=0)
    print("CANONICAL_68 = {" + ", ".join(f"{i}: ({x:.2f}, {y:.2f})" for i, (x, y) in zip(MESH_68, mean)) + "}")


if __name__ == "__main__":
    main()
