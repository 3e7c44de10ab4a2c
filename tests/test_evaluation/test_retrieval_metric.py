"""Retrieval Recall@K: chunked ranks against a brute-force reference and hand-made cases."""
import pytest
import torch

from mmfusion.errors import ConfigError
from mmfusion.evaluation.functional import retrieval_ranks, retrieval_recall
from mmfusion.evaluation.metrics import RetrievalRecall


def brute_force(items, captions, owner, ks=(1, 5, 10)):
    """Full similarity matrix, full sort: the textbook protocol."""
    sims = items @ captions.T
    i2t, t2i = [], []
    for i in range(len(items)):
        order = sims[i].argsort(descending=True).tolist()
        i2t.append(min(order.index(j) for j in range(len(captions)) if owner[j] == i))
    for j in range(len(captions)):
        order = sims[:, j].argsort(descending=True).tolist()
        t2i.append(order.index(int(owner[j])))
    out = {}
    for name, ranks in (('i2t', torch.tensor(i2t)), ('t2i', torch.tensor(t2i))):
        for k in ks:
            out[f'{name}_R@{k}'] = float((ranks < k).float().mean()) * 100
    return out


@pytest.mark.parametrize('chunk_size', [1, 7, 1024])
def test_chunked_recall_equals_brute_force(chunk_size):
    gen = torch.Generator().manual_seed(0)
    items = torch.nn.functional.normalize(torch.randn(40, 8, generator=gen), dim=-1)
    # 1-5 captions per item, each a noisy copy of its item so that recalls are not all 0
    owner = torch.repeat_interleave(torch.arange(40), torch.randint(1, 6, (40, ), generator=gen))
    captions = torch.nn.functional.normalize(
        items[owner] + 0.9 * torch.randn(len(owner), 8, generator=gen), dim=-1)
    ours = retrieval_recall(items, captions, owner, chunk_size=chunk_size)
    ref = brute_force(items, captions, owner)
    for key, value in ref.items():
        assert ours[key] == pytest.approx(value), key
    assert 0 < ours['i2t_R@1'] < 100 and 0 < ours['t2i_R@1'] < 100
    assert ours['mean'] == pytest.approx(
        sum(ref.values()) / len(ref))


def test_hand_computed_ranks_and_ties():
    items = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]])
    captions = torch.tensor([[0.0, 1.0],    # of item 0, but nearest item 1
                             [1.0, 0.0],    # of item 0
                             [0.0, 1.0]])   # of item 1
    owner = torch.tensor([0, 0, 1])
    ranks = retrieval_ranks(items, captions, owner)
    # item 0: its caption 1 scores 1.0, best of all -> rank 0
    # item 1: its caption 2 scores 1.0, tied with caption 0 (of item 0) -> a tie counts
    #         against it -> rank 1
    # item 2 has no caption -> N_c
    assert ranks['i2t'].tolist() == [0, 1, 3]
    # caption 0 (item 0): item 1 scores 1.0, item 2 0.8, item 0 0.0 -> rank 2
    # caption 1 (item 0): item 0 scores 1.0 -> 0; caption 2 (item 1): 0
    assert ranks['t2i'].tolist() == [2, 0, 0]
    metrics = retrieval_recall(items, captions, owner, ks=(1, 2))
    assert metrics['i2t_R@1'] == pytest.approx(50.0)  # the caption-less item is no query
    assert metrics['i2t_R@2'] == pytest.approx(100.0)
    assert metrics['t2i_R@1'] == pytest.approx(200 / 3)


def test_a_collapsed_model_scores_zero():
    """Every embedding the same: all ties, so nothing is retrieved (not 100)."""
    items = torch.ones(5, 4) / 2
    captions = torch.ones(10, 4) / 2
    owner = torch.arange(10) // 2
    metrics = retrieval_recall(items, captions, owner, ks=(1, ))
    assert metrics['i2t_R@1'] == 0 and metrics['t2i_R@1'] == 0


def test_metric_collects_samples_and_names_directions():
    gen = torch.Generator().manual_seed(1)
    audio = torch.nn.functional.normalize(torch.randn(6, 4, generator=gen), dim=-1)
    metric = RetrievalRecall(modalities=('audio', 'text'), topk=(1, 3))
    metric.dataset_meta = {}
    samples = [dict(audio_embeds=audio[i:i + 1], text_embeds=audio[i:i + 1].repeat(2, 1))
               for i in range(6)]
    metric.process({}, samples[:4])
    metric.process({}, samples[4:])
    result = metric.evaluate(6)
    assert result['retrieval/a2t_R@1'] == 100.0
    # each caption ties with its twin (the other caption of the same item is not
    # an item, so t2i has no tie): perfect
    assert result['retrieval/t2a_R@1'] == 100.0
    assert set(result) >= {'retrieval/a2t_mean', 'retrieval/t2a_R@3', 'retrieval/mean'}


def test_bad_arguments_and_samples():
    with pytest.raises(ConfigError, match='modalities'):
        RetrievalRecall(modalities=('image', 'image'))
    with pytest.raises(ConfigError, match='topk'):
        RetrievalRecall(topk=(0, ))
    metric = RetrievalRecall()
    with pytest.raises(ValueError, match="text_embeds"):
        metric.process({}, [dict(image_embeds=torch.zeros(1, 4))])
    with pytest.raises(ValueError, match='same D'):
        retrieval_ranks(torch.zeros(2, 3), torch.zeros(2, 4), torch.tensor([0, 1]))
