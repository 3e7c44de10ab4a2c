"""Tests of DiceLoss against hand-computed values."""
import math

import pytest
import torch

import mmfusion.models  # noqa: F401  (registers the modules)
from mmfusion.errors import ConfigError
from mmfusion.registry import MODELS


def two_pixels():
    """Pixel 0: logits (0, 0) -> p = (0.5, 0.5), label 0; pixel 1: logits
    (log 3, 0) -> p = (0.75, 0.25), label 1."""
    logits = torch.tensor([[[[0.0, math.log(3.0)]], [[0.0, 0.0]]]])  # (1, 2, 1, 2)
    return logits, torch.tensor([[[0, 1]]])


def test_value_with_squares_and_smoothing():
    # class 0: (2 * 0.5 + 1) / (0.5^2 + 0.75^2 + 1 + 1) = 2 / 2.8125
    # class 1: (2 * 0.25 + 1) / (0.5^2 + 0.25^2 + 1 + 1) = 1.5 / 2.3125
    expected = 1 - (2 / 2.8125 + 1.5 / 2.3125) / 2
    loss = MODELS.build(dict(type='DiceLoss'))(*two_pixels())
    assert loss.item() == pytest.approx(expected, abs=1e-6)


def test_value_of_the_plain_soft_dice():
    # class 0: 2 * 0.5 / (1.25 + 1); class 1: 2 * 0.25 / (0.75 + 1)
    expected = 1 - (1 / 2.25 + 0.5 / 1.75) / 2
    loss = MODELS.build(dict(type='DiceLoss', smooth=0.0, exponent=1.0, loss_weight=3.0))
    assert loss(*two_pixels()).item() == pytest.approx(3 * expected, abs=1e-6)


def test_ignored_pixels_change_nothing():
    logits, target = two_pixels()
    extra_logits = torch.cat([logits, torch.tensor([[[[5.0]], [[-2.0]]]])], dim=3)
    extra_target = torch.cat([target, torch.tensor([[[255]]])], dim=2)
    dice = MODELS.build(dict(type='DiceLoss'))
    torch.testing.assert_close(dice(extra_logits, extra_target), dice(logits, target))


def test_a_confident_correct_prediction_has_almost_no_loss():
    target = torch.tensor([[[0, 1], [2, 1]]])
    logits = torch.nn.functional.one_hot(target, 3).permute(0, 3, 1, 2).float() * 50
    assert MODELS.build(dict(type='DiceLoss'))(logits, target) < 1e-6


def test_labels_outside_the_classes_are_rejected():
    logits, _ = two_pixels()
    with pytest.raises(ValueError, match=r'in \[0, 2\) or ignore_index=255'):
        MODELS.build(dict(type='DiceLoss'))(logits, torch.tensor([[[0, 7]]]))
    with pytest.raises(ConfigError, match='exponent'):
        MODELS.build(dict(type='DiceLoss', exponent=0))
