"""tools/deployment/serve.py and load_test.py: the load-test tool against a
real server, and SIGTERM finishing the requests in flight."""
import argparse
import asyncio
import importlib.util
import os
import os.path as osp
import signal
import subprocess
import time

import httpx
import pytest
from conftest import PYTHON, REPO_ROOT
from test_apis.tiny_checkpoints import tiny_checkpoint
from test_deployment.test_server import QUESTION, free_port, serving

VQA = 'configs/vqa/mmshapes_vqa.py'


def load_tool():
    spec = importlib.util.spec_from_file_location(
        'load_test', osp.join(REPO_ROOT, 'tools', 'deployment', 'load_test.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope='module')
def vqa_files(mmshapes_root, tmp_path_factory):
    return tiny_checkpoint(VQA, mmshapes_root, str(tmp_path_factory.mktemp('vqa_tools')))


def test_load_test_tool_counts_statuses_and_latencies(vqa_files, mmshapes_root):
    from mmfusion.apis import MultiModalInferencer
    tool = load_tool()
    inferencer = MultiModalInferencer(*vqa_files, device='cpu')
    images = osp.join(mmshapes_root, 'images', 'val', '*.png')
    common = dict(inputs=[f'image={images}'], text=[QUESTION], concurrency=4, json_body=False,
                  max_upload_mb=0.05, max_text_length=64, timeout=60.0, out=None)
    with serving(inferencer, max_upload_bytes=int(0.05 * 1024 * 1024),
                 max_text_length=64) as (url, _):
        good = asyncio.run(tool.run(argparse.Namespace(url=url, requests=24, malformed=0,
                                                       **common)))
        bad = asyncio.run(tool.run(argparse.Namespace(url=url, requests=1, malformed=20,
                                                      **common)))
    assert good['failures'] == 0 and good['requests'] == 24
    assert 0 < good['p50_ms'] <= good['p95_ms'] <= good['p99_ms']
    assert good['health_after']['served'] == 24
    # every kind twice, each answered with its own status
    assert bad['failures'] == 0, bad.get('first_failures')
    expected = {f'{kind} (expect {status})': {str(status): 2}
                for kind, status in tool.MALFORMED_KINDS}
    assert bad['statuses_by_kind'] == expected
    assert bad['health_after']['status'] == 'ok'


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_serve_tool_sigterm_finishes_requests_in_flight(vqa_files, mmshapes_root):
    cfg, ckpt = vqa_files
    port = free_port()
    proc = subprocess.Popen(
        [PYTHON, 'tools/deployment/serve.py', cfg, ckpt, '--port', str(port),
         '--max-batch-size', '64', '--max-wait-ms', '1500'], cwd=REPO_ROOT,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=dict(os.environ, CUDA_VISIBLE_DEVICES=''))
    url = f'http://127.0.0.1:{port}'
    try:
        deadline = time.time() + 400
        while True:
            assert proc.poll() is None, proc.stderr.read()
            try:
                if httpx.get(f'{url}/health').status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.time() < deadline
            time.sleep(0.5)
        image = open(sorted(__import__('glob').glob(
            osp.join(mmshapes_root, 'images', 'val', '*.png')))[0], 'rb').read()

        async def send():
            async with httpx.AsyncClient(base_url=url, timeout=120) as client:
                tasks = [asyncio.create_task(client.post(
                    '/predict', files=dict(image=('s.png', image)), data=dict(text=QUESTION)))
                    for _ in range(5)]
                await asyncio.sleep(0.7)  # the requests wait for their batch to fill
                proc.send_signal(signal.SIGTERM)
                return await asyncio.gather(*tasks)

        responses = asyncio.run(send())
        assert [r.status_code for r in responses] == [200] * 5
        # uvicorn re-raises the signal once shut down: the usual status of a SIGTERM'd process
        assert proc.wait(60) in (0, -signal.SIGTERM)
        log = proc.stderr.read()
        assert '"event": "shutdown"' in log
        assert log.count('"path": "/predict"') == 5
    finally:
        if proc.poll() is None:
            proc.kill()
