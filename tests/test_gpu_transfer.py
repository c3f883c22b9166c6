"""The GPU engine's transfer threads: steps taken in turn from every source, frames handed back in order."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from steadyswap.engine.gpu.transfer import Downloader, Uploader  # noqa: E402


def _source(name: str, count: int):
    for i in range(count):
        yield (name, i), np.full((4, 6, 3), i + (100 if name == "b" else 0), np.uint8)


def test_uploader_interleaves_sources_and_keeps_each_in_order(torch_device: str) -> None:
    uploader = Uploader([_source("a", 5), _source("b", 2)], size=3, shape=(4, 6, 3), device=torch_device)
    steps = list(uploader)
    items = [item for step in steps for item in step.items]
    assert items == [("a", 0), ("b", 0), ("a", 1), ("b", 1), ("a", 2), ("a", 3), ("a", 4)]
    assert [len(step.items) for step in steps] == [3, 3, 1]
    for step in steps:
        for (name, i), frame in zip(step.items, step.frames):
            assert frame.device.type == torch_device
            assert int(frame[0, 0, 0]) == i + (100 if name == "b" else 0)


def test_uploader_hands_a_source_failure_to_the_consumer(torch_device: str) -> None:
    def broken():
        yield from _source("a", 2)
        raise OSError("disk gone")

    with pytest.raises(OSError, match="disk gone"):
        list(Uploader([broken()], size=1, shape=(4, 6, 3), device=torch_device))


def test_uploader_copies_each_frame_before_asking_its_source_again(torch_device: str) -> None:
    def reusing(count: int):  # like ProcessReader: one shared buffer, valid until the next frame
        buffer = np.zeros((3, 4), np.uint8)
        for i in range(count):
            buffer[...] = i
            yield i, buffer

    steps = list(Uploader([reusing(5)], size=4, shape=(3, 4), device=torch_device))
    frames = torch.cat([step.frames for step in steps]).cpu()
    assert [int(frame[0, 0]) for frame in frames] == [0, 1, 2, 3, 4]


def test_downloader_consumes_private_copies_in_order(torch_device: str) -> None:
    seen: list[tuple[int, int]] = []
    kept: list[np.ndarray] = []

    def consume(item: int, array: np.ndarray) -> None:
        seen.append((item, int(array[0, 0])))
        kept.append(array)

    downloader = Downloader(consume, (2, 3), size=2, device=torch_device, depth=2)
    for start in range(0, 7, 2):
        items = list(range(start, min(start + 2, 7)))
        frames = torch.stack([torch.full((2, 3), i, dtype=torch.uint8) for i in items])
        downloader.submit(items, frames.to(torch_device))
    downloader.close()
    assert seen == [(i, i) for i in range(7)]
    assert [int(a[0, 0]) for a in kept] == list(range(7))  # buffers reused, copies kept


def test_downloader_reraises_a_consumer_failure(torch_device: str) -> None:
    def consume(item: int, array: np.ndarray) -> None:
        raise ValueError("encoder failed")

    downloader = Downloader(consume, (1,), size=1, device=torch_device, depth=1)
    downloader.submit([0], torch.zeros((1, 1), dtype=torch.uint8, device=torch_device))
    with pytest.raises(ValueError, match="encoder failed"):
        downloader.close()
