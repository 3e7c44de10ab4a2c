"""The registered MMShapes datasets: each one generates MMShapes on first use
and reads one of its standard files with the matching format dataset."""
import math
from typing import Any, List, Optional, Tuple

from mmfusion.errors import AnnotationError, ConfigError
from mmfusion.registry import DATASETS

from ..base import describe_value
from ..classification import ListClsDataset
from ..detection import CocoDetDataset
from ..segmentation import CocoSegDataset
from ..vqa import VQAv2Dataset
from .spec import COLORS, SHAPES
from .storage import ensure_mmshapes

# MMShapes distances are uniform in 1-9 m: 5 m splits the objects in halves
# (train 3421 near / 3506 far, val 859 / 841 for the default copy)
NEAR_FAR_THRESHOLD = 5.0


def _is_number(value: Any) -> bool:
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and math.isfinite(value))


MMSHAPES_CLS_TASKS = dict(
    # image + caption -> does the caption describe the image? (negatives: other
    # scenes' captions; itm_hard: captions of minimally changed scenes)
    itm=dict(classes=('mismatch', 'match'), multi_label=False),
    itm_hard=dict(classes=('mismatch', 'match'), multi_label=False),
    # image + sound -> the shape of the sounding object (the pitch gives its colour)
    av=dict(classes=SHAPES, multi_label=False),
    # image -> the colours present
    multilabel=dict(classes=tuple(COLORS), multi_label=True),
)


@DATASETS.register_module()
class MMShapesClsDataset(ListClsDataset):
    """A classification task of the embedded MMShapes dataset, generated on first use.

    Args:
        task: ``'itm'`` (image-text matching, 2 classes; ``'itm_hard'``
            with minimally changed captions as negatives), ``'av'``
            (audio-visual: which shape is sounding, 3 classes) or
            ``'multilabel'`` (which colours are present, 6 classes).
        split: ``'train'`` or ``'val'``.
        data_root: where MMShapes lives (generated there if absent).
        mmshapes: generator parameters to insist on (see ``ensure_mmshapes``).
    """

    def __init__(self, task: str, split: str = 'train', data_root: str = 'data/mmshapes',
                 mmshapes: Optional[dict] = None, **kwargs) -> None:
        if task not in MMSHAPES_CLS_TASKS:
            raise ValueError(f'MMShapesClsDataset: task must be one of '
                             f'{sorted(MMSHAPES_CLS_TASKS)}, got {task!r}')
        if split not in ('train', 'val'):
            raise ValueError(f'MMShapesClsDataset: split must be "train" or "val", got {split!r}')
        ensure_mmshapes(data_root, **(mmshapes or {}))
        spec = MMSHAPES_CLS_TASKS[task]
        super().__init__(ann_file=f'classification/{split}_{task}.jsonl', data_root=data_root,
                         classes=spec['classes'], multi_label=spec['multi_label'], **kwargs)


class NearFarClassesMixin:
    """The MMShapes dense datasets' shared set-up (:meth:`_mmshapes_args`) and
    classes ``'<category> near'`` / ``'<category> far'``: an object's class
    depends on its ``distance`` (metres, a field of each annotation), which
    only a depth map shows. Used by the MMShapes ``'rgbd'`` tasks; needs
    ``self.task`` and ``self.near_threshold`` (near = distance < threshold)."""

    def default_classes(self, category_names: List[str]) -> Tuple[str, ...]:
        if self.task != 'rgbd':
            return super().default_classes(category_names)
        return tuple(f'{name} {side}' for name in category_names for side in ('near', 'far'))

    def class_name_of(self, ann: dict, category_name: str, where: str) -> str:
        if self.task != 'rgbd':
            return super().class_name_of(ann, category_name, where)
        distance = ann.get('distance')
        if not _is_number(distance) or distance < 0:
            found = describe_value(distance) if 'distance' in ann else 'missing'
            raise AnnotationError(f'{where}: distance is {found}; expected the distance of the '
                                  f'object in metres (a number >= 0)')
        return f'{category_name} {"near" if distance < self.near_threshold else "far"}'

    def _mmshapes_args(self, task: str, split: str, data_root: str, mmshapes: Optional[dict],
                       near_threshold: float, kwargs: dict) -> dict:
        """Check the MMShapes arguments, generate the data if needed, and return
        the COCO-format dataset arguments of the split (depth, and refs for 'ref')."""
        check_mmshapes_args(type(self).__name__, task, split, near_threshold)
        ensure_mmshapes(data_root, **(mmshapes or {}))
        self.task = task
        self.split = split
        self.near_threshold = float(near_threshold)
        kwargs.setdefault('extra_modalities', dict(depth='depth_file'))
        if task == 'ref':
            kwargs.setdefault('refs_file', f'annotations/refs_{split}.json')
        return dict(kwargs, ann_file=f'annotations/instances_{split}.json', data_root=data_root)


MMSHAPES_DENSE_TASKS = ('rgbd', 'ref')


def check_mmshapes_args(owner: str, task: str, split: str, near_threshold: float) -> None:
    """Raise :class:`ConfigError` for an unknown task/split or a bad threshold."""
    if task not in MMSHAPES_DENSE_TASKS:
        raise ConfigError(f'{owner}: task must be one of {list(MMSHAPES_DENSE_TASKS)}, '
                          f'got {task!r}')
    if split not in ('train', 'val'):
        raise ConfigError(f'{owner}: split must be "train" or "val", got {split!r}')
    if not _is_number(near_threshold) or near_threshold <= 0:
        raise ConfigError(f'{owner}: near_threshold must be a positive number of metres, '
                          f'got {near_threshold!r}')


@DATASETS.register_module()
class MMShapesDetDataset(NearFarClassesMixin, CocoDetDataset):
    """Detection on the embedded MMShapes dataset, generated on first use.

    Args:
        task: ``'rgbd'``: 6 classes ``'<shape> near'``/``'<shape> far'`` (near:
            closer than ``near_threshold`` metres), which the RGB picture
            cannot tell apart (objects show no distance cue) and the depth map
            can; ``'ref'``: referring detection, one sample per expression
            (``text``), the referred objects as class ``'object'``. Both give
            the depth PNG as ``depth_path``.
        split: ``'train'`` or ``'val'``.
        data_root: where MMShapes lives (generated there if absent).
        mmshapes: generator parameters to insist on (see ``ensure_mmshapes``).
        near_threshold: metres; the default 5 balances near and far.
        **kwargs: :class:`CocoDetDataset` arguments.
    """

    def __init__(self, task: str = 'rgbd', split: str = 'train',
                 data_root: str = 'data/mmshapes', mmshapes: Optional[dict] = None,
                 near_threshold: float = NEAR_FAR_THRESHOLD, **kwargs) -> None:
        super().__init__(**self._mmshapes_args(task, split, data_root, mmshapes,
                                               near_threshold, kwargs))


@DATASETS.register_module()
class MMShapesSegDataset(NearFarClassesMixin, CocoSegDataset):
    """Segmentation on the embedded MMShapes dataset, generated on first use.

    Args:
        task: ``'rgbd'``: semantic maps with ``'background'`` and the 6 classes
            ``'<shape> near'``/``'<shape> far'`` (near: closer than
            ``near_threshold`` metres; only depth tells them apart);
            ``'ref'``: one sample per referring expression (``text``), the map
            1 on the referred objects. Both are made from the instance-id PNGs
            and the annotations on the fly and give ``depth_path``.
        split: ``'train'`` or ``'val'``.
        data_root: where MMShapes lives (generated there if absent).
        mmshapes: generator parameters to insist on (see ``ensure_mmshapes``).
        near_threshold: metres; the default 5 balances near and far.
        **kwargs: :class:`CocoSegDataset` arguments.
    """

    def __init__(self, task: str = 'rgbd', split: str = 'train',
                 data_root: str = 'data/mmshapes', mmshapes: Optional[dict] = None,
                 near_threshold: float = NEAR_FAR_THRESHOLD, **kwargs) -> None:
        kwargs.setdefault('inst_map_key', 'inst_mask_file')
        super().__init__(**self._mmshapes_args(task, split, data_root, mmshapes,
                                               near_threshold, kwargs))


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


__all__ = ['MMSHAPES_CLS_TASKS', 'MMSHAPES_DENSE_TASKS', 'MMShapesClsDataset',
           'MMShapesDetDataset', 'MMShapesSegDataset', 'MMShapesVQADataset',
           'NEAR_FAR_THRESHOLD', 'NearFarClassesMixin', 'check_mmshapes_args']
