"""``steadyswap live``: swap a camera, stream or file as it plays, into a window, a virtual camera, a file or a URL."""

from __future__ import annotations

import argparse
import importlib.util
import logging
import re
from dataclasses import replace
from pathlib import Path

from steadyswap.cli.run import add_flags, build_config
from steadyswap.config import LIVE_SMOOTHING, crf_from_quality, live_smoothing
from steadyswap.engine.output import output_settings
from steadyswap.errors import InputError, OutputError, UsageError
from steadyswap.flags import FLAGS, LIVE_OPTIONS, pixel_size
from steadyswap.io import check_output
from steadyswap.io.capture import open_capture
from steadyswap.io.live_outputs import (
    STREAM_FORMATS,
    FileOutput,
    LiveOutput,
    StreamOutput,
    VirtualCameraOutput,
    WindowOutput,
    live_info,
    output_kind,
)
from steadyswap.io.writer import check_encoder_opens
from steadyswap.provenance import seal_for

log = logging.getLogger("steadyswap.cli")

DESCRIPTION = """\
Swap the source face into a live picture: a camera (--camera), or a stream, capture device or file (--input),
shown in a window, sent to a virtual camera or a URL, or recorded to a file. Frames are dropped, never queued,
when swapping is slower than the input; frames/s and latency are logged every 2 s. Smoothing is causal.
Ctrl-C (or SIGTERM) ends the stream: a file output is then completed."""


def add_live_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``live`` command to a CLI's subparsers."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "live", help="swap a camera or stream in real time", description=DESCRIPTION,
        usage="%(prog)s -s SOURCE [--camera N | --input URL/FILE] -o window|virtual-camera|FILE|URL [options]",
        formatter_class=argparse.RawDescriptionHelpFormatter, allow_abbrev=False)
    where = parser.add_argument_group("input and output")
    picked = where.add_mutually_exclusive_group()
    picked.add_argument("--camera", type=int, metavar="N", help="camera number (default: 0, when no --input)")
    picked.add_argument("--input", metavar="URL/FILE",
                        help="a video file (played at its frame rate), a stream URL (rtsp, rtmp, udp, http...) or, "
                        "with --input-format, a capture device (/dev/video0; '0' for avfoundation; "
                        "'video=NAME' for dshow)")
    where.add_argument("--input-format", metavar="FORMAT", help="PyAV/FFmpeg input format of --input: v4l2, "
                       "avfoundation, dshow... (default: guessed)")
    where.add_argument("--size", type=pixel_size, metavar="WxH", help="capture size to ask the camera for")
    where.add_argument("--fps", type=float, metavar="RATE", help="frame rate to ask the camera for")
    where.add_argument("--realtime", action=argparse.BooleanOptionalAction, default=True,
                       help="play a file --input at its frame rate, as a camera would deliver it (default); "
                       "--no-realtime reads it as fast as it decodes")
    where.add_argument("-o", "--output", required=True, metavar="window|virtual-camera|FILE|URL",
                       help="'window' (needs a display), 'virtual-camera' (needs the live extra), a video file "
                       f"(.mp4, .mkv...), or a URL: {', '.join(s + '://' for s in STREAM_FORMATS)}")
    where.add_argument("--batch-frames", type=int, choices=(1, 2), default=1,
                       help="frames swapped per step; 2 lets the GPU engine batch, for a frame more of latency "
                       "(default: %(default)s)")
    where.add_argument("--compile", action="store_true",
                       help="GPU engine: torch.compile the swapper graph and replay it, and the detector graph, as "
                       "CUDA graphs (faster steps; the first start on a machine compiles, 35-42 s on an H100, "
                       "later ones reuse PyTorch's cache; docs/live.md)")
    where.add_argument("--overlay", action="store_true", help="draw frames/s and latency into the frames")
    add_flags(parser, [flag for flag in FLAGS if flag.dest in LIVE_OPTIONS])
    for action in parser._actions:  # live's own One-Euro defaults (config.LIVE_SMOOTHING)
        if action.dest in LIVE_SMOOTHING and action.help:
            live = f"(live default: {LIVE_SMOOTHING[action.dest]:g})"
            action.help = re.sub(r"\(default: [^)]*\)", live, action.help)
    return parser


def run_live(args: argparse.Namespace) -> int:
    """Run one live stream to its end (the input's end, the window closed, Ctrl-C or SIGTERM); exit code 0 for
    each of these, as each is a normal end of a stream."""
    from steadyswap.engine.live import LiveSwapper
    from steadyswap.engine.live import run_live as run_stream
    from steadyswap.engine.pipeline import check_sources

    config = live_smoothing(build_config(args), vars(args))
    if args.compile:
        config = replace(config, extra={**config.extra, "gpu": {**config.extra.get("gpu", {}),
                                                                "compile": "reduce-overhead"}})
    sources = [Path(s).expanduser() for s in args.sources]
    check_sources(sources)
    kind = output_kind(args.output)
    window = WindowOutput() if kind == "window" else None
    if kind == "virtual-camera" and importlib.util.find_spec("pyvirtualcam") is None:
        raise UsageError("--output virtual-camera needs pyvirtualcam: pip install 'steadyswap[live]'")
    file = _file_output(args, sources) if kind == "file" else None
    if file is not None and config.output_video_encoder is not None:
        check_encoder_opens(config.output_video_encoder)  # before the capture starts, as a file run checks
    if (args.size or args.fps) and _local_input(args):
        raise UsageError("--size and --fps ask a camera or capture device for a mode; a file plays at its own")
    if not args.realtime and not _local_input(args):
        raise UsageError("--no-realtime is for a file --input; a camera or stream arrives at its own pace")
    size = tuple(int(side) for side in args.size.split("x")) if args.size else None
    capture = open_capture(args.camera, args.input, args.input_format, size, args.fps, args.realtime)  # type: ignore[arg-type]
    try:
        swapper = LiveSwapper(sources, config, capture.fps, frame_size=capture.size, batch=args.batch_frames)
    except BaseException:
        capture.close()
        raise
    try:
        log.info("live: %s → %s, swapping on %s (Ctrl-C ends)", capture.name, args.output, swapper.device)

        def open_output(width: int, height: int) -> LiveOutput:
            if window is not None:
                return window
            if kind == "virtual-camera":
                return VirtualCameraOutput(width, height, capture.fps)
            if kind == "stream":
                scheme = args.output.split("://", 1)[0].lower()
                return StreamOutput(args.output, STREAM_FORMATS[scheme], width, height, capture.fps,
                                    capture.time_base, crf_from_quality(config.output_video_quality, "libx264"),
                                    config.output_video_preset)
            assert file is not None
            info = live_info(width, height, capture.fps, capture.time_base, capture.name)
            inputs = [*sources, *_local_input(args)]
            return FileOutput(file, inputs, info, output_settings(config, info, file),
                              seal=seal_for(file, None, inputs, swapper.config))

        result = run_stream(capture, swapper, open_output, batch=args.batch_frames, overlay=args.overlay,
                            report=lambda line: log.info("live: %s", line))
    finally:
        swapper.close()
    if result.frames == 0 and result.ended == "end of input":
        raise InputError(f"{capture.name}: no frame arrived")
    log.info("live: ended by %s; %d frames in %.1f s (%.1f frames/s), %d dropped; latency %.0f ms mean, "
             "%.0f ms 95th percentile%s", result.ended, result.frames, result.seconds, result.fps, result.dropped,
             result.latency * 1000, result.latency_p95 * 1000, f"; wrote {file}" if file and result.frames else "")
    return 0


def _file_output(args: argparse.Namespace, sources: list[Path]) -> Path:
    """The output file, checked before anything starts: not a folder, not an input."""
    path = Path(args.output).expanduser()
    if path.is_dir():
        raise OutputError(f"output {path} is a folder; give a file name")
    check_output(path, [*sources, *_local_input(args)])
    return path


def _local_input(args: argparse.Namespace) -> list[Path]:
    return [Path(args.input).expanduser()] if args.input and not args.input_format and "://" not in args.input else []

