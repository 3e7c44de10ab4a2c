"""MMShapes: a small, seeded, multimodal synthetic dataset.

Every scene is an ``img_size x img_size`` RGB picture of 2-4 coloured shapes
(circle, square, triangle) on a light-grey background, plus modalities that
carry information the picture lacks:

* **depth** - each object sits at a random distance (1-9 m) that leaves no
  trace in RGB (no shading, no size cue), so "the nearest square" needs depth;
* **audio** - one object "sounds": a beeping tone whose pitch encodes that
  object's *colour*; the picture shows the candidates and their shapes, the
  sound says which one is sounding;
* **text** - captions, referring expressions, VQA questions and
  image-text-matching pairs, built so that a text-only model is near chance.

The generator writes the formats real datasets use, so the same dataset
classes read real data (COCO, VQAv2, RefCOCO-like refs, jsonl lists)::

    out_dir/
        meta.json                        # written last: marks a complete copy
        images/{split}/{image_id:06d}.png      # RGB uint8
        depth/{split}/{image_id:06d}.png       # uint16, millimetres (bg 10000)
        sem_masks/{split}/{image_id:06d}.png   # uint8, 0 bg, category id 1..3
        inst_masks/{split}/{image_id:06d}.png  # uint8, 0 bg, k = k-th ann (1-based)
        audio/{split}/{image_id:06d}.wav       # 16 kHz mono int16, 1.0 s
        annotations/instances_{split}.json     # COCO instances (+ color,
                                               #   distance, sounding per ann)
        annotations/captions_{split}.json      # COCO captions, 1 per image
        annotations/refs_{split}.json          # [{ref_id, image_id, ann_ids,
                                               #   sentence, split}]
        vqa/v2_OpenEnded_mmshapes_{split}_questions.json   # VQAv2 questions
        vqa/v2_mmshapes_{split}_annotations.json           # VQAv2 answers
        classification/{split}_av.jsonl          # image+audio -> sounding shape
        classification/{split}_itm.jsonl         # image+text -> match (0/1);
                                                 #   negatives: other scenes' captions
        classification/{split}_itm_hard.jsonl    # the same, negatives: the caption
                                                 #   of a minimally changed scene
        classification/{split}_multilabel.jsonl  # image -> colours present

Ids (chosen so that a split's content never depends on the other split's
size): train image ids are ``1..num_train``; val image ids are
``1_000_001..1_000_000 + num_val`` (:data:`VAL_IMAGE_ID_OFFSET`). Inside an
image, annotation ids, VQA question ids and ref ids are
``image_id * 10 + k``. All paths stored in the files are relative to
``out_dir``.

Scene ``i`` of a split draws all of its randomness from
``np.random.default_rng([seed, split_index, i])`` (train 0, val 1), so val
scene ``i`` is the same whatever ``num_train`` is, and equal parameters give
byte-identical files.

The package, one concern per module:

* :mod:`.spec` - version, shapes, colours, pitches, splits and image ids;
* :mod:`.scenes` - sampling a scene's objects, layout and distances;
* :mod:`.render` - RGB, depth, semantic and instance maps of a scene;
* :mod:`.audio` - the sounding object's beeps;
* :mod:`.language` - captions, refs, VQA questions and answers, ITM pairs;
* :mod:`.writers` - the COCO / VQAv2 / JSON-lines / PNG / WAV files;
* :mod:`.generate` - a whole copy (:func:`generate_mmshapes`);
* :mod:`.storage` - generate-on-first-use (:func:`ensure_mmshapes`);
* :mod:`.datasets` - the registered ``MMShapes*Dataset`` classes.
"""
from .audio import synthesize_audio
from .datasets import (
    MMSHAPES_CLS_TASKS,
    MMSHAPES_DENSE_TASKS,
    NEAR_FAR_THRESHOLD,
    MMShapesClsDataset,
    MMShapesDetDataset,
    MMShapesSegDataset,
    MMShapesVQADataset,
    NearFarClassesMixin,
    check_mmshapes_args,
)
from .generate import generate_mmshapes
from .language import (
    itm_with_other_captions,
    make_answers,
    make_caption,
    make_questions,
    make_refs,
    normalize_answer,
    perturb_attributes,
)
from .render import BACKGROUND_DEPTH_MM, BACKGROUND_GRAY, render_scene, shape_mask
from .scenes import (
    DISTANCE_RANGE,
    GRID,
    MAX_OBJECTS,
    MIN_DEPTH_GAP,
    MIN_OBJECTS,
    RADIUS_RANGE,
    Scene,
    ShapeObject,
    is_valid_layout,
    sample_scene,
    sounding_candidates,
)
from .spec import (
    AUDIO_DURATION,
    AUDIO_SAMPLE_RATE,
    COLOR_FREQS,
    COLOR_NAMES,
    COLORS,
    DEFAULT_MMSHAPES,
    MMSHAPES_VERSION,
    SHAPES,
    SPLITS,
    VAL_IMAGE_ID_OFFSET,
    image_id_for,
)
from .storage import ensure_mmshapes, mmshapes_stats

__all__ = [
    'AUDIO_DURATION', 'AUDIO_SAMPLE_RATE', 'BACKGROUND_DEPTH_MM', 'BACKGROUND_GRAY',
    'COLORS', 'COLOR_FREQS', 'COLOR_NAMES', 'DEFAULT_MMSHAPES', 'DISTANCE_RANGE', 'GRID',
    'MAX_OBJECTS', 'MIN_DEPTH_GAP', 'MIN_OBJECTS', 'MMSHAPES_CLS_TASKS', 'MMSHAPES_DENSE_TASKS',
    'MMSHAPES_VERSION', 'MMShapesClsDataset', 'MMShapesDetDataset', 'MMShapesSegDataset',
    'MMShapesVQADataset', 'NEAR_FAR_THRESHOLD', 'NearFarClassesMixin', 'RADIUS_RANGE', 'SHAPES',
    'SPLITS', 'Scene', 'ShapeObject', 'VAL_IMAGE_ID_OFFSET', 'check_mmshapes_args',
    'ensure_mmshapes', 'generate_mmshapes', 'image_id_for', 'is_valid_layout',
    'itm_with_other_captions', 'make_answers', 'make_caption', 'make_questions', 'make_refs',
    'mmshapes_stats', 'normalize_answer', 'perturb_attributes', 'render_scene', 'sample_scene',
    'shape_mask', 'sounding_candidates', 'synthesize_audio'
]
