"""Serve a trained model over HTTP (FastAPI on uvicorn) with dynamic batching.

    python tools/deployment/serve.py CONFIG CHECKPOINT --port 8000
    curl -F image=@scene.png -F text='how many circles are there?' localhost:8000/predict
    curl localhost:8000/metadata ; curl localhost:8000/health

``POST /predict`` takes one input per request, as multipart fields (files
for images, depth maps and WAV audio; plain fields for text; a JSON list for
a vector) or as a JSON object (base64 strings for binary modalities).
Concurrent requests are batched (``--max-batch-size``, ``--max-wait-ms``;
``--max-batch-size 1`` turns batching off). SIGTERM or Ctrl-C stops accepting
connections and finishes the requests in flight before exiting. Logs are
JSON lines on stderr, each with its request id. See
docs/inference_and_serving.md.
"""
import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

import mmfusion  # noqa: E402,F401
from mmfusion.utils import run_main  # noqa: E402


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='mmfusion inference server')
    parser.add_argument('config')
    parser.add_argument('checkpoint')
    parser.add_argument('--host', default='127.0.0.1')
    parser.add_argument('--port', type=int, default=8000)
    parser.add_argument('--device', default=None, help='cpu, cuda, cuda:1 ...')
    parser.add_argument('--max-batch-size', type=int, default=32,
                        help='most requests per model call; 1 turns batching off')
    parser.add_argument('--max-wait-ms', type=float, default=5.0,
                        help='how long a batch waits for more requests')
    parser.add_argument('--max-upload-mb', type=float, default=10.0,
                        help='largest request body (413 above)')
    parser.add_argument('--max-text-length', type=int, default=512,
                        help='longest text field in characters (422 above)')
    parser.add_argument('--max-image-mpixels', type=float, default=40.0,
                        help='most megapixels an uploaded image may declare (413 above; '
                        'checked before decoding); 0: off')
    parser.add_argument('--rate-limit', type=float, default=0.0,
                        help='requests per second per client address (429 above); 0: off')
    parser.add_argument('--rate-burst', type=int, default=50,
                        help='requests a client may send at once before the rate applies')
    parser.add_argument('--request-timeout', type=float, default=30.0,
                        help='seconds before a request gets 504')
    parser.add_argument('--graceful-timeout', type=float, default=30.0,
                        help='seconds shutdown waits for requests in flight')
    # One intra-op thread by default: batching already gives the model large
    # tensors, and on a busy machine idle OpenMP workers spinning between ops
    # took the CPU from the decoding threads (5.0 vs 28.5 requests/s measured
    # with 2 threads vs 1 on 2 shared cores). Raise it where cores are free.
    parser.add_argument('--threads', type=int, default=1,
                        help='torch CPU threads for the model (default 1; 0: torch\'s default)')
    args = parser.parse_args()
    for name in ('max_batch_size', 'max_text_length', 'port'):
        if getattr(args, name) < 1:
            parser.error(f'--{name.replace("_", "-")} must be >= 1, got {getattr(args, name)}')
    if args.max_wait_ms < 0 or args.max_upload_mb <= 0 or args.request_timeout <= 0 \
            or args.max_image_mpixels < 0:
        parser.error('--max-wait-ms and --max-image-mpixels must be >= 0, --max-upload-mb and '
                     '--request-timeout > 0')
    return args


def main() -> None:
    args = parse_args()
    import torch
    import uvicorn

    from mmfusion.apis import MultiModalInferencer
    from mmfusion.deployment.server import ServerConfig, create_app, get_logger

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    inferencer = MultiModalInferencer(args.config, args.checkpoint, device=args.device,
                                      batch_size=args.max_batch_size)
    config = ServerConfig(max_batch_size=args.max_batch_size, max_wait_ms=args.max_wait_ms,
                          max_upload_bytes=int(args.max_upload_mb * 1024 * 1024),
                          max_text_length=args.max_text_length,
                          max_image_pixels=int(args.max_image_mpixels * 1e6),
                          rate_limit=args.rate_limit,
                          rate_burst=args.rate_burst, request_timeout_s=args.request_timeout)
    app = create_app(inferencer, config,
                     info=dict(config=osp.basename(args.config),
                               checkpoint=osp.basename(args.checkpoint)))
    get_logger().info(f'serving {args.config} on http://{args.host}:{args.port}',
                      extra=dict(event='listen'))
    # uvicorn handles SIGINT/SIGTERM: stop accepting, let requests in flight
    # finish (up to --graceful-timeout), then run the app's shutdown
    uvicorn.run(app, host=args.host, port=args.port, log_level='warning', access_log=False,
                timeout_graceful_shutdown=args.graceful_timeout)


if __name__ == '__main__':
    run_main(main)
