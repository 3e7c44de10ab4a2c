"""Export a trained model into a self-contained bundle and check parity.

    python tools/deployment/export.py CONFIG CKPT --format onnx --out work_dirs/vqa_bundle

Writes the graph (dynamic batch, and sequence length for text), the
preprocessing files (tokenizer, labels/answers, mean/std and sizes in
preprocess.json) and runner.py, which needs only onnxruntime (or torch) and
the tokenizer library. Then runs the exported graph and the original model on
the same val batch and prints the largest absolute difference; it also runs
runner.py's own preprocessing of the raw val files and the graph, end to end.
Exits with status 1 when either difference exceeds --atol. See
docs/deployment.md.
"""
import argparse
import sys

import mmfusion  # noqa: F401  (config and checkpoint compatibility, before any config is read)
from mmfusion.apis import init_model
from mmfusion.deployment.export import DEFAULT_ATOL, FORMATS, export_bundle


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('config')
    parser.add_argument('checkpoint', help='trained weights (a random model with "none")')
    parser.add_argument('--format', default='onnx', choices=FORMATS)
    parser.add_argument('--out', required=True, help='the bundle folder to write')
    parser.add_argument('--batch-size', type=int, default=None,
                        help='size of the val batch the parity check runs on '
                        '(default: the val loader\'s)')
    parser.add_argument('--atol', type=float, default=DEFAULT_ATOL,
                        help='largest absolute difference that still counts as parity')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    checkpoint = None if args.checkpoint.lower() == 'none' else args.checkpoint
    model = init_model(args.config, checkpoint, device='cpu')
    result = export_bundle(model, model.cfg, args.out, fmt=args.format,
                           batch_size=args.batch_size, atol=args.atol)
    print(f'bundle: {result["out_dir"]} ({result["format"]}, graph {result["graph"]})')
    print(f'parity on a val batch of {result["batch_size"]}: max abs diff '
          f'{result["max_abs_diff"]:.3g} (atol {result["atol"]:g}): '
          f'{"OK" if result["passed"] else "FAILED"}')
    if result['end_to_end_diff'] is not None:
        print(f'end to end (runner.py preprocessing the raw val files, then the graph): '
              f'max abs diff {result["end_to_end_diff"]:.3g}')
    return 0 if result['passed'] else 1


if __name__ == '__main__':
    sys.exit(main())
