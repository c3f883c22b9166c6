"""The NVENC encoders (``--output-video-encoder h264_nvenc|hevc_nvenc``): FaceFusion 3.5's quality and preset
mapping, 8-bit 4:2:0 output, the GPU engine's cap on encoder sessions, and one refusal line on every path where the
machine cannot open them (this one: no NVIDIA driver; the H100: a driver but no NVENC). Where an encoder opens
(``-m gpu`` on a GPU with NVENC) a clip is encoded for real; elsewhere that test skips with FFmpeg's reason."""

from __future__ import annotations

import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from steadyswap.cli.main import main
from steadyswap.config import VIDEO_ENCODERS, VIDEO_PRESETS, RunConfig, crf_from_quality
from steadyswap.errors import UsageError
from steadyswap.flags import FLAGS
from steadyswap.io import VideoReader, probe
from steadyswap.io.writer import (
    ENCODERS,
    OutputSettings,
    VideoWriter,
    _open_failure,
    check_settings,
    encoder_options,
    output_pix_fmt,
    yuv420p_output,
)
from steadyswap.types import VideoInfo
from tests.conftest import media_path

NVENC = ("h264_nvenc", "hevc_nvenc")
SOFTWARE = {"h264_nvenc": "libx264", "hevc_nvenc": "libx265"}
SOURCE = "image/liveportrait_s1_512.jpg"
TALK = "video/liveportrait_d14_60f.mp4"  # 60 frames, 512x512, 30 frames/s, AAC
FACEFUSION_PRESETS = {
    "ultrafast": "fast", "superfast": "fast", "veryfast": "fast", "faster": "fast", "fast": "fast",
    "medium": "medium", "slow": "slow", "slower": "slow", "veryslow": "slow",
}
"""FaceFusion 3.5.0's ``map_nvenc_preset`` (facefusion/ffmpeg_builder.py), as a table."""


def facefusion_cq(quality: int) -> int:
    """FaceFusion 3.5.0's ``-cq`` for h264_nvenc and hevc_nvenc: quality 0..100 interpolated onto 51..0, rounded as
    numpy rounds (half to even)."""
    return int(np.round(np.interp(quality, [0, 100], [51, 0])))


def refused_here(encoder: str) -> str:
    """The line a run gives for ``encoder`` on this machine; skips where the encoder opens (nothing to refuse)."""
    reason = _open_failure(encoder)
    if reason is None:
        pytest.skip(f"{encoder} opens on this machine: there is no refusal to check")
    return f"{encoder} needs an NVIDIA GPU with a hardware video encoder (NVENC) and its driver; it does not open " \
           f"here (FFmpeg: {reason}); use {SOFTWARE[encoder]}"


def info_of(width: int = 1920, height: int = 1080, pix_fmt: str = "yuv420p", depth: int = 8,
            frames: int = 1) -> VideoInfo:
    return VideoInfo("a.mp4", width, height, frames, Fraction(30), Fraction(1, 30), 1 / 30, "h264", pix_fmt,
                     bit_depth=depth)


@pytest.mark.parametrize("encoder", NVENC)
def test_quality_maps_to_cq_as_facefusion(encoder: str) -> None:
    table = [facefusion_cq(q) for q in range(101)]
    assert [crf_from_quality(q, encoder) for q in range(101)] == table
    assert (table[0], table[50], table[80], table[100]) == (51, 26, 10, 0)
    for quality, cq in enumerate(table):
        options = encoder_options(encoder, cq, "veryfast")
        # cq 0 is NVENC's "automatic", not its best: quality 100 asks for 1, as 99 does
        assert options == {"cq": str(max(1, cq)), "b": "0", "preset": "fast"}, quality


@pytest.mark.parametrize("encoder", NVENC)
def test_presets_map_as_facefusion_onto_the_encoders_own(encoder: str) -> None:
    (preset_option,) = [o for o in av.CodecContext.create(encoder, "w").supported_options.private if o.name == "preset"]
    own = {choice.name for choice in preset_option.choices}
    assert set(VIDEO_PRESETS) == set(FACEFUSION_PRESETS)
    for preset, expected in FACEFUSION_PRESETS.items():
        assert encoder_options(encoder, 10, preset)["preset"] == expected
        assert expected in own


@pytest.mark.parametrize("encoder", NVENC)
def test_output_is_8_bit_420_at_even_sizes(encoder: str) -> None:
    """10-bit and 4:4:4 sources are written 8-bit 4:2:0, as FaceFusion asks of NVENC; the GPU engine's yuv420p
    frames go straight in; odd sizes are padded, as for x264 and x265."""
    for pix_fmt, depth in (("yuv420p", 8), ("yuv420p10le", 10), ("yuv444p", 8), ("yuv422p10le", 10), ("rgb24", 8)):
        assert output_pix_fmt(encoder, pix_fmt, depth) == "yuv420p"
    assert yuv420p_output(OutputSettings(encoder=encoder), info_of(depth=10, pix_fmt="yuv420p10le"))
    assert ENCODERS[encoder].even_chroma


@pytest.mark.parametrize("encoder", NVENC)
def test_container_rules_hold_on_any_machine(encoder: str) -> None:
    with pytest.raises(UsageError, match=rf"out\.webm: {encoder} \(\w+\) cannot be stored in \.webm; use "
                                         "libvpx-vp9 or libsvtav1$"):
        check_settings("out.webm", OutputSettings(encoder=encoder))


def test_flag_ui_and_writer_offer_the_same_encoders() -> None:
    from steadyswap.ui.options import config_from_options, schema

    (flag,) = [f for f in FLAGS if f.dest == "output_video_encoder"]
    (control,) = [c for c in schema()["options"] if c["field"] == "output_video_encoder"]
    assert set(NVENC) <= set(flag.choices)
    assert control["choices"] == ["", *flag.choices]
    assert set(VIDEO_ENCODERS) == set(ENCODERS)
    assert config_from_options({"output_video_encoder": "hevc_nvenc"}).output_video_encoder == "hevc_nvenc"
    assert RunConfig(output_video_encoder="h264_nvenc").validate().output_video_encoder == "h264_nvenc"


@pytest.mark.parametrize("encoder", NVENC)
def test_cli_run_refuses_in_one_line(encoder: str, tmp_path: Path) -> None:
    line = refused_here(encoder)
    output = tmp_path / "out" / "swapped.mp4"
    output.parent.mkdir()
    done = subprocess.run(
        [sys.executable, "-m", "steadyswap", "run", "-s", str(media_path(SOURCE)), "-t", str(media_path(TALK)),
         "-o", str(output), "--output-video-encoder", encoder, "--output-video-quality", "90"],
        capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert [text for text in done.stderr.splitlines() if text.strip()] == [f"steadyswap: error: {line}"]
    assert list(output.parent.iterdir()) == []


def test_batch_run_live_file_and_ui_refuse_with_the_same_line(tmp_path: Path, capsys) -> None:
    line = refused_here("h264_nvenc")
    source, target = str(media_path(SOURCE)), str(media_path(TALK))
    flags = ["--output-video-encoder", "h264_nvenc", "--quiet"]
    assert main(["batch-run", "-s", source, "-t", target, "-o", str(tmp_path / "{index}.mp4"), *flags]) == 2
    assert capsys.readouterr().err.strip().endswith(f"): {line}")
    assert main(["live", "-s", source, "--input", target, "-o", str(tmp_path / "live.mp4"), *flags]) == 2
    assert capsys.readouterr().err.strip() == f"steadyswap: error: {line}"
    assert list(tmp_path.iterdir()) == []
    from steadyswap.ui.options import option_errors

    assert option_errors({"output_video_encoder": "h264_nvenc"}) == {"output_video_encoder": line}
    assert option_errors({"output_video_encoder": "libx264"}) == {}


def test_batch_job_and_encoder_process_refuse_with_the_same_line(tmp_path: Path) -> None:
    """A batch job's first task (``prepare``, before any model) and the GPU engine's encoder child."""
    from steadyswap.distributed.tasks import JobSpec, prepare
    from steadyswap.io.codec_processes import ProcessWriter

    line = refused_here("h264_nvenc")
    config = RunConfig(output_video_encoder="h264_nvenc")
    spec = JobSpec((str(media_path(SOURCE)),), str(media_path(TALK)), str(tmp_path / "job.mp4"), config,
                   str(tmp_path / "work"))
    with pytest.raises(UsageError) as refused:
        prepare(None, spec, 90, 10)  # type: ignore[arg-type]
    assert str(refused.value) == line
    writer = ProcessWriter(tmp_path / "segment.mp4", probe(media_path(TALK)),
                           settings=OutputSettings(encoder="h264_nvenc"), audio_source=None)
    with pytest.raises(UsageError) as refused:
        writer.close()
    assert str(refused.value) == line
    assert list(tmp_path.iterdir()) == []


def test_gpu_engine_opens_at_most_two_hardware_encoders(monkeypatch) -> None:
    pytest.importorskip("torch")
    from steadyswap.engine.gpu import orchestrate
    from steadyswap.engine.gpu.options import GpuOptions

    monkeypatch.setattr(orchestrate.os, "cpu_count", lambda: 16)
    monkeypatch.setattr(orchestrate, "plan_segments", lambda info, count, **_: [object()] * count)
    info = info_of(frames=3000)

    def encoders(encoder: str | None, segments: int | None = None) -> int:
        config = RunConfig(output_video_encoder=encoder)
        return len(orchestrate.plan_run(info, 0, 3000, config, GpuOptions(device="cpu", segments=segments)))

    assert (encoders(None), encoders("libx264"), encoders("libx265")) == (4, 4, 4)
    assert (encoders("h264_nvenc"), encoders("hevc_nvenc")) == (2, 2)
    assert encoders("h264_nvenc", segments=3) == 3  # asked for: the user's call
    assert len(orchestrate.plan_run(info, 0, 100, RunConfig(output_video_encoder="h264_nvenc"),
                                    GpuOptions(device="cpu"))) == 1


@pytest.mark.gpu
@pytest.mark.parametrize("encoder", NVENC)
def test_nvenc_encodes_a_clip_where_it_opens(encoder: str, tmp_path: Path) -> None:
    """A real encode: the writer at FaceFusion's default quality keeps every frame and its timestamp, 8-bit 4:2:0,
    close to the source; and the bitstream is not x264's (which signs its own)."""
    reason = _open_failure(encoder)
    if reason is not None:
        pytest.skip(f"{encoder} does not open here (FFmpeg: {reason})")
    target, output = media_path(TALK), tmp_path / "out.mp4"
    settings = OutputSettings(encoder=encoder, crf=crf_from_quality(80, encoder), preset="veryfast")
    with av.open(str(target)) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    with VideoReader(target) as reader, VideoWriter(output, reader.info, settings) as writer:
        for frame in reader:
            writer.write(frame)
    out = probe(output)
    assert (out.codec, out.pix_fmt, out.frame_count) == (ENCODERS[encoder].codec, "yuv420p", len(frames))
    with av.open(str(output)) as container:
        decoded = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    error = np.mean([np.mean((a.astype(np.float32) - b) ** 2) for a, b in zip(frames, decoded)])
    assert 10 * np.log10(255 ** 2 / error) > 35
    assert b"x264 - core" not in output.read_bytes()


@pytest.mark.gpu
def test_gpu_engine_encodes_with_h264_nvenc_where_it_opens(gpu_models_dir: Path, tmp_path: Path) -> None:
    """The GPU engine's encoder children (two segments: two sessions) write h264_nvenc, joined to every frame."""
    reason = _open_failure("h264_nvenc")
    if reason is not None:
        pytest.skip(f"h264_nvenc does not open here (FFmpeg: {reason})")
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    from steadyswap.engine.gpu.engine import GpuEngine, GpuOptions
    from tests.conftest import gpu_engine_config
    from tests.helpers import photo

    config = gpu_engine_config(gpu_models_dir, output_video_encoder="h264_nvenc", execution_providers=("cuda",))
    output, options = tmp_path / "gpu.mp4", GpuOptions(device="cuda", segments=2, warmup_frames=5)
    with GpuEngine([photo(media_path(SOURCE))], config, options) as engine:
        assert engine.run_video(media_path(TALK), output).frames == 60
    out = probe(output)
    assert (out.codec, out.pix_fmt, out.frame_count, len(out.audio)) == ("h264", "yuv420p", 60, 1)
    assert b"x264 - core" not in output.read_bytes()
