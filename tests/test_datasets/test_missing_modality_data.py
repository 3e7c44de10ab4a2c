"""Missing modalities in the data pipeline: datasets that allow them, the
removal transforms, and PackMultiModalInputs' modality mask."""
import json
import os.path as osp

import numpy as np
import pytest
from mmengine.dataset import pseudo_collate

from mmfusion.datasets import ListClsDataset, VQAv2Dataset
from mmfusion.datasets.transforms import (
    IfModalityPresent,
    LoadImageFromFile,
    ModalityDropout,
    PackMultiModalInputs,
    RemoveModality,
)
from mmfusion.datasets.transforms.modality import with_modalities_removed
from mmfusion.errors import AnnotationError, ConfigError
from mmfusion.utils import register_all_modules

register_all_modules()


def write_jsonl(path, rows):
    with open(path, 'w') as f:
        for row in rows:
            f.write(json.dumps(row) + '\n')
    return str(path)


ROWS = [dict(text='a red circle', vector=[1.0, 2.0], label=0),
        dict(vector=[3.0, 4.0], label=1),
        dict(text='two squares', label=1)]


def test_row_without_a_modality_names_the_row_and_field_by_default(tmp_path):
    ann = write_jsonl(tmp_path / 'train.jsonl', ROWS)
    with pytest.raises(AnnotationError,
                       match=r'line 2 \(sample 1\): missing "text".*allow_missing_modalities'):
        ListClsDataset(ann_file=ann, data_root='', pipeline=[])


def test_allowed_missing_modalities_are_listed_per_sample(tmp_path):
    ann = write_jsonl(tmp_path / 'train.jsonl', ROWS)
    ds = ListClsDataset(ann_file=ann, data_root='', pipeline=[], allow_missing_modalities=True,
                        serialize_data=False)
    assert 'missing_modalities' not in ds.get_data_info(0)
    assert ds.get_data_info(1)['missing_modalities'] == ['text']
    assert ds.get_data_info(2)['missing_modalities'] == ['vector']


def test_allow_missing_modalities_must_be_a_bool(tmp_path):
    ann = write_jsonl(tmp_path / 'train.jsonl', ROWS)
    with pytest.raises(ConfigError, match='allow_missing_modalities must be True or False'):
        ListClsDataset(ann_file=ann, data_root='', pipeline=[], allow_missing_modalities='yes')


def test_rows_without_text_collate_with_a_mask_instead_of_a_key_error(tmp_path):
    ann = write_jsonl(tmp_path / 'train.jsonl', ROWS)
    pack = dict(type='PackMultiModalInputs', inputs=dict(text='text', vector='vector'))
    ds = ListClsDataset(ann_file=ann, data_root='', pipeline=[pack],
                        allow_missing_modalities=True, serialize_data=False)
    batch = pseudo_collate([ds[i] for i in range(3)])
    assert batch['inputs']['text'] == ['a red circle', None, 'two squares']
    assert batch['inputs']['vector'][2] is None
    masks = [s.modality_mask for s in batch['data_samples']]
    assert masks == [dict(text=True, vector=True), dict(text=False, vector=True),
                     dict(text=True, vector=False)]
    assert not batch['data_samples'][1].has_modality('text')


def test_vqa_question_without_its_image(tmp_path):
    (tmp_path / 'img').mkdir()
    from PIL import Image
    Image.new('RGB', (8, 8)).save(tmp_path / 'img' / '1.png')
    questions = dict(questions=[dict(image_id=1, question='what?', question_id=10),
                                dict(image_id=2, question='which?', question_id=11)])
    (tmp_path / 'q.json').write_text(json.dumps(questions))
    kwargs = dict(question_file='q.json', data_root=str(tmp_path),
                  data_prefix=dict(img_path='img'), img_file_template='{image_id}.png',
                  test_mode=True, serialize_data=False)
    with pytest.raises(AnnotationError, match='img_path'):
        VQAv2Dataset(pipeline=[], **kwargs)
    pipeline = [dict(type='LoadImageFromFile'),
                dict(type='PackMultiModalInputs', inputs=dict(image='img', text='question'))]
    ds = VQAv2Dataset(pipeline=pipeline, allow_missing_modalities=True, **kwargs)
    assert ds.get_data_info(1)['missing_modalities'] == ['image']
    present, missing = ds[0], ds[1]
    assert tuple(present['inputs']['image'].shape) == (3, 8, 8)
    assert missing['inputs']['image'] is None and missing['inputs']['text'] == 'which?'
    assert missing['data_samples'].modality_mask == dict(image=False, text=True)


def results():
    return dict(img=np.zeros((4, 4, 3), np.uint8), img_path='a.png',
                audio=np.ones((100, 64), np.float32), gt_label=[1])


def test_remove_modality_drops_the_data_and_packs_a_mask():
    out = RemoveModality(['image'])(results())
    assert 'img' not in out and out['img_path'] == 'a.png'
    assert out['missing_modalities'] == ['image']
    packed = PackMultiModalInputs(inputs=dict(image='img', audio='audio'))(out)
    assert packed['inputs']['image'] is None
    assert tuple(packed['inputs']['audio'].shape) == (1, 100, 64)
    assert packed['data_samples'].modality_mask == dict(image=False, audio=True)


def test_remove_a_modality_the_sample_does_not_have_names_it():
    with pytest.raises(ConfigError, match=r"modality 'text' \(results key 'text'\)"):
        RemoveModality(['text'])(results())


def test_pack_names_a_key_the_sample_lacks():
    r = results()
    del r['audio']
    with pytest.raises(ConfigError, match="modality 'audio' to results key 'audio'"):
        PackMultiModalInputs(inputs=dict(image='img', audio='audio'))(r)


def test_modality_dropout_rates_and_never_all():
    np.random.seed(0)
    drop = ModalityDropout(['image', 'audio'], prob=dict(image=0.3, audio=0.6))
    n = 4000
    dropped = [drop(results()).get('missing_modalities', []) for _ in range(n)]
    assert all(len(d) < 2 for d in dropped)
    image = sum('image' in d for d in dropped) / n
    audio = sum('audio' in d for d in dropped) / n
    # P(drop image only) = 0.3 * 0.4 + half of P(both) = 0.12 + 0.09
    assert abs(image - 0.21) < 0.03 and abs(audio - 0.51) < 0.03


def test_modality_dropout_of_one_listed_modality_keeps_the_others():
    np.random.seed(0)
    drop = ModalityDropout(['audio'], prob=0.25)
    dropped = [drop(results()) for _ in range(2000)]
    assert all('img' in r for r in dropped)
    rate = sum('audio' in r.get('missing_modalities', []) for r in dropped) / len(dropped)
    assert abs(rate - 0.25) < 0.03
    # a sample whose only other modality is already missing keeps its sound
    r = RemoveModality(['image'])(results())
    assert 'audio' in ModalityDropout(['audio'], prob=1.0)(r)


def test_modality_dropout_probability_checks():
    with pytest.raises(ConfigError, match=r"prob\['audio'\] must be in \[0, 1\]"):
        ModalityDropout(['image', 'audio'], prob=dict(image=0.1, audio=1.5))
    with pytest.raises(ConfigError, match='one probability per modality'):
        ModalityDropout(['image', 'audio'], prob=dict(image=0.1))


def test_if_modality_present_skips_transforms_of_a_missing_modality(tmp_path):
    from PIL import Image
    Image.new('RGB', (6, 6)).save(tmp_path / 'x.png')
    wrapped = IfModalityPresent('image', [dict(type='LoadImageFromFile'),
                                          dict(type='Resize', scale=(4, 4))])
    out = wrapped(dict(img_path=str(tmp_path / 'x.png')))
    assert out['img'].shape[:2] == (4, 4)
    out = wrapped(dict(img_path=None))
    assert 'img' not in out and out['missing_modalities'] == ['image']
    # the image loader itself leaves a sample marked missing alone
    assert LoadImageFromFile()(dict(missing_modalities=['image'])) == dict(
        missing_modalities=['image'])


def test_with_modalities_removed_inserts_before_pack_with_its_keys():
    pipeline = [dict(type='LoadImageFromFile'),
                dict(type='PackMultiModalInputs', inputs=dict(image='img', text='question'))]
    out = with_modalities_removed(pipeline, ['text'])
    assert out[1] == dict(type='RemoveModality', modalities=['text'],
                          keys=dict(text='question'))
    assert out[2]['type'] == 'PackMultiModalInputs' and len(pipeline) == 2
    with pytest.raises(ConfigError, match=r"cannot remove \['audio'\]"):
        with_modalities_removed(pipeline, ['audio'])
    with pytest.raises(ConfigError, match='no PackMultiModalInputs'):
        with_modalities_removed(pipeline[:1], ['image'])


def test_test_tool_removes_a_modality_from_the_test_pipeline():
    """``tools/test.py --remove-modality`` edits the test pipeline only."""
    import importlib.util

    from mmengine.config import Config
    spec = importlib.util.spec_from_file_location(
        'test_tool', osp.join(osp.dirname(__file__), '..', '..', 'tools', 'test.py'))
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    cfg = Config.fromfile(osp.join(osp.dirname(__file__), '..', '..', 'configs',
                                   'classification', 'mmshapes_av.py'))
    tool.remove_test_modalities(cfg, ['image'])
    types = [t['type'] for t in cfg.test_dataloader.dataset.pipeline]
    assert types[-2:] == ['RemoveModality', 'PackMultiModalInputs']
    assert 'RemoveModality' not in [t['type'] for t in cfg.train_dataloader.dataset.pipeline]
