"""ListSegDataset, CocoSegDataset/CocoRefSegDataset and MMShapesSegDataset."""
import json
import os
import os.path as osp

import numpy as np
import pytest
import torch
from conftest import SMALL_MMSHAPES
from PIL import Image
from pycocotools import mask as mask_utils
from test_detection_dataset import IMG_H, IMG_W, TINY_REFS, crowd_mask, tiny_coco, write_json

from mmfusion.datasets import (
    CocoRefSegDataset,
    CocoSegDataset,
    ListSegDataset,
    MMShapesSegDataset,
)
from mmfusion.datasets.mmshapes import NEAR_FAR_THRESHOLD
from mmfusion.datasets.transforms import LoadAnnotations
from mmfusion.errors import (
    AnnotationError,
    ConfigError,
    DataError,
    ImageFileNotFoundError,
    ImageLoadError,
)
from mmfusion.utils import register_all_modules

register_all_modules()

SEG_PIPELINE = [dict(type='LoadImageFromFile'),
                dict(type='LoadAnnotations', with_bbox=False, with_label=False, with_seg=True),
                dict(type='PackMultiModalInputs')]
RGBD_SEG_PIPELINE = SEG_PIPELINE[:1] + [dict(type='LoadDepthFromFile')] + SEG_PIPELINE[1:]


def read_png(path):
    return np.array(Image.open(path))


def seg_of(item) -> np.ndarray:
    data = item['data_samples'].gt_sem_seg.data
    assert data.dtype == torch.long and data.ndim == 3 and data.shape[0] == 1
    return data[0].numpy()


# -- MMShapes ---------------------------------------------------------------

def test_mmshapes_rgbd_maps_are_shapes_split_by_distance(mmshapes_root):
    ds = MMShapesSegDataset(task='rgbd', split='val', data_root=mmshapes_root,
                            mmshapes=SMALL_MMSHAPES, pipeline=RGBD_SEG_PIPELINE)
    assert ds.metainfo['classes'] == ('background', 'circle near', 'circle far', 'square near',
                                      'square far', 'triangle near', 'triangle far')
    assert ds.metainfo['ignore_index'] == 255
    with open(osp.join(mmshapes_root, 'annotations/instances_val.json')) as f:
        coco = json.load(f)
    images = {img['id']: img for img in coco['images']}
    seen = set()
    for i in range(6):
        item = ds[i]
        seg, depth = seg_of(item), item['inputs']['depth'][0].numpy()
        assert item['inputs']['depth'].shape == (1, 64, 64)
        image = images[ds.get_data_info(i)['img_id']]
        # the shape part agrees with the generator's own semantic map ...
        sem = read_png(osp.join(mmshapes_root, image['sem_mask_file']))
        np.testing.assert_array_equal((seg + 1) // 2, sem)
        # ... and near/far with the depth map, pixel by pixel
        objects = seg > 0
        np.testing.assert_array_equal(seg[objects] % 2 == 0, depth[objects] >= NEAR_FAR_THRESHOLD)
        seen.update(np.unique(seg).tolist())
    assert len(seen) >= 5


def test_mmshapes_ref_map_is_the_union_of_the_referred_masks(mmshapes_root):
    ds = MMShapesSegDataset(task='ref', split='val', data_root=mmshapes_root,
                            mmshapes=SMALL_MMSHAPES, pipeline=SEG_PIPELINE)
    assert ds.metainfo['classes'] == ('background', 'object')
    with open(osp.join(mmshapes_root, 'annotations/refs_val.json')) as f:
        refs = json.load(f)
    with open(osp.join(mmshapes_root, 'annotations/instances_val.json')) as f:
        anns = {a['id']: a for a in json.load(f)['annotations']}
    assert len(ds) == len(refs)
    multi = [i for i, r in enumerate(refs) if len(r['ann_ids']) > 1][:2]
    for i in [0, 1, 2] + multi:
        item = ds[i]
        expected = np.zeros((64, 64), np.int64)
        for ann_id in refs[i]['ann_ids']:
            expected |= mask_utils.decode(anns[ann_id]['segmentation'])
        np.testing.assert_array_equal(seg_of(item), expected)
        assert item['data_samples'].text == refs[i]['sentence']
        assert item['inputs']['text'] == refs[i]['sentence']


def test_segmentation_from_a_coco_image_list_and_mask_key(mmshapes_root):
    ds = ListSegDataset('annotations/instances_train.json', data_root=mmshapes_root,
                              seg_map_key='sem_mask_file',
                              extra_modalities=dict(depth='depth_file'),
                              pipeline=RGBD_SEG_PIPELINE)
    assert ds.metainfo['classes'] == ('background', 'circle', 'square', 'triangle')
    assert len(ds) == SMALL_MMSHAPES['num_train']
    info = ds.get_data_info(0)
    assert info['seg_map_path'] == osp.join(mmshapes_root, 'sem_masks/train/000001.png')
    assert info['depth_path'] == osp.join(mmshapes_root, 'depth/train/000001.png')
    np.testing.assert_array_equal(seg_of(ds[0]), read_png(info['seg_map_path']))


# -- ListSegDataset on hand-written lists -----------------------------

@pytest.fixture
def seg_root(tmp_path):
    os.makedirs(tmp_path / 'img')
    os.makedirs(tmp_path / 'ann')
    for stem in ('a', 'b'):
        black = np.zeros((IMG_H, IMG_W, 3), np.uint8)
        Image.fromarray(black).save(tmp_path / 'img' / f'{stem}.png')
        seg = np.zeros((IMG_H, IMG_W), np.uint8)
        seg[2:5, 3:9] = 2
        seg[0, 0] = 255
        Image.fromarray(seg).save(tmp_path / 'ann' / f'{stem}_mask.png')
    Image.fromarray(np.full((IMG_H, IMG_W), 1200, np.uint16)).save(tmp_path / 'img' / 'a_d.png')
    return str(tmp_path)


def write_lines(path, rows):
    with open(path, 'w', encoding='utf-8') as f:
        f.write('\n'.join(r if isinstance(r, str) else json.dumps(r) for r in rows) + '\n')
    return str(path)


def test_jsonl_list_with_depth_and_text(seg_root):
    write_lines(osp.join(seg_root, 'train.jsonl'), [
        dict(img_path='img/a.png', depth_path='img/a_d.png', seg_map_path='ann/a_mask.png',
             text='a sofa'),
        dict(img_path='img/b.png', seg_map_path='ann/b_mask.png')])
    ds = ListSegDataset('train.jsonl', data_root=seg_root, classes=['bg', 'wall', 'sofa'],
                              pipeline=RGBD_SEG_PIPELINE)
    assert ds.metainfo['classes'] == ('bg', 'wall', 'sofa') and len(ds) == 2
    item = ds[0]
    seg = seg_of(item)
    assert seg[3, 4] == 2 and seg[0, 0] == 255 and seg[10, 10] == 0
    assert item['inputs']['depth'][0, 0, 0] == pytest.approx(1.2)
    assert item['data_samples'].text == 'a sofa'
    with pytest.raises(ConfigError, match='needs classes'):
        ListSegDataset('train.jsonl', data_root=seg_root)


@pytest.mark.parametrize('rows, match', [
    ([dict(img_path='img/a.png')], r"line 1 \(sample 0\): missing \['seg_map_path'\]"),
    ([dict(img_path='img/a.png', seg_map_path='ann/a_mask.png'), '[1]'],
     r'line 2 \(sample 1\): found \[1\] \(list\)'),
    (['{nope'], r'line 1 \(sample 0\): not valid JSON'),
    ([dict(img_path='img/a.png', seg_map_path=7)], r'seg_map_path is 7 \(int\)'),
    ([dict(img_path='img/a.png', seg_map_path='ann/zz.png')],
     r"sample 0: seg_map_path '.*zz\.png' is not an existing file"),
    ([], 'holds no samples'),
])
def test_bad_jsonl_lists(seg_root, rows, match):
    write_lines(osp.join(seg_root, 'bad.jsonl'), rows)
    with pytest.raises(AnnotationError, match=match) as info:
        ListSegDataset('bad.jsonl', data_root=seg_root, classes=['a', 'b'])
    assert 'bad.jsonl' in str(info.value)


def test_test_mode_lists_need_no_masks(seg_root):
    write_lines(osp.join(seg_root, 'test.jsonl'), [dict(img_path='img/a.png')])
    ds = ListSegDataset('test.jsonl', data_root=seg_root, classes=['a'], test_mode=True)
    assert 'seg_map_path' not in ds.get_data_info(0)


def test_coco_image_list_with_a_mask_folder(seg_root):
    write_json(osp.join(seg_root, 'images.json'),
               dict(images=[dict(id=1, file_name='a.png'), dict(id=2, file_name='b.png')]))
    ds = ListSegDataset('images.json', data_root=seg_root, classes=['bg', 'x', 'y'],
                              data_prefix=dict(img_path='img', seg_map_path='ann'),
                              seg_map_suffix='_mask.png')
    assert ds.get_data_info(1)['seg_map_path'] == osp.join(seg_root, 'ann', 'b_mask.png')
    assert ds.get_data_info(1)['img_id'] == 2
    with pytest.raises(ConfigError, match='where are the masks'):
        ListSegDataset('images.json', data_root=seg_root, classes=['bg'])
    with pytest.raises(ConfigError, match='has no "categories"'):
        ListSegDataset('images.json', data_root=seg_root, seg_map_key='mask')
    write_json(osp.join(seg_root, 'images.json'),
               dict(images=[dict(id=1, file_name='a.png')], categories=[dict(id=2, name='x')]))
    with pytest.raises(AnnotationError, match=r'category ids \[2\] are not 1..1'):
        ListSegDataset('images.json', data_root=seg_root, seg_map_key='mask')


# -- CocoSegDataset / CocoRefSegDataset: maps painted from polygons and RLEs ------

@pytest.fixture
def coco_root(tmp_path):
    os.makedirs(tmp_path / 'img')
    for stem in 'abc':
        black = np.zeros((IMG_H, IMG_W, 3), np.uint8)
        Image.fromarray(black).save(tmp_path / 'img' / f'{stem}.png')
    write_json(tmp_path / 'ann.json', tiny_coco())
    write_json(tmp_path / 'refs.json', TINY_REFS)
    return str(tmp_path)


def test_semantic_maps_from_coco_instances(coco_root):
    from pycocotools.coco import COCO
    ds = CocoSegDataset('ann.json', data_root=coco_root, data_prefix=dict(img_path='img'),
                        pipeline=SEG_PIPELINE)
    assert ds.metainfo['classes'] == ('background', 'dog', 'cat')
    coco = COCO(osp.join(coco_root, 'ann.json'))
    seg = seg_of(ds[0])
    expected = np.zeros((IMG_H, IMG_W), np.int64)
    expected[coco.annToMask(coco.anns[1]) > 0] = 2  # the cat
    expected[crowd_mask() > 0] = 255  # crowd: ignored
    np.testing.assert_array_equal(seg, expected)
    assert (seg_of(ds[1])[:4, :4] == 1).all() and seg_of(ds[1]).sum() == 16
    assert not seg_of(ds[2]).any()  # an image without objects is all background
    with pytest.raises(ConfigError, match="must start with 'background'"):
        CocoSegDataset('ann.json', data_root=coco_root, data_prefix=dict(img_path='img'),
                       metainfo=dict(classes=['cat', 'background']))
    with pytest.raises(ConfigError, match='with_mask cannot be False'):
        CocoSegDataset('ann.json', data_root=coco_root, with_mask=False)


def test_referring_maps_from_coco_instances(coco_root):
    ds = CocoRefSegDataset('ann.json', refs_file='refs.json', data_root=coco_root,
                       data_prefix=dict(img_path='img'), pipeline=SEG_PIPELINE)
    assert ds.metainfo['classes'] == ('background', 'object') and len(ds) == 3
    first = ds[0]
    assert first['data_samples'].text == 'the cat'
    seg = seg_of(first)
    assert set(np.unique(seg)) == {0, 1}
    assert not seg[crowd_mask() > 0].any()  # the crowd is not referred
    np.testing.assert_array_equal(seg_of(ds[2]), seg_of(ds[1]))  # two sentences, one ref
    with pytest.raises(ConfigError, match='refs_file must be a file path'):
        CocoRefSegDataset('ann.json', refs_file=None, data_root=coco_root)


def test_instance_id_png_with_label_map(coco_root):
    """An instance-id PNG becomes the same map as the painted masks."""
    data = tiny_coco()
    inst = np.zeros((IMG_H, IMG_W), np.uint8)
    inst[3:7, 2:7] = 1
    inst[crowd_mask() > 0] = 2
    Image.fromarray(inst).save(osp.join(coco_root, 'inst_a.png'))
    Image.fromarray(np.zeros((IMG_H, IMG_W), np.uint8)).save(osp.join(coco_root, 'inst_0.png'))
    for image, name in zip(data['images'], ('inst_a.png', 'inst_0.png', 'inst_0.png')):
        image['inst_file'] = name
    write_json(osp.join(coco_root, 'ann.json'), data)
    ds = CocoSegDataset('ann.json', data_root=coco_root, data_prefix=dict(img_path='img'),
                        inst_map_key='inst_file', pipeline=SEG_PIPELINE)
    assert ds.get_data_info(0)['label_map'] == {0: 0, 1: 2, 2: 255}
    assert 'mask' not in ds.get_data_info(0)['instances'][0]
    expected = np.where(inst == 1, 2, np.where(inst == 2, 255, 0))
    np.testing.assert_array_equal(seg_of(ds[0]), expected)
    ref = CocoRefSegDataset('ann.json', refs_file='refs.json', data_root=coco_root,
                        data_prefix=dict(img_path='img'), inst_map_key='inst_file')
    assert ref.get_data_info(0)['label_map'] == {0: 0, 1: 1, 2: 0}
    del data['images'][1]['inst_file']
    write_json(osp.join(coco_root, 'ann.json'), data)
    with pytest.raises(AnnotationError, match=r"images\[1\]: missing \['inst_file'\]"):
        CocoSegDataset('ann.json', data_root=coco_root, inst_map_key='inst_file')


# -- LoadAnnotations on segmentation maps ------------------------------------

def test_seg_map_loading_errors_name_the_file(tmp_path):
    load = LoadAnnotations(with_bbox=False, with_label=False, with_seg=True)
    with pytest.raises(ImageFileNotFoundError, match=r'segmentation map not found: .*no\.png'):
        load(dict(seg_map_path=str(tmp_path / 'no.png')))
    (tmp_path / 'empty.png').write_bytes(b'')
    with pytest.raises(ImageLoadError, match=r'segmentation map is empty: .*empty\.png'):
        load(dict(seg_map_path=str(tmp_path / 'empty.png')))
    (tmp_path / 'junk.png').write_bytes(b'junk')
    with pytest.raises(ImageLoadError, match=r'cannot decode segmentation map .*junk\.png'):
        load(dict(seg_map_path=str(tmp_path / 'junk.png')))
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / 'rgb.png')
    with pytest.raises(ImageLoadError, match=r'rgb\.png has 3 channels'):
        load(dict(seg_map_path=str(tmp_path / 'rgb.png')))
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(tmp_path / 'small.png')
    with pytest.raises(DataError, match=r'small\.png is 4x4 \(HxW\) but the image a\.png is 8x8'):
        load(dict(seg_map_path=str(tmp_path / 'small.png'), img_path='a.png', ori_shape=(8, 8)))
    with pytest.raises(ConfigError, match='neither "seg_map_path" nor "instances"'):
        load(dict(img_path='a.png'))


def test_label_map_replaces_listed_values_only(tmp_path):
    Image.fromarray(np.array([[0, 1, 2, 3]], np.uint8)).save(tmp_path / 'i.png')
    out = LoadAnnotations(with_bbox=False, with_label=False, with_seg=True)(
        dict(seg_map_path=str(tmp_path / 'i.png'), label_map={1: 5, 2: 0}))
    np.testing.assert_array_equal(out['gt_seg_map'], [[0, 5, 0, 3]])
    assert out['gt_seg_map'].dtype == np.uint8
