"""Torch stand-ins for FaceFusion's networks: the published layer shapes and cost, random weights.

The real weights cannot be fetched here, so benchmarks and GPU tests run these modules instead. Each has
the layer shapes of the public architecture it stands for (so the same parameter count, multiply-accumulates
and memory traffic) and the ONNX contract of the registry entry (input/output names, shapes, value ranges).
Their outputs mean nothing: they are for timing, memory and numerical-precision checks only (tests and
benchmarks; no run uses them).

============================  ===========  ==========  =======================================================
stand-in                      parameters   GMACs/face  architecture
============================  ===========  ==========  =======================================================
hyperswap_1a_256              201.2 M      31.9        U-Net target encoder, AAD-style generator, mask network
inswapper_128                 138.3 M      174.6       conv encoder to 1024@32², 6 AdaIN blocks, conv decoder
2dfan4                        23.8 M       25.2        4 stacked hourglasses (FAN) at 64², 68 heatmaps
arcface_w600k_r50             43.6 M       6.3         IResNet-50, 512-d embedding
yoloface_8n                   3.1 M        4.2         YOLOv8n backbone + neck, box/score/5-point head
gfpgan_1.4 (counted)          84.3 M       197.8       GFPGANv1Clean at 512: U-Net encoder, SFT-steered
                                                       StyleGAN2 decoder, 16 style codes
============================  ===========  ==========  =======================================================

No published cost was found for the face enhancers: gfpgan_1.4's figures are counted on the stand-in built from
GFPGANv1Clean's layer list (TencentARC/GFPGAN; channel multiplier 2, SFT on half the channels, a style code per
layer). The unused 8-layer style MLP (2.1 M parameters, not run when the codes come from the encoder) is left out.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

STANDINS = ("hyperswap_1a_256", "inswapper_128", "2dfan4", "arcface_w600k_r50", "yoloface_8n")
"""Names of the stand-ins, as the registry's file stems."""
ENHANCER_STANDINS = ("gfpgan_1.4",)
"""Face enhancer stand-ins; their cost is counted on the layer list (``COUNTED``), not published."""
COUNTED = {"gfpgan_1.4": (84.3e6, 197.8e9)}
"""(parameters, multiply-accumulates per face) of the face enhancer stand-ins, as counted on their layer lists."""

PUBLISHED = {
    "hyperswap_1a_256": (201.2e6, 31.9e9),
    "inswapper_128": (138.3e6, 174.6e9),
    "2dfan4": (23.8e6, 25.2e9),
    "arcface_w600k_r50": (43.6e6, 6.3e9),
    "yoloface_8n": (3.1e6, 4.2e9),
}
"""(parameters, multiply-accumulates per face) of the real models, as gathered in the GPU engine issue."""


# ---------------------------------------------------------------------------------------------------------
# hyperswap_1a_256


def _down4(cin: int, cout: int) -> nn.Sequential:
    """Stride-2 4×4 convolution, batch norm, leaky ReLU: halves the side."""
    return nn.Sequential(nn.Conv2d(cin, cout, 4, 2, 1, bias=False), nn.BatchNorm2d(cout), nn.LeakyReLU(0.1))


def _up4(cin: int, cout: int) -> nn.Sequential:
    """Stride-2 4×4 transposed convolution, batch norm, leaky ReLU: doubles the side."""
    return nn.Sequential(nn.ConvTranspose2d(cin, cout, 4, 2, 1, bias=False), nn.BatchNorm2d(cout), nn.LeakyReLU(0.1))


class _Blend(nn.Module):
    """Instance-normalised features modulated twice (by identity and by target attributes), mixed by a gate."""

    def __init__(self, channels: int, attribute_channels: int, identity_size: int = 512) -> None:
        super().__init__()
        self.norm = nn.InstanceNorm2d(channels)
        self.attribute_gain = nn.Conv2d(attribute_channels, channels, 1)
        self.attribute_bias = nn.Conv2d(attribute_channels, channels, 1)
        self.identity_gain = nn.Linear(identity_size, channels)
        self.identity_bias = nn.Linear(identity_size, channels)
        self.gate = nn.Conv2d(channels, 1, 1)

    def forward(self, x: Tensor, identity: Tensor, attributes: Tensor) -> Tensor:
        h = self.norm(x)
        by_target = self.attribute_gain(attributes) * h + self.attribute_bias(attributes)
        by_source = self.identity_gain(identity)[:, :, None, None] * h + self.identity_bias(identity)[:, :, None, None]
        gate = torch.sigmoid(self.gate(h))
        return by_target + gate * (by_source - by_target)


class _BlendStage(nn.Module):
    """Two (blend, ReLU, 3×3 conv) steps with a residual path; a blended 3×3 conv shortcut when narrowing."""

    def __init__(self, cin: int, cout: int, attribute_channels: int) -> None:
        super().__init__()
        self.blends = nn.ModuleList([_Blend(cin, attribute_channels), _Blend(cin, attribute_channels)])
        self.convs = nn.ModuleList([nn.Conv2d(cin, cin, 3, padding=1, bias=False),
                                    nn.Conv2d(cin, cout, 3, padding=1, bias=False)])
        self.narrow = cin > cout
        if self.narrow:
            self.short_blend = _Blend(cin, attribute_channels)
            self.short_conv = nn.Conv2d(cin, cout, 3, padding=1, bias=False)

    def forward(self, x: Tensor, identity: Tensor, attributes: Tensor) -> Tensor:
        h = x
        for blend, conv in zip(self.blends, self.convs):
            h = conv(F.relu(blend(h, identity, attributes)))
        if self.narrow:
            x = self.short_conv(F.relu(self.short_blend(x, identity, attributes)))
        return h + x


class _MaskNet(nn.Module):
    """Small encoder-decoder on (target image, finest target features) → soft mask in [0, 1]."""

    def __init__(self, cin: int = 67, width: int = 16) -> None:
        super().__init__()

        def down(a: int, b: int) -> nn.Sequential:
            return nn.Sequential(nn.Conv2d(a, b, 3, padding=1, bias=False), nn.BatchNorm2d(b), nn.ReLU(),
                                 nn.MaxPool2d(2))

        def up(a: int, b: int) -> nn.Sequential:
            return nn.Sequential(nn.ConvTranspose2d(a, b, 2, 2), nn.ReLU())

        self.downs = nn.Sequential(down(cin, width), down(width, 2 * width), down(2 * width, 4 * width))
        c = 4 * width
        self.middle = nn.Sequential(nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c), nn.ReLU(),
                                    nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c), nn.ReLU())
        self.ups = nn.Sequential(up(c, 2 * width), up(2 * width, width), up(width, width))
        self.head = nn.Conv2d(width, 1, 1)

    def forward(self, x: Tensor) -> Tensor:
        h = self.downs(x)
        h = F.relu(self.middle(h) + h)
        return torch.sigmoid(self.head(self.ups(h)))


class HyperSwapStandIn(nn.Module):
    """hyperswap_1a_256: ``(source (n,512), target (n,3,256,256) in [-1,1])`` → ``(output in [-1,1], mask)``."""

    def __init__(self) -> None:
        super().__init__()
        widths = (3, 32, 64, 128, 256, 512, 1024, 1024)
        self.downs = nn.ModuleList(_down4(a, b) for a, b in zip(widths, widths[1:]))
        self.ups = nn.ModuleList(_up4(a, b) for a, b in
                                 ((1024, 1024), (2048, 512), (1024, 256), (512, 128), (256, 64), (128, 32)))
        self.seed = nn.Sequential(nn.Conv2d(512, 4096, 3, padding=1), nn.PixelShuffle(2))
        self.stages = nn.ModuleList(_BlendStage(a, b, t) for a, b, t in (
            (1024, 1024, 1024), (1024, 1024, 2048), (1024, 1024, 1024), (1024, 512, 512),
            (512, 256, 256), (256, 128, 128), (128, 64, 64), (64, 3, 64)))
        self.masker = _MaskNet()

    def encode(self, target: Tensor) -> list[Tensor]:
        """Bottleneck, each decoder level (with its skip) and the finest level upsampled to the input side."""
        skips = []
        h = target
        for down in self.downs:
            h = down(h)
            skips.append(h)
        features = [h]
        for index, up in enumerate(self.ups):
            h = torch.cat([up(h), skips[-index - 2]], dim=1)
            features.append(h)
        features.append(F.interpolate(h, scale_factor=2.0, mode="bilinear", align_corners=False))
        return features

    def forward(self, source: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
        features = self.encode(target)
        h = self.seed(source[:, :, None, None])
        for index, stage in enumerate(self.stages):
            h = stage(h, source, features[index])
            if index < len(self.stages) - 1:
                h = F.interpolate(h, scale_factor=2.0, mode="bilinear", align_corners=False)
        image = torch.tanh(h)
        mask = self.masker(torch.cat([target, features[-1]], dim=1))
        return image * mask + target * (1 - mask), mask


# ---------------------------------------------------------------------------------------------------------
# inswapper_128


class _AdaInConv(nn.Module):
    """3×3 conv, then instance norm whose scale and shift come from the identity vector."""

    def __init__(self, channels: int, identity_size: int = 512) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)
        self.norm = nn.InstanceNorm2d(channels, eps=1e-6)
        self.style = nn.Linear(identity_size, 2 * channels)

    def forward(self, x: Tensor, identity: Tensor) -> Tensor:
        gain, bias = self.style(identity)[:, :, None, None].chunk(2, dim=1)
        return gain * self.norm(self.conv(x)) + bias


class InSwapperStandIn(nn.Module):
    """inswapper_128: ``(target (n,3,128,128) in [0,1], source (n,512))`` → ``output`` in [0, 1]."""

    def __init__(self, blocks: int = 6) -> None:
        super().__init__()
        act = nn.LeakyReLU(0.2)
        self.encoder = nn.Sequential(
            nn.Conv2d(3, 128, 7, padding=3, padding_mode="reflect"), act,
            nn.Conv2d(128, 256, 3, padding=1), act,
            nn.Conv2d(256, 512, 3, 2, 1), act,
            nn.Conv2d(512, 1024, 3, 2, 1), act)
        self.blocks = nn.ModuleList(nn.ModuleList([_AdaInConv(1024), _AdaInConv(1024)]) for _ in range(blocks))
        self.decoder = nn.Sequential(
            nn.Upsample(scale_factor=2.0, mode="bilinear", align_corners=False),
            nn.Conv2d(1024, 512, 3, padding=1), act,
            nn.Upsample(scale_factor=2.0, mode="bilinear", align_corners=False),
            nn.Conv2d(512, 256, 3, padding=1), act,
            nn.Conv2d(256, 128, 3, padding=1), act,
            nn.Conv2d(128, 3, 7, padding=3, padding_mode="reflect"), nn.Tanh())

    def forward(self, target: Tensor, source: Tensor) -> Tensor:
        h = self.encoder(target)
        for first, second in self.blocks:
            h = h + second(F.relu(first(h, source)), source)
        return (self.decoder(h) + 1) / 2


# ---------------------------------------------------------------------------------------------------------
# 2dfan4


class _FanBlock(nn.Module):
    """Pre-activation residual block whose three 3×3 convs (out/2, out/4, out/4 wide) are concatenated."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        half, quarter = cout // 2, cout // 4
        self.norms = nn.ModuleList([nn.BatchNorm2d(cin), nn.BatchNorm2d(half), nn.BatchNorm2d(quarter)])
        self.convs = nn.ModuleList([nn.Conv2d(cin, half, 3, padding=1, bias=False),
                                    nn.Conv2d(half, quarter, 3, padding=1, bias=False),
                                    nn.Conv2d(quarter, quarter, 3, padding=1, bias=False)])
        self.project = None
        if cin != cout:
            self.project = nn.Sequential(nn.BatchNorm2d(cin), nn.ReLU(), nn.Conv2d(cin, cout, 1, bias=False))

    def forward(self, x: Tensor) -> Tensor:
        parts = []
        h = x
        for norm, conv in zip(self.norms, self.convs):
            h = conv(F.relu(norm(h)))
            parts.append(h)
        shortcut = x if self.project is None else self.project(x)
        return torch.cat(parts, dim=1) + shortcut


class _Hourglass(nn.Module):
    """Recursive hourglass: a full-resolution branch plus a pooled branch ``depth`` levels deep."""

    def __init__(self, depth: int, width: int) -> None:
        super().__init__()
        self.keep = _FanBlock(width, width)
        self.down = _FanBlock(width, width)
        self.inner: nn.Module = _Hourglass(depth - 1, width) if depth > 1 else _FanBlock(width, width)
        self.up = _FanBlock(width, width)

    def forward(self, x: Tensor) -> Tensor:
        low = self.up(self.inner(self.down(F.avg_pool2d(x, 2))))
        return self.keep(x) + F.interpolate(low, scale_factor=2.0, mode="nearest")


class FanStandIn(nn.Module):
    """2dfan4: ``input (n,3,256,256)`` in [0,1] → ``(landmarks (n,68,3) in 64-px heatmap space, heatmaps)``."""

    def __init__(self, stacks: int = 4, points: int = 68, width: int = 256) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 64, 7, 2, 3), nn.BatchNorm2d(64), nn.ReLU(), _FanBlock(64, 128),
                                  nn.AvgPool2d(2), _FanBlock(128, 128), _FanBlock(128, width))
        self.hourglasses = nn.ModuleList(_Hourglass(4, width) for _ in range(stacks))
        self.tops = nn.ModuleList(nn.Sequential(_FanBlock(width, width), nn.Conv2d(width, width, 1),
                                                nn.BatchNorm2d(width), nn.ReLU()) for _ in range(stacks))
        self.heads = nn.ModuleList(nn.Conv2d(width, points, 1) for _ in range(stacks))
        self.back_features = nn.ModuleList(nn.Conv2d(width, width, 1) for _ in range(stacks - 1))
        self.back_heatmaps = nn.ModuleList(nn.Conv2d(points, width, 1) for _ in range(stacks - 1))

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        h = self.stem(x)
        heatmaps = h
        for index, (hourglass, top, head) in enumerate(zip(self.hourglasses, self.tops, self.heads)):
            features = top(hourglass(h))
            heatmaps = head(features)
            if index < len(self.back_features):
                h = h + self.back_features[index](features) + self.back_heatmaps[index](heatmaps)
        n, k, side, _ = heatmaps.shape
        flat = heatmaps.reshape(n, k, side * side)
        score, where = flat.max(dim=2)
        points = torch.stack([(where % side).to(x.dtype), torch.div(where, side, rounding_mode="floor").to(x.dtype),
                              score], dim=2)
        return points, heatmaps


# ---------------------------------------------------------------------------------------------------------
# arcface_w600k_r50


class _IBlock(nn.Module):
    """IResNet basic block: BN, 3×3 conv, BN, PReLU, 3×3 conv (strided), BN, plus the shortcut."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.BatchNorm2d(cin), nn.Conv2d(cin, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout),
                                  nn.PReLU(cout), nn.Conv2d(cout, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout))
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: Tensor) -> Tensor:
        return self.body(x) + self.shortcut(x)


class ArcFaceStandIn(nn.Module):
    """arcface_w600k_r50 (IResNet-50): ``input (n,3,112,112)`` in [-1,1] → ``embedding (n,512)``."""

    def __init__(self, layers: tuple[int, ...] = (3, 4, 14, 3)) -> None:
        super().__init__()
        body: list[nn.Module] = [nn.Conv2d(3, 64, 3, 1, 1, bias=False), nn.BatchNorm2d(64), nn.PReLU(64)]
        cin = 64
        for width, count in zip((64, 128, 256, 512), layers):
            body += [_IBlock(cin, width, 2)] + [_IBlock(width, width, 1) for _ in range(count - 1)]
            cin = width
        self.body = nn.Sequential(*body, nn.BatchNorm2d(512), nn.Flatten())
        self.fc = nn.Linear(512 * 7 * 7, 512)
        self.features = nn.BatchNorm1d(512)

    def forward(self, x: Tensor) -> Tensor:
        return self.features(self.fc(self.body(x)))


# ---------------------------------------------------------------------------------------------------------
# yoloface_8n


class _ConvBnSiLU(nn.Sequential):
    def __init__(self, cin: int, cout: int, kernel: int = 1, stride: int = 1) -> None:
        super().__init__(nn.Conv2d(cin, cout, kernel, stride, kernel // 2, bias=False), nn.BatchNorm2d(cout), nn.SiLU())


class _CSP(nn.Module):
    """YOLOv8's C2f: split, ``n`` residual 3×3 pairs each feeding the next, concatenate every step, fuse."""

    def __init__(self, cin: int, cout: int, n: int, residual: bool) -> None:
        super().__init__()
        self.half = cout // 2
        self.split = _ConvBnSiLU(cin, 2 * self.half)
        self.pairs = nn.ModuleList(
            nn.Sequential(_ConvBnSiLU(self.half, self.half, 3), _ConvBnSiLU(self.half, self.half, 3)) for _ in range(n))
        self.residual = residual
        self.fuse = _ConvBnSiLU((2 + n) * self.half, cout)

    def forward(self, x: Tensor) -> Tensor:
        parts = list(self.split(x).chunk(2, dim=1))
        for pair in self.pairs:
            parts.append(pair(parts[-1]) + parts[-1] if self.residual else pair(parts[-1]))
        return self.fuse(torch.cat(parts, dim=1))


class _PyramidPool(nn.Module):
    """SPPF: three chained 5×5 max pools concatenated with their input."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.reduce = _ConvBnSiLU(cin, cin // 2)
        self.fuse = _ConvBnSiLU(cin * 2, cout)

    def forward(self, x: Tensor) -> Tensor:
        parts = [self.reduce(x)]
        for _ in range(3):
            parts.append(F.max_pool2d(parts[-1], 5, 1, 2))
        return self.fuse(torch.cat(parts, dim=1))


class YoloFaceStandIn(nn.Module):
    """yoloface_8n: ``input (n,3,640,640)`` in [0,1] → ``output (n,20,A)``: cx, cy, w, h, score, 5×(x, y, conf)."""

    BINS = 16
    STRIDES = (8, 16, 32)

    def __init__(self) -> None:
        super().__init__()
        self.p3 = nn.Sequential(_ConvBnSiLU(3, 16, 3, 2), _ConvBnSiLU(16, 32, 3, 2), _CSP(32, 32, 1, True),
                                _ConvBnSiLU(32, 64, 3, 2), _CSP(64, 64, 2, True))
        self.p4 = nn.Sequential(_ConvBnSiLU(64, 128, 3, 2), _CSP(128, 128, 2, True))
        self.p5 = nn.Sequential(_ConvBnSiLU(128, 256, 3, 2), _CSP(256, 256, 1, True), _PyramidPool(256, 256))
        self.top_down4 = _CSP(384, 128, 1, False)
        self.top_down3 = _CSP(192, 64, 1, False)
        self.down3 = _ConvBnSiLU(64, 64, 3, 2)
        self.bottom_up4 = _CSP(192, 128, 1, False)
        self.down4 = _ConvBnSiLU(128, 128, 3, 2)
        self.bottom_up5 = _CSP(384, 256, 1, False)

        def branch(cin: int, width: int, cout: int) -> nn.Sequential:
            return nn.Sequential(_ConvBnSiLU(cin, width, 3), _ConvBnSiLU(width, width, 3), nn.Conv2d(width, cout, 1))

        levels = (64, 128, 256)
        self.box = nn.ModuleList(branch(c, 64, 4 * self.BINS) for c in levels)
        self.score = nn.ModuleList(branch(c, 64, 1) for c in levels)
        self.points = nn.ModuleList(branch(c, 16, 15) for c in levels)
        self.register_buffer("bins", torch.arange(self.BINS, dtype=torch.float32), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        c3 = self.p3(x)
        c4 = self.p4(c3)
        c5 = self.p5(c4)
        t4 = self.top_down4(torch.cat([F.interpolate(c5, scale_factor=2.0, mode="nearest"), c4], 1))
        o3 = self.top_down3(torch.cat([F.interpolate(t4, scale_factor=2.0, mode="nearest"), c3], 1))
        o4 = self.bottom_up4(torch.cat([self.down3(o3), t4], 1))
        o5 = self.bottom_up5(torch.cat([self.down4(o4), c5], 1))
        heads = zip((o3, o4, o5), self.STRIDES, self.box, self.score, self.points)
        rows = [self._decode(level, stride, box, score, points) for level, stride, box, score, points in heads]
        return torch.cat(rows, dim=2)

    def _decode(self, level: Tensor, stride: int, box: nn.Module, score: nn.Module, points: nn.Module) -> Tensor:
        n, _, h, w = level.shape
        ys, xs = torch.meshgrid(torch.arange(h, device=level.device, dtype=level.dtype) + 0.5,
                                torch.arange(w, device=level.device, dtype=level.dtype) + 0.5, indexing="ij")
        anchors = torch.stack([xs, ys]).reshape(1, 2, h * w)
        bins = box(level).reshape(n, 4, self.BINS, h * w).softmax(dim=2)
        distance = (bins * self.bins.to(level.dtype)[None, None, :, None]).sum(dim=2)
        top_left, bottom_right = anchors - distance[:, :2], anchors + distance[:, 2:]
        boxes = torch.cat([(top_left + bottom_right) / 2, bottom_right - top_left], dim=1) * stride
        kps = points(level).reshape(n, 5, 3, h * w)
        xy = (kps[:, :, :2] * 2 + anchors[:, None] - 0.5) * stride
        kps = torch.cat([xy, torch.sigmoid(kps[:, :, 2:])], dim=2).reshape(n, 15, h * w)
        return torch.cat([boxes, torch.sigmoid(score(level).reshape(n, 1, h * w)), kps], dim=1)


# ---------------------------------------------------------------------------------------------------------
# gfpgan_1.4 (GFPGANv1Clean at 512: channel multiplier 2, SFT on half the channels, a style code per layer)


_UNET_CHANNELS = {4: 256, 8: 256, 16: 256, 32: 256, 64: 256, 128: 128, 256: 64, 512: 32}
_DECODER_CHANNELS = {4: 512, 8: 512, 16: 512, 32: 512, 64: 512, 128: 256, 256: 128, 512: 64}


class _ResampleBlock(nn.Module):
    """3×3 conv, bilinear resample by ``scale``, 3×3 conv, with a resampled 1×1 shortcut."""

    def __init__(self, cin: int, cout: int, scale: float) -> None:
        super().__init__()
        self.scale = scale
        self.conv1, self.conv2 = nn.Conv2d(cin, cin, 3, 1, 1), nn.Conv2d(cin, cout, 3, 1, 1)
        self.skip = nn.Conv2d(cin, cout, 1, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        out = F.interpolate(F.leaky_relu(self.conv1(x), 0.2), scale_factor=self.scale, mode="bilinear")
        shortcut = self.skip(F.interpolate(x, scale_factor=self.scale, mode="bilinear"))
        return F.leaky_relu(self.conv2(out), 0.2) + shortcut


class _StyledConv(nn.Module):
    """A StyleGAN2 modulated convolution written as input scaling, plain convolution and output demodulation
    (the same arithmetic and multiply-accumulates as a per-sample weight)."""

    def __init__(self, cin: int, cout: int, kernel: int, demodulate: bool = True, up: bool = False) -> None:
        super().__init__()
        self.up, self.demodulate = up, demodulate
        self.modulation = nn.Linear(512, cin)
        self.conv = nn.Conv2d(cin, cout, kernel, 1, kernel // 2, bias=False)

    def forward(self, x: Tensor, style: Tensor) -> Tensor:
        gain = self.modulation(style)
        if self.up:
            x = F.interpolate(x, scale_factor=2, mode="bilinear")
        out = self.conv(x * gain[:, :, None, None])
        if self.demodulate:
            norm = ((self.conv.weight[None] * gain[:, None, :, None, None]) ** 2).sum(dim=(2, 3, 4))
            out = out * torch.rsqrt(norm + 1e-8)[:, :, None, None]
        return out


class GfpganStandIn(nn.Module):
    """A U-Net encoder whose features steer (SFT: scale and shift of half the channels) a StyleGAN2 decoder
    from 4² to 512², with 16 style codes from the encoder's 4² features. Input and output (n, 3, 512, 512)
    in [-1, 1] (the output not clipped, as the model's)."""

    def __init__(self) -> None:
        super().__init__()
        sides = [4 << i for i in range(8)]  # 4 … 512
        self.first = nn.Conv2d(3, _UNET_CHANNELS[512], 1)
        self.down = nn.ModuleList(_ResampleBlock(_UNET_CHANNELS[s], _UNET_CHANNELS[s // 2], 0.5) for s in sides[:0:-1])
        self.final = nn.Conv2d(256, 256, 3, 1, 1)
        self.styles = nn.Linear(256 * 16, 16 * 512)
        self.up = nn.ModuleList(_ResampleBlock(_UNET_CHANNELS[s // 2], _UNET_CHANNELS[s], 2.0) for s in sides[1:])

        def condition(c: int) -> nn.Sequential:
            return nn.Sequential(nn.Conv2d(c, c, 3, 1, 1), nn.LeakyReLU(0.2), nn.Conv2d(c, c, 3, 1, 1))

        self.scales = nn.ModuleList(condition(_UNET_CHANNELS[s]) for s in sides[1:])
        self.shifts = nn.ModuleList(condition(_UNET_CHANNELS[s]) for s in sides[1:])
        self.constant = nn.Parameter(torch.randn(1, 512, 4, 4))
        self.conv1 = _StyledConv(512, 512, 3)
        self.rgb1 = _StyledConv(512, 3, 1, demodulate=False)
        self.convs = nn.ModuleList()
        self.rgbs = nn.ModuleList()
        for side in sides[1:]:
            cin, cout = _DECODER_CHANNELS[side // 2], _DECODER_CHANNELS[side]
            self.convs.extend([_StyledConv(cin, cout, 3, up=True), _StyledConv(cout, cout, 3)])
            self.rgbs.append(_StyledConv(cout, 3, 1, demodulate=False))

    def forward(self, x: Tensor) -> Tensor:
        feat = F.leaky_relu(self.first(x), 0.2)
        skips = []
        for block in self.down:
            feat = block(feat)
            skips.insert(0, feat)
        feat = F.leaky_relu(self.final(feat), 0.2)
        codes = self.styles(feat.flatten(1)).unflatten(1, (16, 512))
        conditions = []
        for block, scale, shift, skip in zip(self.up, self.scales, self.shifts, skips):
            feat = block(feat + skip)
            conditions.append((scale(feat), shift(feat)))
        out = F.leaky_relu(self.conv1(self.constant.expand(x.shape[0], -1, -1, -1), codes[:, 0]), 0.2)
        image = self.rgb1(out, codes[:, 1])
        for level, ((gain, bias), rgb) in enumerate(zip(conditions, self.rgbs)):
            code = 1 + 2 * level
            out = F.leaky_relu(self.convs[2 * level](out, codes[:, code]), 0.2)
            same, steered = out.chunk(2, dim=1)
            out = torch.cat([same, steered * gain + bias], dim=1)
            out = F.leaky_relu(self.convs[2 * level + 1](out, codes[:, code + 1]), 0.2)
            image = F.interpolate(image, scale_factor=2, mode="bilinear") + rgb(out, codes[:, code + 2])
        return image


# ---------------------------------------------------------------------------------------------------------
# building, measuring, exporting

_BUILDERS: dict[str, Callable[[], nn.Module]] = {
    "hyperswap_1a_256": HyperSwapStandIn,
    "inswapper_128": InSwapperStandIn,
    "2dfan4": FanStandIn,
    "arcface_w600k_r50": ArcFaceStandIn,
    "yoloface_8n": YoloFaceStandIn,
    "gfpgan_1.4": GfpganStandIn,
}

IO: dict[str, tuple[tuple[tuple[str, tuple[int, ...]], ...], tuple[str, ...]]] = {
    "hyperswap_1a_256": ((("source", (512,)), ("target", (3, 256, 256))), ("output", "mask")),
    "inswapper_128": ((("target", (3, 128, 128)), ("source", (512,))), ("output",)),
    "2dfan4": ((("input", (3, 256, 256)),), ("landmarks", "heatmaps")),
    "arcface_w600k_r50": ((("input", (3, 112, 112)),), ("embedding",)),
    "yoloface_8n": ((("input", (3, 640, 640)),), ("output",)),
    "gfpgan_1.4": ((("input", (3, 512, 512)),), ("output",)),
}
"""Per stand-in: (graph input name, shape without batch) in forward order, and graph output names."""


def build(name: str, seed: int = 0, device: str | torch.device = "cpu") -> nn.Module:
    """The stand-in ``name`` in eval mode with seeded random weights.

    Batch norms are calibrated on one random batch (their statistics set to what they see), so activations
    stay near unit scale through every layer, as in a trained network, and fp16 runs do not overflow.
    """
    if name not in _BUILDERS:
        raise KeyError(f"no stand-in '{name}' (known: {', '.join(STANDINS)})")
    generator = torch.Generator().manual_seed(seed)
    with torch.device("meta"):
        model = _BUILDERS[name]()
    model = model.to_empty(device="cpu")
    for module in model.modules():
        _initialise(module, generator)
    model = model.to(device)
    norms = [m for m in model.modules() if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d))]
    for norm in norms:
        norm.momentum = None
    model.train()
    with torch.no_grad():
        model(*example_inputs(name, batch=2, device=device, seed=seed + 1))
    for norm in norms:
        norm.momentum = 0.1
    return model.eval()


def _initialise(module: nn.Module, generator: torch.Generator) -> None:
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
        fan_in = module.weight[0].numel()
        if isinstance(module, nn.ConvTranspose2d):
            fan_in = module.weight.shape[0] * module.weight[0, 0].numel() // (module.stride[0] * module.stride[1])
        with torch.no_grad():
            module.weight.normal_(0.0, (1.0 / fan_in) ** 0.5, generator=generator)
            if module.bias is not None:
                module.bias.normal_(0.0, 0.01, generator=generator)
    elif isinstance(module, (nn.BatchNorm2d, nn.BatchNorm1d)):
        module.reset_parameters()
    elif isinstance(module, nn.PReLU):
        with torch.no_grad():
            module.weight.fill_(0.25)
    elif isinstance(module, YoloFaceStandIn):
        module.bins = torch.arange(module.BINS, dtype=torch.float32)


def example_inputs(name: str, batch: int = 1, device: str | torch.device = "cpu",
                   dtype: torch.dtype = torch.float32, seed: int = 0) -> tuple[Tensor, ...]:
    """Random inputs in each stand-in's value range (images in [0, 1] or [-1, 1], unit identity vectors)."""
    generator = torch.Generator().manual_seed(seed)
    inputs = []
    for input_name, shape in IO[name][0]:
        value = torch.rand((batch, *shape), generator=generator)
        if input_name == "source":
            value = F.normalize(value - 0.5, dim=1)
        elif name in ("hyperswap_1a_256", "arcface_w600k_r50", "gfpgan_1.4"):
            value = value * 2 - 1
        inputs.append(value.to(device=device, dtype=dtype))
    return tuple(inputs)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def count_macs(model: nn.Module, inputs: tuple[Tensor, ...]) -> int:
    """Multiply-accumulates of one forward pass through convolutions and linear layers (what such tables count).

    Runs on whatever device the model and inputs are on; use ``meta`` tensors to count without computing.
    """
    total = 0

    def hook(module: nn.Module, args: tuple[Tensor, ...], output: Tensor) -> None:
        nonlocal total
        if isinstance(module, nn.ConvTranspose2d):
            x = args[0]
            total += x[0].numel() * module.out_channels * module.weight[0, 0].numel() // module.groups * x.shape[0]
        elif isinstance(module, nn.Conv2d):
            total += output.numel() * module.weight[0].numel()
        elif isinstance(module, nn.Linear):
            total += output.numel() * module.in_features

    handles = [m.register_forward_hook(hook) for m in model.modules()
               if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear))]
    try:
        with torch.no_grad():
            model(*inputs)
    finally:
        for handle in handles:
            handle.remove()
    return total


def export_onnx(name: str, path: str | Path, model: nn.Module | None = None, opset: int = 17) -> Path:
    """Write the stand-in as an ONNX file with the registry's input/output names and a free batch dimension."""
    model = model if model is not None else build(name)
    inputs = example_inputs(name, batch=1, device=next(model.parameters()).device)
    input_names = [input_name for input_name, _ in IO[name][0]]
    output_names = list(IO[name][1])
    axes = {n: {0: "n"} for n in input_names + output_names}
    path = Path(path)
    with torch.no_grad():
        torch.onnx.export(model, inputs, str(path), input_names=input_names, output_names=output_names,
                          dynamic_axes=axes, opset_version=opset, dynamo=False)
    return path
