"""COCO-captions and JSON-lines caption datasets: one sample per caption in training,
one per item with all its captions in test mode, and clear errors."""
import json

import pytest

from mmfusion.errors import AnnotationError, ConfigError
from mmfusion.registry import DATASETS
from mmfusion.utils import register_all_modules

register_all_modules()


def _coco(tmp_path, images, anns, name='captions.json'):
    (tmp_path / 'imgs').mkdir(exist_ok=True)
    for img in images:
        (tmp_path / img['file_name']).write_bytes(b'')
    (tmp_path / name).write_text(json.dumps(dict(images=images, annotations=anns)))
    return name


def _build(type_, root, **kwargs):
    return DATASETS.build(dict(type=type_, data_root=str(root), pipeline=[], **kwargs))


def test_coco_captions_train_and_test_mode(tmp_path):
    ann = _coco(tmp_path, [dict(id=7, file_name='imgs/a.png'), dict(id=9, file_name='imgs/b.png')],
                [dict(id=1, image_id=9, caption='a dog. '),
                 dict(id=2, image_id=7, caption='a cat.'),
                 dict(id=3, image_id=9, caption='a brown dog.')])
    train = _build('CocoCaptionDataset', tmp_path, ann_file=ann)
    rows = [train.get_data_info(i) for i in range(len(train))]
    assert [(r['img_id'], r['text'], r['item_idx']) for r in rows] == [
        (7, 'a cat.', 0), (9, 'a dog.', 1), (9, 'a brown dog.', 1)]
    assert rows[1]['img_path'] == str(tmp_path / 'imgs/b.png')
    test = _build('CocoCaptionDataset', tmp_path, ann_file=ann, test_mode=True)
    assert len(test) == 2
    assert test.get_data_info(1)['captions'] == ['a dog.', 'a brown dog.']
    assert test.get_data_info(1)['text'] == 'a dog.'


def test_coco_captions_errors_name_the_file_and_entry(tmp_path):
    ann = _coco(tmp_path, [dict(id=1, file_name='imgs/a.png')],
                [dict(image_id=2, caption='x')], name='bad_ids.json')
    with pytest.raises(AnnotationError, match=r'bad_ids.json: annotations\[0\]: image_id 2'):
        _build('CocoCaptionDataset', tmp_path, ann_file=ann)
    ann = _coco(tmp_path, [dict(id=1, file_name='imgs/a.png')],
                [dict(image_id=1, caption='')], name='empty.json')
    with pytest.raises(AnnotationError, match=r'empty.json: annotations\[0\]: caption'):
        _build('CocoCaptionDataset', tmp_path, ann_file=ann)
    ann = _coco(tmp_path, [dict(id=1, file_name='imgs/missing.png')], [], name='none.json')
    (tmp_path / 'imgs/missing.png').unlink()
    with pytest.raises(AnnotationError, match='none.json: no captions'):
        _build('CocoCaptionDataset', tmp_path, ann_file=ann)
    with pytest.raises(ConfigError, match='path_field'):
        _build('CocoCaptionDataset', tmp_path, ann_file=ann, path_field='image')


def test_jsonl_captions_group_by_file(tmp_path):
    (tmp_path / 'a.png').write_bytes(b'')
    (tmp_path / 'b.png').write_bytes(b'')
    rows = [dict(img_path='a.png', text='one.', source='x'),
            dict(img_path='b.png', captions=['two.', 'deux.']),
            dict(img_path='a.png', text='uno.'),
            dict(img_path='b.png', text='false pair.', label=0)]
    (tmp_path / 'caps.jsonl').write_text('\n'.join(json.dumps(r) for r in rows[:3]) + '\n\n')
    train = _build('ListCaptionDataset', tmp_path, ann_file='caps.jsonl')
    assert [train.get_data_info(i)['text'] for i in range(len(train))] == [
        'one.', 'uno.', 'two.', 'deux.']
    assert train.get_data_info(0)['source'] == 'x'
    test = _build('ListCaptionDataset', tmp_path, ann_file='caps.jsonl', test_mode=True)
    assert [test.get_data_info(i)['captions'] for i in range(2)] == [['one.', 'uno.'],
                                                                     ['two.', 'deux.']]
    # an image-text matching list: match_key keeps the true pairs only
    itm = [dict(r, label=1) for r in rows[:1]] + [rows[3]]
    (tmp_path / 'itm.jsonl').write_text('\n'.join(json.dumps(r) for r in itm))
    kept = _build('ListCaptionDataset', tmp_path, ann_file='itm.jsonl', match_key='label')
    assert [kept.get_data_info(i)['text'] for i in range(len(kept))] == ['one.']


@pytest.mark.parametrize('line, message', [
    ('{"img_path": "a.png"', 'line 1: not valid JSON'),
    ('{"text": "x"}', 'line 1: img_path is missing'),
    ('{"img_path": "a.png", "captions": []}', 'line 1: needs "text"'),
    ('[1, 2]', 'expected a JSON object'),
])
def test_jsonl_errors_name_the_line(tmp_path, line, message):
    (tmp_path / 'a.png').write_bytes(b'')
    (tmp_path / 'bad.jsonl').write_text(line + '\n')
    with pytest.raises(AnnotationError, match=f'bad.jsonl.*{message}'):
        _build('ListCaptionDataset', tmp_path, ann_file='bad.jsonl')


def test_mmshapes_captions(mmshapes_root):
    train = _build('MMShapesCaptionDataset', mmshapes_root, split='train')
    val = _build('MMShapesCaptionDataset', mmshapes_root, split='val', test_mode=True)
    assert len(train) == 48 and len(val) == 16  # one caption per scene
    assert val.get_data_info(0)['captions'] == [val.get_data_info(0)['text']]
    with pytest.raises(ConfigError, match='split'):
        _build('MMShapesCaptionDataset', mmshapes_root, split='test')
