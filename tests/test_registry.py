"""Registries, register_all_modules and config resolution."""
import os.path as osp

import pytest
from conftest import REPO_ROOT

import mmfusion
from mmfusion import registry
from mmfusion.utils import register_all_modules


def test_registries_are_scoped_children_of_mmengine():
    from mmengine.registry import MODELS as ROOT_MODELS

    assert registry.MODELS.scope == 'mmfusion'
    assert registry.MODELS.parent is ROOT_MODELS
    assert registry.TOKENIZERS.scope == 'mmfusion'


def test_register_all_modules_finds_each_family():
    register_all_modules()
    expected = {
        registry.MODELS: ['MultiModalClassifier', 'MultiModalDataPreprocessor', 'TimmEncoder',
                          'HFTextEncoder', 'ConcatFusion', 'MFBFusion',
                          'TopDownAttentionFusion', 'VQAHead', 'CrossEntropyLoss'],
        registry.DATASETS: ['VQAv2Dataset', 'MMShapesVQADataset'],
        registry.TRANSFORMS: ['PackMultiModalInputs'],
        registry.METRICS: ['VQAAccuracy'],
        registry.HOOKS: ['EpochSeedHook', 'SaveVocabularyHook', 'PlainCheckpointHook',
                         'CheckpointHook', 'BadSampleReportHook'],
        registry.TOKENIZERS: ['WordLevelTokenizer', 'HFTokenizer'],
    }
    for reg, names in expected.items():
        for name in names:
            assert reg.get(name) is not None, f'{name} missing from {reg.name}'


def test_mmcv_and_mmengine_components_resolve_through_the_parent():
    register_all_modules()
    assert registry.TRANSFORMS.get('LoadImageFromFile') is not None  # mmcv
    assert registry.OPTIMIZERS.get('AdamW') is not None  # torch via mmengine
    assert registry.HOOKS.get('IterTimerHook') is not None  # mmengine
    # mmfusion's atomic CheckpointHook shadows MMEngine's under the same name
    from mmfusion.engine import CheckpointHook
    assert registry.HOOKS.get('CheckpointHook') is CheckpointHook


def test_mmfusion_prefix_resolves_configs_from_the_package():
    from mmengine.config import Config

    cfg = Config.fromfile(osp.join(REPO_ROOT, 'projects', 'example_project', 'configs',
                                   'mmshapes_vqa_product.py'), import_custom_modules=False)
    assert cfg.model.type == 'MultiModalClassifier'
    with pytest.raises(FileNotFoundError, match='no config'):
        from mmengine.config.config import _get_external_cfg_path
        _get_external_cfg_path(osp.dirname(mmfusion.__file__), 'vqa/does_not_exist.py')
