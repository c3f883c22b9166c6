"""Video and image I/O: tell images from videos, probe, read upright RGB frames, encode, write atomically."""

from steadyswap.io.atomic import atomic_output, check_output, scratch_folder, sweep_dead
from steadyswap.io.image import IMAGE_EXTENSIONS, read_image, write_image
from steadyswap.io.probe import MediaKind, media_kind, probe
from steadyswap.io.reader import DeepFrame, VideoReader
from steadyswap.io.writer import CONTAINERS, ENCODERS, VideoWriter, check_output_extension

VIDEO_EXTENSIONS = tuple(CONTAINERS)

__all__ = [
    "ENCODERS",
    "IMAGE_EXTENSIONS",
    "VIDEO_EXTENSIONS",
    "DeepFrame",
    "MediaKind",
    "VideoReader",
    "VideoWriter",
    "atomic_output",
    "check_output",
    "check_output_extension",
    "media_kind",
    "probe",
    "read_image",
    "scratch_folder",
    "sweep_dead",
    "write_image",
]
