"""Post-training int8 quantisation of an exported model, with onnxruntime.

Why onnxruntime's quantiser rather than PT2E on ``torch.export``: the goal is
a faster deployed model, and the deployed artefact is the ONNX bundle of
:mod:`mmfusion.deployment.export`. onnxruntime runs a quantised graph with
its int8 kernels (``QLinearConv``, ``MatMulInteger``, fused from the QDQ
pairs) on any CPU, and the quantised ``.onnx`` drops into the same bundle and
runner. A PT2E model (``prepare_pt2e``/``convert_pt2e``) is a reference
graph of quantise/dequantise ops around float kernels: in eager PyTorch it is
slower than fp32, and it becomes fast only after ``torch.compile`` with the
x86 Inductor backend, which needs a C++ toolchain on the serving machine and
does not survive into an exported bundle.

Two flavours:

* **dynamic**: weights of ``MatMul``/``Gemm`` (Linear), ``Attention``,
  ``LSTM``/``GRU`` are stored in int8; activations are quantised on the fly
  per batch. No calibration. Convolutions stay fp32.
* **static**: weights (per output channel) and activations of every
  supported op, convolutions included, in int8 (QDQ format) with activation
  ranges calibrated (min/max) on a few val batches.

Before quantising, the graph goes through onnxruntime's
``quant_pre_process`` (shape inference, BatchNorm folded into convolutions),
as onnxruntime recommends, so a folded BN is quantised with its conv.
"""
import os
import os.path as osp
import shutil
from typing import Dict, List, Optional, Sequence

import numpy as np

from .evaluation import ValSet, latencies_ms, markdown_table, onnx_runner, param_bytes, torch_runner
from .export import export_bundle

# the ops dynamic quantisation covers: Linear layers, attention, recurrent layers
DYNAMIC_OPS = ['MatMul', 'Gemm', 'Attention', 'LSTM', 'GRU']
TABLE_COLUMNS = ['variant', 'accuracy', 'acc. change', 'latency b1 (ms)', 'latency b32 (ms)',
                 'speed-up b32', 'size (MB)', 'size ratio']
# quantisation also compares against the fp32 graph in the same runtime, so
# the int8 gain is not mixed up with the gain of leaving eager PyTorch
QUANT_COLUMNS = TABLE_COLUMNS[:6] + ['speed-up b32 vs ONNX fp32'] + TABLE_COLUMNS[6:]


class _FeedReader:
    """onnxruntime ``CalibrationDataReader`` over a list of flat input tuples."""

    def __init__(self, names: Sequence[str], batches: Sequence[tuple]) -> None:
        self.names = list(names)
        self._iter = iter(list(batches))

    def get_next(self) -> Optional[Dict[str, np.ndarray]]:
        batch = next(self._iter, None)
        return None if batch is None else dict(zip(self.names, batch))

    def rewind(self) -> None:  # not needed for min/max, part of the reader interface
        pass


def preprocess_for_quantization(src: str, dst: str) -> str:
    """onnxruntime's recommended pre-processing; returns the path to quantise from."""
    from onnxruntime.quantization.shape_inference import quant_pre_process

    try:
        quant_pre_process(src, dst, skip_symbolic_shape=False)
    except Exception as exc:  # noqa: BLE001 - quantising the raw graph still works
        print(f'quant_pre_process failed ({type(exc).__name__}: {exc}); quantising the graph '
              'as exported')
        shutil.copyfile(src, dst)
    return dst


def quantize_dynamic_onnx(src: str, dst: str) -> str:
    """int8 weights for Linear/attention/recurrent ops; activations quantised per call."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(src, dst, weight_type=QuantType.QInt8, op_types_to_quantize=DYNAMIC_OPS)
    return dst


def quantize_static_onnx(src: str, dst: str, names: Sequence[str],
                         calibration: Sequence[tuple]) -> str:
    """int8 weights (per channel) and activations, ranges from ``calibration`` batches."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    if not calibration:
        raise ValueError('static quantisation needs at least one calibration batch')
    quantize_static(src, dst, _FeedReader(names, calibration), quant_format=QuantFormat.QDQ,
                    per_channel=True, activation_type=QuantType.QUInt8,
                    weight_type=QuantType.QInt8, calibrate_method=CalibrationMethod.MinMax)
    return dst


def quantize_bundle(model, cfg, out_dir: str, calib_batches: int = 4,
                    calib_batch_size: int = 32, num_threads: int = 1, repeats: int = 20,
                    max_val_samples: Optional[int] = None) -> List[dict]:
    """Export ``model`` to an ONNX bundle, quantise it both ways, and measure.

    Writes ``out_dir/model.onnx`` (fp32, parity-checked), ``model.int8_dynamic.onnx``
    and ``model.int8_static.onnx`` (run either with
    ``runner.py --graph model.int8_static.onnx``), and ``quantization.md``.

    Calibration uses the first ``calib_batches`` val batches of
    ``calib_batch_size`` samples; accuracy is measured on the val set (the
    calibration samples are a small part of it, as in any post-training
    calibration without a separate split).

    Returns:
        The table rows: PyTorch fp32 (the original), ONNX fp32, ONNX int8
        dynamic, ONNX int8 static, each with accuracy (%), latency at batch 1
        and 32 (ms, median), size (MB) and ratios to the original.
    """
    export = export_bundle(model, cfg, out_dir, fmt='onnx')
    if not export['passed']:
        raise RuntimeError(f'export parity failed (max abs diff {export["max_abs_diff"]}); '
                           'not quantising a broken export')
    fp32 = osp.join(out_dir, 'model.onnx')
    prepared = preprocess_for_quantization(fp32, osp.join(out_dir, 'model.prep.onnx'))
    val = ValSet(cfg, model, max_samples=max_val_samples)
    calib = ValSet(cfg, model, max_samples=calib_batches * calib_batch_size,
                   batch_size=calib_batch_size).batches[:calib_batches]
    paths = dict(
        dynamic=quantize_dynamic_onnx(prepared, osp.join(out_dir, 'model.int8_dynamic.onnx')),
        static=quantize_static_onnx(prepared, osp.join(out_dir, 'model.int8_static.onnx'),
                                    val.names, calib))
    os.remove(prepared)

    import torch
    torch.set_num_threads(num_threads)
    variants = {'PyTorch fp32 (original)': torch_runner(model),
                'ONNX fp32': onnx_runner(fp32, num_threads),
                'ONNX int8 dynamic': onnx_runner(paths['dynamic'], num_threads),
                'ONNX int8 static': onnx_runner(paths['static'], num_threads)}
    sizes = {'PyTorch fp32 (original)': param_bytes(model), 'ONNX fp32': osp.getsize(fp32),
             'ONNX int8 dynamic': osp.getsize(paths['dynamic']),
             'ONNX int8 static': osp.getsize(paths['static'])}
    return measure(variants, sizes, val, repeats, out_dir,
                   title=f'int8 post-training quantisation, {num_threads} CPU thread(s)',
                   file_name='quantization.md', second_ref='ONNX fp32')


def measure(variants: Dict[str, object], sizes: Dict[str, int], val: ValSet, repeats: int,
            out_dir: Optional[str], title: str, file_name: str,
            second_ref: Optional[str] = None) -> List[dict]:
    """Accuracy, latency at batch 1 and 32 (interleaved), sizes; the first variant is the
    reference (and ``second_ref`` another one for the batch-32 speed-up). Writes
    ``out_dir/file_name`` (markdown) when ``out_dir`` is given."""
    accuracy = {name: val.accuracy(run) for name, run in variants.items()}
    warmup = min(3, repeats)
    lat1 = latencies_ms(variants, val.feeds(1), repeats=repeats * 2, warmup=warmup)
    lat32 = latencies_ms(variants, val.feeds(32), repeats=repeats, warmup=warmup)
    ref = next(iter(variants))
    rows = []
    for name in variants:
        rows.append({'variant': name, 'accuracy': accuracy[name],
                     'acc. change': accuracy[name] - accuracy[ref],
                     'latency b1 (ms)': lat1[name], 'latency b32 (ms)': lat32[name],
                     'speed-up b32': lat32[ref] / lat32[name],
                     'size (MB)': sizes[name] / 2**20, 'size ratio': sizes[name] / sizes[ref]})
        if second_ref is not None:
            rows[-1][f'speed-up b32 vs {second_ref}'] = lat32[second_ref] / lat32[name]
    columns = QUANT_COLUMNS if second_ref is not None else TABLE_COLUMNS
    if out_dir is not None:
        with open(osp.join(out_dir, file_name), 'w', encoding='utf-8') as f:
            f.write(f'{title}; {len(val)} val samples\n\n'
                    f'{markdown_table(rows, columns)}\n')
    return rows


__all__ = ['DYNAMIC_OPS', 'QUANT_COLUMNS', 'TABLE_COLUMNS', 'measure',
           'preprocess_for_quantization',
           'quantize_bundle', 'quantize_dynamic_onnx', 'quantize_static_onnx']
