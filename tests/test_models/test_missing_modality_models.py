"""Missing modalities through the data preprocessor and the models: the mask
reaches the fusion module, a missing modality never reaches its encoder."""
import pytest
import torch

from mmfusion.errors import ConfigError
from mmfusion.registry import MODELS
from mmfusion.structures import MultiModalDataSample
from mmfusion.utils import register_all_modules

register_all_modules()


def build(fusion=None, **kwargs):
    torch.manual_seed(0)
    return MODELS.build(dict(
        type='MultiModalClassifier',
        encoders=dict(a=dict(type='MLPEncoder', in_dim=4, hidden_dims=(8,), out_dim=8),
                      b=dict(type='MLPEncoder', in_dim=3, hidden_dims=(8,), out_dim=6)),
        fusion=fusion or dict(type='ConcatFusion', out_dim=8),
        head=dict(type='ClsHead', num_classes=3), **kwargs))


def batch(missing_a=(), missing_b=()):
    """A collated batch of 4 as PackMultiModalInputs makes it: ``None`` for a
    missing modality, and the mask in each data sample."""
    torch.manual_seed(1)
    a, b = list(torch.randn(4, 4)), list(torch.randn(4, 3))
    samples = []
    for i in range(4):
        s = MultiModalDataSample()
        s.gt_label = i % 3
        s.set_metainfo(dict(modality_mask=dict(a=i not in missing_a, b=i not in missing_b)))
        samples.append(s)
    a = [None if i in missing_a else x for i, x in enumerate(a)]
    b = [None if i in missing_b else x for i, x in enumerate(b)]
    return dict(inputs=dict(a=a, b=b), data_samples=samples)


class Recorder:
    """Forward hook that keeps the positional inputs of a module's calls."""

    def __init__(self, module):
        self.calls = []
        module.register_forward_hook(lambda m, args, out: self.calls.append(args))


def test_preprocessor_fills_placeholders_and_keeps_the_mask():
    model = build()
    data = model.data_preprocessor(batch(missing_a=(1, 3)))
    assert data['inputs']['a'].shape == (4, 4)
    assert torch.equal(data['inputs']['a'][1], torch.zeros(4))
    assert [s.modality_mask['a'] for s in data['data_samples']] == [True, False, True, False]
    none = model.data_preprocessor(batch(missing_b=(0, 1, 2, 3)))
    assert none['inputs']['b'] is None


def test_masks_reach_the_vector_fusion():
    model = build()
    fusion = Recorder(model.fusion)
    data = model.data_preprocessor(batch(missing_a=(1, ), missing_b=(2, )))
    model(**data, mode='loss')
    feats, mask = fusion.calls[-1]
    assert mask['a'].tolist() == [True, False, True, True]
    assert mask['b'].tolist() == [True, True, False, True]
    # complete data: no mask at all, as before
    model(**model.data_preprocessor(batch()), mode='loss')
    assert fusion.calls[-1][1] is None


def test_masks_reach_the_token_fusion_as_token_masks():
    model = build(fusion=dict(type='CrossAttentionFusion', out_dim=8, query='a', num_heads=2))
    fusion = Recorder(model.fusion)
    model(**model.data_preprocessor(batch(missing_b=(0, 3))), mode='predict')
    tokens, masks = fusion.calls[-1]
    assert masks['b'][:, 0].tolist() == [False, True, True, False]
    assert 'a' not in masks  # complete, no padding: no mask, as before


def test_a_missing_modality_never_reaches_its_encoder():
    model = build()
    seen = Recorder(model.encoders['a'])
    data = model.data_preprocessor(batch(missing_a=(1, 3)))
    # poison the placeholders: any that reached the encoder would make NaN
    data['inputs']['a'][[1, 3]] = float('nan')
    losses = model(**data, mode='loss')
    assert seen.calls[-1][0].shape == (2, 4)
    assert not torch.isnan(seen.calls[-1][0]).any()
    assert torch.isfinite(losses['loss'])
    losses['loss'].backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def test_an_encoder_no_sample_needs_is_not_run():
    model = build()
    seen = Recorder(model.encoders['b'])
    out = model(**model.data_preprocessor(batch(missing_b=(0, 1, 2, 3))), mode='tensor')
    assert seen.calls == [] and out.shape == (4, 3)


def test_missing_equals_the_masked_fusion_of_the_complete_batch():
    """Encoding present rows only changes nothing for them: the prediction of
    a sample is the one the fusion gives with that modality masked."""
    model = build().eval()
    full = model.data_preprocessor(batch())
    feats, _ = model.encode_modalities(full['inputs'], full['data_samples'])
    mask = dict(a=torch.tensor([True, False, True, True]))
    expected = model.head(model.fuse(feats, mask))
    got = model(**model.data_preprocessor(batch(missing_a=(1, ))), mode='tensor')
    assert torch.allclose(got, expected, atol=1e-6)


def test_a_mask_for_a_modality_the_model_does_not_encode():
    model = build()
    data = model.data_preprocessor(batch())
    data['data_samples'][2].set_metainfo(dict(modality_mask=dict(a=True, b=True, text=False)))
    with pytest.raises(ConfigError, match=r"modality_mask\['text'\]=False but the model "
                                          r"encodes only \['a', 'b'\]"):
        model(**data, mode='loss')


def test_aux_heads_train_on_present_samples_and_log_contributions():
    model = build(aux_heads=dict(
        a=dict(type='ClsHead', num_classes=3, loss=dict(type='CrossEntropyLoss',
                                                        loss_weight=0.5)),
        b=dict(type='ClsHead', num_classes=3)))
    aux_b = Recorder(model.aux_heads['b'])
    losses = model(**model.data_preprocessor(batch(missing_b=(1, ))), mode='loss')
    assert {'loss', 'loss_aux_a', 'loss_aux_b', 'contrib_a', 'contrib_b'} <= set(losses)
    # the b head's loss call sees the 3 samples that have b
    assert any(args[0].shape[0] == 3 for args in aux_b.calls)
    total, _ = model.parse_losses(losses)
    total.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0
               for p in model.aux_heads['a'].parameters())
    # the loss weight scales the aux loss: half the plain cross-entropy
    feats, _ = model.encode_modalities(*model.data_preprocessor(batch()).values())
    logits = model.aux_heads['a'](feats['a'].pooled)
    plain = torch.nn.functional.cross_entropy(logits, torch.tensor([0, 1, 2, 0]))
    weighted = model(**model.data_preprocessor(batch()), mode='loss')['loss_aux_a']
    assert torch.allclose(weighted, 0.5 * plain, atol=1e-6)


def test_modality_scores_are_true_class_probabilities_of_one_modality():
    model = build().eval()
    data = model.data_preprocessor(batch())
    feats, masks = model.encode_modalities(data['inputs'], data['data_samples'])
    scores = model.modality_scores(feats, masks, data['data_samples'])
    only_a = model.head(model.fuse(feats, dict(b=torch.zeros(4, dtype=torch.bool))))
    labels = torch.tensor([0, 1, 2, 0])
    expected = only_a.softmax(1)[torch.arange(4), labels]
    assert torch.allclose(scores['a'], expected)


def test_contribution_needs_two_modalities():
    with pytest.raises(ConfigError, match='model.log_modality_contribution: .*at least two'):
        MODELS.build(dict(
            type='MultiModalClassifier', log_modality_contribution=True,
            encoders=dict(a=dict(type='MLPEncoder', in_dim=4, out_dim=8)),
            fusion=dict(type='ConcatFusion', out_dim=8),
            head=dict(type='ClsHead', num_classes=3)))
