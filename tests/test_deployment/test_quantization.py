"""int8 post-training quantisation with onnxruntime, and the measurement table."""
import os.path as osp

import numpy as np
import pytest
import torch
from deploy_helpers import exported

VQA = 'configs/vqa/mmshapes_vqa.py'


@pytest.fixture(scope='module')
def quantized(mmshapes_root, tmp_path_factory):
    from mmfusion.deployment.evaluation import ValSet
    from mmfusion.deployment.quantization import (
        preprocess_for_quantization,
        quantize_dynamic_onnx,
        quantize_static_onnx,
    )

    model, result, _ = exported(VQA, mmshapes_root)
    out = tmp_path_factory.mktemp('int8')
    fp32 = osp.join(result['out_dir'], 'model.onnx')
    prepared = preprocess_for_quantization(fp32, str(out / 'prep.onnx'))
    val = ValSet(model.cfg, model, batch_size=8)
    paths = dict(fp32=fp32,
                 dynamic=quantize_dynamic_onnx(prepared, str(out / 'dynamic.onnx')),
                 static=quantize_static_onnx(prepared, str(out / 'static.onnx'), val.names,
                                             val.batches[:1]))
    return model, val, paths


def _ops(path):
    import onnx

    model = onnx.load(path)
    return model, {node.op_type for node in model.graph.node}


def test_int8_graphs_hold_int8_weights_and_agree(quantized):
    import onnx

    from mmfusion.deployment.evaluation import onnx_runner

    _, val, paths = quantized
    _, dynamic_ops = _ops(paths['dynamic'])
    assert {'DynamicQuantizeLinear', 'MatMulInteger'} <= dynamic_ops
    static, static_ops = _ops(paths['static'])
    assert {'QuantizeLinear', 'DequantizeLinear', 'Conv'} <= static_ops
    int8 = [t for t in static.graph.initializer if t.data_type == onnx.TensorProto.INT8]
    assert any(len(t.dims) == 4 for t in int8)  # convolution weights are int8 too
    size = {k: osp.getsize(p) for k, p in paths.items()}
    assert size['dynamic'] < 0.9 * size['fp32']
    assert size['static'] < 0.35 * size['fp32']
    batch = val.batches[0]
    ref = onnx_runner(paths['fp32'])(batch)
    for name in ('dynamic', 'static'):
        got = onnx_runner(paths[name])(batch)
        # int8 rounding moves logits a little, not a lot
        assert np.abs(got - ref).max() < 0.1 * np.abs(ref).max() + 1e-3, name
        assert np.corrcoef(got.flatten(), ref.flatten())[0, 1] > 0.98, name


def test_accuracy_and_table_match_the_model(quantized):
    from mmfusion.deployment.evaluation import onnx_runner, torch_runner
    from mmfusion.deployment.quantization import QUANT_COLUMNS, measure
    from mmfusion.evaluation.functional import vqa_accuracy

    model, val, paths = quantized
    with torch.no_grad():
        from mmfusion.deployment.export import load_val_batch
        inputs, samples, _ = load_val_batch(model.cfg, model, len(val))
        preds = model(inputs, samples, mode='predict')
    want = 100 * np.mean([vqa_accuracy(p.pred_answer, p.gt_answers) for p in preds])
    variants = {'PyTorch fp32 (original)': torch_runner(model),
                'ONNX fp32': onnx_runner(paths['fp32']),
                'ONNX int8 static': onnx_runner(paths['static'])}
    sizes = {k: 100 * (i + 1) for i, k in enumerate(variants)}
    rows = measure(variants, sizes, val, repeats=1, out_dir=None, title='t', file_name='x',
                   second_ref='ONNX fp32')
    assert [r['variant'] for r in rows] == list(variants)
    assert rows[0]['accuracy'] == pytest.approx(want)
    assert rows[1]['accuracy'] == pytest.approx(want)  # the fp32 graph predicts the same
    assert rows[2]['size ratio'] == pytest.approx(3.0)
    assert all(r['latency b1 (ms)'] > 0 and r['latency b32 (ms)'] > 0 for r in rows)
    assert rows[1]['speed-up b32 vs ONNX fp32'] == pytest.approx(1.0)
    assert set(QUANT_COLUMNS) <= set(rows[2])


def test_static_quantisation_needs_calibration(quantized, tmp_path):
    from mmfusion.deployment.quantization import quantize_static_onnx

    _, val, paths = quantized
    with pytest.raises(ValueError, match='calibration batch'):
        quantize_static_onnx(paths['fp32'], str(tmp_path / 'x.onnx'), val.names, [])
