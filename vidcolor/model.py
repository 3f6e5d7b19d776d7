"""Network definitions and the registry of architectures by name.

Three architectures:
  seed-cae       the student report's ColorAutoEncoder, layer for layer: gray 150x150 in, RGB (sigmoid) out.
                 Kept only as the baseline to beat.
  effnet-unet    the default: EfficientNet-Lite0-shaped encoder (optionally ImageNet-initialised for training, see train/) and a
                 light U-Net decoder with skip connections. Luma in, two chroma channels (tanh) out at half the
                 input resolution; chroma is smooth, and it is upsampled to the frame's size anyway.
  effnet-unet-ensemble
                 several effnet-unet networks, trained apart with different recipes, whose chroma is averaged:
                 networks that err in different places cancel part of each other's wrong colours, at the cost of
                 running each. Built by train/export.py from separately trained checkpoints, never trained as one.
                 Not bundled: measured in the README's "Model quality".

A model is fully described by a ModelConfig, which travels inside every checkpoint (vidcolor/weights.py).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class ModelConfig:
    arch: str = "effnet-unet"
    # "chroma": N x 2 output in [-1, 1] (CbCr * CHROMA_SCALE); "rgb": N x 3 output in [0, 1].
    output: str = "chroma"
    # A fixed input size (square) for architectures that only work at one size; 0 means any size.
    fixed_size: int = 0
    # Decoder widths from the deepest skip (stride 16) to the shallowest (stride 2).
    decoder_channels: tuple[int, ...] = (96, 64, 40, 24)
    # Scale applied to predicted chroma at inference. A regression network trained for colourfulness over-commits
    # where it is unsure; the least-squares scale, fitted on training images, trades a little saturation for
    # fewer wrong colours (see train/export.py --calibrate).
    chroma_gain: float = 1.0
    # effnet-unet-ensemble: how many effnet-unet networks it averages.
    members: int = 1
    # effnet-unet: also take colour hints (hint chroma + hint mask, see HintEncoder) through a second decoder.
    hints: bool = False

    def to_dict(self) -> dict:
        d = asdict(self)
        d["decoder_channels"] = list(self.decoder_channels)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "ModelConfig":
        d = dict(d)
        if "decoder_channels" in d:
            d["decoder_channels"] = tuple(d["decoder_channels"])
        return cls(**d)


# ---------------------------------------------------------------------------------------------------------------
# seed-cae: the report's model


class SeedCAE(nn.Module):
    """Conv 1->64->128->256->512 (stride 2), transposed convs back with skip concatenations, sigmoid RGB."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        widths = [1, 64, 128, 256, 512]
        self.down = nn.ModuleList(
            nn.Conv2d(widths[i], widths[i + 1], 3, stride=2, padding=1) for i in range(4)
        )
        # Up path: 512 -> 256 (+256 skip) -> 128 (+128 skip) -> 64 (+64 skip) -> 3.
        self.up = nn.ModuleList(
            [
                nn.ConvTranspose2d(512, 256, 3, stride=2, padding=1),
                nn.ConvTranspose2d(512, 128, 3, stride=2, padding=1),
                nn.ConvTranspose2d(256, 64, 3, stride=2, padding=1),
                nn.ConvTranspose2d(128, 3, 3, stride=2, padding=1),
            ]
        )

    def forward(self, luma: torch.Tensor) -> torch.Tensor:  # luma: N x 1 x H x W in [0, 1]
        x = luma
        skips = []
        for conv in self.down:
            skips.append(x)
            x = F.relu(conv(x))
        for i, deconv in enumerate(self.up):
            skip = skips[-1 - i]
            x = deconv(x, output_size=skip.shape[-2:])
            if i < 3:
                x = torch.cat([F.relu(x), skip], dim=1)
        return torch.sigmoid(x)  # rgb: N x 3 x H x W in [0, 1]


# ---------------------------------------------------------------------------------------------------------------
# effnet-unet: EfficientNet-Lite0 encoder + light U-Net decoder

# (expand ratio, kernel, stride, output channels, repeats) for EfficientNet-Lite0's seven stages.
EFFNET_LITE0_STAGES = [
    (1, 3, 1, 16, 1),
    (6, 3, 2, 24, 2),
    (6, 5, 2, 40, 2),
    (6, 3, 2, 80, 3),
    (6, 5, 1, 112, 3),
    (6, 5, 2, 192, 4),
    (6, 3, 1, 320, 1),
]
# Blocks whose outputs feed the decoder: strides 2, 4, 8, 16, 32.
EFFNET_TAPS = (0, 2, 4, 10, 15)
EFFNET_TAP_CHANNELS = (16, 24, 40, 112, 320)
BN_EPS = 1e-3  # EfficientNet's batch-norm epsilon; the pretrained statistics assume it.


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=BN_EPS)


class MBConv(nn.Module):
    """Inverted residual block without squeeze-excitation (the Lite variant). Attribute names match the common
    PyTorch EfficientNet port so that ImageNet weights load by key. The activations are modules without parameters
    (checkpoints do not change) so that vidcolor.fusion can fold each into the convolution before it."""

    def __init__(self, cin: int, cout: int, expand: int, kernel: int, stride: int):
        super().__init__()
        mid = cin * expand
        self.has_expand = expand != 1
        if self.has_expand:
            self._expand_conv = nn.Conv2d(cin, mid, 1, bias=False)
            self._bn0 = _bn(mid)
            self._act0 = nn.ReLU6(inplace=True)
        self._depthwise_conv = nn.Conv2d(mid, mid, kernel, stride, kernel // 2, groups=mid, bias=False)
        self._bn1 = _bn(mid)
        self._project_conv = nn.Conv2d(mid, cout, 1, bias=False)
        self._bn2 = _bn(cout)
        self._act1 = nn.ReLU6(inplace=True)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x
        if self.has_expand:
            y = self._act0(self._bn0(self._expand_conv(y)))
        y = self._act1(self._bn1(self._depthwise_conv(y)))
        y = self._bn2(self._project_conv(y))
        return x + y if self.residual else y


class EffNetLite0Encoder(nn.Module):
    """EfficientNet-Lite0 up to its last block (no head), taking one luma channel.

    The ImageNet stem takes RGB; for a gray input R = G = B, so its three input filters are summed into one
    (train/pretrained.py does that when it loads the ImageNet weights). Input normalisation (x - 0.5) / 0.5 as in
    the pretrained model's training.
    """

    def __init__(self):
        super().__init__()
        self._conv_stem = nn.Conv2d(1, 32, 3, stride=2, padding=1, bias=False)
        self._bn0 = _bn(32)
        self._act0 = nn.ReLU6(inplace=True)
        blocks = []
        cin = 32
        for expand, kernel, stride, cout, repeats in EFFNET_LITE0_STAGES:
            for i in range(repeats):
                blocks.append(MBConv(cin, cout, expand, kernel, stride if i == 0 else 1))
                cin = cout
        self._blocks = nn.ModuleList(blocks)

    def forward(self, luma: torch.Tensor) -> list[torch.Tensor]:
        x = self._act0(self._bn0(self._conv_stem((luma - 0.5) / 0.5)))
        features = []
        for i, block in enumerate(self._blocks):
            x = block(x)
            if i in EFFNET_TAPS:
                features.append(x)
        return features  # strides 2, 4, 8, 16, 32


class DecoderStage(nn.Module):
    """Upsample x2, concatenate the skip, then a 1x1 mix and a depthwise-separable 3x3 (cheap on a CPU)."""

    def __init__(self, cin: int, cskip: int, cout: int):
        super().__init__()
        self.mix = nn.Sequential(nn.Conv2d(cin + cskip, cout, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(True))
        self.refine = nn.Sequential(
            nn.Conv2d(cout, cout, 3, padding=1, groups=cout, bias=False),
            nn.Conv2d(cout, cout, 1, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU(True),
        )

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
        x = self.mix(torch.cat([x, skip], dim=1))
        return x + self.refine(x)


# Hint channels: Cb and Cr of the hinted colour (times CHROMA_SCALE, so in [-1, 1]; 0 where there is no hint) and
# the hint mask, the trust in each hint from 0 (none) to 1 (a colour the user chose).
HINT_CHANNELS = 3
HINT_WIDTH = 32  # hidden channels of each scale's hint branch


class HintEncoder(nn.Module):
    """Hints -> one feature map per encoder tap (strides 2 to 32), added to the luma encoder's features.

    At each stride the hints are summarised without learned weights: pooled hint chroma and mask, the mean hinted
    colour where there is any (a normalised convolution: exact for a single point, whatever the pooling), and the
    image's mean hinted colour and hint density. So a colour point reaches the deepest, coarsest features in one
    step instead of through many convolutions, and the decoder learns where luma edges should stop it. The last
    convolution of each branch starts at zero, so a new hint path starts as the automatic network.
    """

    INPUTS = 8  # pooled chroma (2), pooled mask (1), local mean colour (2), global mean colour (2), global density

    def __init__(self):
        super().__init__()
        self.branches = nn.ModuleList(
            nn.Sequential(nn.Conv2d(self.INPUTS, HINT_WIDTH, 3, padding=1), nn.ReLU(True),
                          nn.Conv2d(HINT_WIDTH, channels, 1, bias=False))
            for channels in EFFNET_TAP_CHANNELS
        )
        for branch in self.branches:
            nn.init.zeros_(branch[-1].weight)

    def forward(self, hints: torch.Tensor) -> list[torch.Tensor]:  # hints: N x 3 x H x W, H and W multiples of 32
        mask = hints[:, 2:3]
        chroma = hints[:, :2] * mask  # weighted by trust, for the normalised means below
        hints = torch.cat([chroma, mask], dim=1)
        total_mask = mask.sum(dim=(2, 3), keepdim=True)
        global_mean = chroma.sum(dim=(2, 3), keepdim=True) / (total_mask + 1e-3)
        density = total_mask / (hints.shape[2] * hints.shape[3])
        features = []
        for i, branch in enumerate(self.branches):
            stride = 2 ** (i + 1)
            pooled = F.avg_pool2d(hints, stride)
            local_mean = pooled[:, :2] / (pooled[:, 2:3] + 1e-4)
            size = pooled.shape[-2:]
            summary = torch.cat([pooled, local_mean, global_mean.expand(-1, -1, *size),
                                 density.expand(-1, -1, *size)], dim=1)
            features.append(branch(summary))
        return features


def spread_hints(hints: torch.Tensor, levels: int = 5) -> torch.Tensor:
    """Hinted colour spread over the whole picture, without learned weights: N x 3 x H x W hints (H and W multiples
    of 2 ** levels) -> N x 2 x H/2 x W/2 chroma (times CHROMA_SCALE).

    Pull-push interpolation: the weighted hint colour and mask are averaged down a pyramid (pull); then, from the
    coarsest level (where the whole picture's mean hint fills any empty cell) back up, each level keeps its own mean
    colour where it has hints and takes the coarser level's, upsampled, where it has none (push). What a plain
    interpolation of the hints gives, at the cost of a few poolings, for any number of points or a dense map."""
    mask = hints[:, 2:3]
    weighted = hints[:, :2] * mask
    pyramid = []
    for _ in range(levels):
        weighted, mask = F.avg_pool2d(weighted, 2), F.avg_pool2d(mask, 2)
        pyramid.append((weighted, mask))
    total = mask.sum(dim=(2, 3), keepdim=True)
    estimate = (weighted.sum(dim=(2, 3), keepdim=True) / (total + 1e-6)).expand_as(weighted)
    for level in range(levels - 1, -1, -1):
        weighted, mask = pyramid[level]
        if estimate.shape[-2:] != mask.shape[-2:]:
            estimate = F.interpolate(estimate, size=mask.shape[-2:], mode="bilinear", align_corners=False)
        # Confidence 1 where the cell holds a whole hinted pixel's worth of mask (a cell 2^(level+1) pixels wide).
        confidence = (mask * 4.0 ** (level + 1)).clamp(max=1.0)
        estimate = confidence * (weighted / (mask + 1e-6)) + (1.0 - confidence) * estimate
    return estimate


class EffNetUNet(nn.Module):
    """Luma (and, with config.hints, colour hints) -> chroma at half resolution. Works at any input size: padded
    to the encoder's stride of 32.

    With hints the luma encoder is shared and a second decoder and head (hint_decoder, hint_head) take its features
    plus the HintEncoder's. Their chroma is then pulled towards the plain spread of the hints (spread_hints) by a
    learned per-pixel gate: the network decides, from what it sees, where the hinted colour reaches (the same
    surface) and where it stops (an edge, another object), instead of having to paint the colour itself. The gate
    starts at 0 and the hint decoder as a copy of the automatic one, so a new hint path gives today's output.
    The automatic path (no hints) is the plain network, untouched, so adding hints to a trained network, or training
    its hint path, never changes what it does without hints; and a frame without hints costs what it did before.
    """

    STRIDE = 32

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.encoder = EffNetLite0Encoder()
        self.decoder, self.head = self._decoder(config)
        self.has_hints = config.hints
        if config.hints:
            self.hint_encoder = HintEncoder()
            self.hint_decoder, self.hint_head = self._decoder(config)
            # Gate from the last decoder features, the spread colour and the network's own: 0 at the start.
            self.hint_gate = nn.Conv2d(config.decoder_channels[-1] + 4, 1, 3, padding=1)
            nn.init.zeros_(self.hint_gate.weight)
            nn.init.zeros_(self.hint_gate.bias)

    @staticmethod
    def _decoder(config: ModelConfig) -> tuple[nn.ModuleList, nn.Conv2d]:
        widths = list(config.decoder_channels)
        skips = list(reversed(EFFNET_TAP_CHANNELS[:-1]))  # 112, 40, 24, 16
        stages = []
        cin = EFFNET_TAP_CHANNELS[-1]
        for cskip, cout in zip(skips, widths):
            stages.append(DecoderStage(cin, cskip, cout))
            cin = cout
        return nn.ModuleList(stages), nn.Conv2d(cin, 2, 3, padding=1)

    def copy_decoder_to_hint_path(self) -> None:
        """Start the hint path as the automatic one (with the HintEncoder's zero output: the same chroma)."""
        self.hint_decoder.load_state_dict(self.decoder.state_dict())
        self.hint_head.load_state_dict(self.head.state_dict())

    def forward(self, luma: torch.Tensor, hints: torch.Tensor | None = None) -> torch.Tensor:
        # luma: N x 1 x H x W in [0, 1]; hints: N x 3 x H x W (HINT_CHANNELS) or None for the automatic path
        h, w = luma.shape[-2:]
        pad_h = (-h) % self.STRIDE
        pad_w = (-w) % self.STRIDE
        if pad_h or pad_w:
            luma = F.pad(luma, (0, pad_w, 0, pad_h), mode="replicate")
        features = self.encoder(luma)
        decoder, head = self.decoder, self.head
        if hints is not None:
            if not self.has_hints:
                raise ValueError("these weights take no hints")
            if pad_h or pad_w:
                hints = F.pad(hints, (0, pad_w, 0, pad_h))  # no hints in the padding
            features = [f + g for f, g in zip(features, self.hint_encoder(hints.to(features[0].dtype)))]
            decoder, head = self.hint_decoder, self.hint_head
        x = features[-1]
        for stage, skip in zip(decoder, reversed(features[:-1])):
            x = stage(x, skip)
        chroma = torch.tanh(head(x))  # N x 2 x H/2 x W/2 (padded)
        if hints is not None:
            spread = spread_hints(hints.to(chroma.dtype))
            gate = self.hint_gate(torch.cat([x, spread, chroma], dim=1)).clamp(0.0, 1.0)
            chroma = chroma + gate * (spread - chroma)
        return chroma[..., : (h + 1) // 2, : (w + 1) // 2]


class EffNetUNetEnsemble(nn.Module):
    """The mean of several effnet-unet networks' chroma (before the chroma_gain, which applies to the mean)."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.members = nn.ModuleList(EffNetUNet(config) for _ in range(config.members))

    def forward(self, luma: torch.Tensor) -> torch.Tensor:
        total = self.members[0](luma)
        for member in self.members[1:]:
            total = total + member(luma)
        return total / len(self.members)


ARCHITECTURES: dict[str, tuple[type[nn.Module], ModelConfig]] = {
    "seed-cae": (SeedCAE, ModelConfig(arch="seed-cae", output="rgb", fixed_size=150)),
    "effnet-unet": (EffNetUNet, ModelConfig(arch="effnet-unet")),
    "effnet-unet-ensemble": (EffNetUNetEnsemble, ModelConfig(arch="effnet-unet-ensemble", members=2)),
}
# What train/ can train as one network; an ensemble is assembled from trained members by train/export.py.
TRAINABLE = ("seed-cae", "effnet-unet")


def default_config(arch: str) -> ModelConfig:
    if arch not in ARCHITECTURES:
        raise KeyError(f"unknown architecture {arch!r}; available: {sorted(ARCHITECTURES)}")
    return ARCHITECTURES[arch][1]


def build_model(config: ModelConfig) -> nn.Module:
    cls, _ = ARCHITECTURES[config.arch]
    return cls(config)
