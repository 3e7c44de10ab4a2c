"""Image pipeline throughput: mmfusion's loading + resizing + packing against a
plain torchvision pipeline on the same JPEG files.

    python tools/analysis_tools/pipeline_speed.py [CONFIG] [--num-images 512]
        [--workers 0 1 2] [--reps 3] [--size 224]

CONFIG (default ``configs/vqa/mmshapes_vqa_224.py``) gives the training data
set and its pipeline (its decoded-image cache, if any, is switched off: the
tool measures decoding). The plain pipeline reads the same files with
``torchvision.io.decode_jpeg`` (libjpeg-turbo) and ``torchvision.transforms.v2.Resize``
to the same size, returning uint8 CHW tensors; both go through a
``torch.utils.data.DataLoader`` of the same batch size, worker count and
``pin_memory`` (on when a GPU is there), with collation that keeps a list of
samples, as MMEngine's ``pseudo_collate`` does (stacking is the data
preprocessor's job in mmfusion). The two are timed alternately, repetition by
repetition, so that other load on the machine slows both alike; the table
gives the best repetition of each, in images/s, and mmfusion / plain.
"""
import argparse
import copy
import time

import torch
from torch.utils.data import DataLoader, Dataset, Subset


class PlainJPEGDataset(Dataset):
    """``read_file`` -> ``decode_jpeg`` (RGB) -> ``Resize(size)``: (3, size, size) uint8."""

    def __init__(self, paths: list[str], size: int) -> None:
        from torchvision.transforms import v2
        self.paths = paths
        self.resize = v2.Resize((size, size), antialias=True)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> torch.Tensor:
        from torchvision.io import ImageReadMode, decode_jpeg, read_file
        img = decode_jpeg(read_file(self.paths[i]), mode=ImageReadMode.RGB)
        return self.resize(img)


def keep_list(batch: list) -> list:
    return batch


def mmfusion_dataset(cfg, num_images: int, size: int | None):
    from mmfusion.registry import DATASETS
    dataset_cfg = copy.deepcopy(cfg.train_dataloader.dataset)
    for t in dataset_cfg.pipeline:
        if t['type'] == 'LoadImageFromFile':
            t['cache_size'] = 0  # time the decoding, not a cache
        if t['type'] == 'MultiModalResize' and size:
            t['scale'] = (size, size)
    dataset = DATASETS.build(dataset_cfg)
    if len(dataset) == 0:
        raise SystemExit('the training set of the config is empty')
    # one sample per image: VQA has several questions per image
    first = {}
    for i in range(len(dataset)):
        path = dataset.get_data_info(i)['img_path']
        first.setdefault(path, i)
        if len(first) == num_images:
            break
    return Subset(dataset, list(first.values())), list(first)


def images_in(batch) -> int:
    """Samples in a batch: a list (plain) or ``pseudo_collate``'s dict, whose
    ``inputs`` is keyed by modality, so the data samples are what to count."""
    return len(batch) if isinstance(batch, list) else len(batch['data_samples'])


def throughput(loader: DataLoader, clock=time.perf_counter) -> float:
    start = clock()
    n = sum(images_in(batch) for batch in loader)
    return n / (clock() - start)


def main(argv: list[str] | None = None) -> list[dict]:
    from mmengine.config import DictAction
    from mmengine.dataset import pseudo_collate

    from mmfusion.utils import add_data_root_argument, read_tool_config, register_all_modules
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config', nargs='?', default='configs/vqa/mmshapes_vqa_224.py')
    parser.add_argument('--num-images', type=int, default=512)
    parser.add_argument('--batch-size', type=int, default=64)
    parser.add_argument('--workers', type=int, nargs='+', default=[0, 1, 2])
    parser.add_argument('--reps', type=int, default=3, help='alternating repetitions (best of)')
    parser.add_argument('--size', type=int, default=None,
                        help="resize to this side (default: the config's MultiModalResize scale)")
    parser.add_argument('--clock', choices=['wall', 'cpu'], default='wall',
                        help="'cpu': CPU seconds of this process, robust to other jobs on a "
                        'shared machine; only with --workers 0 (workers are other processes)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    add_data_root_argument(parser)
    parser.add_argument('--out', help='also write the table (markdown) to this file')
    args = parser.parse_args(argv)
    for flag in ('num_images', 'batch_size', 'reps'):
        if getattr(args, flag) < 1:
            parser.error(f'--{flag.replace("_", "-")} must be at least 1, '
                         f'got {getattr(args, flag)}')
    if min(args.workers) < 0:
        parser.error(f'--workers must be >= 0, got {args.workers}')
    if args.clock == 'cpu' and any(args.workers):
        parser.error('--clock cpu counts this process only: use it with --workers 0')
    clock = time.process_time if args.clock == 'cpu' else time.perf_counter

    register_all_modules()
    cfg = read_tool_config(args.config, args.cfg_options, args.data_root)
    # as the Runner does (env_cfg.mp_cfg.opencv_num_threads): OpenCV's own
    # thread pool, next to the data-loader workers, only oversubscribes the
    # cores (on a busy machine its barriers turn a 0.3 ms decode into 100 ms)
    import cv2
    mp_cfg = (cfg.get('env_cfg') or {}).get('mp_cfg') or {}
    cv2.setNumThreads(int(mp_cfg.get('opencv_num_threads', 0)))
    size = args.size
    if size is None:
        resize = [t for t in cfg.train_dataloader.dataset.pipeline
                  if t['type'] == 'MultiModalResize']
        if not resize:
            parser.error(f'{args.config} has no MultiModalResize in its training pipeline; '
                         'pass --size')
        size = resize[0]['scale'][0]
    ours, paths = mmfusion_dataset(cfg, args.num_images, size)
    bad = [p for p in paths if not p.lower().endswith(('.jpg', '.jpeg'))]
    if bad:
        raise SystemExit(f'the plain pipeline decodes JPEG, but the config reads {bad[0]}; '
                         'use a config of JPEG images (e.g. configs/vqa/mmshapes_vqa_224.py)')
    plain = PlainJPEGDataset(paths, size)
    pin = torch.cuda.is_available()

    def loaders(workers):
        common = dict(batch_size=args.batch_size, num_workers=workers, pin_memory=pin,
                      persistent_workers=False)
        return (DataLoader(ours, collate_fn=pseudo_collate, **common),
                DataLoader(plain, collate_fn=keep_list, **common))

    # check that both decode the same pixels (mmfusion: BGR HWC -> RGB CHW)
    sample = ours[0]['inputs']['image']
    ref = plain[0]
    if tuple(sample.shape) != tuple(ref.shape):
        raise SystemExit(f'the pipelines disagree on the image shape: {tuple(sample.shape)} '
                         f'vs {tuple(ref.shape)}')
    diff = (sample.flip(0).float() - ref.float()).abs().mean().item()

    best = {w: [0.0, 0.0] for w in args.workers}
    for w in args.workers:  # warm-up: page cache, libraries
        for loader in loaders(w):
            throughput(loader)
    for _ in range(args.reps):
        for w in args.workers:
            for i, loader in enumerate(loaders(w)):
                best[w][i] = max(best[w][i], throughput(loader, clock))
    rows = [dict(workers=w, mmfusion=best[w][0], plain=best[w][1],
                 ratio=best[w][0] / best[w][1], pixel_diff=diff) for w in args.workers]
    lines = [f'{len(paths)} JPEG images from {cfg.train_dataloader.dataset.data_root}, '
             f'resized to {size}x{size}, batch {args.batch_size}, torch threads '
             f'{torch.get_num_threads()}, OpenCV threads {cv2.getNumThreads()}, '
             f'{args.clock} clock, '
             f'pin_memory={pin}, best of {args.reps} alternating repetitions; mean |pixel '
             f'difference| of the first image: {diff:.2f} / 255',
             '', '| workers | mmfusion images/s | plain torchvision images/s | mmfusion / plain |',
             '| --- | --- | --- | --- |']
    lines += [f"| {r['workers']} | {r['mmfusion']:.0f} | {r['plain']:.0f} | {r['ratio']:.2f} |"
              for r in rows]
    text = '\n'.join(lines)
    print(text)
    if args.out:
        with open(args.out, 'w') as f:
            f.write(text + '\n')
    return rows


if __name__ == '__main__':
    main()
