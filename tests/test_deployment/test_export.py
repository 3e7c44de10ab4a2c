"""Export bundles: parity with the original model, dynamic axes, the standalone runner."""
import copy
import json
import os.path as osp
import subprocess
import sys

import numpy as np
import pytest
import torch
from conftest import REPO_ROOT
from deploy_helpers import exported

VQA = 'configs/vqa/mmshapes_vqa.py'


@pytest.fixture(scope='module')
def vqa(mmshapes_root):
    return exported(VQA, mmshapes_root)


def test_vqa_bundle_files_and_parity(vqa):
    import onnx

    model, result, _ = vqa
    bundle = result['out_dir']
    assert result['passed'], result
    assert result['max_abs_diff'] < 1e-4
    # the runner's own preprocessing of the raw val files agrees too
    assert result['end_to_end_diff'] is not None and result['end_to_end_diff'] < 1e-4
    with open(osp.join(bundle, 'preprocess.json')) as f:
        spec = json.load(f)
    assert [e['name'] for e in spec['inputs']] == ['image', 'text_input_ids',
                                                  'text_attention_mask']
    image = spec['inputs'][0]
    pre = model.data_preprocessor
    np.testing.assert_allclose(image['mean'], pre.image_mean.flatten().tolist())
    np.testing.assert_allclose(image['std'], pre.image_std.flatten().tolist())
    assert image['size'] == [64, 64]
    assert spec['inputs'][1]['max_length'] == pre.text_cfgs['text']['max_length']
    with open(osp.join(bundle, 'labels.txt')) as f:
        assert f.read().split('\n')[:-1] == model.head.answers
    assert osp.isfile(osp.join(bundle, 'tokenizer_text', 'tokenizer.json'))
    # batch (and, for text, sequence length) are symbolic in the graph
    graph = onnx.load(osp.join(bundle, 'model.onnx')).graph
    dims = {i.name: [d.dim_param or d.dim_value for d in i.type.tensor_type.shape.dim]
            for i in graph.input}
    assert isinstance(dims['image'][0], str) and dims['image'][1:] == [3, 64, 64]
    assert all(isinstance(d, str) for d in dims['text_input_ids'])


def test_bundle_runs_other_batch_and_sequence_sizes(vqa, mmshapes_root):
    """Raw samples through runner.py's preprocessing: 3 questions of different
    lengths (neither the traced batch nor the traced length)."""
    from mmfusion.deployment.bundle_runner import Bundle
    from mmfusion.deployment.export import ExportWrapper

    model, result, _ = vqa
    bundle = Bundle(result['out_dir'])
    image = osp.join(mmshapes_root, 'images', 'val', sorted(
        __import__('os').listdir(osp.join(mmshapes_root, 'images', 'val')))[0])
    samples = [dict(image=image, text=q) for q in
               ('how many circles?', 'what color is the big square on the left of the image?',
                'is there a triangle?')]
    feeds = bundle.preprocess(samples)
    assert feeds['text_input_ids'].shape[0] == 3
    got = bundle.run(feeds)[0]
    with torch.no_grad():
        want = ExportWrapper(model)(*[torch.from_numpy(feeds[e['name']])
                                      for e in bundle.inputs])[0].numpy()
    np.testing.assert_allclose(got, want, atol=1e-4)
    # the same ids the training preprocessor (a transformers tokenizer) makes
    ref = model.data_preprocessor._tokenize('text', [s['text'] for s in samples])
    np.testing.assert_array_equal(feeds['text_input_ids'], ref['input_ids'].numpy())
    answers = [p['answer'] for p in bundle.predict(samples)]
    assert answers == [model.head.answers[i] for i in want.argmax(axis=1)]


def test_parity_check_fails_for_a_different_model(vqa):
    from mmfusion.deployment.export import check_parity

    model, result, _ = vqa
    changed = copy.deepcopy(model)
    with torch.no_grad():
        changed.head.classifier[-1].bias += 0.5 * torch.randn_like(
            changed.head.classifier[-1].bias)
    report = check_parity(changed, model.cfg, result['out_dir'], batch_size=4)
    assert not report['passed']
    assert report['max_abs_diff'] > 1e-2


# Blocks mmfusion, mmengine, torch and transformers: the runner must answer
# with numpy, Pillow, onnxruntime and tokenizers alone.
DRIVER = '''
import importlib.abc, runpy, sys
BLOCKED = ('mmfusion', 'mmengine', 'torch', 'transformers')
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in BLOCKED:
            raise ImportError(f'{name} is not available here')
sys.meta_path.insert(0, Block())
sys.argv = sys.argv[1:]
try:
    runpy.run_path(sys.argv[0], run_name='__main__')
finally:
    print('LOADED', sorted(m for m in sys.modules if m.split('.')[0] in BLOCKED),
          file=sys.stderr)
'''


def test_runner_answers_without_mmfusion(vqa, mmshapes_root, tmp_path):
    """runner.py in a fresh isolated interpreter (python -I: no PYTHONPATH, no
    current directory) where mmfusion, mmengine and torch cannot be imported."""
    from mmfusion.datasets.transforms import LoadImageFromFile  # noqa: F401
    from mmfusion.deployment.export import load_val_batch

    model, result, _ = vqa
    inputs, samples, dataset = load_val_batch(model.cfg, model, 2)
    with torch.no_grad():
        expected = model(inputs, samples, mode='predict')[1].pred_answer
    info = dataset.get_data_info(1)
    driver = tmp_path / 'driver.py'
    driver.write_text(DRIVER)
    proc = subprocess.run(
        [sys.executable, '-I', str(driver), osp.join(result['out_dir'], 'runner.py'),
         f'image={info["img_path"]}', f'text={info["question"]}'],
        capture_output=True, text=True, timeout=120, cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert 'LOADED []' in proc.stderr
    prediction = json.loads(proc.stdout.strip().splitlines()[-1])
    assert prediction['answer'] == expected
    assert prediction['answer'] in model.head.answers


def test_runner_rejects_bad_input(vqa, mmshapes_root):
    from mmfusion.deployment.bundle_runner import Bundle, BundleError

    _, result, _ = vqa
    bundle = Bundle(result['out_dir'])
    with pytest.raises(BundleError, match=r"missing \['text'\]"):
        bundle.preprocess([dict(image='x.png')])
    with pytest.raises(BundleError, match='file not found'):
        bundle.preprocess([dict(image='nowhere.png', text='hi')])
    with pytest.raises(BundleError, match='exported for 64x64'):
        bundle.preprocess([dict(image=np.zeros((80, 80, 3)), text='hi')])
    with pytest.raises(BundleError, match='text must be a string'):
        bundle.preprocess([dict(image=np.zeros((64, 64, 3)), text=3)])


def test_numpy_nms_matches_torchvision():
    from torchvision.ops import batched_nms

    from mmfusion.deployment.bundle_runner import _batched_nms

    gen = torch.Generator().manual_seed(0)
    xy = torch.rand(200, 2, generator=gen) * 50
    boxes = torch.cat([xy, xy + 5 + torch.rand(200, 2, generator=gen) * 20], dim=1)
    scores = torch.rand(200, generator=gen)
    labels = torch.randint(0, 3, (200, ), generator=gen)
    want = batched_nms(boxes, scores, labels, 0.5).numpy()
    got = _batched_nms(boxes.numpy(), scores.numpy(), labels.numpy(), 0.5)
    assert 10 < len(want) < 200
    np.testing.assert_array_equal(got, want)


def test_unknown_format_is_a_config_error(vqa, tmp_path):
    from mmfusion.deployment.export import export_graph
    from mmfusion.errors import ConfigError

    model, _, _ = vqa
    with pytest.raises(ConfigError, match='--format must be one of'):
        export_graph(model, (), 'tflite', str(tmp_path / 'm'))


@pytest.mark.slow
@pytest.mark.timeout(900)
@pytest.mark.parametrize('fmt', ['torch.export', 'torchscript'])
def test_tool_exports_torch_formats(mmshapes_root, tmp_path, fmt):
    from conftest import PYTHON, run_tool, small_cfg

    cfg = small_cfg(VQA, mmshapes_root, str(tmp_path), max_epochs=1)
    out = str(tmp_path / 'bundle')
    proc = run_tool([PYTHON, osp.join(REPO_ROOT, 'tools/deployment/export.py'), cfg, 'none',
                     '--format', fmt, '--out', out, '--batch-size', '8'],
                    env=dict(PYTHONPATH=REPO_ROOT))
    assert 'OK' in proc.stdout
    graph = {'torch.export': 'model.pt2', 'torchscript': 'model.ts'}[fmt]
    assert osp.isfile(osp.join(out, graph))


@pytest.mark.slow
@pytest.mark.timeout(900)
@pytest.mark.parametrize('config', ['configs/detection/mmshapes_rgbd_det.py',
                                    'configs/segmentation/mmshapes_ref_seg.py',
                                    'configs/classification/mmshapes_av.py'])
def test_dense_and_audio_bundles_keep_parity(mmshapes_root, config):
    from mmfusion.deployment.bundle_runner import Bundle

    model, result, _ = exported(config, mmshapes_root)
    assert result['passed'], result
    assert result['end_to_end_diff'] is not None and result['end_to_end_diff'] < 1e-3
    bundle = Bundle(result['out_dir'])
    if bundle.task == 'detection':
        assert len(bundle.spec['outputs']) == 3 * len(model.head.strides)
