"""Answer a question about an image with a trained model.

    python tools/infer.py CONFIG CHECKPOINT --image IMG --question "how many circles are there?"
"""
import argparse

import mmfusion  # noqa: F401
from mmfusion.apis import MultiModalInferencer


def main() -> None:
    parser = argparse.ArgumentParser(description='mmfusion inference on raw inputs')
    parser.add_argument('config')
    parser.add_argument('checkpoint')
    parser.add_argument('--image', required=True, help='image file')
    parser.add_argument('--question', required=True, help='question (or other text input)')
    parser.add_argument('--device', default=None, help='cpu, cuda, cuda:1 ...')
    args = parser.parse_args()

    inferencer = MultiModalInferencer(args.config, args.checkpoint, device=args.device)
    result = inferencer(dict(image=args.image, text=args.question))[0]
    if 'pred_answer' in result:
        print(f'Q: {args.question}')
        for answer, score in zip(result['topk_answers'], result['topk_scores']):
            print(f'  {answer:<16s} {score:.3f}')
    else:
        print(result)


if __name__ == '__main__':
    main()
