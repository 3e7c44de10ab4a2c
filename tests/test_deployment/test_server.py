"""The inference server, through real HTTP requests to a uvicorn server on localhost."""
import asyncio
import base64
import contextlib
import glob
import io
import json
import logging
import os.path as osp
import socket
import threading
import time
import wave

import httpx
import numpy as np
import pytest
from test_apis.tiny_checkpoints import tiny_checkpoint

VQA = 'configs/vqa/mmshapes_vqa.py'
QUESTION = 'how many circles are there?'


def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def serving(inferencer, **config):
    """A uvicorn server in a thread; yields (base url, uvicorn.Server)."""
    import uvicorn

    from mmfusion.deployment.server import ServerConfig, create_app
    port = free_port()
    app = create_app(inferencer, ServerConfig(**config))
    server = uvicorn.Server(uvicorn.Config(app, host='127.0.0.1', port=port,
                                           log_level='warning', timeout_graceful_shutdown=30))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.time() + 60
    while not server.started:
        assert thread.is_alive() and time.time() < deadline, 'the server did not start'
        time.sleep(0.05)
    try:
        yield f'http://127.0.0.1:{port}', server
    finally:
        server.should_exit = True
        thread.join(30)


@pytest.fixture(scope='module')
def vqa(mmshapes_root, tmp_path_factory):
    from mmfusion.apis import MultiModalInferencer
    cfg, ckpt = tiny_checkpoint(VQA, mmshapes_root, str(tmp_path_factory.mktemp('vqa_srv')))
    return MultiModalInferencer(cfg, ckpt, device='cpu')


@pytest.fixture(scope='module')
def images(mmshapes_root):
    paths = sorted(glob.glob(osp.join(mmshapes_root, 'images', 'val', '*.png')))[:4]
    return paths, [open(p, 'rb').read() for p in paths]


def wav_bytes() -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, 'wb') as f:
        f.setnchannels(1)
        f.setsampwidth(2)
        f.setframerate(16000)
        f.writeframes((np.sin(np.arange(1600) / 5) * 3000).astype('<i2').tobytes())
    return buf.getvalue()


def test_predict_health_metadata_multipart_and_json(vqa, images):
    paths, blobs = images
    direct = vqa([dict(image=p, text=QUESTION) for p in paths[:2]])
    with serving(vqa) as (url, _), httpx.Client(base_url=url, timeout=60) as client:
        assert client.get('/health').json()['status'] == 'ok'
        meta = client.get('/metadata').json()
        assert meta['task'] == 'vqa' and sorted(meta['modalities']) == ['image', 'text']
        assert meta['answers'] == list(vqa.model.head.answers) and meta['version']
        for path, blob, want in zip(paths, blobs, direct):
            multipart = client.post('/predict', files=dict(image=('s.png', blob)),
                                    data=dict(text=QUESTION))
            as_json = client.post('/predict', json=dict(
                image=base64.b64encode(blob).decode(), text=QUESTION))
            for response in (multipart, as_json):
                assert response.status_code == 200, response.text
                got = response.json()['prediction']
                assert got['pred_answer'] == want['pred_answer']
                assert got['topk_scores'] == pytest.approx(want['topk_scores'], abs=1e-5)
                assert response.headers['X-Request-ID'] == response.json()['request_id']


def _malformed(blob: bytes, limit: int):
    """(name, request kwargs, expected status, field named in the error)."""
    b64 = base64.b64encode(blob).decode()
    return [
        ('missing modality', dict(json=dict(text=QUESTION)), 422, 'image'),
        ('unknown field', dict(files=dict(image=('s.png', blob), thermal=('t.png', blob)),
                               data=dict(text=QUESTION)), 422, 'thermal'),
        ('corrupt image', dict(files=dict(image=('s.png', blob[:60] + b'\0' * 50)),
                               data=dict(text=QUESTION)), 422, 'image'),
        ('audio as image', dict(files=dict(image=('s.wav', wav_bytes(), 'audio/wav')),
                                data=dict(text=QUESTION)), 415, 'image'),
        ('text too long', dict(files=dict(image=('s.png', blob)),
                               data=dict(text='circle ' * 100)), 422, 'text'),
        ('bad base64', dict(json=dict(image='%%%', text=QUESTION)), 422, 'image'),
        ('invalid json', dict(content=b'{"image": ', headers={'content-type':
                                                              'application/json'}), 400, None),
        ('text not a string', dict(json=dict(image=b64, text=7)), 422, 'text'),
        ('body too large', dict(files=dict(image=('s.png', b'\x89PNG' + b'\0' * limit)),
                                data=dict(text=QUESTION)), 413, None),
        ('wrong content type', dict(content=b'hello', headers={'content-type': 'text/plain'}),
         415, None),
    ]


def test_ten_kinds_of_malformed_requests_get_their_4xx(vqa, images):
    blob = images[1][0]
    limit = 64 * 1024
    cases = _malformed(blob, limit)
    assert len({name for name, *_ in cases}) == 10
    with serving(vqa, max_upload_bytes=limit, max_text_length=200) as (url, _), \
            httpx.Client(base_url=url, timeout=60) as client:
        for _ in range(2):
            for name, kwargs, status, field in cases:
                response = client.post('/predict', **kwargs)
                assert response.status_code == status, (name, response.text)
                error = response.json()['error']
                assert error['field'] == field, (name, error)
                if field:
                    assert repr(field) in error['message'], (name, error)
        assert client.get('/health').json()['status'] == 'ok'
        ok = client.post('/predict', files=dict(image=('s.png', blob)), data=dict(text=QUESTION))
        assert ok.status_code == 200


def test_dynamic_batching_groups_concurrent_requests(vqa, images):
    blob = images[1][0]

    async def burst(url: str, n: int):
        async with httpx.AsyncClient(base_url=url, timeout=60) as client:
            return await asyncio.gather(*[
                client.post('/predict', files=dict(image=('s.png', blob)),
                            data=dict(text=QUESTION)) for _ in range(n)])

    with serving(vqa, max_batch_size=8, max_wait_ms=300) as (url, _):
        on = asyncio.run(burst(url, 12))
    with serving(vqa, max_batch_size=1) as (url, _):
        off = asyncio.run(burst(url, 6))
    assert all(r.status_code == 200 for r in on + off)
    sizes_on = [int(r.headers['X-Batch-Size']) for r in on]
    assert max(sizes_on) > 1 and max(sizes_on) <= 8
    assert {int(r.headers['X-Batch-Size']) for r in off} == {1}
    # a batch gives every request the answer it gets alone
    answers = {json.dumps(r.json()['prediction']['topk_answers']) for r in on + off}
    assert len(answers) == 1


def test_rate_limit_and_timeout(vqa, images):
    blob = images[1][0]
    request = dict(files=dict(image=('s.png', blob)), data=dict(text=QUESTION))
    with serving(vqa, rate_limit=0.5, rate_burst=2) as (url, _), \
            httpx.Client(base_url=url, timeout=60) as client:
        statuses = [client.post('/predict', **request).status_code for _ in range(3)]
        assert statuses == [200, 200, 429]
        assert client.get('/health').status_code == 200  # only /predict is limited
    with serving(vqa, max_wait_ms=2000, max_batch_size=4, request_timeout_s=0.2) as (url, _), \
            httpx.Client(base_url=url, timeout=60) as client:
        response = client.post('/predict', **request)
        assert response.status_code == 504 and 'within 0.2 s' in response.json()['error'][
            'message']


def test_logs_are_json_lines_with_the_request_id(vqa, images):
    from mmfusion.deployment.server import LOGGER_NAME
    records = []
    handler = logging.Handler()
    handler.emit = lambda record: records.append(handler.format(record))
    from mmfusion.deployment.server import JsonFormatter
    handler.setFormatter(JsonFormatter())
    logging.getLogger(LOGGER_NAME).addHandler(handler)
    try:
        with serving(vqa) as (url, _), httpx.Client(base_url=url, timeout=60) as client:
            ok = client.post('/predict', files=dict(image=('s.png', images[1][0])),
                             data=dict(text=QUESTION), headers={'X-Request-ID': 'abc123'})
            bad = client.post('/predict', json=dict(text=QUESTION))
    finally:
        logging.getLogger(LOGGER_NAME).removeHandler(handler)
    lines = [json.loads(r) for r in records if '"path"' in r]
    by_id = {line['request_id']: line for line in lines}
    assert ok.headers['X-Request-ID'] == 'abc123'
    assert by_id['abc123']['status'] == 200 and by_id['abc123']['batch_size'] == 1
    assert by_id[bad.headers['X-Request-ID']]['status'] == 422
    assert by_id[bad.headers['X-Request-ID']]['error_field'] == 'image'


def test_shutdown_finishes_requests_in_flight(vqa, images):
    """Stopping (what SIGTERM does) while requests wait in a batch: all are answered."""
    blob = images[1][0]
    results = []

    async def send(url):
        async with httpx.AsyncClient(base_url=url, timeout=60) as client:
            return await asyncio.gather(*[
                client.post('/predict', files=dict(image=('s.png', blob)),
                            data=dict(text=QUESTION)) for _ in range(4)])

    with serving(vqa, max_batch_size=64, max_wait_ms=1500) as (url, server):
        sender = threading.Thread(target=lambda: results.extend(asyncio.run(send(url))))
        sender.start()
        deadline = time.time() + 30
        while not server.server_state.connections and time.time() < deadline:
            time.sleep(0.01)
        time.sleep(0.3)  # the requests now wait for the batch to fill
        server.should_exit = True
        sender.join(60)
    assert [r.status_code for r in results] == [200] * 4


def test_image_over_the_pixel_limit_gets_413_before_decoding(vqa):
    import cv2
    # 2000 x 2000 zeros: a 12 MB image in a PNG of a few kilobytes
    ok, png = cv2.imencode('.png', np.zeros((2000, 2000, 3), np.uint8))
    assert ok and len(png) < 64 * 1024
    with serving(vqa, max_image_pixels=1_000_000) as (url, _), \
            httpx.Client(base_url=url, timeout=60) as client:
        response = client.post('/predict', files=dict(image=('big.png', png.tobytes())),
                               data=dict(text=QUESTION))
        assert response.status_code == 413, response.text
        error = response.json()['error']
        assert error['field'] == 'image' and '2000x2000' in error['message']
        assert client.get('/metadata').json()['limits']['max_image_pixels'] == 1_000_000
        ok, small = cv2.imencode('.png', np.zeros((64, 64, 3), np.uint8))
        assert client.post('/predict', files=dict(image=('s.png', small.tobytes())),
                           data=dict(text=QUESTION)).status_code == 200


def test_a_retrieval_model_serves_embeddings_of_whatever_it_is_given(mmshapes_root, images,
                                                                     tmp_path):
    from mmfusion.apis import MultiModalInferencer
    cfg, ckpt = tiny_checkpoint('configs/retrieval/mmshapes_clip.py', mmshapes_root,
                                str(tmp_path / 'clip'))
    clip = MultiModalInferencer(cfg, ckpt, device='cpu')
    paths, blobs = images
    want = clip([dict(image=paths[0]), dict(text='a red circle.')])
    with serving(clip) as (url, _), httpx.Client(base_url=url, timeout=60) as client:
        meta = client.get('/metadata').json()
        assert meta['task'] == 'retrieval' and meta['embed_dim'] == clip.model.embed_dim
        image = client.post('/predict', files=dict(image=('s.png', blobs[0])))
        text = client.post('/predict', json=dict(text='a red circle.'))
        for response, expected in ((image, want[0]), (text, want[1])):
            assert response.status_code == 200, response.text
            got = response.json()['prediction']['embeddings']
            assert set(got) == set(expected['embeddings'])
            for modality, vector in got.items():
                assert vector == pytest.approx(expected['embeddings'][modality], abs=1e-5)
        empty = client.post('/predict', json=dict())
        assert empty.status_code == 422 and empty.json()['error']['field'] == 'image'
