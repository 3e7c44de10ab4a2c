"""Audio encoders over log-mel spectrograms (see ``AudioLogMel``)."""
import os.path as osp
from typing import Optional, Sequence

import torch
from torch import nn

from mmfusion.registry import MODELS

from .base import BaseEncoder, ModalityFeatures


def _as_mel_batch(name: str, x: torch.Tensor, in_channels: int, num_mel_bins: int
                  ) -> torch.Tensor:
    """(B, n_mels, T) or (B, C, n_mels, T) -> (B, C, n_mels, T), checking the sizes."""
    if x.ndim == 3 and in_channels == 1:
        x = x.unsqueeze(1)
    if x.ndim != 4 or x.shape[1] != in_channels or x.shape[2] != num_mel_bins:
        raise ValueError(f'{name}: expected log-mels of shape (B, {num_mel_bins}, T) or '
                         f'(B, {in_channels}, {num_mel_bins}, T) (mel bins before time, as '
                         f'AudioLogMel gives), got {tuple(x.shape)}')
    return x


class _FrequencyFlatten(nn.Module):
    """(B, C, F, T) feature maps -> (B, T, C * F) one vector per time step."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1, 2).transpose(1, 2)


@MODELS.register_module()
class AudioCNNEncoder(BaseEncoder):
    """A small 2-D CNN over a log-mel spectrogram, one token per time step.

    A VGG-style stack in the spirit of the PANNs CNN6/CNN10 (Kong et al.,
    "PANNs: Large-Scale Pretrained Audio Neural Networks for Audio Pattern
    Recognition", TASLP 2020): per stage a 3x3 convolution, batch norm, ReLU
    and 2x2 max pooling. Unlike PANNs it does not average the frequency axis
    away: each time step's (channels x frequency) features are flattened and
    projected, so the absolute pitch of a sound survives.

    Args:
        num_mel_bins: mel bins of the input (the frequency size).
        out_dim: size D of the tokens and pooled vector.
        in_channels: input channels (1 for a plain log-mel).
        channels: output channels of each stage; each stage halves frequency
            and time, so ``num_mel_bins`` and T must be >= 2 ** len(channels).
        frozen: keep the weights fixed.

    Input: (B, num_mel_bins, T) or (B, in_channels, num_mel_bins, T) (what
    ``AudioLogMel`` + ``PackMultiModalInputs`` + the data preprocessor give).
    Output :class:`ModalityFeatures`: tokens (B, T // 2**S, D) time steps
    (S = ``len(channels)``), pooled (B, D) their mean, mask None.
    """

    def __init__(self, num_mel_bins: int, out_dim: int = 128, in_channels: int = 1,
                 channels: Sequence[int] = (32, 64, 128), frozen: bool = False,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        channels = list(channels)
        if not channels:
            raise ValueError('AudioCNNEncoder: channels must name at least one stage')
        self.downsample = 2 ** len(channels)
        if num_mel_bins < self.downsample:
            raise ValueError(f'AudioCNNEncoder: {len(channels)} stages halve the frequency '
                             f'axis {len(channels)} times, so num_mel_bins must be >= '
                             f'{self.downsample}, got {num_mel_bins}')
        layers = []
        for c_in, c_out in zip([in_channels] + channels[:-1], channels):
            layers += [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out),
                       nn.ReLU(inplace=True), nn.MaxPool2d(2)]
        freq_out = num_mel_bins // self.downsample
        layers += [_FrequencyFlatten(), nn.Linear(channels[-1] * freq_out, out_dim)]
        # Everything lives in ``self.model`` so that ``freeze`` fixes all of it.
        self.model = nn.Sequential(*layers)
        self.num_mel_bins = int(num_mel_bins)
        self.in_channels = int(in_channels)
        self.out_dim = int(out_dim)
        if frozen:
            self.freeze()

    def forward(self, x: torch.Tensor) -> ModalityFeatures:
        x = _as_mel_batch(type(self).__name__, x, self.in_channels, self.num_mel_bins)
        if x.shape[-1] < self.downsample:
            raise ValueError(f'AudioCNNEncoder: needs at least {self.downsample} time frames, '
                             f'got {x.shape[-1]}')
        tokens = self.model(x)
        return ModalityFeatures(pooled=tokens.mean(dim=1), tokens=tokens)


@MODELS.register_module()
class ASTEncoder(BaseEncoder):
    """Audio Spectrogram Transformer (Gong et al., "AST: Audio Spectrogram
    Transformer", Interspeech 2021), from ``transformers``' ``ASTModel``.

    The log-mel is cut into (overlapping) 16x16 patches, which a ViT encodes
    together with a CLS and a distillation token.

    Args:
        config: build from ``transformers.ASTConfig(**config)`` with random
            weights, offline, e.g. ``dict(hidden_size=32, num_hidden_layers=1,
            num_attention_heads=2, intermediate_size=64, num_mel_bins=64,
            max_length=100)``; ``num_mel_bins`` and ``max_length`` (frames)
            must match the ``AudioLogMel`` extractor's.
        pretrained: or load weights from a local folder (``from_pretrained``
            with ``local_files_only=True``). Exactly one of the two.
        pooling: ``'cls'`` (AST's own: the mean of the CLS and distillation
            tokens) or ``'mean'`` (the mean of the patch tokens).
        frozen: keep the weights fixed.

    Input: (B, num_mel_bins, max_length) or (B, 1, num_mel_bins, max_length),
    mel bins before time as ``AudioLogMel`` gives (transposed here to the
    (B, max_length, num_mel_bins) that ``ASTModel`` takes). Output
    :class:`ModalityFeatures`: tokens (B, 2 + P, D), the CLS and distillation
    tokens then the P patch tokens; pooled (B, D); mask None; D = ``out_dim``
    = hidden size.
    """

    def __init__(self, config: Optional[dict] = None, pretrained: Optional[str] = None,
                 pooling: str = 'cls', frozen: bool = False,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        from transformers import ASTConfig, ASTModel

        if (config is None) == (pretrained is None):
            raise ValueError('ASTEncoder needs exactly one of config=dict(...) (ASTConfig '
                             'kwargs) and pretrained=<local folder>')
        if pooling not in ('cls', 'mean'):
            raise ValueError(f"ASTEncoder: pooling must be 'cls' or 'mean', got {pooling!r}")
        if pretrained is not None:
            if not osp.isdir(pretrained):
                raise FileNotFoundError(f'ASTEncoder: pretrained must be a local folder '
                                        f'(mmfusion never downloads), got {pretrained!r}')
            self.model = ASTModel.from_pretrained(pretrained, local_files_only=True)
        else:
            self.model = ASTModel(ASTConfig(**config))
        # transformers initialised (or loaded) the weights; keep MMEngine's
        # init_weights from touching them.
        self.model.is_init = True
        self.pooling = pooling
        self.num_mel_bins = int(self.model.config.num_mel_bins)
        self.max_length = int(self.model.config.max_length)
        self.out_dim = int(self.model.config.hidden_size)
        if frozen:
            self.freeze()

    def forward(self, x: torch.Tensor) -> ModalityFeatures:
        x = _as_mel_batch(type(self).__name__, x, 1, self.num_mel_bins)
        if x.shape[-1] != self.max_length:
            raise ValueError(f'ASTEncoder: expected {self.max_length} time frames (config '
                             f'max_length), got {x.shape[-1]}; set the extractor\'s max_length '
                             f'to match, e.g. AudioLogMel(feature_extractor=dict('
                             f"type='ASTFeatureExtractor', max_length={self.max_length}))")
        out = self.model(input_values=x[:, 0].transpose(1, 2))
        tokens = out.last_hidden_state
        pooled = out.pooler_output if self.pooling == 'cls' else tokens[:, 2:].mean(dim=1)
        return ModalityFeatures(pooled=pooled, tokens=tokens)
