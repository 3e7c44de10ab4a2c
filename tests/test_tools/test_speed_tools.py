"""The speed tools: fusion_speed.py (library fusions against plain formula
references) and pipeline_speed.py (mmfusion's image pipeline against a plain
torchvision one). They are run on tiny settings; what is checked is what they
compute besides time: equal parameter counts, agreeing outputs, the same
decoded pixels, and complete tables."""
import importlib.util
import os.path as osp

import pytest
import torch
from conftest import REPO_ROOT


def load_tool(name: str):
    path = osp.join(REPO_ROOT, 'tools', 'analysis_tools', f'{name}.py')
    spec = importlib.util.spec_from_file_location(f'_tool_{name}', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_fusion_speed_references_match_the_library(tmp_path):
    """Each reference formula has the library module's parameter count and
    output; the changed kernels (BLOCK, LMF) and Tucker's two forms included."""
    tool = load_tool('fusion_speed')
    names = ['BLOCKFusion', 'LowRankTensorFusion', 'TuckerFusion', 'MUTANFusion', 'MFHFusion',
             'GMUFusion', 'FiLMFusion']
    out = tmp_path / 'table.md'
    rows = tool.main(['--batch', '4', '--reps', '1', '--inner', '1', '--vector-only',
                      '--only', *names, '--out', str(out)])
    assert sorted({r['name'].split('(')[0] for r in rows}) == sorted(names)
    assert any(r['name'] == 'TuckerFusion(core_dim=64)' for r in rows)
    for row in rows:
        assert row['params'] == row['ref_params'], row['name']
        assert row['diff'] < 1e-5, row['name']
        assert row['saved'] > 0 and row['fb_1'] > 0 and row['f_ref_1'] > 0
    text = out.read_text()
    assert all(f'| {r["name"]} |' in text for r in rows)


def test_fusion_speed_reference_catches_a_different_formula(monkeypatch):
    """A module whose output differs from its reference fails the tool."""
    tool = load_tool('fusion_speed')

    class Wrong(tool.RefMLB):
        def forward(self, x1, x2):  # tanh dropped from one factor
            joint = torch.tanh(torch.nn.functional.linear(x1, self.u, self.bu)) \
                * torch.nn.functional.linear(x2, self.v, self.bv)
            return torch.nn.functional.linear(joint, self.wo, self.bo)

    monkeypatch.setitem(tool.REFERENCES, 'MLBFusion', Wrong)
    with pytest.raises(SystemExit, match='MLBFusion'):
        tool.main(['--batch', '2', '--reps', '1', '--inner', '1', '--vector-only',
                   '--only', 'MLBFusion'])


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_fusion_speed_times_token_and_spatial_fusions():
    tool = load_tool('fusion_speed')
    rows = tool.main(['--batch', '16', '--reps', '1', '--inner', '1',
                      '--only', 'SpatialSumFusion', 'CrossAttentionFusion'])
    assert {r['name']: r['form'] for r in rows} == {
        'CrossAttentionFusion': 'token', 'SpatialSumFusion': 'spatial'}
    assert all(r['fb_1'] > 0 and r['ref_params'] is None for r in rows)


def test_pipeline_speed_compares_the_same_pixels(mmshapes_root):
    """Both pipelines read the same JPEG files and decode the same image
    (mmfusion's BGR HWC turned RGB CHW); a row per worker count."""
    tool = load_tool('pipeline_speed')
    rows = tool.main([osp.join(REPO_ROOT, 'configs/vqa/mmshapes_vqa_224.py'),
                      '--data-root', mmshapes_root, '--size', '64', '--num-images', '16',
                      '--batch-size', '8', '--workers', '0', '--reps', '1',
                      '--cfg-options', 'train_dataloader.dataset.mmshapes.img_size=64',
                      'train_dataloader.dataset.mmshapes.num_train=48',
                      'train_dataloader.dataset.mmshapes.num_val=16'])
    assert [r['workers'] for r in rows] == [0]
    assert rows[0]['mmfusion'] > 0 and rows[0]['plain'] > 0
    assert rows[0]['pixel_diff'] < 2.0  # the same JPEG, two libjpeg-turbo decoders
    # images/s counts samples, not the modalities of pseudo_collate's inputs dict
    from mmengine.dataset import pseudo_collate
    sample = dict(inputs=dict(image=torch.zeros(3, 2, 2), text='q'), data_samples=object())
    assert tool.images_in(pseudo_collate([sample] * 5)) == 5
    assert tool.images_in([torch.zeros(3, 2, 2)] * 4) == 4


def test_benchmark_interleaves_the_three_loops(mmshapes_root):
    """benchmark.py times end-to-end, compute-only and pipeline chunks in turn
    inside one Runner run: each gets exactly its share of timed samples."""
    import re

    from conftest import PYTHON, run_tool
    proc = run_tool([PYTHON, 'tools/analysis_tools/benchmark.py', 'configs/vqa/mmshapes_vqa.py',
                     '--warmup', '3', '--iters', '4', '--chunk', '2', '--clock', 'cpu',
                     '--data-root', mmshapes_root, '--cfg-options',
                     'train_dataloader.batch_size=8'], env=dict(OMP_NUM_THREADS='1'))
    assert 'interleaved in chunks of 2' in proc.stdout
    rates = {name: float(value) for name, value in
             re.findall(r'^(end-to-end training|compute-only bound|data pipeline alone)\s*:\s*'
                        r'([\d.]+) samples/s', proc.stdout, re.M)}
    assert len(rates) == 3 and all(v > 0 for v in rates.values()), proc.stdout
    ratio = float(re.search(r'end-to-end / compute-only = ([\d.]+)', proc.stdout).group(1))
    assert ratio == pytest.approx(rates['end-to-end training'] / rates['compute-only bound'],
                                  rel=0.01)

    with pytest.raises(AssertionError, match='--chunk must be >= 1 and divide --iters 5'):
        run_tool([PYTHON, 'tools/analysis_tools/benchmark.py', 'configs/vqa/mmshapes_vqa.py',
                  '--iters', '5', '--chunk', '2'])
