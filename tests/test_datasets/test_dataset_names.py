"""Dataset names follow <Format><Task>Dataset; the old names still build, with
a deprecation warning naming the new one."""
import logging
import re
import warnings

import pytest

import mmfusion.datasets as datasets
from mmfusion.datasets import deprecated
from mmfusion.datasets.mmshapes import SHAPES
from mmfusion.registry import DATASETS

# old name -> (new name, arguments that build it on the small MMShapes copy)
RENAMED = {
    'MultiModalClsDataset': ('ListClsDataset', dict(
        ann_file='classification/train_av.jsonl', classes=SHAPES)),
    'CocoMultiModalDataset': ('CocoDetDataset', dict(
        ann_file='annotations/instances_train.json')),
    'SegMultiModalDataset': ('ListSegDataset', dict(
        ann_file='annotations/instances_train.json', seg_map_key='sem_mask_file',
        classes=('background', ) + SHAPES)),
    'RefSegDataset': ('CocoRefSegDataset', dict(
        ann_file='annotations/instances_train.json', refs_file='annotations/refs_train.json',
        inst_map_key='inst_mask_file')),
}
NAME_RULE = re.compile(r'(Coco|List|MMShapes)(Cls|Det|Seg|RefSeg|VQA|Caption)Dataset|VQAv2Dataset')
# wrappers over other datasets, named like MMEngine's (ConcatDataset, ClassBalancedDataset)
DATASET_WRAPPERS = {'MultiTaskDataset', 'MultiModalClassBalancedDataset'}


def _samples(dataset) -> list:
    return [dataset.get_data_info(i) for i in range(len(dataset))]


def _build(name: str, args: dict, root: str):
    return DATASETS.build(dict(type=name, data_root=root, pipeline=[], **args))


@pytest.mark.parametrize('old_name', sorted(RENAMED))
def test_old_name_builds_the_same_and_warns_once(old_name, mmshapes_root, monkeypatch):
    new_name, args = RENAMED[old_name]
    logged = []
    monkeypatch.setattr(deprecated, 'print_log',
                        lambda msg, logger=None, level=logging.INFO: logged.append((msg, level)))
    with pytest.warns(DeprecationWarning) as record:
        old = _build(old_name, args, mmshapes_root)
    messages = [str(w.message) for w in record if issubclass(w.category, DeprecationWarning)]
    assert len(messages) == 1
    assert f"'{old_name}' is deprecated" in messages[0]
    assert f"type='{new_name}'" in messages[0]
    assert logged == [(messages[0], logging.WARNING)]

    new_cls = DATASETS.get(new_name)
    assert isinstance(old, new_cls)
    assert type(old).__name__ == old_name  # messages keep naming what the config says
    new = _build(new_name, args, mmshapes_root)
    assert len(old) == len(new) > 0
    assert _samples(old) == _samples(new)
    assert old.metainfo == new.metainfo


@pytest.mark.parametrize('name', sorted(new for new, _ in RENAMED.values()))
def test_new_names_build_without_warning(name, mmshapes_root):
    args = next(args for new, args in RENAMED.values() if new == name)
    with warnings.catch_warnings():
        warnings.simplefilter('error', DeprecationWarning)
        dataset = _build(name, args, mmshapes_root)
    assert type(dataset) is DATASETS.get(name) and len(dataset) > 0


def test_old_python_names_are_the_aliases():
    for old_name, (new_name, _) in RENAMED.items():
        alias = getattr(datasets, old_name)
        assert alias is DATASETS.get(old_name)
        assert issubclass(alias, getattr(datasets, new_name))
        assert old_name in datasets.__all__ and new_name in datasets.__all__


def test_every_dataset_name_follows_the_rule():
    names = {name for name, cls in DATASETS.module_dict.items()
             if cls.__module__.startswith('mmfusion.datasets')
             and cls.__module__ != deprecated.__name__}
    assert names >= {new for new, _ in RENAMED.values()} | {
        'CocoSegDataset', 'VQAv2Dataset', 'MMShapesClsDataset', 'MMShapesDetDataset',
        'MMShapesSegDataset', 'MMShapesVQADataset'}
    assert [n for n in sorted(names - DATASET_WRAPPERS) if not NAME_RULE.fullmatch(n)] == []
    assert set(deprecated.RENAMED_DATASETS) == set(RENAMED)
