"""An HTTP inference server for any mmfusion model, with dynamic batching.

FastAPI (on uvicorn) is used because it is the well-kept asyncio web stack
already among mmfusion's dependencies: request parsing (multipart through
``python-multipart``), an ASGI app that uvicorn runs with graceful shutdown,
and an in-process test client are all there. What FastAPI does not have is
dynamic batching and per-client rate limiting, so those are written here
(small and specific to one model per process; a serving framework such as
Triton or TorchServe would bring its own model format and processes).

Request flow::

    POST /predict  (multipart files/fields, or a JSON object with base64 strings)
      -> size limit (413) -> rate limit per client (429)
      -> decode each field, check it against the model's modalities (4xx naming it)
      -> inferencer.preprocess (the test pipeline minus annotation loading), in a thread
      -> BatchQueue: requests arriving within ``max_wait_ms`` of the first one
         (up to ``max_batch_size``) run as one model call in the model thread
      -> inferencer.postprocess -> JSON

Every response carries an ``X-Request-ID`` and every request writes one JSON
log line with it.
"""
import asyncio
import base64
import binascii
import io
import json
import logging
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

LOGGER_NAME = 'mmfusion.server'


@dataclass
class ServerConfig:
    """Limits and batching of :func:`create_app`.

    Args:
        max_batch_size: most requests in one model call (1 turns batching off).
        max_wait_ms: how long the first request of a batch waits for others.
        max_upload_bytes: largest request body; larger ones get 413.
        max_text_length: longest text field in characters; longer ones get 422.
        max_image_pixels: most pixels (width x height) an uploaded image may
            declare; larger ones get 413 before they are decoded (a small
            compressed upload can decode to gigabytes); 0 turns it off.
        rate_limit: requests per second per client address (token bucket);
            0 turns the limit off.
        rate_burst: requests a client may send at once before the rate applies.
        request_timeout_s: a request not answered within this gets 504.
        preprocess_threads: threads that decode and preprocess requests.
    """
    max_batch_size: int = 32
    max_wait_ms: float = 5.0
    max_upload_bytes: int = 10 * 1024 * 1024
    max_text_length: int = 512
    max_image_pixels: int = 40_000_000
    rate_limit: float = 0.0
    rate_burst: int = 50
    request_timeout_s: float = 30.0
    preprocess_threads: int = 2


class RequestError(Exception):
    """A request the server refuses: the HTTP status, the field at fault, why."""

    def __init__(self, status: int, message: str, field: Optional[str] = None) -> None:
        super().__init__(message)
        self.status = status
        self.field = field
        self.message = message


class JsonFormatter(logging.Formatter):
    """One JSON object per log line: time, level, message and the record's extra fields."""

    FIELDS = ('request_id', 'method', 'path', 'status', 'latency_ms', 'client', 'batch_size',
              'error_field', 'event')

    def format(self, record: logging.LogRecord) -> str:
        line = dict(time=round(record.created, 3), level=record.levelname,
                    message=record.getMessage())
        for key in self.FIELDS:
            if hasattr(record, key):
                line[key] = getattr(record, key)
        return json.dumps(line)


def get_logger() -> logging.Logger:
    """The server's logger, writing JSON lines to stderr (set up once)."""
    logger = logging.getLogger(LOGGER_NAME)
    if not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(JsonFormatter())
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False
    return logger


class TokenBucket:
    """Per-client token buckets: ``rate`` requests per second, bursts of ``burst``."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate = float(rate)
        self.burst = float(max(burst, 1))
        self._buckets: Dict[str, Tuple[float, float]] = {}

    def allow(self, client: str) -> bool:
        if self.rate <= 0:
            return True
        now = time.monotonic()
        tokens, last = self._buckets.get(client, (self.burst, now))
        tokens = min(self.burst, tokens + (now - last) * self.rate)
        if tokens < 1:
            self._buckets[client] = (tokens, now)
            return False
        self._buckets[client] = (tokens - 1, now)
        if len(self._buckets) > 10000:  # forget idle clients, bounded memory
            cutoff = now - self.burst / self.rate
            self._buckets = {k: v for k, v in self._buckets.items() if v[1] > cutoff}
        return True


class BatchQueue:
    """Collects preprocessed requests and runs them as batches in one model thread.

    ``submit(packed)`` returns the prediction dict for one packed input. The
    first request of a batch waits at most ``max_wait_ms`` for more, and a
    batch never exceeds ``max_batch_size``; with ``max_batch_size=1`` every
    request is its own model call (batching off). The model runs in a single
    worker thread, so the event loop keeps accepting and decoding requests
    while a batch computes.
    """

    def __init__(self, inferencer: Any, max_batch_size: int, max_wait_ms: float) -> None:
        self.inferencer = inferencer
        self.max_batch_size = max(1, int(max_batch_size))
        self.max_wait = max(0.0, float(max_wait_ms)) / 1000.0
        self.queue: 'asyncio.Queue' = asyncio.Queue()
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix='model')
        self.task: Optional[asyncio.Task] = None
        self.batches = 0
        self.requests = 0

    def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        """Finish what is queued, then stop the worker."""
        if self.task is not None:
            await self.queue.join()
            self.task.cancel()
            try:
                await self.task
            except asyncio.CancelledError:
                pass
        self.executor.shutdown(wait=True)

    async def submit(self, packed: dict) -> dict:
        future = asyncio.get_running_loop().create_future()
        await self.queue.put((packed, future))
        return await future

    def _predict(self, packed: List[dict]) -> List[dict]:
        samples = self.inferencer.forward(packed)
        return [self.inferencer.postprocess(s) for s in samples]

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = [await self.queue.get()]
            deadline = loop.time() + self.max_wait
            while len(batch) < self.max_batch_size:
                timeout = deadline - loop.time()
                if timeout <= 0:
                    # whatever is already queued joins without waiting
                    if self.queue.empty():
                        break
                    batch.append(self.queue.get_nowait())
                    continue
                try:
                    batch.append(await asyncio.wait_for(self.queue.get(), timeout))
                except asyncio.TimeoutError:
                    break
            live = [(p, f) for p, f in batch if not f.done()]  # timed-out ones dropped
            try:
                if live:
                    results = await loop.run_in_executor(
                        self.executor, self._predict, [p for p, _ in live])
                    for (_, future), result in zip(live, results):
                        if not future.done():
                            future.set_result((result, len(live)))
                    self.batches += 1
                    self.requests += len(live)
            except Exception as exc:  # a model failure fails this batch, not the server
                for _, future in live:
                    if not future.done():
                        future.set_exception(exc)
            finally:
                for _ in batch:
                    self.queue.task_done()


# ---------------------------------------------------------------------------
# Decoding the fields of a request


IMAGE_MAGIC = (b'\x89PNG', b'\xff\xd8\xff', b'GIF8', b'BM', b'II*\x00', b'MM\x00*', b'RIFF')


def _looks_like(data: bytes) -> str:
    if data[:4] == b'RIFF' and data[8:12] == b'WAVE':
        return 'WAV audio'
    if data[:4] == b'RIFF' and data[8:12] == b'WEBP':
        return 'an image'
    if any(data.startswith(m) for m in IMAGE_MAGIC):
        return 'an image'
    if data[:1] in (b'{', b'[') or data[:5].lower() in (b'<html', b'<?xml'):
        return 'text'
    return 'unknown data'


def image_size(data: bytes) -> Optional[Tuple[int, int]]:
    """(width, height) from an image file's header, without decoding the
    pixels (Pillow reads only the header on open); None when Pillow cannot
    tell, and the decoder below then judges the bytes."""
    from PIL import Image
    try:
        with Image.open(io.BytesIO(data)) as img:
            return img.size
    except Exception:
        return None


def decode_image(field: str, data: bytes, unchanged: bool = False,
                 max_pixels: int = 0) -> np.ndarray:
    """Image bytes -> (H, W, 3) BGR uint8 (or the stored array with ``unchanged``);
    413 for an image declaring more than ``max_pixels`` pixels (0: no limit)."""
    import cv2

    if not data:
        raise RequestError(422, f'field {field!r}: the upload is empty; expected an image '
                           '(PNG, JPEG ...)', field)
    kind = _looks_like(data)
    if kind == 'WAV audio' or kind == 'text':
        raise RequestError(415, f'field {field!r}: the upload is {kind}, not an image; '
                           'expected PNG, JPEG, BMP or TIFF bytes', field)
    size = image_size(data) if max_pixels else None
    if size is not None and size[0] * size[1] > max_pixels:
        raise RequestError(413, f'field {field!r}: the image is {size[0]}x{size[1]} '
                           f'({size[0] * size[1] / 1e6:.1f} megapixels); the limit is '
                           f'{max_pixels / 1e6:g} megapixels', field)
    flag = cv2.IMREAD_UNCHANGED if unchanged else cv2.IMREAD_COLOR
    img = cv2.imdecode(np.frombuffer(data, np.uint8), flag)
    if img is None:
        raise RequestError(422, f'field {field!r}: cannot decode the {len(data)} bytes as an '
                           'image (corrupt or truncated?); expected PNG, JPEG, BMP or TIFF',
                           field)
    return img


def decode_audio(field: str, data: bytes) -> Tuple[np.ndarray, int]:
    """WAV bytes -> ((C, T) float32 waveform, sample rate)."""
    from mmfusion.datasets.transforms.audio import _read_wave
    from mmfusion.errors import AudioLoadError

    if not data:
        raise RequestError(422, f'field {field!r}: the upload is empty; expected a WAV file',
                           field)
    if data[:4] != b'RIFF' or data[8:12] != b'WAVE':
        kind = _looks_like(data)
        status = 415 if kind in ('an image', 'text') else 422
        raise RequestError(status, f'field {field!r}: the upload is {kind}, not a WAV file; '
                           'expected PCM WAV bytes', field)
    try:
        wav, rate = _read_wave(io.BytesIO(data))
    except AudioLoadError as e:
        reason = str(e).split(': ', 1)[-1]
        raise RequestError(422, f'field {field!r}: cannot decode the WAV file ({reason})',
                           field) from e
    if wav.shape[-1] == 0:
        raise RequestError(422, f'field {field!r}: the WAV file holds no samples', field)
    return wav, rate


class RequestDecoder:
    """Turns the fields of one request into an inferencer input dict."""

    def __init__(self, inferencer: Any, config: ServerConfig) -> None:
        self.inferencer = inferencer
        self.config = config
        self.kinds = {m: inferencer._input_kind(m) for m in inferencer.modalities}
        self.loaders = {m: inferencer._loaders.get(inferencer.input_keys[m])
                        for m in inferencer.modalities}

    def _check_fields(self, names: List[str]) -> None:
        takes = ', '.join(self.kinds)
        unknown = [n for n in names if n not in self.kinds]
        if unknown:
            raise RequestError(422, f'unknown field {unknown[0]!r}; this model takes {takes}',
                               unknown[0])
        missing = [m for m in self.kinds if m not in names]
        if missing and self.inferencer.task == 'retrieval' and len(missing) < len(self.kinds):
            return  # a retrieval model embeds whichever towers' inputs are given
        if missing:
            raise RequestError(422, f'missing field {missing[0]!r}; this model takes {takes}',
                               missing[0])

    def _binary(self, modality: str, data: bytes) -> Any:
        kind = self.kinds[modality]
        if kind == 'image':
            return decode_image(modality, data, max_pixels=self.config.max_image_pixels)
        if kind == 'map':
            arr = decode_image(modality, data, unchanged=True,
                               max_pixels=self.config.max_image_pixels)
            if arr.ndim == 3 and arr.shape[2] != 1:
                raise RequestError(422, f'field {modality!r}: the image has {arr.shape[2]} '
                                   'channels; expected a single-channel map (e.g. a uint16 '
                                   'PNG)', modality)
            scale = getattr(self.loaders[modality].transform, 'scale', 1.0)
            return arr.astype(np.float32) * scale
        if kind == 'audio':
            return decode_audio(modality, data)
        if kind == 'vector':
            try:
                arr = np.load(io.BytesIO(data), allow_pickle=False)
            except Exception:
                raise RequestError(422, f'field {modality!r}: expected a .npy array of floats '
                                   'or a JSON list', modality) from None
            return self._vector(modality, arr)
        try:
            return self._text(modality, data.decode('utf-8'))
        except UnicodeDecodeError:
            raise RequestError(422, f'field {modality!r}: expected UTF-8 text', modality) \
                from None

    def _text(self, modality: str, value: Any) -> str:
        if not isinstance(value, str):
            raise RequestError(422, f'field {modality!r}: expected a string, got '
                               f'{type(value).__name__}', modality)
        if not value.strip():
            raise RequestError(422, f'field {modality!r}: the text is empty', modality)
        if len(value) > self.config.max_text_length:
            raise RequestError(422, f'field {modality!r}: the text has {len(value)} characters; '
                               f'the limit is {self.config.max_text_length}', modality)
        return value

    def _vector(self, modality: str, value: Any) -> List[float]:
        try:
            arr = np.asarray(value, dtype=np.float32)
        except (TypeError, ValueError):
            arr = None
        if arr is None or arr.ndim != 1 or arr.size == 0 or not np.isfinite(arr).all():
            raise RequestError(422, f'field {modality!r}: expected a non-empty list of finite '
                               'numbers', modality)
        return arr.tolist()

    def from_json(self, body: Any) -> dict:
        """A JSON object: binary modalities as base64 strings, text as strings,
        vectors as lists of numbers."""
        if not isinstance(body, dict):
            raise RequestError(422, 'the JSON body must be an object keyed by modality '
                               f'({", ".join(self.kinds)})')
        self._check_fields(list(body))
        item = {}
        for modality, value in body.items():
            kind = self.kinds[modality]
            if kind == 'text':
                item[modality] = self._text(modality, value)
            elif kind == 'vector':
                item[modality] = self._vector(modality, value)
            else:
                if not isinstance(value, str):
                    raise RequestError(422, f'field {modality!r}: expected a base64 string, '
                                       f'got {type(value).__name__}', modality)
                try:
                    data = base64.b64decode(value, validate=True)
                except (binascii.Error, ValueError):
                    raise RequestError(422, f'field {modality!r}: not valid base64', modality) \
                        from None
                item[modality] = self._binary(modality, data)
        return item

    async def from_form(self, form: Any) -> dict:
        """Multipart fields: files for binary modalities, plain fields or files for text."""
        names = list(form.keys())
        for name in set(names):
            if len(form.getlist(name)) > 1:
                raise RequestError(422, f'field {name!r} is given more than once', name)
        self._check_fields(names)
        parts = {}
        for modality in names:
            value = form[modality]
            if hasattr(value, 'read'):  # an uploaded file
                parts[modality] = (await value.read(),
                                   (getattr(value, 'content_type', None) or '').lower())
            else:
                parts[modality] = (value, None)
        # decoding is CPU work: off the event loop
        from starlette.concurrency import run_in_threadpool
        return await run_in_threadpool(self._decode_parts, parts)

    def _decode_parts(self, parts: Dict[str, Tuple[Any, Optional[str]]]) -> dict:
        item = {}
        for modality, (value, declared) in parts.items():
            kind = self.kinds[modality]
            if declared is not None:  # a file
                if kind in ('image', 'map') and declared.startswith(('audio/', 'text/')):
                    raise RequestError(415, f'field {modality!r}: the upload is declared '
                                       f'{declared}; expected an image', modality)
                if kind == 'audio' and declared.startswith(('image/', 'text/')):
                    raise RequestError(415, f'field {modality!r}: the upload is declared '
                                       f'{declared}; expected WAV audio', modality)
                item[modality] = self._binary(modality, value)
            elif kind == 'text':
                item[modality] = self._text(modality, value)
            elif kind == 'vector':
                try:
                    item[modality] = self._vector(modality, json.loads(value))
                except json.JSONDecodeError:
                    raise RequestError(422, f'field {modality!r}: expected a JSON list of '
                                       'numbers', modality) from None
            else:
                raise RequestError(422, f'field {modality!r}: expected a file upload '
                                   f'({"WAV audio" if kind == "audio" else "an image"})',
                                   modality)
        return item


def to_json(prediction: dict) -> dict:
    """A prediction dict with arrays made JSON-friendly (label maps as COCO RLE per class)."""
    out = dict(prediction)
    seg = out.pop('sem_seg', None)
    if seg is not None:
        from pycocotools import mask as mask_utils
        classes = out.get('classes')
        masks = {}
        for label in np.unique(seg).tolist():
            rle = mask_utils.encode(np.asfortranarray((seg == label).astype(np.uint8)))
            name = classes[label] if classes and label < len(classes) else str(label)
            masks[name] = dict(size=[int(v) for v in rle['size']],
                               counts=rle['counts'].decode('ascii'),
                               pixels=int((seg == label).sum()))
        out['sem_seg'] = dict(size=list(seg.shape), masks=masks)
    return out


# ---------------------------------------------------------------------------
# The app


class BodySizeLimit:
    """ASGI middleware: 413 for a body larger than ``limit`` bytes, checked
    on the declared Content-Length and on the bytes actually received."""

    def __init__(self, app: Any, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope['type'] != 'http':
            return await self.app(scope, receive, send)
        headers = dict(scope.get('headers') or [])
        declared = headers.get(b'content-length')
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            return await self._refuse(send, int(declared))
        received = 0
        limit = self.limit

        async def counting_receive() -> dict:
            nonlocal received
            message = await receive()
            if message['type'] == 'http.request':
                received += len(message.get('body', b''))
                if received > limit:
                    raise RequestError(413, f'the request body exceeds {limit} bytes')
            return message

        try:
            await self.app(scope, counting_receive, send)
        except RequestError as e:
            if e.status != 413:
                raise
            await self._refuse(send, received)

    async def _refuse(self, send: Any, size: int) -> None:
        body = json.dumps(dict(error=dict(
            status=413, field=None,
            message=f'the request body has {size} bytes; the limit is {self.limit}'))).encode()
        await send(dict(type='http.response.start', status=413,
                        headers=[(b'content-type', b'application/json'),
                                 (b'content-length', str(len(body)).encode())]))
        await send(dict(type='http.response.body', body=body))


def create_app(inferencer: Any, config: Optional[ServerConfig] = None,
               info: Optional[dict] = None) -> Any:
    """The FastAPI app serving ``inferencer`` (a :class:`MultiModalInferencer`).

    Args:
        inferencer: the model with its pipeline.
        config: limits and batching; default :class:`ServerConfig`.
        info: extra fields for ``GET /metadata`` (config and checkpoint names).

    Returns:
        An ASGI app: ``POST /predict``, ``GET /health``, ``GET /metadata``.
    """
    from contextlib import asynccontextmanager

    from fastapi import FastAPI, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse
    from starlette.concurrency import run_in_threadpool
    from starlette.exceptions import HTTPException as StarletteHTTPException

    from mmfusion.version import __version__

    config = config or ServerConfig()
    logger = get_logger()
    decoder = RequestDecoder(inferencer, config)
    limiter = TokenBucket(config.rate_limit, config.rate_burst)
    state: dict = dict(in_flight=0, served=0, started=time.time())
    preprocess_pool = ThreadPoolExecutor(max_workers=max(1, config.preprocess_threads),
                                         thread_name_prefix='preprocess')

    @asynccontextmanager
    async def lifespan(app):
        queue = BatchQueue(inferencer, config.max_batch_size, config.max_wait_ms)
        queue.start()
        state['queue'] = queue
        logger.info('server started', extra=dict(event='startup'))
        yield
        # uvicorn stops accepting and waits for open requests before this runs
        await queue.stop()
        preprocess_pool.shutdown(wait=True)
        logger.info('server stopped', extra=dict(event='shutdown'))

    app = FastAPI(title='mmfusion inference server', version=__version__, lifespan=lifespan)

    def error_response(status: int, message: str, field: Optional[str], request_id: str
                       ) -> JSONResponse:
        return JSONResponse(status_code=status,
                            content=dict(error=dict(status=status, field=field,
                                                    message=message),
                                         request_id=request_id),
                            headers={'X-Request-ID': request_id})

    @app.middleware('http')
    async def log_requests(request: Request, call_next):
        request_id = request.headers.get('x-request-id') or uuid.uuid4().hex[:16]
        request.state.request_id = request_id
        start = time.perf_counter()
        client = request.client.host if request.client else '-'
        try:
            response = await call_next(request)
        except RequestError as e:  # the body limit, raised while the form was read
            if e.status != 413:
                raise
            response = error_response(413, str(e), None, request_id)
        response.headers['X-Request-ID'] = request_id
        extra = dict(request_id=request_id, method=request.method, path=request.url.path,
                     status=response.status_code, client=client,
                     latency_ms=round((time.perf_counter() - start) * 1000, 2))
        for key in ('batch_size', 'error_field'):
            if hasattr(request.state, key):
                extra[key] = getattr(request.state, key)
        logger.info('request', extra=extra)
        return response

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        return error_response(exc.status_code, str(exc.detail), None,
                              getattr(request.state, 'request_id', '-'))

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError):
        return error_response(422, str(exc), None, getattr(request.state, 'request_id', '-'))

    @app.get('/health')
    async def health():
        queue = state.get('queue')
        return dict(status='ok', in_flight=state['in_flight'], served=state['served'],
                    queued=queue.queue.qsize() if queue else 0,
                    uptime_s=round(time.time() - state['started'], 1))

    meta = dict(inferencer.metadata(), version=__version__, **(info or {}),
                limits=dict(max_upload_bytes=config.max_upload_bytes,
                            max_text_length=config.max_text_length,
                            max_image_pixels=config.max_image_pixels,
                            rate_limit=config.rate_limit, rate_burst=config.rate_burst,
                            request_timeout_s=config.request_timeout_s),
                batching=dict(max_batch_size=config.max_batch_size,
                              max_wait_ms=config.max_wait_ms))

    @app.get('/metadata')
    async def metadata():
        return meta

    async def parse(request: Request) -> dict:
        content_type = request.headers.get('content-type', '').lower()
        if content_type.startswith('application/json'):
            raw = await request.body()
            try:
                body = json.loads(raw)
            except (json.JSONDecodeError, UnicodeDecodeError) as e:
                raise RequestError(400, f'the body is not valid JSON ({e})') from None
            return await run_in_threadpool(decoder.from_json, body)
        if content_type.startswith(('multipart/form-data',
                                    'application/x-www-form-urlencoded')):
            try:
                form = await request.form(max_files=16, max_fields=16,
                                          max_part_size=config.max_upload_bytes)
            except RequestError:
                raise
            except Exception as e:  # python-multipart's parse errors
                raise RequestError(400, f'cannot parse the multipart body ({e})') from None
            try:
                return await decoder.from_form(form)
            finally:
                await form.close()
        raise RequestError(415, f'Content-Type {content_type or "(none)"!r} is not accepted; '
                           'send multipart/form-data or application/json')

    @app.post('/predict')
    async def predict(request: Request):
        request_id = request.state.request_id
        client = request.client.host if request.client else '-'
        if not limiter.allow(client):
            return JSONResponse(
                status_code=429, headers={'Retry-After': '1', 'X-Request-ID': request_id},
                content=dict(error=dict(status=429, field=None, message=(
                    f'client {client} exceeds {config.rate_limit:g} requests/s')),
                    request_id=request_id))
        state['in_flight'] += 1
        try:
            item = await parse(request)
            loop = asyncio.get_running_loop()
            try:
                packed = await loop.run_in_executor(preprocess_pool, inferencer.preprocess, item)
            except Exception as e:  # the pipeline refused this input's content
                raise RequestError(422, f'the input cannot be preprocessed: {e}') from None
            try:
                prediction, batch_size = await asyncio.wait_for(
                    state['queue'].submit(packed), config.request_timeout_s)
            except asyncio.TimeoutError:
                raise RequestError(504, f'no prediction within {config.request_timeout_s:g} s')
            request.state.batch_size = batch_size
            state['served'] += 1
            return JSONResponse(dict(request_id=request_id, prediction=to_json(prediction)),
                                headers={'X-Batch-Size': str(batch_size)})
        except RequestError as e:
            if e.field:
                request.state.error_field = e.field
            return error_response(e.status, e.message, e.field, request_id)
        finally:
            state['in_flight'] -= 1

    app.state.server_config = config
    app.state.info = meta
    return BodySizeLimit(app, config.max_upload_bytes) if config.max_upload_bytes else app


__all__ = ['BatchQueue', 'RequestError', 'ServerConfig', 'TokenBucket', 'create_app',
           'decode_audio', 'decode_image', 'to_json']
