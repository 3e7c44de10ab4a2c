"""tools/analysis_tools/robustness.py and explain.py end to end on the small
MMShapes copy, with a randomly initialised audio-visual quick-start model."""
import importlib.util
import json
import os.path as osp

import pytest
import torch
from conftest import REPO_ROOT, small_cfg


def _tool(name):
    spec = importlib.util.spec_from_file_location(
        name, osp.join(REPO_ROOT, 'tools', 'analysis_tools', f'{name}.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope='module')
def av_checkpoint(mmshapes_root, tmp_path_factory):
    from mmfusion.apis import init_model

    tmp = tmp_path_factory.mktemp('av')
    cfg = small_cfg('configs/classification/mmshapes_av.py', mmshapes_root, str(tmp))
    torch.manual_seed(0)
    model = init_model(cfg, None)
    ckpt = str(tmp / 'random.pth')
    torch.save(dict(state_dict=model.state_dict(), meta={}), ckpt)
    return cfg, ckpt, tmp


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_robustness_tool(av_checkpoint):
    cfg, ckpt, tmp = av_checkpoint
    tool = _tool('robustness')
    out = str(tmp / 'rob')
    args = [cfg, ckpt, '--work-dir', out, '--levels', '0', '10', '--corruptions', 'blur',
            'white_noise', '--eps', '0', '0.03', '--l2-eps', '0', '0.02', '--norms', 'linf',
            'l2', '--steps', '2']
    res = tool.main(args)
    for f in ('robustness.json', 'robustness.png', 'robustness.txt'):
        assert osp.isfile(osp.join(out, f))
    clean = res['clean'][res['metric']]
    assert set(res['curves']) == {'image/blur', 'audio/white_noise', 'image/fgsm_linf',
                                  'image/fgsm_l2', 'image/pgd_linf', 'image/pgd_l2',
                                  'audio/fgsm_linf', 'audio/fgsm_l2', 'audio/pgd_linf',
                                  'audio/pgd_l2'}
    for c in res['curves'].values():
        assert c['values'][0] == clean and len(c['values']) == 2
    assert set(res['missing']) == {'image', 'audio'} and res['missing_mode'] == 'mask'
    # against itself, the effective robustness is zero
    again = tool.main(args[:3] + [str(tmp / 'rob2')] + args[4:] + [
        '--skip', 'attack', 'missing', '--reference', osp.join(out, 'robustness.json')])
    assert again['curves']['image/blur']['er'] == pytest.approx(0.0)
    with open(osp.join(out, 'robustness.json')) as f:
        assert json.load(f)['metric'] == res['metric']


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_explain_tool(av_checkpoint):
    cfg, ckpt, tmp = av_checkpoint
    out = str(tmp / 'explain')
    res = _tool('explain').main([cfg, ckpt, '--work-dir', out, '--show', '2', '--ig-steps', '8',
                                 '--methods', 'cam', 'attention', 'ig', 'contributions'])
    c = res['contributions']
    assert c['missing_mode'] == 'mask'
    assert abs(c['efficiency_gap']) < 1e-6
    assert sum(c['shapley_split'].values()) == pytest.approx(c['full'] - c['none'])
    assert c['per_sample_efficiency_max_gap'] < 1e-4
    assert osp.isfile(osp.join(out, 'contributions.png'))
    assert osp.isfile(osp.join(out, 'cam', '0_image.png'))
    assert osp.isfile(osp.join(out, 'ig', '0.png'))


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_explain_tool_on_one_input_of_ones_own(av_checkpoint, mmshapes_root):
    import glob
    cfg, ckpt, tmp = av_checkpoint
    image = sorted(glob.glob(osp.join(mmshapes_root, 'images', 'val', '*.png')))[0]
    audio = sorted(glob.glob(osp.join(mmshapes_root, 'audio', 'val', '*.wav')))[0]
    out = str(tmp / 'one')
    res = _tool('explain').main([cfg, ckpt, '--work-dir', out, '--input', f'image={image}',
                                 '--input', f'audio={audio}', '--methods', 'cam', 'ig'])
    assert res['num_samples'] == 1
    assert osp.isfile(osp.join(out, 'cam', '0_image.png'))
    assert osp.isfile(osp.join(out, 'ig', '0.png'))
    with pytest.raises(SystemExit):  # contributions need the split's ground truth
        _tool('explain').main([cfg, ckpt, '--work-dir', out, '--input', f'image={image}',
                               '--methods', 'contributions'])
