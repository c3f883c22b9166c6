"""Tests of steadyswap.io on small clips generated with PyAV (known answers) plus one shared real clip."""

from __future__ import annotations

import os
import struct
import subprocess
import sys
from dataclasses import replace
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from steadyswap.errors import InputNotFoundError, MediaDecodeError, OutputError, ShapeError, UsageError
from steadyswap.io import (
    DeepFrame,
    VideoReader,
    VideoWriter,
    atomic_output,
    media_kind,
    probe,
    read_image,
    write_image,
)
from steadyswap.io.reader import SEEK_AFTER
from steadyswap.io.writer import (
    OutputSettings, _has_avx512, encoder_options, even_padding, merge_deep, output_pix_fmt,
)
from steadyswap.types import Frame, VideoInfo
from tests.conftest import media_path

STEP = 15  # grey step of the two marker blocks that spell a frame's index


def pattern(index: int, height: int, width: int) -> np.ndarray:
    """RGB test picture: a gradient, a red left edge, and two 8×8 blocks spelling ``index`` in base 16."""
    y, x = np.mgrid[0:height, 0:width]
    image = np.stack([x * 255 // max(width - 1, 1), y * 255 // max(height - 1, 1), np.full_like(x, 96)], -1)
    image = image.astype(np.uint8)
    image[:, :4] = (255, 0, 0)
    image[4:12, 8:16] = (index % 16) * STEP
    image[4:12, 20:28] = (index // 16) * STEP
    return image


def marker(image: np.ndarray) -> int:
    """The frame index spelled by ``pattern``'s blocks."""
    low = round(float(image[6:10, 10:14].mean()) / STEP)
    high = round(float(image[6:10, 22:26].mean()) / STEP)
    return high * 16 + low


def make_clip(
    path: Path,
    frames: int = 12,
    size: tuple[int, int] = (64, 48),
    encoder: str = "libx264",
    pix_fmt: str = "yuv420p",
    rate: int = 30,
    time_base: Fraction | None = None,
    pts: list[int] | None = None,
    rotation: int | None = None,
    audio: tuple[tuple[int, int, str], ...] = (),
    colour: tuple[int, int, int, int] | None = None,
    title: str | None = None,
    mux_options: dict[str, str] | None = None,
) -> Path:
    """Write a synthetic clip; ``audio`` = (sample rate, channels, language) per AAC track."""
    width, height = size
    time_base = time_base or Fraction(1, rate)
    with av.open(str(path), "w", options=mux_options or {}) as out:
        if title:
            out.metadata["title"] = title
        options = {"preset": "ultrafast", "crf": "8"} if encoder == "libx264" else {"crf": "10"}
        if encoder == "libx265":
            options = {"preset": "ultrafast", "crf": "8", "x265-params": "log-level=error"}
        video = out.add_stream(encoder, rate=rate, options=options)
        video.width, video.height, video.pix_fmt = width, height, pix_fmt
        video.time_base = video.codec_context.time_base = time_base
        if colour:
            cc = video.codec_context
            cc.color_primaries, cc.color_trc, cc.colorspace, cc.color_range = colour
        if rotation is not None:
            video.set_display_rotation(rotation)
        tracks = []
        for sample_rate, channels, language in audio:
            track = out.add_stream("aac", rate=sample_rate)
            track.layout = "stereo" if channels == 2 else "mono"
            track.metadata["language"] = language
            tracks.append(track)
        deep = pix_fmt.endswith("10le")
        for i in range(frames):
            rgb = pattern(i, height, width)
            frame = (
                av.VideoFrame.from_ndarray(rgb.astype(np.uint16) * 257, format="rgb48le")
                if deep
                else av.VideoFrame.from_ndarray(rgb)
            )
            frame = frame.reformat(format=pix_fmt, dst_colorspace=1 if colour else None)
            frame.pts = pts[i] if pts else round(i / rate / time_base)
            frame.time_base = time_base
            out.mux(video.encode(frame))
        out.mux(video.encode())
        seconds = frames / rate
        for track, (sample_rate, channels, _) in zip(tracks, audio):
            n = int(seconds * sample_rate)
            t = np.arange(n) / sample_rate
            wave = (0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
            samples = np.tile(wave, (channels, 1))
            for s in range(0, n, 1024):
                chunk = av.AudioFrame.from_ndarray(
                    np.ascontiguousarray(samples[:, s : s + 1024]), format="fltp", layout=track.layout.name
                )
                chunk.sample_rate, chunk.pts = sample_rate, s
                out.mux(track.encode(chunk))
            out.mux(track.encode())
    return path


def read_all(path: Path, **kwargs: object) -> list[Frame]:
    with VideoReader(path, **kwargs) as reader:  # type: ignore[arg-type]
        return list(reader)


def transcode(source: Path, target: Path, **kwargs: object) -> Path:
    reader_keys = {k: kwargs.pop(k) for k in ("start", "end") if k in kwargs}
    chosen = {k: kwargs.pop(k) for k in ("encoder", "crf", "preset") if k in kwargs}
    settings = OutputSettings(**chosen)  # type: ignore[arg-type]
    with VideoReader(source, **reader_keys) as reader:  # type: ignore[arg-type]
        trim = (reader_keys.get("start"), reader_keys.get("end"))
        with VideoWriter(target, reader.info, settings, trim=trim, **kwargs) as writer:  # type: ignore[arg-type]
            for frame in reader:
                writer.write(frame)
    return target


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 99.0 if mse == 0 else 10 * np.log10(255**2 / mse)


def pts_seconds(path: Path) -> list[float]:
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        return sorted(float(p.pts * s.time_base) for p in c.demux(s) if p.size and p.pts is not None)


def tags(path: Path) -> dict[str, str]:
    with av.open(str(path)) as c:
        return {k.lower(): v for k, v in c.metadata.items()}


# --- media_kind, images ---------------------------------------------------------------------------


def test_media_kind_by_content(tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "clip.mp4", frames=3)
    disguised = tmp_path / "clip.jpg"
    disguised.write_bytes(clip.read_bytes())
    picture = tmp_path / "picture.dat"
    ok, data = cv2.imencode(".png", pattern(0, 20, 30))
    picture.write_bytes(data.tobytes())
    assert media_kind(clip) == "video"
    assert media_kind(disguised) == "video"
    assert media_kind(picture) == "image"
    assert media_kind(media_path("image/fr_obama_512.jpg")) == "image"


def test_media_kind_and_probe_reject_bad_files(tmp_path: Path) -> None:
    empty = tmp_path / "empty.mp4"
    empty.touch()
    text = tmp_path / "notes.mp4"
    text.write_text("not a video at all\n" * 50)
    clip = make_clip(tmp_path / "clip.mp4", frames=10)
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(clip.read_bytes()[: clip.stat().st_size // 3])  # moov atom is at the end: lost
    with pytest.raises(InputNotFoundError):
        media_kind(tmp_path / "missing.mp4")
    with pytest.raises(FileNotFoundError):
        probe(tmp_path / "missing.mp4")
    for bad in (empty, text, truncated):
        with pytest.raises(MediaDecodeError):
            media_kind(bad)
        with pytest.raises(MediaDecodeError):
            VideoReader(bad)
    with pytest.raises(MediaDecodeError):
        read_image(text)


def _jpeg_with_orientation(image: np.ndarray, orientation: int) -> bytes:
    """A JPEG whose EXIF block says ``orientation`` (6 = display rotated 90° clockwise)."""
    ok, data = cv2.imencode(".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 98])
    tiff = b"MM\x00\x2a" + struct.pack(">IH", 8, 1) + struct.pack(">HHIHH", 0x0112, 3, 1, orientation, 0) + b"\0" * 4
    app1 = b"\xff\xe1" + struct.pack(">H", 2 + 6 + len(tiff)) + b"Exif\x00\x00" + tiff
    raw = data.tobytes()
    return raw[:2] + app1 + raw[2:]


def test_read_image_applies_exif_orientation(tmp_path: Path) -> None:
    path = tmp_path / "phone.jpg"
    path.write_bytes(_jpeg_with_orientation(pattern(0, 40, 60), 6))
    image = read_image(path)
    assert image.shape == (60, 40, 3) and image.dtype == np.uint8
    assert image[:3, :, 0].mean() > 200 and image[:3, :, 1].mean() < 60  # the red left edge is now on top


@pytest.mark.parametrize("ext", [".png", ".jpg", ".webp"])
def test_image_round_trip(tmp_path: Path, ext: str) -> None:
    image = pattern(5, 37, 53)
    path = tmp_path / f"out{ext}"
    write_image(path, image, quality=95)
    back = read_image(path)
    assert back.shape == image.shape
    assert psnr(back, image) > (90 if ext == ".png" else 25)
    assert media_kind(path) == "image"


def test_write_image_rejects_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(UsageError):
        write_image(tmp_path / "x.gif", pattern(0, 8, 8))
    with pytest.raises(UsageError):
        write_image(tmp_path / "x.jpg", pattern(0, 8, 8), quality=101)
    with pytest.raises(ShapeError):
        write_image(tmp_path / "x.png", np.zeros((8, 8), np.uint8))
    with pytest.raises(OutputError):
        write_image(tmp_path / "no" / "x.png", pattern(0, 8, 8))


# --- probe and reader -----------------------------------------------------------------------------


def test_probe_fills_every_field(tmp_path: Path) -> None:
    clip = make_clip(
        tmp_path / "tagged.mkv",
        frames=15,
        rate=25,
        audio=((44100, 2, "eng"), (48000, 1, "fra")),
        colour=(1, 1, 1, 1),
    )
    info = probe(clip)
    assert (info.width, info.height, info.frame_count) == (64, 48, 15)  # MKV has no count: packets counted
    assert info.average_rate == 25 and info.fps == 25.0
    assert info.time_base == Fraction(1, 1000)
    assert info.duration == pytest.approx(0.6, abs=0.041)
    assert (info.codec, info.pix_fmt, info.bit_depth, info.rotation) == ("h264", "yuv420p", 8, 0)
    assert (info.color_primaries, info.color_trc, info.colorspace, info.color_range) == (1, 1, 1, 1)
    assert [(a.codec, a.sample_rate, a.channels, a.language) for a in info.audio] == [
        ("aac", 44100, 2, "eng"),
        ("aac", 48000, 1, "fra"),
    ]


def test_reader_yields_ordered_rgb_frames(tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "clip.mp4", frames=20)
    with VideoReader(clip, queue_size=2) as reader:
        assert len(reader) == 20
        frames = list(reader)
    assert [f.index for f in frames] == list(range(20))
    assert [marker(f.image) for f in frames] == list(range(20))
    assert [f.pts * reader.info.time_base for f in frames] == [Fraction(i, 30) for i in range(20)]
    assert all(f.image.shape == (48, 64, 3) and f.image.flags.c_contiguous for f in frames)
    assert psnr(frames[7].image, pattern(7, 48, 64)) > 35


def test_reader_stops_cleanly_when_left_early(tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "clip.mp4", frames=30)
    with VideoReader(clip, queue_size=2) as reader:
        for frame in reader:
            if frame.index == 3:
                break
    assert reader._thread is not None and not reader._thread.is_alive()
    unmanaged = VideoReader(clip, queue_size=2)
    for frame in unmanaged:
        if frame.index == 3:
            break
    assert unmanaged._thread is not None and not unmanaged._thread.is_alive()


def test_rotated_phone_clip_is_upright(tmp_path: Path) -> None:
    # A phone held upright records landscape pixels plus a display matrix "rotate 90° clockwise".
    clip = make_clip(tmp_path / "phone.mp4", frames=4, size=(64, 48), rotation=-90)
    info = probe(clip)
    assert info.rotation == 90
    assert (info.width, info.height) == (48, 64)
    frames = read_all(clip)
    assert frames[0].image.shape == (64, 48, 3)
    expected = np.rot90(pattern(0, 48, 64), -1)  # clockwise: the red left edge becomes the top rows
    assert psnr(frames[0].image, expected) > 35
    out = transcode(clip, tmp_path / "upright.mp4", crf=12)
    again = probe(out)
    assert (again.width, again.height, again.rotation) == (48, 64, 0)


def test_trim_decodes_only_the_range(tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "clip.mp4", frames=20)
    frames = read_all(clip, start=5, end=9)
    assert [f.index for f in frames] == [5, 6, 7, 8]
    assert [marker(f.image) for f in frames] == [5, 6, 7, 8]
    with VideoReader(clip, start=15, end=100) as reader:
        assert len(reader) == 5
    with pytest.raises(UsageError):
        VideoReader(clip, start=9, end=5)


def test_trim_far_in_seeks_to_keyframe_with_exact_indices(tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "long.mp4", frames=SEEK_AFTER + 40, size=(32, 32))
    start = SEEK_AFTER + 17
    frames = read_all(clip, start=start, end=start + 5)
    assert [f.index for f in frames] == list(range(start, start + 5))
    assert [marker(f.image) for f in frames] == list(range(start, start + 5))


def _clip_with_garbage(path: Path, good: int, bad: int, tail: int) -> Path:
    """A PNG-in-MOV clip: ``good`` frames, then ``bad`` undecodable packets, then ``tail`` good frames."""
    with av.open(str(path), "w") as out:
        stream = out.add_stream("png", rate=30)
        stream.width = stream.height = 32
        stream.pix_fmt = "rgb24"
        for i in range(good + bad + tail):
            if good <= i < good + bad:
                packet = av.Packet(b"\x89PNG not really" * 8)
                packet.pts = packet.dts = i
                packet.time_base = stream.codec_context.time_base
                packet.stream = stream
                out.mux(packet)
            else:
                frame = av.VideoFrame.from_ndarray(pattern(i, 32, 32))
                frame.pts = i
                out.mux(stream.encode(frame))
        out.mux(stream.encode())
    return path


def test_reader_skips_a_few_bad_packets(tmp_path: Path) -> None:
    clip = _clip_with_garbage(tmp_path / "glitch.mov", good=4, bad=3, tail=4)
    assert [f.index for f in read_all(clip)] == list(range(8))


def test_reader_reports_a_truncated_file(tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "clip.mp4", frames=30, size=(128, 96), mux_options={"movflags": "faststart"})
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(clip.read_bytes()[: clip.stat().st_size // 2])  # index first, half the pictures lost
    assert probe(cut).frame_count == 30
    with pytest.raises(MediaDecodeError, match="truncated"):
        read_all(cut)


def test_reader_gives_up_on_a_long_corrupt_run(tmp_path: Path) -> None:
    clip = _clip_with_garbage(tmp_path / "corrupt.mov", good=3, bad=40, tail=2)
    with pytest.raises(MediaDecodeError, match="consecutive video packets failed"):
        read_all(clip)


# --- writer ---------------------------------------------------------------------------------------


def test_round_trip_shared_clip(tmp_path: Path) -> None:
    source = media_path("video/liveportrait_d3_93f.mp4")
    out = transcode(source, tmp_path / "d3.mp4", crf=18)
    a, b = probe(source), probe(out)
    assert b.frame_count == a.frame_count
    assert b.average_rate == a.average_rate
    assert abs(b.duration - a.duration) <= 1 / a.fps
    def audio(info: VideoInfo) -> list[tuple[str, int, int]]:
        return [(x.codec, x.sample_rate, x.channels) for x in info.audio]

    assert audio(b) == audio(a) != []
    with VideoReader(source, end=40) as ra, VideoReader(out, end=40) as rb:
        scores = [psnr(fa.image, fb.image) for fa, fb in zip(ra, rb)]
    assert len(scores) == 40 and min(scores) > 35
    assert tags(out)["comment"].startswith("Face-swapped with steadyswap")
    assert tags(out)["synthetic"] == "true"


def test_writer_trim_cuts_video_and_audio(tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "clip.mp4", frames=30, audio=((48000, 2, "eng"),))
    out = transcode(clip, tmp_path / "cut.mp4", start=10, end=20, crf=12)
    info = probe(out)
    assert info.frame_count == 10
    assert [marker(f.image) for f in read_all(out)] == list(range(10, 20))
    with av.open(str(out)) as c:
        v, a = c.streams.video[0], c.streams.audio[0]
        assert v.start_time * v.time_base == 0
        audio_start = float(a.start_time * a.time_base)
        audio_end = max(float((p.pts + p.duration) * a.time_base) for p in c.demux(a) if p.size)
    assert -0.03 < audio_start < 0.03
    assert audio_end == pytest.approx(10 / 30, abs=0.05)


def test_variable_frame_rate_timestamps_survive(tmp_path: Path) -> None:
    stamps = [0, 3000, 9000, 10000, 16000, 28000, 29500, 40000]  # 1/90000 s, irregular gaps
    clip = make_clip(tmp_path / "vfr.mp4", frames=len(stamps), time_base=Fraction(1, 90000), pts=stamps)
    assert [f.pts for f in read_all(clip)] == stamps
    for ext in (".mp4", ".mkv"):
        out = transcode(clip, tmp_path / f"vfr_out{ext}", crf=12)
        assert pts_seconds(out) == pytest.approx([s / 90000 for s in stamps], abs=1e-3)
    assert probe(tmp_path / "vfr_out.mp4").time_base == Fraction(1, 90000)


def test_ten_bit_input_stays_ten_bit(tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "deep.mkv", frames=6, pix_fmt="yuv420p10le", colour=(9, 16, 9, 1))
    info = probe(clip)
    assert (info.pix_fmt, info.bit_depth) == ("yuv420p10le", 10)
    frames = read_all(clip)
    assert all(isinstance(f, DeepFrame) and f.deep is not None and f.deep.dtype == np.uint16 for f in frames)
    assert np.array_equal(frames[0].image, (frames[0].deep >> 8).astype(np.uint8))
    assert not isinstance(read_all(clip, high_bit_depth=False)[0], DeepFrame)
    for encoder, ext in (("libx264", ".mp4"), ("libx265", ".mov")):
        out = transcode(clip, tmp_path / f"deep_{encoder}{ext}", encoder=encoder, crf=4)
        back = probe(out)
        assert (back.pix_fmt, back.bit_depth) == ("yuv420p10le", 10)
        assert (back.color_primaries, back.color_trc, back.colorspace, back.color_range) == (9, 16, 9, 1)
    with av.open(str(tmp_path / "deep_libx265.mov")) as c:
        assert c.streams.video[0].codec_tag == "hvc1"


def test_deep_frames_keep_detail_outside_edits(tmp_path: Path) -> None:
    # A smooth 10-bit ramp stored losslessly: 8-bit frames would band it, DeepFrames must not.
    clip = tmp_path / "ramp.mkv"
    y, x = np.mgrid[0:48, 0:64]
    ramp = (np.stack([x * 8 + y * 2 + 200, x * 4 + y + 300, 600 - x * 3 - y * 2], -1) * 64).astype(np.uint16)
    with av.open(str(clip), "w") as out:
        stream = out.add_stream("libx264", rate=30, options={"qp": "0", "preset": "ultrafast"})
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv444p10le"
        for i in range(2):
            frame = av.VideoFrame.from_ndarray(ramp, format="rgb48le").reformat(format="yuv444p10le")
            frame.pts = i
            out.mux(stream.encode(frame))
        out.mux(stream.encode())
    frames = read_all(clip)
    errors = {}
    for name, keep_deep in (("deep", True), ("plain", False)):
        target = tmp_path / f"{name}.mkv"
        with VideoWriter(target, probe(clip), OutputSettings(crf=0)) as writer:
            for f in frames:
                image = f.image.copy()
                image[4:12, 4:12] = (0, 255, 0)  # a "swap" paints the 8-bit view
                writer.write(replace(f, image=image) if keep_deep else Frame(f.index, f.pts, image))
        back = read_all(target)[0]
        assert probe(target).pix_fmt == "yuv444p10le"
        assert np.abs(back.image[5:11, 5:11].astype(int) - (0, 255, 0)).max() < 8
        errors[name] = np.abs(back.deep[16:].astype(int) - frames[0].deep[16:].astype(int)).mean()
    assert errors["deep"] < 0.6 * errors["plain"]


def audio_packets(path: Path, track: int) -> list[bytes]:
    with av.open(str(path)) as c:
        return [bytes(p) for p in c.demux(c.streams.audio[track]) if p.size]


def test_two_audio_tracks_are_copied(tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "two.mp4", frames=15, audio=((44100, 2, "eng"), (48000, 1, "deu")), title="Holiday")
    out = transcode(clip, tmp_path / "two_out.mp4", crf=12)
    for track in range(2):
        assert audio_packets(out, track) == audio_packets(clip, track)  # bit-exact stream copy
    assert [(a.sample_rate, a.channels, a.language) for a in probe(out).audio] == [(44100, 2, "eng"), (48000, 1, "deu")]
    assert tags(out)["title"] == "Holiday"


@pytest.mark.parametrize(
    ("ext", "encoder", "audio_codec"),
    [(".mkv", "libx264", "aac"), (".webm", "libvpx-vp9", "opus"), (".mov", "libx264", "aac")],
)
def test_containers(tmp_path: Path, ext: str, encoder: str, audio_codec: str) -> None:
    clip = make_clip(tmp_path / "clip.mp4", frames=10, audio=((44100, 2, "eng"),))
    out = transcode(clip, tmp_path / f"out{ext}", encoder=encoder, crf=20, preset="ultrafast")
    info = probe(out)
    assert info.frame_count == 10 and info.codec == {"libx264": "h264", "libvpx-vp9": "vp9"}[encoder]
    assert [a.codec for a in info.audio] == [audio_codec]
    assert info.audio[0].sample_rate == (48000 if audio_codec == "opus" else 44100)
    assert [marker(f.image) for f in read_all(out)] == list(range(10))
    assert tags(out)["comment"].startswith("Face-swapped with steadyswap")


def test_encoder_that_cannot_go_in_the_container_is_a_usage_error(tmp_path: Path) -> None:
    info = probe(make_clip(tmp_path / "clip.mp4", frames=2))
    with pytest.raises(UsageError, match="libvpx-vp9 or libsvtav1"):
        VideoWriter(tmp_path / "out.webm", info, OutputSettings(encoder="libx264"))
    with pytest.raises(UsageError):
        VideoWriter(tmp_path / "out.avi", info)
    with pytest.raises(UsageError):
        VideoWriter(tmp_path / "out.mp4", info, OutputSettings(crf=60))
    assert not (tmp_path / "out.webm").exists()


def test_odd_size(tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "odd.mkv", frames=5, size=(161, 97), encoder="libvpx-vp9")
    assert (probe(clip).width, probe(clip).height) == (161, 97)
    padded = probe(transcode(clip, tmp_path / "odd.mp4", crf=12))  # H.264 4:2:0 needs even sizes
    exact = probe(transcode(clip, tmp_path / "odd.webm", encoder="libvpx-vp9", crf=20))
    assert (padded.width, padded.height) == (162, 98)
    assert (exact.width, exact.height) == (161, 97)
    frame = read_all(tmp_path / "odd.mp4")[2]
    assert psnr(frame.image[:97, :161], pattern(2, 97, 161)) > 30


def test_yuv444_input_keeps_444_and_exact_odd_size(tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "full.mp4", frames=5, size=(161, 97), pix_fmt="yuv444p")
    out = probe(transcode(clip, tmp_path / "full_out.mp4", crf=12))
    assert (out.pix_fmt, out.width, out.height) == ("yuv444p", 161, 97)
    assert psnr(read_all(tmp_path / "full_out.mp4")[3].image, pattern(3, 97, 161)) > 35


def test_rgb_source_gets_a_yuv_matrix_tag(tmp_path: Path) -> None:
    clip = _clip_with_garbage(tmp_path / "png.mov", good=4, bad=0, tail=0)
    assert probe(clip).pix_fmt == "rgb24"
    out = transcode(clip, tmp_path / "from_png.mp4", crf=12)
    assert probe(out).colorspace != 0  # 0 would tell players the YUV planes are G, B, R
    assert psnr(read_all(out)[2].image, pattern(2, 32, 32)) > 30


def test_write_yuv420p_frames(tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "clip.mp4", frames=6)
    out = tmp_path / "yuv.mp4"
    with VideoReader(clip) as reader, \
            VideoWriter(out, reader.info, OutputSettings(crf=12), audio_source=None) as writer:
        for f in reader:
            writer.write_yuv420p(f.index, f.pts, cv2.cvtColor(f.image, cv2.COLOR_RGB2YUV_I420))
    assert [marker(f.image) for f in read_all(out)] == list(range(6))
    assert probe(out).audio == []


_ENCODE_SEGMENT = """
import hashlib, sys
from steadyswap.io import VideoReader, VideoWriter
with VideoReader(sys.argv[1]) as reader, VideoWriter(sys.argv[2], reader.info, audio_source=None) as writer:
    for frame in reader:
        writer.write(frame)
print(hashlib.sha256(open(sys.argv[2], 'rb').read()).hexdigest())
"""


@pytest.mark.skipif(not _has_avx512(), reason="x264 uses AVX-512 code only on CPUs that have it")
def test_x264_output_does_not_depend_on_memory_it_did_not_write(tmp_path: Path) -> None:
    # glibc's MALLOC_PERTURB_ fills fresh allocations with a given byte; x264's AVX-512 code let it
    # through to the bitstream at this size (410x412): each value gave its own file
    clip = str(media_path("video/tpsmm_driving_78f.mp4"))
    hashes = {
        subprocess.run([sys.executable, "-c", _ENCODE_SEGMENT, clip, str(tmp_path / f"{byte}.mp4")], check=True,
                       capture_output=True, text=True, env={**os.environ, "MALLOC_PERTURB_": str(byte)}).stdout
        for byte in (85, 170)
    }
    assert len(hashes) == 1


def test_writer_rejects_wrong_frame_size(tmp_path: Path) -> None:
    info = probe(make_clip(tmp_path / "clip.mp4", frames=2))
    with pytest.raises(ShapeError), VideoWriter(tmp_path / "out.mp4", info) as writer:
        writer.write(Frame(0, 0, np.zeros((10, 10, 3), np.uint8)))


def test_output_rules() -> None:
    assert output_pix_fmt("libx264", "yuv444p", 8) == "yuv444p"
    assert output_pix_fmt("libx264", "yuv422p10le", 10) == "yuv422p10le"
    assert output_pix_fmt("libsvtav1", "yuv444p10le", 10) == "yuv420p10le"
    assert output_pix_fmt("libx264", "gbrp", 8) == "yuv420p"
    assert even_padding("libx265", "yuv422p", 161, 97) == (1, 0)
    assert even_padding("libvpx-vp9", "yuv420p", 161, 97) == (0, 0)
    assert encoder_options("libvpx-vp9", 30, "veryfast")["cpu-used"] == "6"
    with pytest.raises(UsageError):
        encoder_options("libx264", 10, "warp")
    deep = np.full((2, 2, 3), 1000, np.uint16)
    assert np.array_equal(merge_deep((deep >> 8).astype(np.uint8), deep), deep)


# --- atomic output --------------------------------------------------------------------------------


def test_atomic_output_renames_on_success(tmp_path: Path) -> None:
    final = tmp_path / "result.mp4"
    with atomic_output(final) as temporary:
        assert temporary.parent == tmp_path and temporary.suffix == ".mp4"
        assert temporary.name.startswith(".result.steadyswap-tmp-")
        temporary.write_bytes(b"done")
    assert final.read_bytes() == b"done"
    assert list(tmp_path.iterdir()) == [final]


@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt])
def test_atomic_output_leaves_nothing_after_an_exception(tmp_path: Path, error: type[BaseException]) -> None:
    final = tmp_path / "result.mp4"
    with pytest.raises(error), atomic_output(final) as temporary:
        temporary.write_bytes(b"partial")
        raise error()
    assert list(tmp_path.iterdir()) == []


def test_atomic_output_with_a_failing_writer_leaves_nothing(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "out").mkdir()
    clip = make_clip(tmp_path / "src" / "clip.mp4", frames=4)
    out_dir = tmp_path / "out"
    with (
        pytest.raises(RuntimeError),
        atomic_output(out_dir / "x.mp4", inputs=[clip]) as temporary,
        VideoReader(clip) as reader,
        VideoWriter(temporary, reader.info) as writer,
    ):
        for frame in reader:
            writer.write(frame)
            raise RuntimeError("stage failed")
    assert list(out_dir.iterdir()) == []


def test_atomic_output_refuses_bad_destinations(tmp_path: Path) -> None:
    source = tmp_path / "in.mp4"
    source.write_bytes(b"x")
    with pytest.raises(OutputError, match="overwrite the input"), atomic_output(tmp_path / "." / "in.mp4", [source]):
        pass
    with pytest.raises(OutputError, match="does not exist"), atomic_output(tmp_path / "missing" / "o.mp4"):
        pass
