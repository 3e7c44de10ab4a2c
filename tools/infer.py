"""Predict with a trained model from raw inputs: an image, a question or text, a sound.

    python tools/infer.py CONFIG CHECKPOINT --image IMG --question "how many circles are there?"
    python tools/infer.py CONFIG CHECKPOINT --image IMG --audio CLIP.wav

Give the inputs the model takes (its test pipeline's PackMultiModalInputs).
"""
import argparse

import mmfusion  # noqa: F401
from mmfusion.apis import MultiModalInferencer
from mmfusion.utils import run_main


def main() -> None:
    parser = argparse.ArgumentParser(description='mmfusion inference on raw inputs')
    parser.add_argument('config')
    parser.add_argument('checkpoint')
    parser.add_argument('--image', help='image file')
    parser.add_argument('--question', '--text', dest='text',
                        help='question (or other text input)')
    parser.add_argument('--audio', help='audio file (WAV)')
    parser.add_argument('--device', default=None, help='cpu, cuda, cuda:1 ...')
    args = parser.parse_args()

    inputs = {name: value for name, value in
              dict(image=args.image, text=args.text, audio=args.audio).items() if value}
    if not inputs:
        parser.error('give at least one input: --image, --question/--text or --audio')
    inferencer = MultiModalInferencer(args.config, args.checkpoint, device=args.device)
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
