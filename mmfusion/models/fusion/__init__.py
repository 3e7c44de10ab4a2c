"""Fusion modules: one interface for pooled vectors, one for token sequences.

Vector fusions (``BaseVectorFusion``) take ``{modality: (B, D_m)}``; token
fusions (``BaseTokenFusion``) take ``{modality: (B, N_m, D_m)}`` plus padding
masks. Every module is registered under its class name.
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

__all__ = [
    'BaseTokenFusion', 'BaseVectorFusion', 'BLOCKFusion', 'BottleneckFusion', 'CoAttentionFusion',
    'ConcatFusion', 'CrossAttentionFusion', 'FiLMFusion', 'GatedCrossAttentionFusion',
    'GMUFusion', 'LateFusion', 'LinearSumFusion', 'LowRankTensorFusion', 'MFBFusion',
    'MFHFusion', 'MLBFusion', 'MultiplicativeInteractionFusion', 'MUTANFusion',
    'PerceiverFusion', 'QFormerFusion', 'SingleStreamFusion', 'SumFusion', 'TensorFusion',
    'TopDownAttentionFusion', 'TOKEN_FUSIONS', 'TuckerFusion', 'VECTOR_FUSIONS'
]
