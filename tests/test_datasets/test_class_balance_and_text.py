"""Repeat-factor sampling (sampler and MMEngine's ClassBalancedDataset) and
text augmentation transforms."""
import math
from collections import Counter

import numpy as np
import pytest
from mmengine.dataset import BaseDataset

from mmfusion.datasets import (
    MultiModalClassBalancedDataset,
    RandomCharNoise,
    RandomWordDropout,
    RandomWordSwap,
    RepeatFactorSampler,
)
from mmfusion.datasets.samplers import repeat_factors
from mmfusion.errors import ConfigError
from mmfusion.utils import register_all_modules

register_all_modules()


class Imbalanced(BaseDataset):
    """90 samples of class 0, 10 of class 1 (multi-label rows for 5 of them)."""

    def load_data_list(self):
        rows = [dict(gt_label=0) for _ in range(90)] + [dict(gt_label=1) for _ in range(5)]
        return rows + [dict(gt_label=[0, 1]) for _ in range(5)]


def test_repeat_factors_by_hand():
    # class 0 in 95 % of the samples, class 1 in 10 %: t = 0.4
    labels = [[0]] * 90 + [[1]] * 5 + [[0, 1]] * 5
    r = repeat_factors(labels, 0.4)
    assert r[0] == 1.0  # frequent class: never thinned out
    assert r[90] == pytest.approx(math.sqrt(0.4 / 0.1)) == pytest.approx(2.0)
    assert r[99] == pytest.approx(2.0)  # the max over its labels
    with pytest.raises(ConfigError, match='repeat_thr'):
        repeat_factors(labels, 0)


def test_sampler_oversamples_the_rare_class():
    ds = Imbalanced()
    sampler = RepeatFactorSampler(ds, repeat_thr=0.4, seed=0)
    indices = list(sampler)
    counts = Counter(indices)
    assert all(counts[i] == 1 for i in range(90))
    assert all(counts[i] == 2 for i in range(90, 100))  # r = 2 exactly
    assert len(indices) == len(sampler) == 110
    rare = sum(1 for i in indices if i >= 90) / len(indices)
    assert rare > 0.15  # 10 % before
    with pytest.raises(ConfigError, match="'label'"):
        RepeatFactorSampler(ds, label_key='label')


def test_mmengine_class_balanced_dataset_works_with_get_data_info():
    ds = MultiModalClassBalancedDataset(Imbalanced(), oversample_thr=0.4)
    assert len(ds) == 110
    assert sum(1 for i in range(len(ds)) if ds.get_data_info(i)['gt_label'] != 0) == 10 * 2


def test_word_dropout():
    np.random.seed(0)
    out = RandomWordDropout(drop_prob=1.0, min_words=2)(dict(text='a b c d e'))['text']
    assert len(out.split()) == 2 and set(out.split()) <= set('abcde')
    assert RandomWordDropout(drop_prob=0.0)(dict(text='a  b c'))['text'] == 'a b c'
    np.random.seed(1)
    outs = {RandomWordDropout(drop_prob=0.5)(dict(text='w1 w2 w3 w4 w5 w6'))['text']
            for _ in range(20)}
    assert len(outs) > 3 and all(o for o in outs)
    # order is kept
    for o in outs:
        words = o.split()
        assert words == sorted(words)


def test_word_swap_keeps_the_words():
    np.random.seed(0)
    text = 'is there a red circle'
    out = RandomWordSwap(num_swaps=2, keys='question')(dict(question=text))['question']
    assert sorted(out.split()) == sorted(text.split()) and out != text
    assert RandomWordSwap()(dict(text='one'))['text'] == 'one'


def test_char_noise():
    np.random.seed(0)
    text = 'two red circles, 3 squares'
    assert RandomCharNoise(char_prob=0.0)(dict(text=text))['text'] == text
    out = RandomCharNoise(char_prob=0.5)(dict(text=text))['text']
    assert out != text
    # only letters change: digits, punctuation and the word count survive
    assert out.count('3') == 1 and out.count(',') == 1 and len(out.split()) == 5
    np.random.seed(0)
    subs = RandomCharNoise(char_prob=1.0, ops=['substitute'])(dict(text='abc def'))['text']
    assert len(subs) == 7 and subs[3] == ' '
    np.random.seed(0)
    dels = RandomCharNoise(char_prob=1.0, ops=['delete'])(dict(text='ab 12'))['text']
    assert dels == ' 12'
    with pytest.raises(ConfigError, match='ops must be'):
        RandomCharNoise(ops=['shout'])


def test_text_transform_errors_and_missing_text():
    with pytest.raises(ConfigError, match="no 'question' field"):
        RandomWordSwap(keys='question')(dict(text='a b'))
    # a sample whose text was removed (missing modality) is left alone
    results = dict(missing_modalities=['text'])
    assert RandomWordSwap()(results) is results
    with pytest.raises(ConfigError, match='prob must be in'):
        RandomWordDropout(prob=2)
