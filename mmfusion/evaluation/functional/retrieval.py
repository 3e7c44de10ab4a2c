"""Cross-modal retrieval recall on plain tensors, in memory-bounded chunks."""
from typing import Dict, Optional, Sequence

import torch

__all__ = ['retrieval_ranks', 'recall_at_k', 'retrieval_recall']


def retrieval_ranks(items: torch.Tensor, captions: torch.Tensor, owner: torch.Tensor,
                    chunk_size: int = 1024) -> Dict[str, torch.Tensor]:
    """0-based rank of the first correct answer of every query, both directions.

    The standard COCO / Flickr30k protocol with several captions per item: an
    item query (i2t) is answered correctly by any of its captions, so its rank
    is that of its best-scored caption; a caption query (t2i) by its one item.

    Ties count against the query (a rank is the number of wrong answers
    scoring at least the best right one), so a model that maps everything to
    one point scores 0, not 100.

    The similarity matrix is never held whole: ``chunk_size`` queries at a
    time are scored (``chunk_size x N`` floats, plus as many bools for i2t),
    so 5k items x 25k captions needs about 200 MB at the default size.

    Args:
        items: (N_i, D) item embeddings (images, audio clips), L2-normalised
            for cosine similarity.
        captions: (N_c, D) caption embeddings.
        owner: (N_c,) long: the item index each caption belongs to.
        chunk_size: queries scored at once.

    Returns:
        ``dict(i2t=(N_i,), t2i=(N_c,))`` long ranks; an item without
        captions gets rank ``N_c`` (it is no i2t query: :func:`retrieval_recall`
        leaves it out).
    """
    if items.ndim != 2 or captions.ndim != 2 or items.shape[1] != captions.shape[1]:
        raise ValueError(f'retrieval_ranks: items {tuple(items.shape)} and captions '
                         f'{tuple(captions.shape)} must be (N, D) with the same D')
    owner = owner.to(device=captions.device, dtype=torch.long)
    if owner.shape != (captions.shape[0], ):
        raise ValueError(f'retrieval_ranks: owner must have one entry per caption '
                         f'({captions.shape[0]}), got shape {tuple(owner.shape)}')
    if owner.numel() and (owner.min() < 0 or owner.max() >= items.shape[0]):
        raise ValueError(f'retrieval_ranks: owner holds item indices outside '
                         f'[0, {items.shape[0]})')
    num_items, num_caps = items.shape[0], captions.shape[0]
    i2t = torch.empty(num_items, dtype=torch.long, device=items.device)
    for start in range(0, num_items, chunk_size):
        sims = items[start:start + chunk_size] @ captions.T  # (c, N_c)
        ids = torch.arange(start, start + sims.shape[0], device=items.device)
        own = owner.unsqueeze(0) == ids.unsqueeze(1)  # (c, N_c): its own captions
        best = sims.masked_fill(~own, float('-inf')).amax(dim=1, keepdim=True)
        ranks = ((sims >= best) & ~own).sum(dim=1)
        ranks[~own.any(dim=1)] = num_caps
        i2t[start:start + sims.shape[0]] = ranks
        del sims, own
    t2i = torch.empty(num_caps, dtype=torch.long, device=items.device)
    for start in range(0, num_caps, chunk_size):
        sims = captions[start:start + chunk_size] @ items.T  # (c, N_i)
        own = owner[start:start + sims.shape[0]]
        right = sims.gather(1, own.unsqueeze(1))
        # every score >= the right one, minus the right one itself
        t2i[start:start + sims.shape[0]] = (sims >= right).sum(dim=1) - 1
        del sims
    return dict(i2t=i2t, t2i=t2i)


def recall_at_k(ranks: torch.Tensor, ks: Sequence[int] = (1, 5, 10)) -> Dict[int, float]:
    """Percent of queries whose first correct answer is among the top k."""
    if ranks.numel() == 0:
        return {k: 0.0 for k in ks}
    return {k: float((ranks < k).float().mean()) * 100 for k in ks}


def retrieval_recall(items: torch.Tensor, captions: torch.Tensor, owner: torch.Tensor,
                     ks: Sequence[int] = (1, 5, 10), chunk_size: int = 1024,
                     names: Optional[Sequence[str]] = None) -> Dict[str, float]:
    """``{'i2t_R@1': ..., 't2i_R@10': ..., 'i2t_mean': ..., 't2i_mean': ...,
    'mean': ...}`` in percent (see :func:`retrieval_ranks`).

    ``names`` renames the directions, e.g. ``('a2t', 't2a')`` for audio-text.
    """
    forward, backward = names or ('i2t', 't2i')
    ranks = retrieval_ranks(items, captions, owner, chunk_size)
    out = {}
    # items without captions are no i2t queries
    ranks['i2t'] = ranks['i2t'][ranks['i2t'] < captions.shape[0]]
    for key, direction in ((forward, 'i2t'), (backward, 't2i')):
        recalls = recall_at_k(ranks[direction], ks)
        for k, value in recalls.items():
            out[f'{key}_R@{k}'] = value
        out[f'{key}_mean'] = sum(recalls.values()) / len(recalls)
    out['mean'] = (out[f'{forward}_mean'] + out[f'{backward}_mean']) / 2
    return out
