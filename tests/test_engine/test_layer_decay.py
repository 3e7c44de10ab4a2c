"""Layer-wise learning-rate decay per tower, and bf16 autocast on CPU."""
import pytest
import torch
import torch.nn as nn

from mmfusion.engine.optimizers import AutocastOptimWrapper, LayerDecayOptimWrapperConstructor
from mmfusion.errors import ConfigError
from mmfusion.models.adapters import build_fine_tuned
from mmfusion.models.layers import layer_groups
from mmfusion.utils import register_all_modules

register_all_modules()


class Towers(nn.Module):
    """A ViT image tower, a BERT text tower, a ResNet depth tower and a head."""

    def __init__(self) -> None:
        super().__init__()
        self.encoders = nn.ModuleDict(dict(
            image=build_fine_tuned(dict(type='TimmEncoder', model_name='vit_tiny_patch16_224',
                                        img_size=16, patch_size=8, depth=3), 'image'),
            text=build_fine_tuned(dict(type='HFTextEncoder', config=dict(
                model_type='bert', hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                intermediate_size=32, vocab_size=30)), 'text'),
            depth=build_fine_tuned(dict(type='TimmEncoder', model_name='resnet18',
                                        layers=[1, 1, 1, 1], channels=[8, 8, 8, 8],
                                        stem_width=8, in_chans=1), 'depth')))
        self.head = nn.Linear(4, 2)


@pytest.fixture(scope='module')
def towers():
    return Towers()


def lrs(wrapper, model):
    names = {id(p): n for n, p in model.named_parameters()}
    return {names[id(g['params'][0])]: g['lr'] for g in wrapper.optimizer.param_groups}


def test_each_tower_decays_at_its_own_rate(towers):
    ctor = LayerDecayOptimWrapperConstructor(
        dict(optimizer=dict(type='AdamW', lr=1.0, weight_decay=0.05)),
        dict(layer_decay=dict(image=0.5, text=0.8, depth=0.9),
             custom_keys={'head': dict(lr_mult=0.1)}))
    lr = lrs(ctor(towers), towers)
    assert len(lr) == sum(1 for _ in towers.parameters())
    for name, rate in (('image', 0.5), ('text', 0.8), ('depth', 0.9)):
        groups = layer_groups(towers.encoders[name])
        for g, names in enumerate(groups):
            for param in names:
                assert lr[f'encoders.{name}.{param}'] == pytest.approx(
                    rate ** (len(groups) - 1 - g)), param
    # ViT: stem + 3 blocks; BERT: embeddings + 2 layers; ResNet: stem + 4 blocks
    assert lr['encoders.image.model.patch_embed.proj.weight'] == pytest.approx(0.5 ** 3)
    assert lr['encoders.image.model.blocks.2.attn.qkv.weight'] == pytest.approx(1.0)
    assert lr['encoders.text.model.embeddings.word_embeddings.weight'] == pytest.approx(0.64)
    assert lr['encoders.depth.model.conv1.weight'] == pytest.approx(0.9 ** 4)
    # MMEngine's own paramwise options still apply outside the towers
    assert lr['head.weight'] == pytest.approx(0.1)


@pytest.mark.parametrize('rate', [0, 1.5, -0.2, True, 'x'])
def test_rate_outside_zero_one_names_the_key(rate):
    with pytest.raises(ConfigError, match=r'optim_wrapper.paramwise_cfg.layer_decay.image=.*'
                                          r'must be in \(0, 1\]'):
        LayerDecayOptimWrapperConstructor(dict(optimizer=dict(type='SGD', lr=0.1)),
                                          dict(layer_decay=dict(image=rate)))


def test_unknown_tower_names_the_model_encoders(towers):
    ctor = LayerDecayOptimWrapperConstructor(dict(optimizer=dict(type='SGD', lr=0.1)),
                                             dict(layer_decay=dict(audio=0.7)))
    with pytest.raises(ConfigError, match=r"layer_decay.audio: the model has no encoder or "
                                          r"submodule 'audio' \(its encoders: \['depth', "
                                          r"'image', 'text'\]\)"):
        ctor(towers)


def test_autocast_wrapper_runs_bf16_on_cpu_and_keeps_float32_weights():
    model = nn.Linear(4, 2)
    wrapper = AutocastOptimWrapper(optimizer=torch.optim.SGD(model.parameters(), lr=0.1))
    assert wrapper.enabled_for(model)
    before = model.weight.detach().clone()
    with wrapper.optim_context(model):
        out = model(torch.randn(3, 4))
    assert out.dtype == torch.bfloat16
    wrapper.update_params(out.float().pow(2).mean())
    assert model.weight.dtype == torch.float32
    assert not torch.equal(model.weight, before)
    with pytest.raises(ConfigError, match="optim_wrapper.dtype must be one of"):
        AutocastOptimWrapper(dtype='int8', optimizer=torch.optim.SGD(model.parameters(), lr=0.1))
