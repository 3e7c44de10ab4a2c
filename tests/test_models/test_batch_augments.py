"""Mixup and CutMix keep every modality and the labels of a mixed sample consistent."""
import pytest
import torch

from mmfusion.errors import ConfigError
from mmfusion.models import ClsHead, MultiModalCutMix, MultiModalMixup
from mmfusion.structures import MultiModalDataSample
from mmfusion.utils import register_all_modules

register_all_modules()


def make_batch(n=6, labels=None):
    torch.manual_seed(0)
    inputs = dict(image=torch.randn(n, 3, 8, 8), depth=torch.randn(n, 1, 8, 8),
                  audio=torch.randn(n, 1, 16, 10))
    samples = []
    for i in range(n):
        s = MultiModalDataSample()
        s.gt_label = torch.tensor(labels[i] if labels else [i % 3])
        samples.append(s)
    return inputs, samples


def partner_of(mixed, original, lam):
    """Recover each sample's partner j from the blended tensors."""
    n = original.shape[0]
    out = []
    for i in range(n):
        errs = [(mixed[i] - (lam * original[i] + (1 - lam) * original[j])).abs().max()
                for j in range(n)]
        out.append(int(torch.stack(errs).argmin()))
    return out


def test_mixup_uses_one_partner_and_lambda_for_every_modality_and_label():
    inputs, samples = make_batch()
    torch.manual_seed(3)
    out, samples = MultiModalMixup(alpha=1.0, num_classes=3)(dict(inputs), samples)
    # lam from sample 0's soft label: lam*onehot(y0) + (1-lam)*onehot(y_j)
    scores = torch.stack([s.gt_score for s in samples])
    assert torch.allclose(scores.sum(1), torch.ones(6))
    lam = None
    for i, s in enumerate(samples):
        own = int(s.gt_label)
        if s.gt_score[own] < 1:
            lam = float(s.gt_score[own])
            break
    assert lam is not None
    perm = partner_of(out['image'], inputs['image'], lam)
    for name in ('depth', 'audio'):
        assert torch.allclose(out[name], lam * inputs[name] + (1 - lam) * inputs[name][perm],
                              atol=1e-5)
    for i, s in enumerate(samples):
        expected = torch.zeros(3)
        expected[int(s.gt_label)] += lam
        expected[int(samples[perm[i]].gt_label)] += 1 - lam
        assert torch.allclose(s.gt_score, expected, atol=1e-6)


def test_cutmix_pastes_the_same_box_in_image_sized_modalities():
    inputs, samples = make_batch()
    torch.manual_seed(1)
    out, samples = MultiModalCutMix(alpha=1.0, num_classes=3)(dict(inputs), samples)
    changed_img = (out['image'] != inputs['image']).any(1)  # (B, H, W)
    changed_depth = (out['depth'] != inputs['depth']).any(1)
    box = changed_img.any(0)
    assert box.any()
    ys, xs = box.nonzero(as_tuple=True)
    y0, y1, x0, x1 = int(ys.min()), int(ys.max()) + 1, int(xs.min()), int(xs.max()) + 1
    # the pasted region is one rectangle, and depth changed inside it only
    assert box[y0:y1, x0:x1].all() and not box.sum() - (y1 - y0) * (x1 - x0)
    assert not (changed_depth & ~box).any()
    lam = 1 - (y1 - y0) * (x1 - x0) / 64
    # the audio is blended with the area-corrected lam
    perm = partner_of(out['audio'], inputs['audio'], lam)
    for i in range(6):
        assert torch.equal(out['image'][i, :, y0:y1, x0:x1], inputs['image'][perm[i], :, y0:y1,
                                                                            x0:x1])
        assert torch.equal(out['depth'][i, :, y0:y1, x0:x1], inputs['depth'][perm[i], :, y0:y1,
                                                                            x0:x1])


def test_multilabel_soft_scores_and_tokens():
    inputs, samples = make_batch(n=2, labels=[[0, 2], [1]])
    inputs['text'] = dict(input_ids=torch.ones(2, 3, dtype=torch.long))
    with pytest.raises(ConfigError, match="unmixable='keep'"):
        MultiModalMixup(num_classes=3)(dict(inputs), samples)
    out, samples = MultiModalMixup(num_classes=3, unmixable='keep')(dict(inputs), samples)
    assert out['text'] is inputs['text']
    assert all(s.gt_score.shape == (3, ) for s in samples)
    with pytest.raises(ConfigError, match='outside'):
        MultiModalMixup(num_classes=2, unmixable='keep')(dict(inputs), samples)


def test_cls_head_trains_on_the_soft_labels():
    head = ClsHead(in_dim=4, num_classes=3)
    feats = torch.randn(2, 4)
    s = [MultiModalDataSample(), MultiModalDataSample()]
    for x, y in zip(s, ([0.7, 0.3, 0.0], [0.0, 0.0, 1.0])):
        x.gt_label = torch.tensor([0])
        x.gt_score = torch.tensor(y)
    loss = head.loss(feats, s)['loss']
    logp = head(feats).log_softmax(1)
    expected = -(torch.stack([x.gt_score for x in s]) * logp).sum(1).mean()
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)


def test_data_preprocessor_mixes_in_training_only():
    from mmfusion.models import MultiModalDataPreprocessor
    preprocessor = MultiModalDataPreprocessor(
        batch_augments=[dict(type='MultiModalMixup', alpha=1.0, num_classes=3)],
        image=dict(mean=[0.0] * 3, std=[1.0] * 3))
    inputs, samples = make_batch()
    data = dict(inputs=dict(image=list(inputs['image'])), data_samples=samples)
    evaluated = preprocessor(data, training=False)
    assert torch.equal(evaluated['inputs']['image'], inputs['image'])
    assert all('gt_score' not in s for s in evaluated['data_samples'])
    torch.manual_seed(1)
    trained = preprocessor(data, training=True)
    assert not torch.equal(trained['inputs']['image'], inputs['image'])
    scores = torch.stack([s.gt_score for s in trained['data_samples']])
    assert torch.allclose(scores.sum(1), torch.ones(len(samples)))
