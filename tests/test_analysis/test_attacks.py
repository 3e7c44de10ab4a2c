"""FGSM / PGD on the audio-visual quick-start model (random weights, real
MMShapes batches): the loss rises step by step and perturbations stay in
their budget; and the adversarial training hook replaces a batch by its
adversary."""
import types

import pytest
import torch
from analysis_fixtures import av_setup  # noqa: F401  (fixture)

from mmfusion.analysis import drop_modalities, fgsm_attack, model_loss, pgd_attack


def _clean_loss(model, data):
    with torch.no_grad():
        return float(model_loss(model, data))


def test_pgd_loss_increases_monotonically(av_setup):  # noqa: F811
    model, batches = av_setup
    data = batches[0]
    res = pgd_attack(model, data, ['image'], eps=8 / 255, steps=6, step_size=0.5 / 255,
                     random_start=False)
    assert len(res.losses) == 7
    assert res.losses[0] == pytest.approx(_clean_loss(model, data), rel=1e-5)
    diffs = [b - a for a, b in zip(res.losses, res.losses[1:])]
    assert all(d > 0 for d in diffs), res.losses
    # the model's weights got no gradient and are still trainable
    assert all(p.grad is None for p in model.parameters())
    assert all(p.requires_grad for p in model.parameters())


@pytest.mark.parametrize('norm', ['linf', 'l2'])
def test_perturbation_stays_in_the_ball_and_in_pixel_range(av_setup, norm):  # noqa: F811
    model, batches = av_setup
    data = batches[0]
    eps = 4 / 255 if norm == 'linf' else 0.01
    res = pgd_attack(model, data, ['image', 'audio'], eps=eps, steps=4, step_size=eps,
                     norm=norm, random_start=True, seed=3)
    clean_img = torch.stack(list(data['inputs']['image'])).float()
    adv_img = torch.stack(res.data['inputs']['image'])
    delta = adv_img - clean_img
    n = delta[0].numel()
    if norm == 'linf':
        assert delta.abs().max() <= 4.0 + 1e-4  # 4/255 of the 0..255 range
        assert delta.abs().max() > 3.0  # big steps reach the boundary
    else:
        radius = 0.01 * 255 * n ** 0.5
        norms = delta.flatten(1).norm(dim=1)
        assert (norms <= radius * (1 + 1e-5)).all() and (norms > 0.5 * radius).all()
    assert adv_img.min() >= 0 and adv_img.max() <= 255
    audio = torch.stack(list(data['inputs']['audio'])).float()
    span = float(audio.max() - audio.min())
    d_audio = res.deltas['audio']
    bound = eps * span * (1 if norm == 'linf' else d_audio[0].numel() ** 0.5)
    if norm == 'linf':
        assert d_audio.abs().max() <= bound * (1 + 1e-5)
    else:
        assert (d_audio.flatten(1).norm(dim=1) <= bound * (1 + 1e-5)).all()
    assert res.losses[-1] > _clean_loss(model, data)
    # the clean batch is untouched
    assert torch.equal(torch.stack(list(data['inputs']['image'])).float(), clean_img)


def test_fgsm_raises_the_loss_and_missing_modality_zeroes_it(av_setup):  # noqa: F811
    model, batches = av_setup
    data = batches[0]
    res = fgsm_attack(model, data, ['image'], eps=2 / 255)
    assert res.losses[1] > res.losses[0]
    with torch.no_grad():
        p = model.data_preprocessor(data, False)
        dropped = drop_modalities(p, ['audio'], mode='zero')
    assert torch.count_nonzero(dropped['inputs']['audio']) == 0
    assert dropped['inputs']['image'] is p['inputs']['image']
    assert torch.count_nonzero(p['inputs']['audio']) > 0


def test_missing_modality_by_mask_is_the_remove_modality_path(av_setup):  # noqa: F811
    """drop_modalities(mode='mask') predicts what a batch packed after
    RemoveModality does (tools/test.py --remove-modality), and leaves the
    batch it was given reusable."""
    from mmengine.dataset import pseudo_collate

    from mmfusion.analysis import build_loader, supports_modality_mask
    from mmfusion.datasets.transforms import RemoveModality
    model, _ = av_setup
    assert supports_modality_mask(model)
    loader = build_loader(model.cfg, 'test', batch_size=8)
    dataset = loader.dataset
    transforms = dataset.pipeline.transforms
    dataset.pipeline.transforms = transforms[:-1] + [RemoveModality(['audio']), transforms[-1]]
    try:
        removed = pseudo_collate([dataset[i] for i in range(8)])
    finally:
        dataset.pipeline.transforms = transforms
    clean = pseudo_collate([dataset[i] for i in range(8)])
    with torch.no_grad():
        want = model.test_step(removed)
        p = model.data_preprocessor(clean, False)
        got = model(**drop_modalities(p, ['audio'], mode='mask'), mode='predict')
        again = model(**p, mode='predict')  # the clean batch keeps its audio
        zeroed = model(**drop_modalities(p, ['audio'], mode='zero'), mode='predict')
    for a, b in zip(got, want):
        assert torch.allclose(a.pred_score, b.pred_score, atol=1e-6)
        assert a.modality_mask == dict(image=True, audio=False)
    assert all(s.modality_mask == dict(image=True, audio=True) for s in again)
    # zero-filling runs the encoder on a placeholder: another prediction
    assert not all(torch.allclose(a.pred_score, z.pred_score, atol=1e-4)
                   for a, z in zip(got, zeroed))


def test_adversarial_training_hook_replaces_the_batch(av_setup):  # noqa: F811
    from mmfusion.registry import HOOKS

    model, batches = av_setup
    data = dict(batches[1])
    data['inputs'] = dict(data['inputs'])
    clean = torch.stack(list(data['inputs']['image'])).float()
    hook = HOOKS.build(dict(type='AdversarialTrainingHook', modalities=['image'],
                            attack='fgsm', eps=4 / 255))
    model.train()
    runner = types.SimpleNamespace(model=model, epoch=0)  # what the hook reads of a Runner
    with torch.no_grad():
        model.eval()
        before = float(model_loss(model, data))
        model.train()
    hook.before_train_iter(runner, 0, data)
    assert model.training  # back to train mode for the step
    adv = torch.stack(data['inputs']['image'])
    assert 0 < (adv - clean).abs().max() <= 4.0 + 1e-4
    model.eval()
    with torch.no_grad():
        assert float(model_loss(model, data)) > before
    with pytest.raises(Exception, match='attack must be one of'):
        HOOKS.build(dict(type='AdversarialTrainingHook', modalities=['image'], attack='cw'))
