"""Generate MMShapes at a real image size and add JPEG copies of its RGB images.

Example (what ``configs/vqa/mmshapes_vqa_224.py`` reads)::

    python tools/dataset_converters/mmshapes_jpeg.py --out-dir data/mmshapes_224 \\
        --img-size 224 --quality 90

MMShapes is generated into ``--out-dir`` at ``--img-size`` (unless an up-to-date
copy with the same parameters is there), then every ``images/{split}/NNNNNN.png``
gets a ``NNNNNN.jpg`` next to it (depth maps and masks stay PNG: JPEG's lossy
compression would change their values). Existing JPEGs are left alone.
Never point ``--out-dir`` at the 64 px copy the quick-start configs use
(``data/mmshapes``): MMShapes at another size replaces nothing without
``make_mmshapes.py --force``, and this script refuses such a folder too.
"""
import argparse
import glob
import os
import os.path as osp
import time

from PIL import Image

from mmfusion.datasets.mmshapes import DEFAULT_MMSHAPES, ensure_mmshapes
from mmfusion.utils import run_main


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--out-dir', default='data/mmshapes_224', help='output folder')
    parser.add_argument('--img-size', type=int, default=224, help='image side in pixels')
    parser.add_argument('--num-train', type=int, default=DEFAULT_MMSHAPES['num_train'])
    parser.add_argument('--num-val', type=int, default=DEFAULT_MMSHAPES['num_val'])
    parser.add_argument('--seed', type=int, default=DEFAULT_MMSHAPES['seed'])
    parser.add_argument('--quality', type=int, default=90, help='JPEG quality, 1-95')
    args = parser.parse_args(argv)
    if not 1 <= args.quality <= 95:
        parser.error(f'--quality must be between 1 and 95 (Pillow), got {args.quality}')
    if args.img_size < 32:
        parser.error(f'--img-size must be at least 32, got {args.img_size}')
    return args


def write_jpegs(root: str, quality: int) -> int:
    """Write a JPEG next to every RGB image PNG of ``root``; return how many were written."""
    written = 0
    for png in sorted(glob.glob(osp.join(root, 'images', '*', '*.png'))):
        jpg = png[:-4] + '.jpg'
        if osp.exists(jpg):
            continue
        tmp = jpg + '.tmp'
        with Image.open(png) as img:
            img.convert('RGB').save(tmp, format='JPEG', quality=quality)
        os.replace(tmp, jpg)  # a crash never leaves a truncated .jpg behind
        written += 1
    return written


def main(argv=None) -> int:
    args = parse_args(argv)
    params = dict(num_train=args.num_train, num_val=args.num_val, img_size=args.img_size,
                  seed=args.seed)
    start = time.time()
    try:
        ensure_mmshapes(args.out_dir, **params)
    except ValueError as e:  # a copy with other parameters there
        raise SystemExit(f'{e}; choose another --out-dir for {args.img_size} px images') from e
    count = write_jpegs(args.out_dir, args.quality)
    print(f'MMShapes at {args.img_size} px ready in {args.out_dir}, {count} JPEGs written '
          f'({time.time() - start:.1f} s)')
    return 0


if __name__ == '__main__':
    run_main(main)
