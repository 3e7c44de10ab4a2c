"""Speed and peak memory of the retrieval metric on random embeddings.

    python tools/analysis_tools/retrieval_speed.py [--items 5000] [--captions 25000]
        [--dim 512] [--chunk-sizes 1024 0]

Each run embeds nothing: it draws random L2-normalised item and caption
embeddings (``captions / items`` captions per item, as COCO's 5), computes
both directions' Recall@1/5/10 with
:func:`mmfusion.evaluation.functional.retrieval_recall`, and reports the wall
time and the peak resident memory the computation added (``ru_maxrss`` of a
fresh process, minus the same process just before). ``--chunk-sizes 0``
scores all queries at once (the whole similarity matrix), the reference the
chunked runs are compared with side by side. Then a small case is checked
against a brute-force reference (full matrix, full sort).
"""
import argparse
import multiprocessing as mp
import resource
import time

import torch


def _embeddings(items: int, captions: int, dim: int, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    item_emb = torch.nn.functional.normalize(torch.randn(items, dim, generator=gen), dim=-1)
    owner = torch.arange(captions) % items
    cap_emb = torch.nn.functional.normalize(
        item_emb[owner] + 1.5 * torch.randn(captions, dim, generator=gen) / dim ** 0.5, dim=-1)
    return item_emb, cap_emb, owner


def _run(args, chunk_size, queue) -> None:
    from mmfusion.evaluation.functional import retrieval_recall

    torch.set_num_threads(args.threads)
    items, caps, owner = _embeddings(args.items, args.captions, args.dim)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    metrics = retrieval_recall(items, caps, owner, chunk_size=chunk_size or len(caps))
    seconds = time.perf_counter() - start
    peak_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    queue.put((seconds, peak_mb, metrics))


def brute_force_check(items: int = 300, captions: int = 1500, dim: int = 64) -> float:
    """Largest |difference| of Recall@1/5/10 between the chunked metric and a
    full-sort reference on a small random case."""
    from mmfusion.evaluation.functional import retrieval_recall

    item_emb, cap_emb, owner = _embeddings(items, captions, dim, seed=1)
    sims = item_emb @ cap_emb.T
    i2t_order = sims.argsort(dim=1, descending=True)
    own = owner[i2t_order] == torch.arange(items)[:, None]
    i2t = own.float().argmax(dim=1)  # position of the first own caption
    t2i_order = sims.T.argsort(dim=1, descending=True)
    t2i = (t2i_order == owner[:, None]).float().argmax(dim=1)
    ours = retrieval_recall(item_emb, cap_emb, owner, chunk_size=97)
    diff = 0.0
    for name, ranks in (('i2t', i2t), ('t2i', t2i)):
        for k in (1, 5, 10):
            diff = max(diff, abs(ours[f'{name}_R@{k}'] - float((ranks < k).float().mean()) * 100))
    return diff


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--items', type=int, default=5000)
    parser.add_argument('--captions', type=int, default=25000)
    parser.add_argument('--dim', type=int, default=512)
    parser.add_argument('--threads', type=int, default=2)
    parser.add_argument('--chunk-sizes', type=int, nargs='+', default=[1024, 0],
                        help='queries scored at once; 0: all at once')
    args = parser.parse_args()
    ctx = mp.get_context('spawn')  # a fresh process each, so ru_maxrss is its own peak
    print(f'{args.items} items x {args.captions} captions, D={args.dim}, '
          f'{args.threads} threads')
    results = {}
    for chunk in args.chunk_sizes:
        queue = ctx.Queue()
        proc = ctx.Process(target=_run, args=(args, chunk, queue))
        proc.start()
        seconds, peak_mb, metrics = queue.get()
        proc.join()
        results[chunk] = metrics
        label = f'chunk {chunk}' if chunk else 'whole matrix'
        print(f'{label:>14}: {seconds:7.2f} s, peak memory added {peak_mb:8.1f} MB, '
              f'i2t R@1 {metrics["i2t_R@1"]:.2f}, t2i R@1 {metrics["t2i_R@1"]:.2f}')
    if len(results) > 1:
        values = list(results.values())
        diff = max(abs(values[0][k] - v[k]) for v in values[1:] for k in values[0])
        print(f'max |difference| between the runs: {diff:.2e}')
    print(f'small case (300 x 1500) vs brute force (full sort): max |R@K difference| = '
          f'{brute_force_check():.2e}')


if __name__ == '__main__':
    main()
