"""tools/model_converters/clip_to_mmfusion.py on a randomly initialised CLIP state dict
in the open_clip / OpenAI layout, built here key by key (no download)."""
import importlib.util
import os.path as osp

import pytest
import torch
import torch.nn.functional as F
from conftest import REPO_ROOT

from mmfusion.errors import CheckpointError
from mmfusion.registry import MODELS
from mmfusion.utils import register_all_modules

spec = importlib.util.spec_from_file_location(
    'clip_to_mmfusion', osp.join(REPO_ROOT, 'tools/model_converters/clip_to_mmfusion.py'))
converter = importlib.util.module_from_spec(spec)
spec.loader.exec_module(converter)

W, LAYERS, PATCH, IMG, CTX, VOCAB, EMBED, TW = 32, 2, 8, 32, 12, 50, 24, 16


def _block(prefix: str, width: int, gen) -> dict:
    r = lambda *s: torch.randn(*s, generator=gen) * 0.2  # noqa: E731
    return {
        prefix + 'ln_1.weight': 1 + r(width), prefix + 'ln_1.bias': r(width),
        prefix + 'attn.in_proj_weight': r(3 * width, width),
        prefix + 'attn.in_proj_bias': r(3 * width),
        prefix + 'attn.out_proj.weight': r(width, width), prefix + 'attn.out_proj.bias': r(width),
        prefix + 'ln_2.weight': 1 + r(width), prefix + 'ln_2.bias': r(width),
        prefix + 'mlp.c_fc.weight': r(4 * width, width), prefix + 'mlp.c_fc.bias': r(4 * width),
        prefix + 'mlp.c_proj.weight': r(width, 4 * width), prefix + 'mlp.c_proj.bias': r(width),
    }


def clip_state_dict() -> dict:
    """The keys and shapes of open_clip's ``CLIP`` (ViT image tower), random values."""
    gen = torch.Generator().manual_seed(0)
    r = lambda *s: torch.randn(*s, generator=gen) * 0.2  # noqa: E731
    grid = IMG // PATCH
    sd = {
        'positional_embedding': r(CTX, TW), 'text_projection': r(TW, EMBED),
        'logit_scale': torch.tensor(4.6052), 'token_embedding.weight': r(VOCAB, TW),
        'ln_final.weight': 1 + r(TW), 'ln_final.bias': r(TW),
        'visual.class_embedding': r(W), 'visual.positional_embedding': r(grid * grid + 1, W),
        'visual.proj': r(W, EMBED), 'visual.conv1.weight': r(W, 3, PATCH, PATCH),
        'visual.ln_pre.weight': 1 + r(W), 'visual.ln_pre.bias': r(W),
        'visual.ln_post.weight': 1 + r(W), 'visual.ln_post.bias': r(W),
    }
    for i in range(LAYERS):
        sd.update(_block(f'visual.transformer.resblocks.{i}.', W, gen))
        sd.update(_block(f'transformer.resblocks.{i}.', TW, gen))
    return sd


def _reference_blocks(x, sd, prefix, heads, mask=None):
    """CLIP's residual attention blocks (QuickGELU), written from the paper's code."""
    for i in range(LAYERS):
        p = f'{prefix}{i}.'
        h = F.layer_norm(x, x.shape[-1:], sd[p + 'ln_1.weight'], sd[p + 'ln_1.bias'])
        h, _ = F.multi_head_attention_forward(
            h.transpose(0, 1), h.transpose(0, 1), h.transpose(0, 1), x.shape[-1], heads,
            sd[p + 'attn.in_proj_weight'], sd[p + 'attn.in_proj_bias'], None, None, False, 0.0,
            sd[p + 'attn.out_proj.weight'], sd[p + 'attn.out_proj.bias'], training=False,
            need_weights=False, attn_mask=mask)
        x = x + h.transpose(0, 1)
        h = F.layer_norm(x, x.shape[-1:], sd[p + 'ln_2.weight'], sd[p + 'ln_2.bias'])
        h = F.linear(h, sd[p + 'mlp.c_fc.weight'], sd[p + 'mlp.c_fc.bias'])
        h = h * torch.sigmoid(1.702 * h)
        x = x + F.linear(h, sd[p + 'mlp.c_proj.weight'], sd[p + 'mlp.c_proj.bias'])
    return x


def reference_image(sd, img):
    x = F.conv2d(img, sd['visual.conv1.weight'], stride=PATCH).flatten(2).transpose(1, 2)
    cls = sd['visual.class_embedding'].expand(len(img), 1, -1)
    x = torch.cat([cls, x], dim=1) + sd['visual.positional_embedding']
    x = F.layer_norm(x, (W, ), sd['visual.ln_pre.weight'], sd['visual.ln_pre.bias'])
    x = _reference_blocks(x, sd, 'visual.transformer.resblocks.', W // 16)
    x = F.layer_norm(x[:, 0], (W, ), sd['visual.ln_post.weight'], sd['visual.ln_post.bias'])
    return F.normalize(x @ sd['visual.proj'], dim=-1)


def reference_text(sd, ids, lengths):
    x = sd['token_embedding.weight'][ids] + sd['positional_embedding'][:ids.shape[1]]
    causal = torch.full((ids.shape[1], ids.shape[1]), float('-inf')).triu(1)
    x = _reference_blocks(x, sd, 'transformer.resblocks.', TW // 8, causal)
    x = F.layer_norm(x, (TW, ), sd['ln_final.weight'], sd['ln_final.bias'])
    return F.normalize(x[torch.arange(len(ids)), lengths - 1] @ sd['text_projection'], dim=-1)


def _build(dims):
    register_all_modules()
    cfg = converter.model_config(dims)
    cfg['data_preprocessor'] = dict(type='MultiModalDataPreprocessor')  # no tokenizer folder
    cfg['encoders']['image']['num_heads'] = W // 16
    cfg['encoders']['text']['config']['num_attention_heads'] = TW // 8
    return MODELS.build(cfg).eval()


def test_converted_checkpoint_loads_strictly_and_computes_clip(tmp_path):
    sd = clip_state_dict()
    src = tmp_path / 'clip.pt'
    torch.save({'state_dict': {'module.' + k: v for k, v in sd.items()}}, src)
    dst = tmp_path / 'mmfusion.pth'
    state, dims = converter.convert_clip_state_dict(converter.load_clip_state_dict(str(src)))
    assert dims == dict(image_width=W, patch_size=PATCH, image_size=IMG, image_layers=LAYERS,
                        image_mlp=4 * W, text_width=TW, text_layers=LAYERS, text_mlp=4 * TW,
                        vocab_size=VOCAB, context_length=CTX, embed_dim=EMBED)
    # key by key: the tensors land where the map says, with the right transform
    prefix = 'encoders.text.model.encoder.layers.1.self_attn.'
    in_proj = sd['transformer.resblocks.1.attn.in_proj_weight']
    assert torch.equal(state[prefix + 'q_proj.weight'], in_proj[:TW])
    assert torch.equal(state[prefix + 'k_proj.weight'], in_proj[TW:2 * TW])
    assert torch.equal(state[prefix + 'v_proj.weight'], in_proj[2 * TW:])
    assert torch.equal(state['projections.image.weight'], sd['visual.proj'].T)
    assert torch.equal(state['encoders.image.model.cls_token'][0, 0], sd['visual.class_embedding'])
    assert torch.equal(state['logit_scale'], sd['logit_scale'])

    model = _build(dims)
    result = model.load_state_dict(state, strict=False)
    # every weight present, none left over; only the (tokenizer) extra state is not weights
    assert result.missing_keys == ['data_preprocessor._extra_state']
    assert not result.unexpected_keys
    torch.save(dict(state_dict=state), dst)

    img = torch.randn(2, 3, IMG, IMG, generator=torch.Generator().manual_seed(1))
    ids = torch.randint(1, VOCAB, (2, 7), generator=torch.Generator().manual_seed(2))
    lengths = torch.tensor([7, 4])
    mask = (torch.arange(7) < lengths[:, None]).long()
    with torch.no_grad():
        ours_img = model.encode('image', img)
        ours_txt = model.encode('text', dict(input_ids=ids, attention_mask=mask))
        ref_img = reference_image(sd, img)
        ref_txt = reference_text(sd, ids, lengths)
    assert (ours_img - ref_img).abs().max() < 1e-4
    assert (ours_txt - ref_txt).abs().max() < 1e-4


def test_missing_and_unexpected_keys_name_the_file(tmp_path):
    sd = clip_state_dict()
    del sd['transformer.resblocks.1.mlp.c_fc.bias']
    sd['visual.extra_head.weight'] = torch.zeros(2)
    src = tmp_path / 'broken_clip.pt'
    torch.save(sd, src)
    with pytest.raises(CheckpointError) as err:
        converter.convert_clip_state_dict(converter.load_clip_state_dict(str(src)), str(src))
    message = str(err.value)
    assert 'broken_clip.pt' in message
    assert 'transformer.resblocks.1.mlp.c_fc.bias' in message
    assert 'visual.extra_head.weight' in message


def test_not_a_vit_clip_is_refused(tmp_path):
    src = tmp_path / 'rn50.pt'
    torch.save({'visual.layer1.0.conv1.weight': torch.zeros(1)}, src)
    with pytest.raises(CheckpointError, match='rn50.pt.*ModifiedResNet'):
        converter.convert_clip_state_dict(converter.load_clip_state_dict(str(src)), str(src))
    with pytest.raises(CheckpointError, match='not found'):
        converter.load_clip_state_dict(str(tmp_path / 'absent.pt'))
