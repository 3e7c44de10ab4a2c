"""Classification through the tools on a small MMShapes copy: train, test
(metrics.json with the classification metrics) and the fusion benchmark."""
import json
import os.path as osp

import pytest
from conftest import PYTHON, REPO_ROOT, run_tool, small_cfg


@pytest.mark.parametrize('config, modalities', [
    ('configs/classification/mmshapes_itm.py', 'image+text'),
    ('configs/classification/mmshapes_av.py', 'image+audio'),
    ('configs/classification/mmshapes_av_audio_only.py', 'audio'),
])
def test_train_and_test_write_classification_metrics(mmshapes_root, tmp_path, config,
                                                     modalities):
    work_dir = str(tmp_path)
    cfg = small_cfg(config, mmshapes_root, work_dir, max_epochs=1)
    run_tool([PYTHON, 'tools/train.py', cfg, '--work-dir', work_dir])
    out = osp.join(work_dir, 'test')
    proc = run_tool([PYTHON, 'tools/test.py', cfg, osp.join(work_dir, 'epoch_1.pth'),
                     '--work-dir', out])
    metrics = json.load(open(osp.join(out, 'metrics.json')))
    assert {'accuracy/top1', 'single-label/precision', 'single-label/recall',
            'single-label/f1-score'} <= set(metrics)
    assert all(0.0 <= v <= 100.0 for k, v in metrics.items() if k != 'single-label/mcc')
    assert 'accuracy/top1' in proc.stdout
    if modalities == 'image+audio':  # the inferencer takes file paths of every modality
        from mmfusion.apis import MultiModalInferencer
        from mmfusion.datasets import MMShapesClsDataset
        inferencer = MultiModalInferencer(cfg, osp.join(work_dir, 'epoch_1.pth'), device='cpu')
        infos = [MMShapesClsDataset(task='av', split='val', data_root=mmshapes_root,
                                    pipeline=[]).get_data_info(i) for i in range(3)]
        results = inferencer([dict(image=i['img_path'], audio=i['audio_path']) for i in infos])
        for r in results:
            assert len(r['pred_score']) == 3 and abs(sum(r['pred_score']) - 1) < 1e-5
            assert r['pred_label'] == max(range(3), key=lambda k: r['pred_score'][k])


def test_fusion_benchmark_tool_writes_a_table(mmshapes_root, tmp_path):
    configs = [small_cfg(f'configs/fusion_benchmark/{name}.py', mmshapes_root,
                         str(tmp_path / name), max_epochs=1)
               for name in ('mlb', 'perceiver')]
    out = str(tmp_path / 'table.md')
    proc = run_tool([PYTHON, 'tools/analysis_tools/fusion_benchmark.py', '--configs', *configs,
                     '--out', out, '--work-dir', str(tmp_path / 'runs')])
    rows = [line for line in open(out).read().splitlines() if line.startswith('| ')][1:]
    assert [row.split('|')[1].strip() for row in rows] == ['MLBFusion', 'PerceiverFusion']
    assert [row.split('|')[2].strip() for row in rows] == ['vector', 'token']
    for row in rows:
        cells = [c.strip() for c in row.split('|')[3:-1]]
        assert 0.0 <= float(cells[0]) <= 100.0 and float(cells[1]) >= float(cells[0])
        assert int(cells[2].replace(',', '')) > 0 and float(cells[3]) > 0
    assert 'majority-class val accuracy' in proc.stdout


@pytest.mark.slow
# three full trainings: the project-wide 900 s limit is for one tool run, not three
@pytest.mark.timeout(3 * 1800)
@pytest.mark.parametrize('config, baselines', [
    ('mmshapes_itm.py', ('mmshapes_itm_text_only.py', 'mmshapes_itm_image_only.py')),
    ('mmshapes_av.py', ('mmshapes_av_image_only.py', 'mmshapes_av_audio_only.py')),
])
def test_reaches_90_and_beats_every_unimodal_baseline_by_25(tmp_path, config, baselines):
    """The README's classification results (full schedules, default MMShapes, seed 0)."""
    scores = {}
    for name in (config, *baselines):
        work_dir = str(tmp_path / name)
        cfg = osp.join(REPO_ROOT, 'configs', 'classification', name)
        run_tool([PYTHON, osp.join(REPO_ROOT, 'tools', 'train.py'), cfg, '--work-dir', work_dir],
                 cwd=str(tmp_path), timeout=1800)
        last = open(osp.join(work_dir, 'last_checkpoint')).read().strip()
        run_tool([PYTHON, osp.join(REPO_ROOT, 'tools', 'test.py'), cfg, last,
                  '--work-dir', work_dir], cwd=str(tmp_path), timeout=600)
        scores[name] = json.load(open(osp.join(work_dir, 'metrics.json')))['accuracy/top1']
    assert scores[config] >= 90.0
    assert all(scores[config] - scores[b] >= 25.0 for b in baselines)
