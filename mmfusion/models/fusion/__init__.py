"""Fusion modules: one interface per input form.

Vector fusions (``BaseVectorFusion``) take ``{modality: (B, D_m)}``; token
fusions (``BaseTokenFusion``) take ``{modality: (B, N_m, D_m)}`` plus padding
masks; spatial fusions (``BaseSpatialFusion``) take feature pyramids
``{modality: [(B, C_m, H_l, W_l), ...]}`` plus non-spatial conditions (text)
and return one fused pyramid, for detection and segmentation. Every module is
registered under its class name.
"""
from .attention import TopDownAttentionFusion
from .base import BaseTokenFusion, BaseVectorFusion
from .bilinear import MFBFusion, MFHFusion, MLBFusion
from .concat import ConcatFusion
from .cross_attention import CoAttentionFusion, CrossAttentionFusion, GatedCrossAttentionFusion
from .gated import FiLMFusion, GMUFusion, MultiplicativeInteractionFusion
from .late import LateFusion
from .latent import PerceiverFusion, QFormerFusion
from .linear import LinearSumFusion, SumFusion
from .spatial import (
    BaseSpatialFusion,
    SpatialConcatFusion,
    SpatialCrossAttentionFusion,
    SpatialFiLMFusion,
    SpatialGatedFusion,
    SpatialSumFusion,
)
from .tensor import BLOCKFusion, LowRankTensorFusion, MUTANFusion, TensorFusion, TuckerFusion
from .transformer import BottleneckFusion, SingleStreamFusion

VECTOR_FUSIONS = [
    'ConcatFusion', 'SumFusion', 'LinearSumFusion', 'GMUFusion', 'FiLMFusion',
    'MultiplicativeInteractionFusion', 'MLBFusion', 'MFBFusion', 'MFHFusion', 'MUTANFusion',
    'BLOCKFusion', 'TuckerFusion', 'TensorFusion', 'LowRankTensorFusion', 'LateFusion'
]
TOKEN_FUSIONS = [
    'CrossAttentionFusion', 'CoAttentionFusion', 'SingleStreamFusion', 'BottleneckFusion',
    'PerceiverFusion', 'QFormerFusion', 'GatedCrossAttentionFusion', 'TopDownAttentionFusion'
]
SPATIAL_FUSIONS = [
    'SpatialSumFusion', 'SpatialConcatFusion', 'SpatialGatedFusion', 'SpatialFiLMFusion',
    'SpatialCrossAttentionFusion'
]

__all__ = [
    'BaseTokenFusion', 'BaseVectorFusion', 'BLOCKFusion', 'BottleneckFusion', 'CoAttentionFusion',
    'ConcatFusion', 'CrossAttentionFusion', 'FiLMFusion', 'GatedCrossAttentionFusion',
    'GMUFusion', 'LateFusion', 'LinearSumFusion', 'LowRankTensorFusion', 'MFBFusion',
    'MFHFusion', 'MLBFusion', 'MultiplicativeInteractionFusion', 'MUTANFusion',
    'PerceiverFusion', 'QFormerFusion', 'SingleStreamFusion', 'SumFusion', 'TensorFusion',
    'TopDownAttentionFusion', 'TOKEN_FUSIONS', 'TuckerFusion', 'VECTOR_FUSIONS',
    'BaseSpatialFusion', 'SPATIAL_FUSIONS', 'SpatialConcatFusion', 'SpatialCrossAttentionFusion',
    'SpatialFiLMFusion', 'SpatialGatedFusion', 'SpatialSumFusion'
]
