from .attention import TopDownAttentionFusion
from .base import BaseTokenFusion, BaseVectorFusion
from .bilinear import MFBFusion, MLBFusion
from .concat import ConcatFusion

__all__ = [
    'BaseTokenFusion',
    'BaseVectorFusion',
    'ConcatFusion',
    'MFBFusion',
    'MLBFusion',
    'TopDownAttentionFusion'
]
