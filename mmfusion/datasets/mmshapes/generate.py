"""Generation of a whole copy: every scene of every split, then the
annotation files, then ``meta.json``."""
import os
import os.path as osp
import sys
from typing import Iterator

import numpy as np
from mmengine.logging import print_log
from mmengine.utils import ProgressBar
from PIL import Image

from .audio import synthesize_audio
from .language import make_answers, make_caption, make_questions, make_refs, perturb_attributes
from .render import render_scene
from .scenes import sample_scene
from .spec import (
    COLOR_NAMES,
    COLORS,
    MMSHAPES_VERSION,
    SHAPES,
    SPLITS,
    VAL_IMAGE_ID_OFFSET,
    image_id_for,
)
from .writers import SplitRecords, dump_json, rle_encode, scene_files, write_split, write_wav


def _generate_scene(out_dir: str, split: str, index: int, img_size: int,
                    seed: int, records: SplitRecords) -> None:
    """Sample, render and write one scene; append its annotations."""
    rng = np.random.default_rng([seed, SPLITS.index(split), index])
    scene = sample_scene(rng, img_size)
    rgb, depth, sem, inst = render_scene(scene, img_size, rng)
    audio = synthesize_audio(scene, rng)

    image_id = image_id_for(split, index)
    files = scene_files(split, image_id)
    Image.fromarray(rgb).save(osp.join(out_dir, files['file_name']))
    Image.fromarray(depth).save(osp.join(out_dir, files['depth_file']))
    Image.fromarray(sem).save(osp.join(out_dir, files['sem_mask_file']))
    Image.fromarray(inst).save(osp.join(out_dir, files['inst_mask_file']))
    write_wav(osp.join(out_dir, files['audio_file']), audio)
    records.images.append(
        dict(id=image_id, height=img_size, width=img_size, **files))

    ann_ids = []
    for k, obj in enumerate(scene.objects, start=1):
        mask = inst == k
        ys, xs = np.nonzero(mask)
        ann_id = image_id * 10 + k
        ann_ids.append(ann_id)
        records.instances.append(
            dict(id=ann_id, image_id=image_id,
                 category_id=SHAPES.index(obj.shape) + 1,
                 bbox=[int(xs.min()), int(ys.min()),
                       int(xs.max() - xs.min() + 1),
                       int(ys.max() - ys.min() + 1)],
                 area=int(mask.sum()), iscrowd=0, segmentation=rle_encode(mask),
                 color=obj.color, distance=obj.distance,
                 sounding=k - 1 == scene.sounding))

    shapes = [o.shape for o in scene.objects]
    colors = [o.color for o in scene.objects]
    caption = make_caption(shapes, colors)
    records.captions.append(
        dict(id=image_id * 10, image_id=image_id, caption=caption))

    for k, (idx, sentence) in enumerate(make_refs(scene, rng)):
        records.refs.append(
            dict(ref_id=image_id * 10 + k, image_id=image_id, split=split,
                 ann_ids=[ann_ids[i] for i in idx], sentence=sentence))

    for k, (question, qtype, atype, answer) in enumerate(
            make_questions(scene, rng)):
        qid = image_id * 10 + k
        answers, mc_answer = make_answers(rng, answer, atype)
        records.questions.append(
            dict(image_id=image_id, question=question, question_id=qid))
        records.answers.append(
            dict(question_id=qid, image_id=image_id, question_type=qtype,
                 answer_type=atype, multiple_choice_answer=mc_answer,
                 answers=answers))

    sounding_shape = scene.objects[scene.sounding].shape
    records.av.append(
        dict(img_path=files['file_name'], audio_path=files['audio_file'],
             label=SHAPES.index(sounding_shape), label_name=sounding_shape))
    false_caption = make_caption(*perturb_attributes(rng, shapes, colors))
    records.itm_hard.append(dict(img_path=files['file_name'], text=caption,
                                 label=1))
    records.itm_hard.append(dict(img_path=files['file_name'],
                                 text=false_caption, label=0))
    records.multilabel.append(
        dict(img_path=files['file_name'],
             labels=sorted({COLOR_NAMES.index(c) for c in colors})))


def _track(indices: range, max_redraws: int = 50) -> Iterator[int]:
    """Yield ``indices`` while an MMEngine ``ProgressBar`` shows how many are done.

    The bar is redrawn at most ``max_redraws`` times: a log file or a pipe keeps
    every redraw, and one per scene would flood it.
    """
    total = len(indices)
    step = max(1, total // max_redraws)
    bar = ProgressBar(total, file=sys.stdout)  # now, so a redirected stdout is used
    for done, index in enumerate(indices, start=1):
        yield index
        if done % step == 0 or done == total:
            bar.update(done - bar.completed)
    bar.file.write('\n')


def check_params(num_train: int, num_val: int, img_size: int, seed: int) -> None:
    """Raise TypeError (not an int) or ValueError (out of range) for a bad
    generator parameter, naming it."""
    for name, value in dict(num_train=num_train, num_val=num_val,
                            img_size=img_size, seed=seed).items():
        if not isinstance(value, (int, np.integer)) or isinstance(
                value, bool):
            raise TypeError(f'{name} must be an int, got {value!r}')
    if not 0 <= num_train < VAL_IMAGE_ID_OFFSET:
        raise ValueError(f'num_train must be in [0, {VAL_IMAGE_ID_OFFSET})')
    if not 0 <= num_val < VAL_IMAGE_ID_OFFSET:
        raise ValueError(f'num_val must be in [0, {VAL_IMAGE_ID_OFFSET})')
    if img_size < 32:
        raise ValueError(f'img_size must be >= 32, got {img_size}')
    if seed < 0:
        raise ValueError(f'seed must be >= 0, got {seed}')


def generate_mmshapes(out_dir: str,
                      num_train: int = 2000,
                      num_val: int = 500,
                      img_size: int = 64,
                      seed: int = 0,
                      progress: bool = False) -> None:
    """Write MMShapes into ``out_dir`` (created if needed).

    Files already there are overwritten, not removed. ``meta.json`` is
    written last, so its presence marks a complete copy. Prefer
    :func:`ensure_mmshapes`, which is atomic and safe under concurrency.

    Args:
        out_dir: the folder to write into.
        num_train, num_val: scenes per split.
        img_size: side of the square images, in pixels (>= 32).
        seed: the seed every scene's generator derives from.
        progress: show one progress bar per non-empty split (MMEngine's
            ``ProgressBar``, on stdout). It draws no random numbers, so the
            files are the same either way.
    """
    check_params(num_train, num_val, img_size, seed)
    params = dict(num_train=int(num_train), num_val=int(num_val),
                  img_size=int(img_size), seed=int(seed))
    meta_path = osp.join(out_dir, 'meta.json')
    if osp.exists(meta_path):
        os.remove(meta_path)  # an interrupted rewrite must not look complete
    sizes = dict(train=params['num_train'], val=params['num_val'])
    for sub in ('images', 'depth', 'sem_masks', 'inst_masks', 'audio'):
        for split in SPLITS:
            os.makedirs(osp.join(out_dir, sub, split), exist_ok=True)
    for sub in ('annotations', 'vqa', 'classification'):
        os.makedirs(osp.join(out_dir, sub), exist_ok=True)

    for split in SPLITS:
        records = SplitRecords()
        indices = range(sizes[split])
        if progress and sizes[split]:
            print_log(f'MMShapes {split}: {sizes[split]} scenes', logger='current')
            indices = _track(indices)
        for index in indices:
            _generate_scene(out_dir, split, index, params['img_size'],
                            params['seed'], records)
        write_split(out_dir, split, records, params['seed'])

    meta = dict(version=MMSHAPES_VERSION, params=params,
                classes=list(SHAPES), colors=list(COLORS), splits=sizes,
                image_id_offsets=dict(train=0, val=VAL_IMAGE_ID_OFFSET))
    dump_json(meta, meta_path)


__all__ = ['check_params', 'generate_mmshapes']
