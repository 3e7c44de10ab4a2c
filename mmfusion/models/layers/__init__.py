"""Building blocks shared by the model components (fusion modules, heads, encoders).

Plain functions and ``nn.Module`` classes, not registered components: a
component file imports what it needs from here and never from a sibling
component file.

* :mod:`.masking`: padding-token and missing-modality masks;
* :mod:`.attention`: masked cross-attention blocks;
* :mod:`.transformer`: transformer layers, embeddings, token projections;
* :mod:`.mlp`: MLPs, per-modality projections, power normalisation;
* :mod:`.conv`: conv blocks of the dense heads;
* :mod:`.dense`: what the dense heads read from data samples;
* :mod:`.checks`: argument checks with errors that name the component;
* :mod:`.groups`: layer groups for layer-wise learning-rate decay and locking.
"""
from .attention import CrossAttentionBlock, PreNormCrossAttention, masked_cross_attention
from .checks import (
    check_dropout,
    check_int,
    check_min_modalities,
    check_positive,
    check_strides,
)
from .conv import conv_gn_relu, norm_groups_for
from .dense import image_size
from .groups import layer_groups
from .masking import (
    HasModalities,
    fill_missing,
    key_padding_bias,
    masked_mean,
    masked_outputs,
    masked_product,
    masked_softmax,
    masked_tokens,
    present_mask,
    token_mask,
    zero_missing,
)
from .mlp import build_mlp, classifier_mlp, modality_linears, power_l2_normalize
from .transformer import (
    concat_context,
    encoder_layer,
    learned_embedding,
    output_projection,
    project_tokens,
    transformer_dims,
)

__all__ = [
    'CrossAttentionBlock', 'HasModalities', 'PreNormCrossAttention', 'build_mlp',
    'check_dropout', 'check_int', 'check_min_modalities', 'check_positive', 'check_strides',
    'classifier_mlp', 'concat_context', 'conv_gn_relu', 'encoder_layer', 'fill_missing',
    'image_size', 'key_padding_bias', 'layer_groups', 'learned_embedding', 'masked_cross_attention',
    'masked_mean', 'masked_outputs', 'masked_product', 'masked_softmax', 'masked_tokens',
    'modality_linears', 'norm_groups_for', 'output_projection', 'power_l2_normalize',
    'present_mask', 'project_tokens', 'token_mask', 'transformer_dims', 'zero_missing'
]
