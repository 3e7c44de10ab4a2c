"""Convert an OpenAI / open_clip CLIP state dict into an mmfusion ``DualEncoder`` checkpoint.

    python tools/model_converters/clip_to_mmfusion.py SRC DST [--print-config]

SRC is a local file holding the state dict of a CLIP model with a ViT image
tower, as OpenAI's ``clip`` package and open_clip save it (``torch.save
(model.state_dict())``, or a checkpoint with it under ``state_dict``, keys
possibly prefixed ``module.``). Nothing is downloaded. The towers become

* image: ``TimmEncoder`` over timm's CLIP ViT (``vit_base_patch16_clip_224``
  with the sizes read from the weights; ``..._quickgelu_224`` for OpenAI's);
* text: ``HFTextEncoder`` over ``transformers``' ``CLIPTextModel``, pooled at
  the end-of-text token (``pooling='last'``);
* ``visual.proj`` / ``text_projection``: the bias-free projections;
  ``logit_scale`` as is.

Every key is mapped explicitly (below), and a source key that is not used, or
a target key that gets no value, stops the conversion with an error naming
the file and the keys. ``--print-config`` prints the matching model config
(the tokenizer is CLIP's BPE tokenizer from a local folder, ``HFTokenizer``).
"""
import argparse
import os.path as osp
import re
from typing import Dict, List, Tuple

import torch

from mmfusion.errors import CheckpointError

Tensor = torch.Tensor
# per transformer block: CLIP name -> (timm ViT name, HF CLIP text name)
_BLOCK = {
    'ln_1.weight': ('norm1.weight', 'layer_norm1.weight'),
    'ln_1.bias': ('norm1.bias', 'layer_norm1.bias'),
    'ln_2.weight': ('norm2.weight', 'layer_norm2.weight'),
    'ln_2.bias': ('norm2.bias', 'layer_norm2.bias'),
    'attn.out_proj.weight': ('attn.proj.weight', 'self_attn.out_proj.weight'),
    'attn.out_proj.bias': ('attn.proj.bias', 'self_attn.out_proj.bias'),
    'mlp.c_fc.weight': ('mlp.fc1.weight', 'mlp.fc1.weight'),
    'mlp.c_fc.bias': ('mlp.fc1.bias', 'mlp.fc1.bias'),
    'mlp.c_proj.weight': ('mlp.fc2.weight', 'mlp.fc2.weight'),
    'mlp.c_proj.bias': ('mlp.fc2.bias', 'mlp.fc2.bias'),
}
# buffers some CLIP implementations save that carry no weights
_IGNORED = ('attn_mask', 'input_resolution', 'context_length', 'vocab_size')
IMAGE = 'encoders.image.model.'
TEXT = 'encoders.text.model.'  # AutoModel of clip_text_model: CLIPTextModel's transformer


def load_clip_state_dict(path: str) -> Dict[str, Tensor]:
    """The CLIP state dict in ``path`` (a TorchScript archive or a saved dict)."""
    if not osp.isfile(path):
        raise CheckpointError(f'CLIP weights file not found: {path}')
    try:
        obj = torch.load(path, map_location='cpu', weights_only=True)
    except Exception:  # OpenAI's released files are TorchScript archives
        try:
            obj = torch.jit.load(path, map_location='cpu').state_dict()
        except Exception as e:
            raise CheckpointError(f'{path}: neither a saved state dict nor a TorchScript '
                                  f'CLIP model ({e})') from None
    if isinstance(obj, dict) and isinstance(obj.get('state_dict'), dict):
        obj = obj['state_dict']
    if not isinstance(obj, dict) or not all(isinstance(v, Tensor) for v in obj.values()):
        raise CheckpointError(f'{path}: expected a CLIP state dict (names -> tensors)')
    return {k[len('module.'):] if k.startswith('module.') else k: v for k, v in obj.items()}


def clip_dims(sd: Dict[str, Tensor], path: str) -> dict:
    """The sizes of a CLIP ViT model, read from its weights."""
    need = ('visual.conv1.weight', 'visual.positional_embedding', 'visual.proj',
            'token_embedding.weight', 'positional_embedding', 'text_projection')
    missing = [k for k in need if k not in sd]
    if missing:
        hint = (' (a ModifiedResNet image tower is not supported; convert a ViT CLIP)'
                if 'visual.layer1.0.conv1.weight' in sd else '')
        raise CheckpointError(f'{path}: not a CLIP ViT state dict, missing keys {missing}'
                              f'{hint}')

    def depth(prefix: str) -> int:
        ids = {int(m.group(1)) for k in sd for m in [re.match(re.escape(prefix) + r'(\d+)\.', k)]
               if m}
        return max(ids) + 1 if ids else 0

    width, _, patch, _ = sd['visual.conv1.weight'].shape
    grid = int(round((sd['visual.positional_embedding'].shape[0] - 1) ** 0.5))
    text_width = sd['token_embedding.weight'].shape[1]
    return dict(
        image_width=int(width), patch_size=int(patch), image_size=int(grid * patch),
        image_layers=depth('visual.transformer.resblocks.'),
        image_mlp=int(sd['visual.transformer.resblocks.0.mlp.c_fc.weight'].shape[0]),
        text_width=int(text_width), text_layers=depth('transformer.resblocks.'),
        text_mlp=int(sd['transformer.resblocks.0.mlp.c_fc.weight'].shape[0]),
        vocab_size=int(sd['token_embedding.weight'].shape[0]),
        context_length=int(sd['positional_embedding'].shape[0]),
        embed_dim=int(sd['text_projection'].shape[1]))


def key_map(dims: dict) -> List[Tuple[str, str, str]]:
    """``(source key, target key, how)`` for every weight; ``how`` is ``'copy'``,
    ``'t'`` (transpose), ``'cls'`` / ``'pos'`` (reshape to timm's token
    shapes) or ``'q'``/``'k'``/``'v'`` (a third of a packed in-projection)."""
    rows = [
        ('visual.class_embedding', IMAGE + 'cls_token', 'cls'),
        ('visual.positional_embedding', IMAGE + 'pos_embed', 'pos'),
        ('visual.conv1.weight', IMAGE + 'patch_embed.proj.weight', 'copy'),
        ('visual.ln_pre.weight', IMAGE + 'norm_pre.weight', 'copy'),
        ('visual.ln_pre.bias', IMAGE + 'norm_pre.bias', 'copy'),
        ('visual.ln_post.weight', IMAGE + 'norm.weight', 'copy'),
        ('visual.ln_post.bias', IMAGE + 'norm.bias', 'copy'),
        ('visual.proj', 'projections.image.weight', 't'),
        ('token_embedding.weight', TEXT + 'embeddings.token_embedding.weight', 'copy'),
        ('positional_embedding', TEXT + 'embeddings.position_embedding.weight', 'copy'),
        ('ln_final.weight', TEXT + 'final_layer_norm.weight', 'copy'),
        ('ln_final.bias', TEXT + 'final_layer_norm.bias', 'copy'),
        ('text_projection', 'projections.text.weight', 't'),
        ('logit_scale', 'logit_scale', 'copy'),
    ]
    for i in range(dims['image_layers']):
        src, dst = f'visual.transformer.resblocks.{i}.', f'{IMAGE}blocks.{i}.'
        rows += [(src + 'attn.in_proj_weight', dst + 'attn.qkv.weight', 'copy'),
                 (src + 'attn.in_proj_bias', dst + 'attn.qkv.bias', 'copy')]
        rows += [(src + k, dst + timm_k, 'copy') for k, (timm_k, _) in _BLOCK.items()]
    for i in range(dims['text_layers']):
        src, dst = f'transformer.resblocks.{i}.', f'{TEXT}encoder.layers.{i}.'
        for j, part in enumerate('qkv'):
            rows += [(src + 'attn.in_proj_weight', f'{dst}self_attn.{part}_proj.weight', part),
                     (src + 'attn.in_proj_bias', f'{dst}self_attn.{part}_proj.bias', part)]
        rows += [(src + k, dst + hf_k, 'copy') for k, (_, hf_k) in _BLOCK.items()]
    return rows


def convert_clip_state_dict(sd: Dict[str, Tensor], path: str = '<state dict>'
                            ) -> Tuple[Dict[str, Tensor], dict]:
    """(mmfusion ``DualEncoder`` state dict, model sizes) of a CLIP ViT state dict.

    Raises:
        CheckpointError: naming ``path`` and the keys, if a mapped key is
            missing from ``sd`` or a key of ``sd`` is not used.
    """
    dims = clip_dims(sd, path)
    rows = key_map(dims)
    missing = sorted({src for src, _, _ in rows if src not in sd})
    used = {src for src, _, _ in rows}
    unexpected = sorted(k for k in sd if k not in used and k.split('.')[-1] not in _IGNORED)
    if missing or unexpected:
        raise CheckpointError(
            f'{path}: the CLIP state dict does not match a CLIP ViT with '
            f'{dims["image_layers"]} image and {dims["text_layers"]} text layers: '
            f'missing keys {missing[:10]}{" ..." if len(missing) > 10 else ""}, '
            f'unexpected keys {unexpected[:10]}{" ..." if len(unexpected) > 10 else ""}')
    out = {}
    for src, dst, how in rows:
        value = sd[src]
        if how == 't':
            value = value.T
        elif how == 'cls':
            value = value.reshape(1, 1, -1)
        elif how == 'pos':
            value = value.unsqueeze(0)
        elif how in ('q', 'k', 'v'):
            value = value.chunk(3, dim=0)['qkv'.index(how)]
        out[dst] = value.contiguous().clone()
    return out, dims


def model_config(dims: dict, tokenizer_dir: str = 'checkpoints/clip_tokenizer',
                 quick_gelu: bool = True) -> dict:
    """The ``DualEncoder`` config whose state dict the conversion fills.

    ``quick_gelu``: OpenAI's CLIP models use QuickGELU; most open_clip models
    trained by others use GELU (open_clip's model names say ``-quickgelu``
    where they do not). The weights do not tell.
    """
    heads_i = max(1, dims['image_width'] // 64)
    heads_t = max(1, dims['text_width'] // 64)
    return dict(
        type='DualEncoder',
        data_preprocessor=dict(
            type='MultiModalDataPreprocessor',
            # CLIP's normalisation (RGB, 0-255)
            image=dict(mean=[122.77, 116.75, 104.09], std=[68.50, 66.63, 70.32],
                       bgr_to_rgb=True),
            text=dict(tokenizer=dict(type='HFTokenizer', name_or_path=tokenizer_dir),
                      max_length=dims['context_length'])),
        encoders=dict(
            image=dict(type='TimmEncoder',
                       model_name=('vit_base_patch16_clip_quickgelu_224' if quick_gelu
                                   else 'vit_base_patch16_clip_224'),
                       img_size=dims['image_size'], patch_size=dims['patch_size'],
                       embed_dim=dims['image_width'], depth=dims['image_layers'],
                       num_heads=heads_i, mlp_ratio=dims['image_mlp'] / dims['image_width']),
            text=dict(type='HFTextEncoder', pooling='last', config=dict(
                model_type='clip_text_model', vocab_size=dims['vocab_size'],
                hidden_size=dims['text_width'], intermediate_size=dims['text_mlp'],
                num_hidden_layers=dims['text_layers'], num_attention_heads=heads_t,
                max_position_embeddings=dims['context_length'],
                # CLIP's start- and end-of-text tokens are the last two ids
                bos_token_id=dims['vocab_size'] - 2, eos_token_id=dims['vocab_size'] - 1,
                hidden_act='quick_gelu' if quick_gelu else 'gelu'))),
        embed_dim=dims['embed_dim'],
        loss=dict(type='ClipLoss'))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('src', help='CLIP weights file (OpenAI or open_clip)')
    parser.add_argument('dst', help='output mmfusion checkpoint (.pth)')
    parser.add_argument('--print-config', action='store_true',
                        help='print the matching DualEncoder model config')
    parser.add_argument('--gelu', action='store_true',
                        help='the model uses GELU (most open_clip models trained by others) '
                        "rather than OpenAI's QuickGELU; only changes --print-config")
    args = parser.parse_args()
    state, dims = convert_clip_state_dict(load_clip_state_dict(args.src), args.src)
    torch.save(dict(state_dict=state, meta=dict(converted_from=osp.basename(args.src),
                                                clip_dims=dims)), args.dst)
    print(f'{len(state)} tensors written to {args.dst}; sizes: {dims}')
    if args.print_config:
        import pprint
        print('model = ' + pprint.pformat(model_config(dims, quick_gelu=not args.gelu),
                                                sort_dicts=False))


if __name__ == '__main__':
    main()
