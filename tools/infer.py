"""Predict with a trained model from raw inputs: an image, a question or text, a sound.

    python tools/infer.py CONFIG CHECKPOINT --image IMG --question "how many circles are there?"
    python tools/infer.py CONFIG CHECKPOINT --image IMG --audio CLIP.wav

Give the inputs the model takes: the modalities its test pipeline's
PackMultiModalInputs packs. A missing one, or one the model does not take,
stops it with one ``mmfusion: error:`` line naming the option, before the
checkpoint is read.
"""
import argparse
from typing import Dict, List, Optional

import mmfusion  # noqa: F401
from mmfusion.apis import MultiModalInferencer
from mmfusion.errors import ConfigError, MMFusionError
from mmfusion.utils import read_tool_config, run_main

# the command-line option that gives each modality
OPTIONS = {'image': '--image', 'text': '--question', 'audio': '--audio'}
# what to call a model, by its head
TASKS = {'VQAHead': 'VQA', 'ClsHead': 'classification',
         'MultiLabelClsHead': 'multi-label classification',
         'FCOSHead': 'detection', 'FPNSegHead': 'segmentation'}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='mmfusion inference on raw inputs')
    parser.add_argument('config')
    parser.add_argument('checkpoint')
    parser.add_argument('--image', help='image file')
    parser.add_argument('--question', '--text', dest='text',
                        help='question (or other text input)')
    parser.add_argument('--audio', help='audio file (WAV)')
    parser.add_argument('--device', default=None, help='cpu, cuda, cuda:1 ...')
    args = parser.parse_args()
    if not any((args.image, args.text, args.audio)):
        parser.error('give at least one input: --image, --question/--text or --audio')
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


def _describe_model(cfg) -> str:
    head = (cfg.get('model') or {}).get('head') or {}
    head_type = head.get('type') if isinstance(head, dict) else None
    task = TASKS.get(str(head_type).rsplit('.', 1)[-1]) if head_type else None
    return f'this {task} model' if task else 'this model'


def _and(items: List[str]) -> str:
    return items[0] if len(items) == 1 else ', '.join(items[:-1]) + ' and ' + items[-1]


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
            f'{takes}, and tools/infer.py has no option for {_and(no_option)}; call '
            'mmfusion.apis.MultiModalInferencer from Python with a dict of every input')
    extra = [m for m in given if m not in needed]
    if extra:
        raise MMFusionError(f'{takes}, not {_and(extra)}: drop '
                            f'{_and([OPTIONS[m] for m in extra])}')
    missing = [m for m in needed if m not in given]
    if missing:
        raise MMFusionError(f'{takes}: give {_and([OPTIONS[m] for m in missing])}')


def main() -> None:
    args = parse_args()
    inputs = {name: value for name, value in
              dict(image=args.image, text=args.text, audio=args.audio).items() if value}
    cfg = read_tool_config(args.config)
    check_inputs(cfg, inputs, args.config)
    if not cfg.get('test_dataloader'):
        raise ConfigError(f'{args.config} has no test_dataloader; the inferencer takes its '
                          'pipeline from test_dataloader.dataset.pipeline')
    inferencer = MultiModalInferencer(cfg, args.checkpoint, device=args.device)
    result = inferencer(inputs)[0]
    if 'pred_answer' in result:
        print(f'Q: {args.text}')
        for answer, score in zip(result['topk_answers'], result['topk_scores']):
            print(f'  {answer:<16s} {score:.3f}')
    else:
        classes = inferencer.cfg.get('test_dataloader', {}).get('dataset', {}).get('classes')
        for label, score in sorted(enumerate(result['pred_score']), key=lambda x: -x[1]):
            name = classes[label] if classes else label
            print(f'  {name!s:<16s} {score:.3f}')


if __name__ == '__main__':
    run_main(main)
