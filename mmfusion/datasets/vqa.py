"""VQA datasets in the official VQAv2 file format."""
import os.path as osp
from typing import Any, Dict, List, Optional

from mmfusion.errors import AnnotationError, ConfigError
from mmfusion.registry import DATASETS

from .base import (
    BaseMultiModalDataset,
    check_record,
    describe_value,
    is_int,
    is_uri,
    load_json,
    top_level_list,
)


def _is_answer_list(value: Any) -> bool:
    return (isinstance(value, list) and len(value) > 0
            and all(isinstance(a, dict) and isinstance(a.get('answer'), str) for a in value))


QUESTION_FIELDS = dict(image_id=(is_int, 'an int'),
                       question=(lambda v: isinstance(v, str), 'a string'),
                       question_id=(is_int, 'an int'))
ANNOTATION_FIELDS = dict(question_id=(is_int, 'an int'),
                         answers=(_is_answer_list, 'a non-empty list of {"answer": str} objects'))


@DATASETS.register_module()
class VQAv2Dataset(BaseMultiModalDataset):
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
        on_bad_sample, check_files: see :class:`BaseMultiModalDataset`.
        allow_missing_modalities: a question whose image file does not
            exist becomes a sample without its image (``img_path`` None,
            ``missing_modalities=['image']``) instead of an error.

    Each sample: ``img_path``, ``question``, ``question_id``, ``image_id`` and,
    with annotations, ``gt_answers`` (the 10 raw answers), ``answer_type``,
    ``question_type``.

    Raises :class:`~mmfusion.errors.AnnotationError` naming the file, the
    record number and the field for a file that is missing or not JSON, a
    question or annotation with a missing key or a value of the wrong type
    (ids: ints, question: a string, answers: a non-empty list of
    ``{"answer": str}``), a repeated question_id, a question without an
    annotation, no questions at all, or an image that does not exist (with
    ``check_files``).
    """
    METAINFO = dict(task='vqa')

    def __init__(self, question_file: str, ann_file: str = '',
                 img_file_template: str = 'COCO_val2014_{image_id:012d}.jpg',
                 data_prefix: Optional[dict] = None, **kwargs) -> None:
        try:
            img_file_template.format(image_id=0)
        except (AttributeError, IndexError, KeyError, TypeError, ValueError) as e:
            raise ConfigError(f'{type(self).__name__}: img_file_template '
                              f'{img_file_template!r} cannot format an image id ({e!r}); '
                              f"expected a format string such as '{{image_id:012d}}.jpg'") from e
        self.question_file = question_file
        self.img_file_template = img_file_template
        super().__init__(ann_file=ann_file, data_prefix=data_prefix or dict(img_path=''),
                         **kwargs)

    @property
    def question_path(self) -> str:
        """``question_file`` joined to ``data_root``."""
        if self.data_root and not osp.isabs(self.question_file):
            return osp.join(self.data_root, self.question_file)
        return self.question_file

    @property
    def annotation_source(self) -> str:
        return self.question_path + (f', {self.ann_file}' if self.ann_file else '')

    def _load_questions(self) -> List[dict]:
        path = self.question_path
        questions = top_level_list(load_json(path, 'VQA question file'), 'questions', path,
                                    'VQA question file')
        if not questions:
            raise AnnotationError(f'VQA question file {path}: "questions" is empty; expected '
                                  f'at least one question (the split holds no samples)')
        first_index = {}
        for i, question in enumerate(questions):
            where = f'{path}, question #{i} (sample {i})'
            check_record(question, where, QUESTION_FIELDS)
            question_id = question['question_id']
            if question_id in first_index:
                raise AnnotationError(f'{where}: question_id {question_id} repeats question '
                                      f'#{first_index[question_id]}; expected unique ids')
            first_index[question_id] = i
        return questions

    def _load_annotations(self) -> Dict[int, dict]:
        """question_id -> annotation record."""
        path = self.ann_file
        records = top_level_list(load_json(path, 'VQA annotation file'), 'annotations', path,
                                  'VQA annotation file')
        anns, first_index = {}, {}
        for j, record in enumerate(records):
            where = f'{path}, annotation #{j}'
            check_record(record, where, ANNOTATION_FIELDS)
            for key in ('answer_type', 'question_type'):
                if key in record and not isinstance(record[key], str):
                    raise AnnotationError(f'{where}: {key} is {describe_value(record[key])}; '
                                          f'expected a string')
            question_id = record['question_id']
            if question_id in anns:
                raise AnnotationError(f'{where}: question_id {question_id} repeats annotation '
                                      f'#{first_index[question_id]}; expected one annotation '
                                      f'per question')
            anns[question_id] = record
            first_index[question_id] = j
        return anns

    def load_data_list(self) -> List[dict]:
        """Check the question (and annotation) file and join them into samples."""
        questions = self._load_questions()
        anns = self._load_annotations() if self.ann_file else {}
        img_dir = self.data_prefix.get('img_path', '')
        data_list = []
        for i, q in enumerate(questions):
            info = dict(
                img_path=osp.join(img_dir, self.img_file_template.format(image_id=q['image_id'])),
                question=q['question'], question_id=q['question_id'], image_id=q['image_id'])
            if self.ann_file:
                ann = anns.get(q['question_id'])
                if ann is None:
                    raise AnnotationError(
                        f'{self.ann_file}: no annotation for question_id {q["question_id"]} '
                        f'({self.question_path}, question #{i}, sample {i}); expected one '
                        f'annotation per question')
                info['gt_answers'] = [a['answer'] for a in ann['answers']]
                info['answer_type'] = ann.get('answer_type', 'other')
                info['question_type'] = ann.get('question_type', '')
            data_list.append(info)
        if self.allow_missing_modalities:
            # a question whose image file does not exist is a sample without its image
            for info in data_list:
                if not is_uri(info['img_path']) and not osp.isfile(info['img_path']):
                    info['img_path'] = None
                    info['missing_modalities'] = ['image']
        self.check_files_exist(((i, 'img_path', info['img_path'])
                                for i, info in enumerate(data_list)
                                if info['img_path'] is not None),
                               lambda i: f'{self.question_path}, question #{i} (sample {i}, '
                                         f'image_id {data_list[i]["image_id"]})')
        return data_list


__all__ = ['VQAv2Dataset']
