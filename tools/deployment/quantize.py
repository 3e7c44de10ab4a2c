"""Post-training int8 quantisation (onnxruntime) with a table against the original.

    python tools/deployment/quantize.py CONFIG CKPT --out work_dirs/vqa_int8

Exports the model to an ONNX bundle (parity-checked), writes int8 dynamic and
static (calibrated on a few val batches) graphs next to it, and prints a table
of val accuracy, CPU latency at batch 1 and 32 (same run, interleaved) and
size for PyTorch fp32, ONNX fp32, ONNX int8 dynamic and ONNX int8 static.
See docs/deployment.md for why onnxruntime's quantiser.
"""
import argparse
import sys

import mmfusion  # noqa: F401  (config and checkpoint compatibility, before any config is read)
from mmfusion.apis import init_model
from mmfusion.deployment.evaluation import markdown_table
from mmfusion.deployment.quantization import QUANT_COLUMNS, quantize_bundle


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('config')
    parser.add_argument('checkpoint')
    parser.add_argument('--out', required=True, help='the bundle folder to write')
    parser.add_argument('--calib-batches', type=int, default=4,
                        help='val batches to calibrate activation ranges on')
    parser.add_argument('--calib-batch-size', type=int, default=32)
    parser.add_argument('--threads', type=int, default=1,
                        help='CPU threads for every variant (the same for all)')
    parser.add_argument('--repeats', type=int, default=20,
                        help='timed runs per variant at batch 32 (twice as many at batch 1)')
    parser.add_argument('--max-val-samples', type=int, default=None,
                        help='measure accuracy on the first N val samples only')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    model = init_model(args.config, args.checkpoint, device='cpu')
    rows = quantize_bundle(model, model.cfg, args.out, calib_batches=args.calib_batches,
                           calib_batch_size=args.calib_batch_size, num_threads=args.threads,
                           repeats=args.repeats, max_val_samples=args.max_val_samples)
    print(markdown_table(rows, QUANT_COLUMNS))
    print(f'written to {args.out}/quantization.md')
    return 0


if __name__ == '__main__':
    sys.exit(main())
