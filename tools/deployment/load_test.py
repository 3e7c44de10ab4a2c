"""A bounded load test of the inference server: N concurrent clients send a
fixed number of requests; prints latency percentiles, throughput and failures.

    python tools/deployment/load_test.py --url http://127.0.0.1:8000 \\
        --inputs 'image=data/mmshapes/images/val/*.png' --text 'how many circles are there?' \\
        --requests 2000 --concurrency 16 [--json-body] [--out result.json]

    # malformed requests: each of 10 kinds must get its own 4xx status
    python tools/deployment/load_test.py --url ... --inputs ... --text ... --malformed 200

Inputs: ``--inputs MODALITY=GLOB`` for file modalities (repeatable; the files
are cycled), ``--text`` for a text field. Exits with status 1 when any request
failed (a 5xx, a connection error, a malformed request with the wrong status),
so it can gate a deployment.
"""
import argparse
import asyncio
import base64
import glob
import itertools
import json
import statistics
import sys
import time
from typing import Dict, List, Tuple

# (kind, expected status); each builder below makes one such request
MALFORMED_KINDS = (
    ('missing_field', 422), ('unknown_field', 422), ('corrupt_image', 422),
    ('wrong_type_upload', 415), ('text_too_long', 422), ('bad_base64', 422),
    ('invalid_json', 400), ('wrong_json_type', 422), ('body_too_large', 413),
    ('bad_content_type', 415))


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='load test of tools/deployment/serve.py')
    parser.add_argument('--url', default='http://127.0.0.1:8000')
    parser.add_argument('--inputs', action='append', default=[],
                        help='MODALITY=GLOB of files to upload (repeatable)')
    parser.add_argument('--text', action='append', default=[],
                        help='MODALITY=TEXT or TEXT (for the field "text")')
    parser.add_argument('--requests', type=int, default=200)
    parser.add_argument('--concurrency', type=int, default=16)
    parser.add_argument('--json-body', action='store_true',
                        help='send JSON with base64 instead of multipart')
    parser.add_argument('--malformed', type=int, default=0,
                        help='send this many malformed requests instead (cycling 10 kinds)')
    parser.add_argument('--max-upload-mb', type=float, default=10.0,
                        help='the server\'s limit, to build an over-size body')
    parser.add_argument('--max-text-length', type=int, default=512)
    parser.add_argument('--timeout', type=float, default=60.0)
    parser.add_argument('--out', help='write the summary as JSON here')
    args = parser.parse_args()
    if args.requests < 1 or args.concurrency < 1 or args.malformed < 0:
        parser.error('--requests and --concurrency must be >= 1, --malformed >= 0')
    return args


def load_inputs(args) -> Tuple[Dict[str, List[bytes]], Dict[str, str]]:
    files: Dict[str, List[bytes]] = {}
    for spec in args.inputs:
        modality, _, pattern = spec.partition('=')
        paths = sorted(glob.glob(pattern))[:64]
        if not paths:
            raise SystemExit(f'--inputs {spec}: no file matches {pattern!r}')
        files[modality] = [open(p, 'rb').read() for p in paths]
    texts = {}
    for spec in args.text:
        modality, sep, text = spec.partition('=')
        texts.update({modality: text} if sep and ' ' not in modality else {'text': spec})
    return files, texts


def make_request(files: Dict[str, List[bytes]], texts: Dict[str, str], i: int,
                 as_json: bool) -> dict:
    """httpx request kwargs for the i-th well-formed request."""
    chosen = {m: data[i % len(data)] for m, data in files.items()}
    if as_json:
        body = {m: base64.b64encode(d).decode() for m, d in chosen.items()}
        body.update(texts)
        return dict(json=body)
    return dict(files={m: (f'{m}.bin', d) for m, d in chosen.items()}, data=dict(texts))


def make_malformed(kind: str, files: Dict[str, List[bytes]], texts: Dict[str, str],
                   args) -> dict:
    """httpx request kwargs for one malformed request of ``kind``."""
    good = {m: d[0] for m, d in files.items()}
    first = next(iter(good)) if good else None
    text_field = next(iter(texts)) if texts else None
    if kind == 'missing_field':  # the first file modality left out
        body = {m: base64.b64encode(d).decode() for m, d in list(good.items())[1:]}
        return dict(json={**body, **texts})
    if kind == 'unknown_field':
        return dict(files={**{m: (m, d) for m, d in good.items()}, 'thermal': ('t', b'x')},
                    data=dict(texts))
    if kind == 'corrupt_image':
        return dict(files={**{m: (m, d) for m, d in good.items()},
                           first: ('x.png', good[first][:40] + b'\x00' * 64)}, data=dict(texts))
    if kind == 'wrong_type_upload':
        wav = b'RIFF' + (36).to_bytes(4, 'little') + b'WAVEfmt ' + b'\x00' * 24
        return dict(files={**{m: (m, d) for m, d in good.items()}, first: ('x.wav', wav)},
                    data=dict(texts))
    if kind == 'text_too_long':
        return dict(files={m: (m, d) for m, d in good.items()},
                    data={**texts, text_field: 'circle ' * args.max_text_length})
    if kind == 'bad_base64':
        body = {m: base64.b64encode(d).decode() for m, d in good.items()}
        body[first] = '***not base64***'
        return dict(json={**body, **texts})
    if kind == 'invalid_json':
        return dict(content=b'{"text": "unterminated', headers={'content-type':
                                                               'application/json'})
    if kind == 'wrong_json_type':
        body = {m: base64.b64encode(d).decode() for m, d in good.items()}
        return dict(json={**body, **{k: 12345 for k in texts}} if texts
                    else {**body, first: 12345})
    if kind == 'body_too_large':
        size = int(args.max_upload_mb * 1024 * 1024) + 1024
        return dict(files={first: ('big.png', b'\x89PNG' + b'\x00' * size)}, data=dict(texts))
    if kind == 'bad_content_type':
        return dict(content=b'image=scene.png', headers={'content-type': 'text/plain'})
    raise ValueError(kind)


async def run(args) -> dict:
    import httpx

    files, texts = load_inputs(args)
    if args.malformed:
        kinds = list(itertools.islice(itertools.cycle(MALFORMED_KINDS), args.malformed))
        total = args.malformed
    else:
        kinds, total = None, args.requests
    counter = itertools.count()
    latencies: List[float] = []
    failures: List[str] = []
    by_kind: Dict[str, Dict[str, int]] = {}
    limits = httpx.Limits(max_connections=args.concurrency)

    async with httpx.AsyncClient(base_url=args.url, timeout=args.timeout,
                                 limits=limits) as client:
        async def worker() -> None:
            while True:
                i = next(counter)
                if i >= total:
                    return
                if kinds:
                    kind, expected = kinds[i]
                    kwargs = make_malformed(kind, files, texts, args)
                else:
                    kind, expected = None, 200
                    kwargs = make_request(files, texts, i, args.json_body)
                start = time.perf_counter()
                try:
                    response = await client.post('/predict', **kwargs)
                    status = response.status_code
                except httpx.HTTPError as e:
                    status, response = f'error {type(e).__name__}', None
                latencies.append(time.perf_counter() - start)
                if kind:
                    counts = by_kind.setdefault(f'{kind} (expect {expected})', {})
                    counts[str(status)] = counts.get(str(status), 0) + 1
                if status != expected:
                    failures.append(f'request {i} {kind or ""}: {status} '
                                    f'{response.text[:200] if response is not None else ""}')

        start = time.perf_counter()
        await asyncio.gather(*[worker() for _ in range(args.concurrency)])
        elapsed = time.perf_counter() - start
        health = (await client.get('/health')).json()

    ordered = sorted(latencies)

    def pct(p: float) -> float:
        return round(1000 * ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))], 2)

    summary = dict(requests=total, concurrency=args.concurrency, failures=len(failures),
                   seconds=round(elapsed, 2), throughput_rps=round(total / elapsed, 1),
                   p50_ms=pct(50), p95_ms=pct(95), p99_ms=pct(99),
                   mean_ms=round(1000 * statistics.mean(ordered), 2),
                   health_after=health)
    if by_kind:
        summary['statuses_by_kind'] = by_kind
    if failures:
        summary['first_failures'] = failures[:5]
    return summary


def main() -> None:
    args = parse_args()
    summary = asyncio.run(run(args))
    print(json.dumps(summary, indent=2))
    if args.out:
        with open(args.out, 'w') as f:
            json.dump(summary, f, indent=2)
    if summary['failures'] or summary['health_after'].get('status') != 'ok':
        sys.exit(1)


if __name__ == '__main__':
    main()
