"""ClsHead, MultiLabelClsHead, FocalLoss and TextCNNEncoder."""
import pytest
import torch
import torch.nn.functional as F
from torchvision.ops import sigmoid_focal_loss

import mmfusion.models  # noqa: F401
from mmfusion.registry import MODELS
from mmfusion.structures import MultiModalDataSample


def samples(labels):
    out = []
    for label in labels:
        s = MultiModalDataSample()
        s.gt_label = label
        out.append(s)
    return out


def test_cls_head_softmax_loss_and_predictions():
    torch.manual_seed(0)
    head = MODELS.build(dict(type='ClsHead', in_dim=8, num_classes=3, hidden_dim=16))
    feats = torch.randn(4, 8)
    data = samples([0, 2, 1, 2])
    loss = head.loss(feats, data)['loss']
    torch.testing.assert_close(loss, F.cross_entropy(head(feats), torch.tensor([0, 2, 1, 2])))
    preds = head.predict(feats, data)
    for p, logits in zip(preds, head(feats)):
        torch.testing.assert_close(p.pred_score, logits.softmax(0))
        assert p.pred_label.tolist() == [int(logits.argmax())]
        assert p.gt_label is not None  # the samples are annotated in place


def test_cls_head_with_a_sigmoid_loss_uses_one_hot_targets():
    torch.manual_seed(0)
    head = MODELS.build(dict(type='ClsHead', in_dim=8, num_classes=3,
                             loss=dict(type='FocalLoss', gamma=2.0, alpha=0.25)))
    feats = torch.randn(4, 8)
    logits = head(feats)
    expected = sigmoid_focal_loss(logits, F.one_hot(torch.tensor([0, 2, 1, 2]), 3).float(),
                                  alpha=0.25, gamma=2.0, reduction='none').mean()
    torch.testing.assert_close(head.loss(feats, samples([0, 2, 1, 2]))['loss'], expected)
    torch.testing.assert_close(head.predict(feats)[0].pred_score, logits[0].sigmoid())


def test_fc_false_uses_the_input_as_logits():
    head = MODELS.build(dict(type='ClsHead', in_dim=3, num_classes=3, fc=False))
    x = torch.tensor([[0.1, 2.0, -1.0]])
    assert head.predict(x)[0].pred_label.tolist() == [1]
    assert sum(p.numel() for p in head.parameters()) == 0
    with pytest.raises(ValueError, match='in_dim .4. must equal num_classes'):
        MODELS.build(dict(type='ClsHead', in_dim=4, num_classes=3, fc=False))


def test_multi_label_head():
    torch.manual_seed(0)
    head = MODELS.build(dict(type='MultiLabelClsHead', in_dim=8, num_classes=4, thr=0.5))
    feats = torch.randn(3, 8)
    data = samples([[0, 3], [], [1]])
    targets = torch.tensor([[1., 0, 0, 1], [0, 0, 0, 0], [0, 1, 0, 0]])
    torch.testing.assert_close(head.loss(feats, data)['loss'],
                               F.binary_cross_entropy_with_logits(head(feats), targets))
    for p, logits in zip(head.predict(feats, data), head(feats)):
        assert p.pred_label.tolist() == torch.nonzero(logits.sigmoid() >= 0.5).flatten().tolist()
    with pytest.raises(ValueError, match=r'labels \[5\] outside \[0, 4\)'):
        head.loss(feats, samples([[5], [0], [1]]))
    with pytest.raises(ValueError, match='needs a sigmoid loss'):
        MODELS.build(dict(type='MultiLabelClsHead', in_dim=8, num_classes=4,
                          loss=dict(type='CrossEntropyLoss')))


def test_focal_loss_reduces_to_bce_with_gamma_zero_and_no_alpha():
    torch.manual_seed(0)
    logits, target = torch.randn(5, 3), torch.randint(0, 2, (5, 3)).float()
    loss = MODELS.build(dict(type='FocalLoss', gamma=0.0, alpha=-1, loss_weight=2.0))
    torch.testing.assert_close(loss(logits, target),
                               2.0 * F.binary_cross_entropy_with_logits(logits, target))
    with pytest.raises(ValueError, match='does not match logits'):
        loss(logits, torch.zeros(5, 4))
    with pytest.raises(ValueError, match='gamma must be >= 0'):
        MODELS.build(dict(type='FocalLoss', gamma=-1.0))


def test_text_cnn_encoder_sees_word_order_and_ignores_padding():
    torch.manual_seed(0)
    enc = MODELS.build(dict(type='TextCNNEncoder', vocab_size=10, embed_dim=8, out_dim=16))
    ids = torch.tensor([[1, 2, 3, 0], [3, 2, 1, 0]])
    mask = ids != 0
    out = enc(dict(input_ids=ids, attention_mask=mask))
    assert out.tokens.shape == (2, 4, 16) and out.pooled.shape == (2, 16)
    assert (out.tokens[:, 3] == 0).all()
    # the same bag of words in another order gives another sentence vector
    assert not torch.allclose(out.pooled[0], out.pooled[1])
    # whatever id sits under the padding is ignored
    other = enc(dict(input_ids=torch.tensor([[1, 2, 3, 7], [3, 2, 1, 5]]), attention_mask=mask))
    torch.testing.assert_close(other.pooled, out.pooled)
    out.pooled.sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in enc.parameters())
    with pytest.raises(ValueError, match='kernel_size must be odd'):
        MODELS.build(dict(type='TextCNNEncoder', vocab_size=10, kernel_size=2))
