"""Writers of the standard formats MMShapes is stored in: COCO instances and
captions, RefCOCO-like refs, VQAv2 questions/answers, JSON-lines lists, PNG
and WAV files."""
import json
import os.path as osp
import wave
from typing import Dict, List

import numpy as np

from .language import itm_with_other_captions
from .spec import AUDIO_SAMPLE_RATE, MMSHAPES_VERSION, SHAPES, SPLITS


def rle_encode(mask: np.ndarray) -> dict:
    """COCO compressed RLE with ``counts`` as a str (JSON-serialisable)."""
    from pycocotools import mask as mask_utils
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return dict(size=[int(v) for v in rle['size']],
                counts=rle['counts'].decode('utf-8'))


def write_wav(path: str, samples: np.ndarray) -> None:
    """Write int16 mono ``samples`` as a WAV file at ``AUDIO_SAMPLE_RATE``."""
    with wave.open(path, 'wb') as f:
        f.setnchannels(1)
        f.setsampwidth(2)
        f.setframerate(AUDIO_SAMPLE_RATE)
        f.writeframes(samples.astype('<i2').tobytes())


def dump_json(obj, path: str) -> None:
    """Write ``obj`` as compact JSON (UTF-8)."""
    # json.dumps uses the C encoder; json.dump would encode in pure Python.
    with open(path, 'w', encoding='utf-8') as f:
        f.write(json.dumps(obj))


def dump_jsonl(rows: List[dict], path: str) -> None:
    """Write ``rows`` as JSON lines (one object per line, UTF-8)."""
    with open(path, 'w', encoding='utf-8') as f:
        for row in rows:
            f.write(json.dumps(row) + '\n')


class SplitRecords:
    """Accumulates the annotation records of one split."""

    def __init__(self) -> None:
        self.images: List[dict] = []
        self.instances: List[dict] = []
        self.captions: List[dict] = []
        self.refs: List[dict] = []
        self.questions: List[dict] = []
        self.answers: List[dict] = []
        self.av: List[dict] = []
        self.itm_hard: List[dict] = []
        self.multilabel: List[dict] = []


def scene_files(split: str, image_id: int) -> Dict[str, str]:
    """Paths (relative to the dataset root) of one scene's files, keyed by
    the image-record field that stores them."""
    stem = f'{image_id:06d}'
    return dict(
        file_name=f'images/{split}/{stem}.png',
        depth_file=f'depth/{split}/{stem}.png',
        audio_file=f'audio/{split}/{stem}.wav',
        sem_mask_file=f'sem_masks/{split}/{stem}.png',
        inst_mask_file=f'inst_masks/{split}/{stem}.png',
    )


def split_info(split: str) -> dict:
    """The ``info`` record of a split's COCO and VQAv2 files."""
    # Deliberately free of dates and of the other split's size, so files are
    # reproducible and val files do not depend on num_train.
    return dict(description=f'MMShapes synthetic multimodal dataset '
                f'({split})', version=str(MMSHAPES_VERSION),
                url='', contributor='mmfusion')


def write_split(out_dir: str, split: str, rec: SplitRecords, seed: int) -> None:
    """Write every annotation file of ``split`` from its records."""
    ann_dir = osp.join(out_dir, 'annotations')
    categories = [dict(id=i + 1, name=s, supercategory='shape')
                  for i, s in enumerate(SHAPES)]
    dump_json(
        dict(info=split_info(split), licenses=[], images=rec.images,
             annotations=rec.instances, categories=categories),
        osp.join(ann_dir, f'instances_{split}.json'))
    dump_json(
        dict(info=split_info(split), licenses=[], images=rec.images,
             annotations=rec.captions),
        osp.join(ann_dir, f'captions_{split}.json'))
    dump_json(rec.refs, osp.join(ann_dir, f'refs_{split}.json'))

    vqa_dir = osp.join(out_dir, 'vqa')
    dump_json(
        dict(info=split_info(split), task_type='Open-Ended', data_type='mmshapes',
             data_subtype=split, license={}, questions=rec.questions),
        osp.join(vqa_dir, f'v2_OpenEnded_mmshapes_{split}_questions.json'))
    dump_json(
        dict(info=split_info(split), data_type='mmshapes', data_subtype=split,
             license={}, annotations=rec.answers),
        osp.join(vqa_dir, f'v2_mmshapes_{split}_annotations.json'))

    cls_dir = osp.join(out_dir, 'classification')
    dump_jsonl(rec.av, osp.join(cls_dir, f'{split}_av.jsonl'))
    # scene rngs use [seed, split, index < 1_000_000]: this one never equals them
    itm_rng = np.random.default_rng([seed, SPLITS.index(split), 1_000_003])
    dump_jsonl(itm_with_other_captions(rec.itm_hard, itm_rng),
                osp.join(cls_dir, f'{split}_itm.jsonl'))
    dump_jsonl(rec.itm_hard, osp.join(cls_dir, f'{split}_itm_hard.jsonl'))
    dump_jsonl(rec.multilabel, osp.join(cls_dir,
                                         f'{split}_multilabel.jsonl'))


__all__ = ['SplitRecords', 'dump_json', 'dump_jsonl', 'rle_encode', 'scene_files',
           'split_info', 'write_split', 'write_wav']
