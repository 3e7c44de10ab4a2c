"""VQA datasets in the official VQAv2 file format."""
import json
import os.path as osp
from typing import List, Optional

from mmengine.dataset import BaseDataset

from mmfusion.registry import DATASETS

from .mmshapes import ensure_mmshapes


def load_json(path: str, what: str) -> dict:
    """Read a JSON file, naming it and its role in any error."""
    if not osp.isfile(path):
        raise FileNotFoundError(f'{what} not found: {path}')
    try:
        with open(path, encoding='utf-8') as f:
            return json.load(f)
    except json.JSONDecodeError as e:
        raise ValueError(f'{what} {path} is not valid JSON: {e}') from e


@DATASETS.register_module()
class VQAv2Dataset(BaseDataset):
    """Questions + annotations in the VQAv2 format, images from a folder.

    Args:
        question_file: ``v2_OpenEnded_*_questions.json`` ({"questions": [{image_id,
            question, question_id}]}), relative to ``data_root``.
        ann_file: ``v2_*_annotations.json`` ({"annotations": [{question_id,
            answers: [{answer}], answer_type, question_type}]}); empty for a
            test split without answers.
        data_prefix: ``dict(img_path=folder)`` holding the images.
        img_file_template: file name of an image from its id, e.g. the
            official ``'COCO_val2014_{image_id:012d}.jpg'``.

    Each sample: ``img_path``, ``question``, ``question_id``, ``image_id`` and,
    with annotations, ``gt_answers`` (the 10 raw answers), ``answer_type``,
    ``question_type``.
    """
    METAINFO = dict(task='vqa')

    def __init__(self, question_file: str, ann_file: str = '',
                 img_file_template: str = 'COCO_val2014_{image_id:012d}.jpg',
                 data_prefix: Optional[dict] = None, **kwargs) -> None:
        self.question_file = question_file
        self.img_file_template = img_file_template
        super().__init__(ann_file=ann_file, data_prefix=data_prefix or dict(img_path=''),
                         **kwargs)

    def load_data_list(self) -> List[dict]:
        question_file = self.question_file
        if self.data_root and not osp.isabs(question_file):
            question_file = osp.join(self.data_root, question_file)
        questions = load_json(question_file, 'VQA question file').get('questions')
        if not isinstance(questions, list):
            raise ValueError(f'VQA question file {question_file} has no "questions" list')
        anns = {}
        if self.ann_file:
            records = load_json(self.ann_file, 'VQA annotation file').get('annotations')
            if not isinstance(records, list):
                raise ValueError(f'VQA annotation file {self.ann_file} has no "annotations" list')
            anns = {a['question_id']: a for a in records}

        img_dir = self.data_prefix.get('img_path', '')
        data_list = []
        for i, q in enumerate(questions):
            missing = {'image_id', 'question', 'question_id'} - set(q)
            if missing:
                raise KeyError(f'{question_file}: question #{i} lacks {sorted(missing)}')
            info = dict(
                img_path=osp.join(img_dir, self.img_file_template.format(image_id=q['image_id'])),
                question=q['question'], question_id=q['question_id'], image_id=q['image_id'])
            if self.ann_file:
                ann = anns.get(q['question_id'])
                if ann is None:
                    raise KeyError(f'{self.ann_file}: no annotation for question_id '
                                   f'{q["question_id"]} of {question_file}')
                info['gt_answers'] = [a['answer'] for a in ann['answers']]
                info['answer_type'] = ann.get('answer_type', 'other')
                info['question_type'] = ann.get('question_type', '')
            data_list.append(info)
        return data_list


@DATASETS.register_module()
class MMShapesVQADataset(VQAv2Dataset):
    """VQA on the embedded MMShapes dataset, generated on first use.

    Args:
        split: ``'train'`` or ``'val'``.
        data_root: where MMShapes lives (generated there if absent).
        mmshapes: generator parameters (``num_train``, ``num_val``,
            ``img_size``, ``seed``) to insist on; None accepts whatever copy
            is in ``data_root`` and generates the defaults if there is none.
    """

    def __init__(self, split: str = 'train', data_root: str = 'data/mmshapes',
                 mmshapes: Optional[dict] = None, **kwargs) -> None:
        if split not in ('train', 'val'):
            raise ValueError(f'MMShapesVQADataset: split must be "train" or "val", got {split!r}')
        ensure_mmshapes(data_root, **(mmshapes or {}))
        kwargs.setdefault('question_file', f'vqa/v2_OpenEnded_mmshapes_{split}_questions.json')
        kwargs.setdefault('ann_file', f'vqa/v2_mmshapes_{split}_annotations.json')
        kwargs.setdefault('data_prefix', dict(img_path=f'images/{split}'))
        kwargs.setdefault('img_file_template', '{image_id:06d}.png')
        super().__init__(data_root=data_root, **kwargs)
