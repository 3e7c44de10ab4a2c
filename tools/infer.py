"""Predict with a trained model of any task from raw inputs.

    python tools/infer.py CONFIG CHECKPOINT --image IMG --question "how many circles are there?"
    python tools/infer.py CONFIG CHECKPOINT --image IMG --audio CLIP.wav
    python tools/infer.py CONFIG CHECKPOINT --image IMG --depth DEPTH.png --show
    python tools/infer.py CONFIG CKPT --image IMG --depth D.png --text "the red circles" --show
    python tools/infer.py CONFIG CHECKPOINT --batch inputs.jsonl --json
    python tools/infer.py RETRIEVAL_CONFIG CKPT --text "two red circles" --gallery imgs/*.png
    python tools/infer.py RETRIEVAL_CONFIG CKPT --image IMG --gallery captions.txt --topk 3

Give the inputs the model takes: the modalities its test pipeline's
PackMultiModalInputs packs. A missing one, or one the model does not take,
stops it with one ``mmfusion: error:`` line naming the option, before the
checkpoint is read. ``--batch`` reads a JSON-lines file, one object of
modality -> path / text / list of numbers per line, run in batches of
``--batch-size``. ``--show`` draws boxes, masks or label maps (with the text
prompt and the depth map) into ``--out-dir`` and shows them when a display is
available.

A retrieval model (``DualEncoder``) takes any of its towers' inputs and
prints their embeddings (``--json``: the vectors); with ``--gallery`` it
ranks the gallery for the query by cosine similarity: files of the other
tower's modality, or a .txt file of one text per line.
"""
import argparse
import json
import os
import os.path as osp
from typing import Dict, List, Optional

import mmfusion  # noqa: F401
from mmfusion.errors import ConfigError, MMFusionError
from mmfusion.utils import read_tool_config, run_main

# the command-line option that gives each modality
OPTIONS = {'image': '--image', 'depth': '--depth', 'text': '--question', 'audio': '--audio',
           'vector': '--vector'}
# what to call a model, by its head
TASKS = {'DualEncoder': 'retrieval', 'VQAHead': 'VQA', 'ClsHead': 'classification',
         'MultiLabelClsHead': 'multi-label classification',
         'FCOSHead': 'detection', 'FPNSegHead': 'segmentation'}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='mmfusion inference on raw inputs')
    parser.add_argument('config')
    parser.add_argument('checkpoint')
    parser.add_argument('--image', help='image file')
    parser.add_argument('--depth', help='depth map file (e.g. a uint16 PNG of millimetres)')
    parser.add_argument('--question', '--text', '--expression', dest='text',
                        help='question, caption or referring expression')
    parser.add_argument('--audio', help='audio file (WAV)')
    parser.add_argument('--vector', help='comma-separated numbers or a .npy file')
    parser.add_argument('--batch', help='JSON-lines file of inputs, one object per line')
    parser.add_argument('--batch-size', type=int, default=16)
    parser.add_argument('--json', action='store_true', help='print one JSON line per input')
    parser.add_argument('--show', action='store_true',
                        help='draw the predictions (boxes, masks) into --out-dir')
    parser.add_argument('--out-dir', default='infer_vis', help='where --show writes pictures')
    parser.add_argument('--score-thr', type=float, default=0.3,
                        help='boxes scoring at most this are not drawn or printed')
    parser.add_argument('--gallery', nargs='+', default=None, metavar='ITEM',
                        help='retrieval models: rank these for the query (files of the other '
                        "tower's modality, or a .txt file of one text per line)")
    parser.add_argument('--topk', type=int, default=5, help='gallery items shown per query')
    parser.add_argument('--device', default=None, help='cpu, cuda, cuda:1 ...')
    args = parser.parse_args()
    if args.topk < 1:
        parser.error(f'--topk must be >= 1, got {args.topk}')
    given = (args.image, args.depth, args.text, args.audio, args.vector)
    if args.batch is None and not any(given):
        parser.error('give at least one input: --image, --depth, --question/--text, --audio, '
                     '--vector, or --batch FILE')
    if args.batch is not None and any(given):
        parser.error('--batch takes its inputs from the file; drop the single-input options')
    if args.batch_size < 1:
        parser.error(f'--batch-size must be >= 1, got {args.batch_size}')
    if args.device is not None:
        import torch
        try:
            torch.device(args.device)
        except RuntimeError:
            parser.error(f'--device {args.device!r} is not a device; give cpu, cuda or cuda:N')
    return args


def packed_modalities(cfg) -> Optional[List[str]]:
    """The modalities the last PackMultiModalInputs of the test pipeline packs,
    in its order, or None when it does not list them."""
    pipeline = ((cfg.get('test_dataloader') or {}).get('dataset') or {}).get('pipeline') or []
    for step in reversed(list(pipeline)):
        step_type = step.get('type') if isinstance(step, dict) else None
        name = step_type if isinstance(step_type, str) else getattr(step_type, '__name__', '')
        if name.rsplit('.', 1)[-1] == 'PackMultiModalInputs':
            inputs = step.get('inputs')
            if not isinstance(inputs, dict):
                return None
            return [m for m, key in inputs.items() if key is not None]
    return None


def _task(cfg) -> Optional[str]:
    model = cfg.get('model') or {}
    if str(model.get('type', '')).rsplit('.', 1)[-1] in TASKS:
        return TASKS[str(model['type']).rsplit('.', 1)[-1]]
    head = model.get('head') or {}
    head_type = head.get('type') if isinstance(head, dict) else None
    return TASKS.get(str(head_type).rsplit('.', 1)[-1]) if head_type else None


def _describe_model(cfg) -> str:
    task = _task(cfg)
    return f'this {task} model' if task else 'this model'


def _and(items: List[str]) -> str:
    return items[0] if len(items) == 1 else ', '.join(items[:-1]) + ' and ' + items[-1]


def _option(cfg, modality: str) -> str:
    if modality == 'text' and _task(cfg) != 'VQA':
        return '--text'
    return OPTIONS[modality]


def check_inputs(cfg, given: Dict[str, str], config: str) -> None:
    """Check the given inputs against what the model takes, before it is built.

    Raises:
        MMFusionError: an input is missing (naming its option) or the model
            does not take one that was given, or it takes a modality this
            tool has no option for.
    """
    needed = packed_modalities(cfg)
    if needed is None:
        return  # packs whatever the data holds: nothing to check against
    model = _describe_model(cfg)
    takes = f'{model} ({config}) takes {_and(needed)}'
    no_option = [m for m in needed if m not in OPTIONS]
    if no_option:
        raise MMFusionError(
            f'{takes}, and tools/infer.py has no option for {_and(no_option)}; use --batch '
            'with a JSON-lines file, or call mmfusion.apis.MultiModalInferencer from Python '
            'with a dict of every input')
    extra = [m for m in given if m not in needed]
    if extra:
        raise MMFusionError(f'{takes}, not {_and(extra)}: drop '
                            f'{_and([_option(cfg, m) for m in extra])}')
    missing = [m for m in needed if m not in given]
    if missing and _task(cfg) == 'retrieval':
        return  # each tower embeds what it is given
    if missing:
        raise MMFusionError(f'{takes}: give {_and([_option(cfg, m) for m in missing])}')


def _vector(value: str):
    if value.endswith('.npy'):
        import numpy as np
        return np.load(value, allow_pickle=False).astype('float32').reshape(-1).tolist()
    try:
        return [float(v) for v in value.split(',')]
    except ValueError:
        raise MMFusionError(f'--vector {value!r}: expected comma-separated numbers or a .npy '
                            'file') from None


def read_batch(path: str) -> List[dict]:
    """The inputs of a JSON-lines file (relative paths are taken from the file's folder)."""
    if not osp.isfile(path):
        raise MMFusionError(f'--batch {path}: no such file')
    items = []
    with open(path) as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                item = json.loads(line)
            except json.JSONDecodeError as e:
                raise MMFusionError(f'--batch {path} line {number}: not JSON ({e})') from None
            if not isinstance(item, dict):
                raise MMFusionError(f'--batch {path} line {number}: expected an object of '
                                    'modality -> input')
            items.append(item)
    if not items:
        raise MMFusionError(f'--batch {path}: the file holds no inputs')
    return items


def _printable(result: dict) -> dict:
    out = dict(result)
    if 'sem_seg' in out:
        import numpy as np
        seg = out.pop('sem_seg')
        names = out.get('classes')
        values, counts = np.unique(seg, return_counts=True)
        out['pixels_per_class'] = {(names[v] if names and v < len(names) else str(v)): int(c)
                                   for v, c in zip(values.tolist(), counts.tolist())}
        out['size'] = list(seg.shape)
    return out


def read_gallery(paths: List[str], query_modalities: List[str], towers: List[str]
                 ) -> List[dict]:
    """``--gallery`` -> inputs: each line of a .txt file is a text, every
    other file an input of the one tower that the queries do not use."""
    others = [m for m in towers if m not in query_modalities]
    items: List[dict] = []
    for path in paths:
        if not osp.isfile(path):
            raise MMFusionError(f'--gallery {path}: no such file')
        if path.endswith('.txt'):
            with open(path, encoding='utf-8') as f:
                items.extend({'text': line.strip()} for line in f if line.strip())
            continue
        files = [m for m in others if m != 'text']
        if len(files) != 1:
            raise MMFusionError(f'--gallery {path}: cannot tell which of the towers '
                                f'{_and(towers)} a file is for when the query is '
                                f'{_and(query_modalities)}; query with one modality')
        items.append({files[0]: path})
    if not items:
        raise MMFusionError('--gallery: the files hold no items')
    return items


def _label(item: dict) -> str:
    return next(str(v) for v in item.values())


def print_result(result: dict, item: dict, score_thr: float) -> None:
    if 'embeddings' in result:
        for modality, vector in result['embeddings'].items():
            head = ', '.join(f'{v:.3f}' for v in vector[:4])
            print(f'  {modality} embedding ({len(vector)}-d): [{head}, ...]')
    elif 'pred_answer' in result:
        print(f'Q: {item.get("text")}')
        for answer, score in zip(result['topk_answers'], result['topk_scores']):
            print(f'  {answer:<16s} {score:.3f}')
    elif 'bboxes' in result:
        shown = [i for i, s in enumerate(result['scores']) if s > score_thr]
        print(f'{len(shown)} detections (score > {score_thr}):')
        for i in shown:
            box = ' '.join(f'{v:7.1f}' for v in result['bboxes'][i])
            print(f'  {result["label_names"][i]:<16s} {result["scores"][i]:.3f}  {box}')
    elif 'sem_seg' in result:
        info = _printable(result)
        print(f'label map {info["size"][0]}x{info["size"][1]}; pixels per class:')
        for name, count in info['pixels_per_class'].items():
            print(f'  {name:<16s} {count}')
    else:
        classes = result.get('classes_all')
        for label, score in sorted(enumerate(result['pred_score']), key=lambda x: -x[1]):
            name = classes[label] if classes else label
            print(f'  {name!s:<16s} {score:.3f}')


def show(inferencer, item: dict, sample, out_dir: str, index: int, score_thr: float) -> str:
    """Draw one prediction (with its text and depth map); return the file written."""
    import mmcv
    import numpy as np

    from mmfusion.visualization import MultiModalVisualizer

    image = item.get('image')
    image = mmcv.imread(image) if isinstance(image, str) else np.asarray(image)
    depth = item.get('depth')
    if isinstance(depth, str):
        loader = inferencer._loaders.get(inferencer.input_keys.get('depth', 'depth'))
        depth = loader.transform._decode_cached(depth).astype(np.float32) * \
            loader.transform.scale if loader else None
    if 'text' in item:
        sample.set_metainfo(dict(text=item['text']))
    visualizer = MultiModalVisualizer.get_instance('mmfusion_infer')
    visualizer.dataset_meta = dict(inferencer.dataset_meta)
    name = osp.splitext(osp.basename(item['image']))[0] if isinstance(
        item.get('image'), str) else f'input_{index}'
    out_file = osp.join(out_dir, f'{index:04d}_{name}.png')
    visualizer.add_datasample(name, mmcv.bgr2rgb(image), sample, draw_gt=False,
                              pred_score_thr=score_thr, depth=depth, out_file=out_file,
                              show=bool(os.environ.get('DISPLAY')))
    return out_file


def main() -> None:
    args = parse_args()
    cfg = read_tool_config(args.config)
    if args.batch is not None:
        items = read_batch(args.batch)
        base = osp.dirname(osp.abspath(args.batch))
        for item in items:
            for key, value in item.items():
                if key != 'text' and isinstance(value, str) and not osp.isabs(value) \
                        and osp.exists(osp.join(base, value)):
                    item[key] = osp.join(base, value)
    else:
        item = {name: value for name, value in
                dict(image=args.image, depth=args.depth, text=args.text, audio=args.audio,
                     vector=args.vector).items() if value}
        check_inputs(cfg, item, args.config)
        if 'vector' in item:
            item['vector'] = _vector(item['vector'])
        items = [item]
    if args.gallery is not None and _task(cfg) != 'retrieval':
        raise MMFusionError(f'--gallery ranks items with a retrieval model (DualEncoder); '
                            f'{args.config} is a {_task(cfg) or "non-retrieval"} model')
    if not cfg.get('test_dataloader'):
        raise ConfigError(f'{args.config} has no test_dataloader; the inferencer takes its '
                          'pipeline from test_dataloader.dataset.pipeline')
    from mmfusion.apis import MultiModalInferencer
    inferencer = MultiModalInferencer(cfg, args.checkpoint, device=args.device,
                                      batch_size=args.batch_size)
    if args.gallery is not None:
        query_modalities = sorted({m for item in items for m in item})
        gallery = read_gallery(args.gallery, query_modalities, inferencer.modalities)
        ranked = inferencer.retrieve(items, gallery, topk=args.topk,
                                     batch_size=args.batch_size)
        for item, result in zip(items, ranked):
            hits = [dict(item=gallery[i], score=s)
                    for i, s in zip(result['indices'], result['scores'])]
            if args.json:
                print(json.dumps(dict(input=item, ranked=hits)))
                continue
            print(f'query: {_label(item)}')
            for rank, hit in enumerate(hits, 1):
                print(f'  {rank:>2d}. {hit["score"]:.3f}  {_label(hit["item"])}')
        return
    samples = inferencer(items, return_datasamples=True)
    for index, (item, sample) in enumerate(zip(items, samples)):
        result = inferencer.postprocess(sample)
        if args.json:
            print(json.dumps(dict(input=item, prediction=_printable(result))))
        else:
            if len(items) > 1:
                print(f'[{index}] {item}')
            print_result(dict(result, classes_all=inferencer.classes), item, args.score_thr)
        if args.show:
            if 'image' not in item:
                raise MMFusionError('--show draws on the image; this model takes no image')
            out_file = show(inferencer, item, sample, args.out_dir, index, args.score_thr)
            if not args.json:
                print(f'drawn: {out_file}')


if __name__ == '__main__':
    run_main(main)
