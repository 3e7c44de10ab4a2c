"""Config mistakes explained: MMEngine's build errors translated on the real
registries, the modality check, and the tools' error reporting."""
import glob
import os.path as osp

import pytest
from conftest import REPO_ROOT
from mmengine.config import Config
from mmengine.registry import Registry

from mmfusion.apis import resolve_vocabularies
from mmfusion.datasets import MMShapesClsDataset
from mmfusion.errors import ConfigError
from mmfusion.models.fusion.gated import GMUFusion
from mmfusion.registry import DATASETS, MODELS, TOKENIZERS
from mmfusion.utils import register_all_modules
from mmfusion.utils.config_errors import (
    accepted_arguments,
    check_modalities,
    closest_names,
    explain_config_errors,
    format_key_path,
    registry_names,
    run_main,
    translate_build_error,
)

ITM = osp.join(REPO_ROOT, 'configs/classification/mmshapes_itm.py')
CONFIGS = sorted(p for p in glob.glob(osp.join(REPO_ROOT, 'configs', '*', '*.py'))
                 if '_base_' not in p)


@pytest.fixture(scope='module', autouse=True)
def registered():
    register_all_modules()


def itm_cfg(**options) -> Config:
    cfg = Config.fromfile(ITM)
    cfg.merge_from_dict(options)
    return cfg


def build_model(cfg: Config):
    with explain_config_errors(cfg):
        resolve_vocabularies(cfg)
        return MODELS.build(cfg.model)


# --------------------------------------------------------------------------
# Names and suggestions


def test_format_key_path():
    assert format_key_path(['model', 'fusion', 'type']) == 'model.fusion.type'
    assert format_key_path(['train_dataloader', 'dataset', 'pipeline', 1, 'inputs']) == \
        'train_dataloader.dataset.pipeline[1].inputs'
    assert format_key_path(['custom_hooks', 0]) == 'custom_hooks[0]'


def test_registry_names_cover_own_and_parent_scopes():
    names = registry_names(MODELS)
    assert names['GMUFusion'] == 'GMUFusion'  # mmfusion's own
    assert names['BaseDataPreprocessor'] == 'BaseDataPreprocessor'  # mmengine's, the parent
    assert 'WordLevelTokenizer' not in names  # another registry
    assert registry_names(TOKENIZERS)['WordLevelTokenizer'] == 'WordLevelTokenizer'


def test_registry_names_give_other_scopes_with_their_prefix():
    root = Registry('widget', scope='rootscope')
    ours = Registry('widget', parent=root, scope='ours')
    theirs = Registry('widget', parent=root, scope='theirs')
    root.register_module(name='RootWidget', module=object)
    ours.register_module(name='OurWidget', module=object)
    theirs.register_module(name='TheirWidget', module=object)
    assert registry_names(ours) == {'OurWidget': 'OurWidget', 'RootWidget': 'RootWidget',
                                    'TheirWidget': 'theirs.TheirWidget'}
    assert closest_names('TheirWidgt', registry_names(ours)) == ['theirs.TheirWidget']
    # from the root, every child scope needs its prefix
    assert registry_names(root)['OurWidget'] == 'ours.OurWidget'


def test_closest_names_keep_only_the_clear_candidates():
    names = registry_names(MODELS)
    assert closest_names('GMUFuson', names) == ['GMUFusion']
    assert closest_names('mmfusion.GMUFuson', names) == ['GMUFusion']
    assert closest_names('Xyzzy', names) == []


def test_accepted_arguments_follow_kwargs_up_the_mro():
    assert accepted_arguments(GMUFusion) == ['in_dims', 'out_dim', 'init_cfg']
    dataset_args = accepted_arguments(MMShapesClsDataset)
    assert 'task' in dataset_args  # its own
    assert 'pipeline' in dataset_args and 'lazy_init' in dataset_args  # BaseDataset's, via kwargs

    def function(a, b=1, *args, c, **kwargs):
        pass
    assert accepted_arguments(function) == ['a', 'b', 'c']


# --------------------------------------------------------------------------
# Translating MMEngine's build errors


def test_unknown_type_names_key_registry_and_suggestion():
    cfg = itm_cfg(**{'model.fusion.type': 'GMUFuson'})
    with pytest.raises(ConfigError) as info:
        build_model(cfg)
    message = str(info.value)
    assert message.startswith("model.fusion.type = 'GMUFuson': ")
    assert 'mmfusion::model registry' in message
    assert message.endswith("Did you mean 'GMUFusion'?")
    # chained to MMEngine's own error
    assert isinstance(info.value.__cause__, KeyError)
    assert 'GMUFuson is not in the mmfusion::model registry' in str(info.value.__cause__)


def test_unknown_type_in_a_nested_registry():
    # the tokenizer is built by the data preprocessor, from the TOKENIZERS registry
    cfg = itm_cfg(**{'model.data_preprocessor.text.tokenizer.type': 'WordLevelTokenizr'})
    with pytest.raises(ConfigError, match=r"model\.data_preprocessor\.text\.tokenizer\.type = "
                       r"'WordLevelTokenizr'.*mmfusion::tokenizer registry.*"
                       r"Did you mean 'WordLevelTokenizer'\?"):
        build_model(cfg)


def test_unknown_type_lists_every_key_that_sets_it():
    cfg = itm_cfg(**{f'{loader}.dataset.type': 'MMShapesClsDatset'
                     for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader')})
    with pytest.raises(ConfigError) as info:
        with explain_config_errors(cfg):
            DATASETS.build(cfg.val_dataloader.dataset)
    message = str(info.value)
    assert message.startswith('train_dataloader.dataset.type, val_dataloader.dataset.type and '
                              "test_dataloader.dataset.type = 'MMShapesClsDatset'")
    assert "Did you mean 'MMShapesClsDataset'?" in message


def test_unknown_type_without_a_close_name_says_how_to_register():
    cfg = itm_cfg(**{'model.head.type': 'Xyzzy'})
    with pytest.raises(ConfigError, match='custom_imports'):
        build_model(cfg)


def test_unexpected_argument_names_key_and_accepted_arguments():
    cfg = itm_cfg(**{'model.fusion.out_dimm': 256})
    with pytest.raises(ConfigError) as info:
        build_model(cfg)
    assert str(info.value) == (
        "model.fusion.out_dimm: MLBFusion takes no argument 'out_dimm'. Did you mean "
        "'out_dim'? MLBFusion takes: in_dims, out_dim, hidden_dim, dropout, init_cfg.")
    assert isinstance(info.value.__cause__, TypeError)


def test_unexpected_argument_passed_on_to_another_library():
    # TimmEncoder hands its extra arguments to timm's model
    cfg = itm_cfg(**{'model.encoders.image.model_nam': 'resnet18'})
    with pytest.raises(ConfigError) as info:
        build_model(cfg)
    message = str(info.value)
    assert message.startswith("model.encoders.image.model_nam: TimmEncoder passes 'model_nam' "
                              'on to ResNet, which does not take it.')
    assert "Did you mean 'model_name'?" in message


def test_missing_argument_names_the_component():
    cfg = itm_cfg()
    del cfg.model.head['num_classes']
    with pytest.raises(ConfigError) as info:
        build_model(cfg)
    assert str(info.value) == ("model.head: ClsHead needs an argument 'num_classes' that the "
                               'config does not set; set model.head.num_classes.')


def test_errors_that_are_not_config_mistakes_pass_unchanged():
    cfg = itm_cfg()
    # a type set by code, not written in the config
    with pytest.raises(KeyError, match='is not in the mmfusion::model registry') as info:
        with explain_config_errors(cfg):
            MODELS.build(dict(type='NotInTheConfig'))
    assert not isinstance(info.value, ConfigError)
    # a TypeError raised inside a component, not by the call that builds it
    cfg.model.head.num_classes = None
    with pytest.raises(TypeError, match="'<' not supported") as info:
        build_model(cfg)
    assert not isinstance(info.value, ConfigError)
    # errors outside any registry build
    with pytest.raises(KeyError) as info:
        with explain_config_errors(cfg):
            {}['missing']
    assert not isinstance(info.value, ConfigError)
    assert translate_build_error(cfg, ValueError('x')) is None


# --------------------------------------------------------------------------
# Modalities


@pytest.mark.parametrize('path', CONFIGS, ids=[osp.relpath(p, REPO_ROOT) for p in CONFIGS])
def test_every_shipped_config_passes_the_modality_check(path):
    cfg = Config.fromfile(path)
    check_modalities(cfg)  # raises ConfigError on a mismatch
    # and the check is live for this config: dropping an encoder is caught
    encoders = [m for m, enc in (cfg.model.get('encoders') or {}).items() if enc is not None]
    packs = [t for t in cfg.train_dataloader.dataset.get('pipeline', [])
             if t.get('type') == 'PackMultiModalInputs' and t.get('inputs')]
    if encoders and packs:
        cfg.model.encoders[encoders[0]] = None
        with pytest.raises(ConfigError, match=f"'{encoders[0]}' is packed but no encoder"):
            check_modalities(cfg, ('train_dataloader',))


def test_modality_packed_but_not_encoded():
    cfg = itm_cfg(**{'model.encoders.text': None})
    with pytest.raises(ConfigError) as info:
        check_modalities(cfg, ('train_dataloader',))
    assert str(info.value) == (
        'the data and the model disagree on modalities: train_dataloader.dataset.pipeline[1]'
        ".inputs packs ['image', 'text'] but model.encoders encodes ['image']. 'text' is packed "
        'but no encoder takes it: add model.encoders.text=dict(type=...), or remove '
        "'text' from the PackMultiModalInputs inputs.")


def test_modality_encoded_but_not_packed():
    cfg = itm_cfg()
    cfg.val_dataloader.dataset.pipeline[-1].inputs = dict(image='img')
    check_modalities(cfg, ('train_dataloader',))  # the train pipeline is right
    with pytest.raises(ConfigError) as info:
        check_modalities(cfg)
    message = str(info.value)
    assert "val_dataloader.dataset.pipeline[1].inputs packs ['image'] but model.encoders " \
        "encodes ['image', 'text']" in message
    assert 'train_dataloader' not in message and 'test_dataloader' not in message
    assert "'text' has an encoder but is not packed" in message
    assert 'model.encoders.text=None' in message


def test_modalities_inside_dataset_wrappers():
    cfg = itm_cfg(**{'model.encoders.text': None})
    cfg.train_dataloader.dataset = dict(type='RepeatDataset', times=2,
                                        dataset=cfg.train_dataloader.dataset)
    with pytest.raises(ConfigError, match=r'train_dataloader\.dataset\.dataset\.pipeline\[1\]'):
        check_modalities(cfg, ('train_dataloader',))


def test_modalities_not_checked_without_explicit_inputs_or_encoders():
    cfg = itm_cfg(**{'model.encoders.text': None})
    with pytest.raises(ConfigError):  # the mismatch below is real
        check_modalities(cfg)
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        # the default inputs pack whatever the results hold
        cfg[loader].dataset.pipeline[-1].inputs = None
    check_modalities(cfg)
    cfg = itm_cfg(**{'model.encoders.text': None})
    del cfg.model['encoders']
    check_modalities(cfg)


def test_dropped_encoder_and_matching_pipeline_pass():
    # the image-only ablation inherits the text encoder and drops it with None
    cfg = Config.fromfile(osp.join(REPO_ROOT, 'configs/classification/mmshapes_itm_image_only.py'))
    assert cfg.model.encoders.text is None
    check_modalities(cfg)


# --------------------------------------------------------------------------
# Inference API and the tools' entry point


def test_inferencer_applies_the_same_checks():
    from mmfusion.apis import MultiModalInferencer

    with pytest.raises(ConfigError, match=r"model\.fusion\.type = 'GMUFuson'"):
        MultiModalInferencer(itm_cfg(**{'model.fusion.type': 'GMUFuson'}), device='cpu')
    with pytest.raises(ConfigError, match=r'test_dataloader\.dataset\.pipeline\[1\]\.inputs'):
        MultiModalInferencer(itm_cfg(**{'model.encoders.text': None}), device='cpu')


def test_run_main_prints_mmfusion_errors_and_exits_1(capsys, monkeypatch):
    monkeypatch.delenv('MMFUSION_TRACEBACK', raising=False)

    def failing():
        raise ConfigError('model.fusion.type: bad')
    with pytest.raises(SystemExit) as info:
        run_main(failing)
    assert info.value.code == 1
    assert capsys.readouterr().err == 'mmfusion: error: model.fusion.type: bad\n'

    monkeypatch.setenv('MMFUSION_TRACEBACK', '1')
    with pytest.raises(ConfigError):
        run_main(failing)


def test_run_main_lets_other_errors_through(monkeypatch):
    monkeypatch.delenv('MMFUSION_TRACEBACK', raising=False)

    def buggy():
        raise ValueError('a bug')
    with pytest.raises(ValueError, match='a bug'):
        run_main(buggy)
    assert run_main(lambda: None) is None
