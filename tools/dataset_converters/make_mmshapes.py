"""Generate the embedded MMShapes dataset.

Example::

    python tools/dataset_converters/make_mmshapes.py --out-dir data/mmshapes \\
        --num-train 2000 --num-val 500 --img-size 64 --seed 0

Training configs generate it on first use anyway; this script is for doing it
ahead of time, or with other sizes. An up-to-date copy is left alone; a copy
with other parameters is replaced only with ``--force``.
"""
import argparse
import os.path as osp
import shutil
import time

from mmfusion.datasets.mmshapes import DEFAULT_MMSHAPES, ensure_mmshapes
from mmfusion.utils import run_main


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Generate the MMShapes synthetic dataset')
    parser.add_argument('--out-dir', default='data/mmshapes', help='output folder')
    parser.add_argument('--num-train', type=int, default=DEFAULT_MMSHAPES['num_train'],
                        help='number of training scenes')
    parser.add_argument('--num-val', type=int, default=DEFAULT_MMSHAPES['num_val'],
                        help='number of validation scenes')
    parser.add_argument('--img-size', type=int, default=DEFAULT_MMSHAPES['img_size'],
                        help='image side in pixels')
    parser.add_argument('--seed', type=int, default=DEFAULT_MMSHAPES['seed'],
                        help='random seed')
    parser.add_argument('--force', action='store_true',
                        help='delete an existing MMShapes copy in --out-dir and regenerate')
    args = parser.parse_args()
    for name in ('num_train', 'num_val', 'seed'):
        if getattr(args, name) < 0:
            parser.error(f'--{name.replace("_", "-")} must be at least 0, got '
                         f'{getattr(args, name)}')
    if args.img_size < 32:
        parser.error(f'--img-size must be at least 32, got {args.img_size}')
    return args


def main() -> int:
    args = parse_args()
    params = dict(num_train=args.num_train, num_val=args.num_val, img_size=args.img_size,
                  seed=args.seed)
    if args.force and osp.exists(args.out_dir):
        # Only ever delete something that is recognisably MMShapes.
        if not osp.isfile(osp.join(args.out_dir, 'meta.json')):
            raise SystemExit(f'{args.out_dir} is not an MMShapes folder (no meta.json); not '
                             'deleting it')
        shutil.rmtree(args.out_dir)
    start = time.time()
    try:
        ensure_mmshapes(args.out_dir, **params)
    except ValueError as e:  # a copy with other parameters, or a damaged meta.json
        raise SystemExit(f'{e} (or pass --force)') from e
    print(f'MMShapes ready in {args.out_dir} ({time.time() - start:.1f} s)')
    return 0


if __name__ == '__main__':
    run_main(main)
