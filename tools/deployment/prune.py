"""Unstructured and structured (channel) pruning with a short fine-tune, measured.

    python tools/deployment/prune.py CONFIG CKPT --out work_dirs/vqa_pruning

Prunes copies of the model by weight magnitude (torch.nn.utils.prune) at a few
sparsities, fine-tunes each for --finetune-iters iterations, and prints a
table of val accuracy, CPU latency at batch 1 and 32 (same run, interleaved)
and size against the original. Structured pruning removes channels
physically, so its speed-up is real; unstructured zeros leave dense kernels
as fast as before, which the table shows. See docs/deployment.md.
"""
import argparse
import os
import sys

import mmfusion  # noqa: F401  (config and checkpoint compatibility, before any config is read)
from mmfusion.apis import init_model
from mmfusion.deployment.evaluation import markdown_table
from mmfusion.deployment.pruning import pruning_table
from mmfusion.deployment.quantization import TABLE_COLUMNS


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('config')
    parser.add_argument('checkpoint')
    parser.add_argument('--out', required=True, help='folder for pruning.md')
    parser.add_argument('--unstructured', type=float, nargs='*', default=[0.5, 0.7, 0.9],
                        help='global magnitude sparsities')
    parser.add_argument('--structured', type=float, nargs='*', default=[0.25, 0.5],
                        help='fractions of channels / hidden units removed')
    parser.add_argument('--finetune-iters', type=int, default=50)
    parser.add_argument('--lr', type=float, default=1e-4)
    parser.add_argument('--threads', type=int, default=1)
    parser.add_argument('--repeats', type=int, default=20)
    parser.add_argument('--max-val-samples', type=int, default=None)
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    model = init_model(args.config, args.checkpoint, device='cpu')
    rows = pruning_table(model, model.cfg, unstructured=args.unstructured,
                         structured=args.structured, finetune_iters=args.finetune_iters,
                         lr=args.lr, num_threads=args.threads, repeats=args.repeats,
                         max_val_samples=args.max_val_samples, out_dir=args.out)
    print(markdown_table(rows, TABLE_COLUMNS))
    print(f'written to {args.out}/pruning.md')
    return 0


if __name__ == '__main__':
    sys.exit(main())
