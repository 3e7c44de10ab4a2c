"""CocoDetDataset, MMShapesDetDataset, LoadDepthFromFile and LoadAnnotations."""
import copy
import json
import os
import os.path as osp

import numpy as np
import pytest
import torch
from conftest import SMALL_MMSHAPES
from PIL import Image
from pycocotools import mask as mask_utils

from mmfusion.datasets import CocoDetDataset, MMShapesDetDataset
from mmfusion.datasets.mmshapes import NEAR_FAR_THRESHOLD
from mmfusion.datasets.transforms import LoadAnnotations, LoadDepthFromFile
from mmfusion.errors import (
    AnnotationError,
    ConfigError,
    DataError,
    ImageFileNotFoundError,
    ImageLoadError,
)
from mmfusion.utils import register_all_modules

register_all_modules()

IMG_H, IMG_W = 16, 20


def crowd_mask() -> np.ndarray:
    mask = np.zeros((IMG_H, IMG_W), np.uint8)
    mask[1:7, 10:14] = 1
    return mask


def uncompressed_rle(mask: np.ndarray) -> dict:
    """COCO's uncompressed RLE: run lengths in column-major order, starting with zeros."""
    flat = mask.flatten(order='F')
    changes = np.flatnonzero(np.diff(flat)) + 1
    runs = np.diff(np.concatenate([[0], changes, [flat.size]]))
    counts = ([0] if flat[0] else []) + runs.tolist()
    return dict(size=[IMG_H, IMG_W], counts=counts)


def tiny_coco() -> dict:
    """Three images (the third without objects), categories with ids 7 and 3."""
    dog = np.zeros((IMG_H, IMG_W), np.uint8)
    dog[0:4, 0:4] = 1
    dog_rle = mask_utils.encode(np.asfortranarray(dog))
    images = [dict(id=11, file_name='a.png', height=IMG_H, width=IMG_W, depth_file='depth/a.png',
                   thermal_file='thermal/a.png'),
              dict(id=12, file_name='b.png', height=IMG_H, width=IMG_W, depth_file='depth/b.png',
                   thermal_file='thermal/b.png'),
              dict(id=13, file_name='c.png', height=IMG_H, width=IMG_W, depth_file='depth/c.png',
                   thermal_file='thermal/c.png')]
    annotations = [
        dict(id=1, image_id=11, category_id=7, bbox=[2, 3, 5, 4], iscrowd=0, area=20,
             segmentation=[[2, 3, 7, 3, 7, 7, 2, 7]]),
        dict(id=2, image_id=11, category_id=3, bbox=[10, 1, 4, 6], iscrowd=1, area=24,
             segmentation=uncompressed_rle(crowd_mask())),
        dict(id=3, image_id=12, category_id=3, bbox=[0, 0, 4, 4], iscrowd=0, area=16,
             segmentation=dict(size=[IMG_H, IMG_W], counts=dog_rle['counts'].decode())),
    ]
    categories = [dict(id=7, name='cat'), dict(id=3, name='dog')]
    return dict(images=images, annotations=annotations, categories=categories)


TINY_REFS = [dict(ref_id=100, image_id=11, ann_ids=[1], sentence='the cat'),
             dict(ref_id=101, image_id=12, ann_id=3, sentences=[{'sent': 'a dog'}, 'the dog'])]


def write_json(path, data) -> str:
    with open(path, 'w', encoding='utf-8') as f:
        json.dump(data, f)
    return str(path)


@pytest.fixture
def coco_root(tmp_path):
    """data_root with tiny_coco() as ann.json, its images, depth and thermal maps."""
    rng = np.random.default_rng(0)
    for sub in ('img', 'depth', 'thermal'):
        os.makedirs(tmp_path / sub)
    for stem in 'abc':
        Image.fromarray(rng.integers(0, 255, (IMG_H, IMG_W, 3), dtype=np.uint8)).save(
            tmp_path / 'img' / f'{stem}.png')
        depth = np.full((IMG_H, IMG_W), 4000, np.uint16)
        depth[3:7, 2:7] = 1500  # the cat is 1.5 m away
        Image.fromarray(depth).save(tmp_path / 'depth' / f'{stem}.png')
        Image.fromarray(np.full((IMG_H, IMG_W), 30000, np.uint16)).save(
            tmp_path / 'thermal' / f'{stem}.png')
    write_json(tmp_path / 'ann.json', tiny_coco())
    write_json(tmp_path / 'refs.json', TINY_REFS)
    return str(tmp_path)


def build(root, **kwargs):
    kwargs.setdefault('data_prefix', dict(img_path='img'))
    return CocoDetDataset('ann.json', data_root=root, **kwargs)


def test_samples_have_xyxy_boxes_contiguous_labels_crowd_flags_and_modalities(coco_root):
    ds = build(coco_root, extra_modalities=dict(depth='depth_file', thermal='thermal_file'))
    assert ds.metainfo['classes'] == ('dog', 'cat')  # category id order: 3, 7
    assert len(ds) == 3
    first = ds.get_data_info(0)
    assert first['img_path'] == osp.join(coco_root, 'img', 'a.png')
    assert first['depth_path'] == osp.join(coco_root, 'depth/a.png')
    assert first['thermal_path'] == osp.join(coco_root, 'thermal/a.png')
    assert first['img_id'] == 11 and (first['height'], first['width']) == (IMG_H, IMG_W)
    cat, crowd = first['instances']
    assert cat['bbox'] == [2, 3, 7, 7] and cat['bbox_label'] == 1 and cat['ignore_flag'] == 0
    assert crowd['bbox'] == [10, 1, 14, 7] and crowd['bbox_label'] == 0
    assert crowd['ignore_flag'] == 1
    assert 'mask' not in cat  # with_mask=False
    assert ds.get_data_info(2)['instances'] == []


def test_filter_empty_gt_and_a_class_subset(coco_root):
    assert len(build(coco_root, filter_empty_gt=True)) == 2
    assert len(build(coco_root, filter_empty_gt=True, test_mode=True)) == 3
    cats = build(coco_root, metainfo=dict(classes=['cat']), filter_empty_gt=True)
    assert cats.metainfo['classes'] == ('cat', ) and len(cats) == 1
    assert [i['bbox_label'] for i in cats.get_data_info(0)['instances']] == [0]
    with pytest.raises(ConfigError, match=r"unknown: \['bird'\]"):
        build(coco_root, metainfo=dict(classes=['bird']))
    # only the crowd region is left: no sample to train on
    with pytest.raises(AnnotationError, match='filter_empty_gt=True leaves nothing'):
        data = tiny_coco()
        data['annotations'] = data['annotations'][1:2]
        write_json(osp.join(coco_root, 'ann.json'), data)
        build(coco_root, filter_empty_gt=True)


def test_pipeline_loads_depth_thermal_boxes_and_masks(coco_root):
    from pycocotools.coco import COCO
    ds = build(coco_root, extra_modalities=dict(depth='depth_file', thermal='thermal_file'),
               with_mask=True, pipeline=[
                   dict(type='LoadImageFromFile'), dict(type='LoadDepthFromFile'),
                   dict(type='LoadDepthFromFile', key='thermal', scale=0.01),
                   dict(type='LoadAnnotations', with_mask=True),
                   dict(type='PackMultiModalInputs',
                        inputs=dict(image='img', depth='depth', thermal='thermal'))])
    item = ds[0]
    depth = item['inputs']['depth']
    assert depth.shape == (1, IMG_H, IMG_W) and depth.dtype == torch.float32
    assert depth[0, 4, 3] == pytest.approx(1.5) and depth[0, 0, 0] == pytest.approx(4.0)
    assert item['inputs']['thermal'][0, 0, 0] == pytest.approx(300.0)  # centikelvin -> K
    sample = item['data_samples']
    assert sample.img_id == 11
    torch.testing.assert_close(sample.gt_instances.bboxes, torch.tensor([[2., 3., 7., 7.]]))
    assert sample.gt_instances.labels.tolist() == [1]
    torch.testing.assert_close(sample.ignored_instances.bboxes, torch.tensor([[10., 1., 14., 7.]]))
    # masks decoded like pycocotools' own COCO.annToMask (polygon and uncompressed RLE)
    coco = COCO(osp.join(coco_root, 'ann.json'))
    expected_cat = torch.from_numpy(coco.annToMask(coco.anns[1])).bool()
    assert expected_cat.sum() > 0
    torch.testing.assert_close(sample.gt_instances.masks[0], expected_cat)
    torch.testing.assert_close(sample.ignored_instances.masks[0],
                               torch.from_numpy(crowd_mask()).bool())
    dog = ds[1]['data_samples'].gt_instances.masks[0]  # compressed RLE with str counts
    assert dog[:4, :4].all() and dog.sum() == 16


def test_referring_mode_gives_one_sample_per_expression(coco_root):
    ds = build(coco_root, refs_file='refs.json')
    assert ds.metainfo['classes'] == ('object', )
    assert len(ds) == 3  # ref 101 has two sentences
    texts = [ds.get_data_info(i)['text'] for i in range(3)]
    assert texts == ['the cat', 'a dog', 'the dog']
    first = ds.get_data_info(0)
    assert first['ref_id'] == 100 and first['img_id'] == 11
    assert [i['ann_id'] for i in first['instances']] == [1]  # not the crowd of image 11
    assert first['instances'][0]['bbox_label'] == 0
    assert [i['ann_id'] for i in ds.get_data_info(2)['instances']] == [3]


def mutate(data, path, value):
    """Set (or with value=KeyError, delete) data[path...]."""
    data = copy.deepcopy(data)
    node = data
    for key in path[:-1]:
        node = node[key]
    if value is KeyError:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return data


@pytest.mark.parametrize('path, value, match', [
    (('annotations', 0, 'category_id'), 5,
     r'annotations\[0\] \(id 1\): category_id 5 is unknown; expected one of .*\[3, 7\]'),
    (('annotations', 1, 'bbox'), KeyError, r"annotations\[1\] \(id 2\): missing \['bbox'\]"),
    (('annotations', 0, 'bbox'), [2, 3, 0, 4], r'bbox \[2, 3, 0, 4\] has a width or height <= 0'),
    (('annotations', 0, 'bbox'), [2, 3, 5, -4], 'has a width or height <= 0'),
    (('annotations', 0, 'bbox'), [2, 3, 5], r'bbox is \[2, 3, 5\] \(list\); expected a list of 4'),
    (('annotations', 0, 'image_id'), 99, 'image_id 99 is not the id of any record'),
    (('annotations', 2, 'id'), 1, r'annotations\[2\]: id 1 repeats annotations\[0\]'),
    (('annotations', 0, 'iscrowd'), 'no', 'iscrowd is'),
    (('images', 1, 'file_name'), KeyError, r"images\[1\]: missing \['file_name'\]"),
    (('images', 1, 'depth_file'), 3, r'images\[1\]: depth_file is 3 \(int\)'),
    (('categories', 0, 'name'), 'dog', r'categories\[1\]: name .dog. repeats categories\[0\]'),
    (('categories', ), KeyError, '"categories" is missing'),
    (('annotations', ), KeyError, '"annotations" is missing'),
    (('images', ), [], '"images" is empty'),
])
def test_bad_coco_files_name_file_record_and_field(coco_root, path, value, match):
    write_json(osp.join(coco_root, 'ann.json'), mutate(tiny_coco(), path, value))
    with pytest.raises(AnnotationError, match=match) as info:
        build(coco_root, extra_modalities=dict(depth='depth_file'))
    assert 'ann.json' in str(info.value)


def test_bad_masks_and_files(coco_root):
    data = mutate(tiny_coco(), ('annotations', 0, 'segmentation'), [[1, 2, 3]])
    write_json(osp.join(coco_root, 'ann.json'), data)
    build(coco_root)  # masks are only checked when used
    with pytest.raises(AnnotationError, match=r'annotations\[0\] \(id 1\): segmentation is'):
        build(coco_root, with_mask=True)
    write_json(osp.join(coco_root, 'ann.json'), tiny_coco())
    os.remove(osp.join(coco_root, 'depth', 'b.png'))
    with pytest.raises(AnnotationError, match=r"sample 1 \(image id 12\): depth_path '.*b\.png' "
                                              r'is not an existing file'):
        build(coco_root, extra_modalities=dict(depth='depth_file'))
    ds = build(coco_root, extra_modalities=dict(depth='depth_file'), check_files=False,
               pipeline=[dict(type='LoadDepthFromFile')])
    with pytest.raises(ImageFileNotFoundError, match=r'sample 1 .*depth: image file not found: '
                                                     r'.*depth/b\.png'):
        ds[1]
    os.remove(osp.join(coco_root, 'img', 'c.png'))
    with pytest.raises(AnnotationError, match=r"img_path '.*c\.png' is not an existing file"):
        build(coco_root)
    os.remove(osp.join(coco_root, 'ann.json'))
    with pytest.raises(AnnotationError, match='COCO annotation file not found: .*ann.json'):
        build(coco_root)


@pytest.mark.parametrize('refs, match', [
    ({'refs': []}, 'expected a JSON list'),
    ([], 'the list is empty'),
    ([dict(ref_id=1, image_id=99, ann_ids=[1], sentence='x')], 'image_id 99 is not the id'),
    ([dict(ref_id=1, image_id=11, ann_ids=[3], sentence='x')],
     r'ann_ids holds 3, which belongs to image 12'),
    ([dict(ref_id=1, image_id=11, ann_ids=[42], sentence='x')], 'ann_ids holds 42, which is unk'),
    ([dict(ref_id=1, image_id=11, ann_ids=[1])], r'refs\[0\]: missing "sentence"'),
    ([dict(ref_id=1, image_id=11, ann_ids=[1], sentence=' ')], 'a sentence is'),
    ([dict(ref_id=1, image_id=11, sentence='x')], r'refs\[0\]: missing "ann_ids"'),
    ([dict(image_id=11, ann_ids=[1], sentence='x')], r"refs\[0\]: missing \['ref_id'\]"),
])
def test_bad_refs_files(coco_root, refs, match):
    write_json(osp.join(coco_root, 'refs.json'), refs)
    with pytest.raises(AnnotationError, match=match) as info:
        build(coco_root, refs_file='refs.json')
    assert 'refs.json' in str(info.value)


def test_bad_arguments(coco_root):
    with pytest.raises(ConfigError, match='extra_modalities'):
        build(coco_root, extra_modalities=dict(img='file_name'))
    with pytest.raises(ConfigError, match="task must be one of \\['rgbd', 'ref'\\]"):
        MMShapesDetDataset(task='audio')
    with pytest.raises(ConfigError, match='split'):
        MMShapesDetDataset(split='test')


# -- MMShapes ---------------------------------------------------------------

def read_instances(root, split):
    with open(osp.join(root, f'annotations/instances_{split}.json')) as f:
        return json.load(f)


def test_mmshapes_rgbd_classes_depend_on_distance(mmshapes_root):
    ds = MMShapesDetDataset(task='rgbd', split='val', data_root=mmshapes_root,
                            mmshapes=SMALL_MMSHAPES)
    shapes = ('circle', 'square', 'triangle')
    assert ds.metainfo['classes'] == tuple(f'{s} {d}' for s in shapes for d in ('near', 'far'))
    assert len(ds) == SMALL_MMSHAPES['num_val']
    coco = read_instances(mmshapes_root, 'val')
    anns = {a['id']: a for a in coco['annotations']}
    seen_labels = set()
    for i in range(len(ds)):
        info = ds.get_data_info(i)
        assert osp.isfile(info['depth_path'])
        for inst in info['instances']:
            ann = anns[inst['ann_id']]
            far = ann['distance'] >= NEAR_FAR_THRESHOLD
            assert inst['bbox_label'] == 2 * (ann['category_id'] - 1) + far
            x, y, w, h = ann['bbox']
            assert inst['bbox'] == [x, y, x + w, y + h]
            seen_labels.add(inst['bbox_label'])
    assert seen_labels == set(range(6))


def test_mmshapes_rgbd_pipeline_depth_matches_each_objects_distance(mmshapes_root):
    ds = MMShapesDetDataset(task='rgbd', split='train', data_root=mmshapes_root,
                            mmshapes=SMALL_MMSHAPES, with_mask=True, pipeline=[
                                dict(type='LoadImageFromFile'), dict(type='LoadDepthFromFile'),
                                dict(type='LoadAnnotations', with_mask=True),
                                dict(type='MultiModalRandomFlip', prob=1.0),
                                dict(type='PackMultiModalInputs')])
    anns = {a['id']: a for a in read_instances(mmshapes_root, 'train')['annotations']}
    for i in range(4):
        item = ds[i]
        depth = item['inputs']['depth'][0]
        assert item['inputs']['image'].shape == (3, 64, 64)
        gt = item['data_samples'].gt_instances
        ann_ids = [inst['ann_id'] for inst in ds.get_data_info(i)['instances']]
        for box, label, mask, ann_id in zip(gt.bboxes, gt.labels, gt.masks, ann_ids):
            inside = depth[mask]  # objects never overlap in MMShapes
            assert torch.allclose(inside, torch.tensor(anns[ann_id]['distance']), atol=1e-3)
            assert bool(label % 2) == bool(inside.mean() >= NEAR_FAR_THRESHOLD)
            ys, xs = torch.nonzero(mask, as_tuple=True)
            assert box.tolist() == [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]


def test_mmshapes_ref_samples(mmshapes_root):
    ds = MMShapesDetDataset(task='ref', split='val', data_root=mmshapes_root,
                            mmshapes=SMALL_MMSHAPES)
    with open(osp.join(mmshapes_root, 'annotations/refs_val.json')) as f:
        refs = json.load(f)
    assert len(ds) == len(refs) and ds.metainfo['classes'] == ('object', )
    for i, ref in enumerate(refs):
        info = ds.get_data_info(i)
        assert info['text'] == ref['sentence'] and info['ref_id'] == ref['ref_id']
        assert [inst['ann_id'] for inst in info['instances']] == ref['ann_ids']
        assert {inst['bbox_label'] for inst in info['instances']} == {0}
        assert info['depth_path'].endswith(f'{ref["image_id"]:06d}.png')


# -- LoadDepthFromFile / LoadAnnotations -----------------------------------

def test_load_depth_scales_millimetres_to_metres_and_checks_the_file(tmp_path):
    path = str(tmp_path / 'd.png')
    raw = np.arange(12, dtype=np.uint16).reshape(3, 4) * 1000
    Image.fromarray(raw).save(path)
    out = LoadDepthFromFile(cache_size=2)(dict(depth_path=path))
    assert out['depth'].shape == (3, 4, 1) and out['depth'].dtype == np.float32
    np.testing.assert_allclose(out['depth'][..., 0], raw / 1000.0)
    out = LoadDepthFromFile(scale=1.0)(dict(depth_path=path))
    np.testing.assert_array_equal(out['depth'][..., 0], raw)
    with pytest.raises(DataError, match=r'd\.png is 3x4 \(HxW\) but the image x\.png is 5x5'):
        LoadDepthFromFile()(dict(depth_path=path, img=np.zeros((5, 5, 3)), img_path='x.png'))
    Image.fromarray(np.zeros((3, 4, 3), np.uint8)).save(tmp_path / 'rgb.png')
    with pytest.raises(ImageLoadError, match=r'rgb\.png has 3 channels'):
        LoadDepthFromFile()(dict(depth_path=str(tmp_path / 'rgb.png')))
    (tmp_path / 'bad.png').write_bytes(b'not a png')
    with pytest.raises(ImageLoadError, match=r'depth: cannot decode .*bad\.png'):
        LoadDepthFromFile()(dict(depth_path=str(tmp_path / 'bad.png')))
    with pytest.raises(ImageFileNotFoundError, match=r'no\.png'):
        LoadDepthFromFile()(dict(depth_path=str(tmp_path / 'no.png')))
    assert LoadDepthFromFile(ignore_empty=True)(dict(depth_path=str(tmp_path / 'no.png'))) is None
    with pytest.raises(ConfigError, match=r'no "depth_path" \(found \[.img_path.\]\)'):
        LoadDepthFromFile()(dict(img_path=path))
    with pytest.raises(ConfigError, match='scale must be a positive number'):
        LoadDepthFromFile(scale=0)


def test_load_depth_cache_hands_out_copies(tmp_path):
    path = str(tmp_path / 'd.png')
    Image.fromarray(np.full((2, 2), 500, np.uint16)).save(path)
    load = LoadDepthFromFile(cache_size=1)
    load(dict(depth_path=path))['depth'][:] = 0
    assert load(dict(depth_path=path))['depth'][0, 0, 0] == pytest.approx(0.5)
    assert list(load._cache) == [path]


def test_load_annotations_errors_name_the_sample():
    with pytest.raises(ConfigError, match='with_bbox=True but the sample has no "instances"'):
        LoadAnnotations()(dict(img_path='a.png', seg_map_path='a_seg.png'))
    bad = dict(img_path='a.png', height=4, width=4,
               instances=[dict(bbox=[0, 0, 1, 1], bbox_label=0, mask={'counts': 'x'})])
    with pytest.raises(AnnotationError, match=r'a\.png, instance 0: cannot decode the mask'):
        LoadAnnotations(with_mask=True)(bad)
    wrong_size = dict(bad, instances=[dict(bbox=[0, 0, 1, 1], bbox_label=0,
                                           mask=uncompressed_rle(crowd_mask()))])
    with pytest.raises(AnnotationError, match=r'RLE size \[16, 20\] is not the image size'):
        LoadAnnotations(with_mask=True)(wrong_size)
    out = LoadAnnotations(with_mask=True)(dict(img_path='a.png', height=4, width=5,
                                               instances=[]))
    assert out['gt_bboxes'].shape == (0, 4) and out['gt_masks'].shape == (0, 4, 5)
    assert out['gt_ignore_flags'].dtype == bool
