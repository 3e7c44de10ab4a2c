"""ListClsDataset (JSON lines / CSV lists) and the MMShapes classification tasks."""
import json
import os.path as osp

import pytest

from mmfusion.datasets import ListClsDataset, MMShapesClsDataset
from mmfusion.errors import AnnotationError


def write(path, text):
    with open(path, 'w', encoding='utf-8') as f:
        f.write(text)
    return str(path)


def test_jsonl_rows_with_names_indices_and_relative_paths(tmp_path):
    rows = [dict(img_path='images/1.png', text='a red circle.', label='match'),
            dict(img_path='/abs/2.png', audio_path='audio/2.wav', label=0, note='kept')]
    write(tmp_path / 'train.jsonl', '\n'.join(json.dumps(r) for r in rows) + '\n\n')
    ds = ListClsDataset('train.jsonl', data_root=str(tmp_path),
                              classes=['mismatch', 'match'], check_files=False,
                              allow_missing_modalities=True)
    assert len(ds) == 2
    first, second = ds.get_data_info(0), ds.get_data_info(1)
    assert first['img_path'] == osp.join(str(tmp_path), 'images/1.png')
    assert first['gt_label'] == [1] and first['text'] == 'a red circle.'
    assert second['img_path'] == '/abs/2.png'
    assert second['audio_path'] == osp.join(str(tmp_path), 'audio/2.wav')
    assert second['gt_label'] == [0] and second['note'] == 'kept'
    assert ds.metainfo['classes'] == ('mismatch', 'match')


def test_csv_multi_label_and_vectors(tmp_path):
    write(tmp_path / 'classes.txt', 'red\ngreen\nblue\n')
    write(tmp_path / 'list.csv', 'vector,text,labels\n0.5 1 -2,hello,blue|red\n1 2 3,,green\n')
    ds = ListClsDataset(str(tmp_path / 'list.csv'), classes=str(tmp_path / 'classes.txt'),
                              multi_label=True, allow_missing_modalities=True)
    assert ds.get_data_info(0)['gt_label'] == [0, 2]
    assert ds.get_data_info(0)['vector'] == [0.5, 1.0, -2.0]
    assert 'text' not in ds.get_data_info(1)  # empty CSV cells are absent, not ''
    assert ds.get_data_info(1)['gt_label'] == [1]


@pytest.mark.parametrize('content, kwargs, match', [
    ('{"text": "a", "label": 0}\n{not json\n', {}, r'line 2 \(sample 1\): not valid JSON'),
    ('[1, 2]\n', {}, r'line 1 \(sample 0\): found \[1, 2\] \(list\); expected a JSON object'),
    ('', {}, 'holds no samples'),
    ('{"label": 0}\n', {}, r'line 1 \(sample 0\): no modality'),
    ('{"text": "a"}\n', {}, r'line 1 \(sample 0\): missing "label"'),
    ('{"text": "a", "label": "dog"}\n', dict(classes=['cat']), r"unknown class 'dog'"),
    ('{"text": "a", "label": "dog"}\n', {}, 'has no classes'),
    ('{"text": "a", "label": 3}\n', dict(classes=['a', 'b']), 'label 3 is out of range'),
    ('{"text": "a", "labels": 1}\n', dict(multi_label=True),
     r'labels is 1 \(int\); expected a list'),
])
def test_bad_list_files_name_the_file_and_row(tmp_path, content, kwargs, match):
    path = write(tmp_path / 'bad.jsonl', content)
    with pytest.raises(AnnotationError, match=match) as info:
        ListClsDataset(path, **kwargs)
    assert 'bad.jsonl' in str(info.value)


def test_missing_list_file_is_named(tmp_path):
    with pytest.raises(AnnotationError, match='ann_file not found: .*nowhere.jsonl'):
        ListClsDataset(str(tmp_path / 'nowhere.jsonl'))


def test_test_mode_allows_unlabelled_rows(tmp_path):
    path = write(tmp_path / 'test.jsonl', '{"text": "hi"}\n')
    ds = ListClsDataset(path, test_mode=True)
    assert 'gt_label' not in ds.get_data_info(0)


@pytest.mark.parametrize('task, num_classes, per_image', [('itm', 2, 2), ('av', 3, 1),
                                                          ('multilabel', 6, 1)])
def test_mmshapes_tasks(mmshapes_root, task, num_classes, per_image):
    from conftest import SMALL_MMSHAPES
    ds = MMShapesClsDataset(task=task, split='val', data_root=mmshapes_root,
                            mmshapes=SMALL_MMSHAPES)
    assert len(ds) == SMALL_MMSHAPES['num_val'] * per_image
    assert len(ds.metainfo['classes']) == num_classes
    labels = [label for i in range(len(ds)) for label in ds.get_data_info(i)['gt_label']]
    assert set(labels) <= set(range(num_classes))
    info = ds.get_data_info(0)
    assert osp.isfile(info['img_path'])
    if task == 'itm':  # every image has its caption and a false one
        assert [ds.get_data_info(i)['gt_label'] for i in (0, 1)] == [[1], [0]]
        assert ds.get_data_info(0)['img_path'] == ds.get_data_info(1)['img_path']
    if task == 'av':
        assert osp.isfile(info['audio_path'])


def test_mmshapes_rejects_unknown_task(mmshapes_root):
    with pytest.raises(ValueError, match="task must be one of"):
        MMShapesClsDataset(task='vqa', data_root=mmshapes_root)


def test_readme_list_file_config_builds(mmshapes_root, tmp_path):
    """The README's bring-your-own-data example: a list file and a config that
    inherits a shipped config through the mmfusion:: prefix."""
    from mmengine.config import Config

    from mmfusion.registry import DATASETS, MODELS
    from mmfusion.utils import register_all_modules

    rows = [dict(img_path=osp.join(mmshapes_root, f'images/val/{1000001 + i}.png'),
                 audio_path=osp.join(mmshapes_root, f'audio/val/{1000001 + i}.wav'),
                 text='a pet', label=('cat', 'dog')[i % 2]) for i in range(4)]
    for split in ('train', 'val'):
        write(tmp_path / f'{split}.jsonl', '\n'.join(json.dumps(r) for r in rows))
    config = write(tmp_path / 'pets.py', f'''
_base_ = 'mmfusion::classification/mmshapes_av.py'
classes = ['cat', 'dog']
train_dataloader = dict(dataset=dict(
    _delete_=True, type='ListClsDataset', data_root={str(tmp_path)!r},
    ann_file='train.jsonl', classes=classes, pipeline={{{{_base_.train_pipeline}}}}))
val_dataloader = dict(dataset=dict(
    _delete_=True, type='ListClsDataset', data_root={str(tmp_path)!r},
    ann_file='val.jsonl', classes=classes, pipeline={{{{_base_.test_pipeline}}}}))
test_dataloader = val_dataloader
model = dict(head=dict(num_classes=2))
''')
    register_all_modules()
    cfg = Config.fromfile(config)
    dataset = DATASETS.build(cfg.train_dataloader.dataset)
    sample = dataset[1]
    assert set(sample['inputs']) == {'image', 'audio'}
    assert sample['data_samples'].gt_label.tolist() == [1]
    model = MODELS.build(cfg.model)
    assert model.head.num_classes == 2
