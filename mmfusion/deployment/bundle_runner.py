"""Run an exported mmfusion bundle: raw files and strings in, predictions out.

This file is copied into every bundle as ``runner.py`` and must work without
mmfusion or mmengine: it needs numpy and Pillow, plus

* ``onnxruntime`` for ``model.onnx``, or ``torch`` for ``model.pt2`` /
  ``model.ts``;
* ``tokenizers`` when the model reads text;
* ``transformers`` (its audio feature extractor) when the model hears audio
  given as a ``.wav`` file (a precomputed ``.npy`` log-mel needs nothing).

Usage (from the bundle folder or anywhere)::

    python runner.py --bundle DIR image=cat.png "text=how many circles are there?"
    python runner.py image=scene.png depth=scene_depth.png        # RGB-D detection

Each ``modality=value`` gives one sample's input: a path for images, depth
maps (16-bit PNG), audio (PCM ``.wav``) and arrays (``.npy``), a string for
text. Prints one JSON object per sample.

In Python::

    bundle = Bundle('work_dirs/vqa_bundle')
    bundle.predict([dict(image='img.png', text='what colour is the circle?')])
"""
import argparse
import json
import os.path as osp
import sys
import wave
from typing import Dict, List, Optional, Sequence

import numpy as np


class BundleError(ValueError):
    """A bundle or an input that the runner cannot use; the message says which."""


class Bundle:
    """A loaded bundle: ``preprocess`` -> ``run`` -> ``postprocess``.

    Args:
        bundle_dir: the folder ``tools/deployment/export.py`` wrote.
        num_threads: intra-op threads of the runtime (0: its default).
        graph: another graph file of the bundle to run, e.g. the int8
            ``model.int8_static.onnx`` written by ``tools/deployment/quantize.py``.
    """

    def __init__(self, bundle_dir: str, num_threads: int = 0,
                 graph: Optional[str] = None) -> None:
        self.dir = bundle_dir
        spec_path = osp.join(bundle_dir, 'preprocess.json')
        if not osp.isfile(spec_path):
            raise BundleError(f'{bundle_dir} is not a bundle: preprocess.json is missing')
        with open(spec_path, encoding='utf-8') as f:
            self.spec = json.load(f)
        if graph is not None:
            self.spec['graph'] = graph
        self.inputs = self.spec['inputs']
        self.task = self.spec['task']
        self.labels = None
        if self.spec.get('labels'):
            with open(osp.join(bundle_dir, self.spec['labels']), encoding='utf-8') as f:
                self.labels = [line.rstrip('\n') for line in f if line.strip()]
        self.modalities = list(dict.fromkeys(entry['modality'] for entry in self.inputs))
        self._tokenizers: Dict[str, object] = {}
        self._extractors: Dict[str, object] = {}
        self._session = self._load_graph(num_threads)

    # ------------------------------------------------------------ graph
    def _load_graph(self, num_threads: int):
        fmt, path = self.spec['format'], osp.join(self.dir, self.spec['graph'])
        if not osp.isfile(path):
            raise BundleError(f'the bundle graph {path} is missing')
        if fmt == 'onnx':
            import onnxruntime as ort

            options = ort.SessionOptions()
            if num_threads:
                options.intra_op_num_threads = num_threads
            return ort.InferenceSession(path, options, providers=['CPUExecutionProvider'])
        import torch

        if num_threads:
            torch.set_num_threads(num_threads)
        if fmt == 'torch.export':
            return torch.export.load(path).module()
        if fmt == 'torchscript':
            return torch.jit.load(path)
        raise BundleError(f'preprocess.json: unknown format {fmt!r}')

    def run(self, feeds: Dict[str, np.ndarray]) -> List[np.ndarray]:
        """Graph inputs (by name) -> graph outputs, in ``preprocess.json`` order."""
        missing = [e['name'] for e in self.inputs if e['name'] not in feeds]
        if missing:
            raise BundleError(f'graph inputs missing: {missing}')
        arrays = [np.ascontiguousarray(feeds[e['name']]).astype(e['dtype'], copy=False)
                  for e in self.inputs]
        if self.spec['format'] == 'onnx':
            names = [i.name for i in self._session.get_inputs()]
            return self._session.run(None, dict(zip(names, arrays)))
        import torch

        with torch.no_grad():
            out = self._session(*[torch.from_numpy(a) for a in arrays])
        out = out if isinstance(out, (tuple, list)) else (out, )
        return [o.numpy() for o in out]

    # ------------------------------------------------------- preprocess
    def preprocess(self, samples: Sequence[Dict[str, object]]) -> Dict[str, np.ndarray]:
        """Raw samples (modality -> path, array or string) -> graph inputs."""
        if not samples:
            raise BundleError('no samples given')
        for i, sample in enumerate(samples):
            missing = [m for m in self.modalities if m not in sample]
            unknown = [m for m in sample if m not in self.modalities]
            if missing or unknown:
                raise BundleError(f'sample {i}: the model takes {self.modalities}; missing '
                                  f'{missing}, unknown {unknown}')
        feeds: Dict[str, np.ndarray] = {}
        for entry in self.inputs:
            modality = entry['modality']
            values = [sample[modality] for sample in samples]
            if entry['kind'] == 'text':
                if entry['field'] == 'input_ids':
                    ids, mask = self._tokenize(entry, values)
                    feeds[f'{modality}_input_ids'] = ids
                    feeds[f'{modality}_attention_mask'] = mask
            elif entry['kind'] == 'image':
                feeds[entry['name']] = np.stack([self._image(entry, v) for v in values])
            else:
                feeds[entry['name']] = np.stack([self._array(entry, v) for v in values])
        return feeds

    def _tokenize(self, entry: dict, texts: Sequence[object]):
        modality = entry['modality']
        for i, text in enumerate(texts):
            if not isinstance(text, str):
                raise BundleError(f'sample {i}: {modality} must be a string, '
                                  f'got {type(text).__name__}')
        tok = self._tokenizers.get(modality)
        if tok is None:
            from tokenizers import Tokenizer

            tok = Tokenizer.from_file(osp.join(self.dir, entry['tokenizer']))
            # as the training preprocessor: cut at max_length (special tokens
            # included), pad to the longest text of the batch
            tok.enable_truncation(max_length=entry['max_length'])
            tok.enable_padding(pad_id=entry['pad_id'], pad_token=tok.id_to_token(entry['pad_id']))
            self._tokenizers[modality] = tok
        encoded = tok.encode_batch(list(texts))
        ids = np.array([e.ids for e in encoded], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encoded], dtype=np.int64)
        return ids, mask

    def _image(self, entry: dict, value) -> np.ndarray:
        """(C, H, W) float32: decoded, scaled (depth), padded, normalised."""
        if isinstance(value, str):
            from PIL import Image

            if not osp.isfile(value):
                raise BundleError(f'{entry["modality"]}: file not found: {value}')
            with Image.open(value) as img:
                if entry['channels'] == 3:
                    arr = np.asarray(img.convert('RGB'), dtype=np.float32)
                else:  # depth: keep all 16 bits
                    arr = np.asarray(img, dtype=np.float32)
        else:
            arr = np.asarray(value, dtype=np.float32)
        if arr.ndim == 2:
            arr = arr[..., None]
        if arr.shape[-1] != entry['channels']:
            raise BundleError(f'{entry["modality"]}: expected {entry["channels"]} channels, got '
                              f'an array of shape {arr.shape}')
        if entry.get('depth_scale') is not None and isinstance(value, str):
            arr = arr * entry['depth_scale']
        arr = arr.transpose(2, 0, 1)  # HWC -> CHW, channels in RGB order
        height, width = entry['size']
        if arr.shape[1] > height or arr.shape[2] > width:
            raise BundleError(f'{entry["modality"]}: the model was exported for {height}x{width} '
                              f'inputs, got {arr.shape[1]}x{arr.shape[2]}')
        # pad to the exported size before normalising, as the training preprocessor
        arr = np.pad(arr, ((0, 0), (0, height - arr.shape[1]), (0, width - arr.shape[2])),
                     constant_values=entry.get('pad_value', 0.0))
        if entry.get('mean') is not None:
            mean = np.asarray(entry['mean'], dtype=np.float32).reshape(-1, 1, 1)
            std = np.asarray(entry['std'], dtype=np.float32).reshape(-1, 1, 1)
            arr = (arr - mean) / std
        return arr.astype(np.float32)

    def _array(self, entry: dict, value) -> np.ndarray:
        expected = entry['shape'][1:]
        if isinstance(value, str) and value.endswith('.wav') and entry.get('audio_features'):
            feats = self._log_mel(entry, value)
            # (n_mels, T) as the pipeline packs it, with any leading channel axis
            return feats.reshape(expected) if feats.size == np.prod(expected) else feats
        if isinstance(value, str):
            if not osp.isfile(value):
                raise BundleError(f'{entry["modality"]}: file not found: {value}')
            value = np.load(value)
        arr = np.asarray(value, dtype=np.float32)
        if list(arr.shape) != expected and arr.size == np.prod(expected):
            arr = arr.reshape(expected)  # e.g. a (n_mels, T) log-mel for (1, n_mels, T)
        if list(arr.shape) != expected:
            raise BundleError(f'{entry["modality"]}: expected an array of shape {expected}, '
                              f'got {list(arr.shape)}')
        return arr

    def _log_mel(self, entry: dict, path: str) -> np.ndarray:
        modality = entry['modality']
        extractor = self._extractors.get(modality)
        if extractor is None:
            import transformers

            folder = osp.join(self.dir, osp.dirname(entry['audio_features']))
            cls = getattr(transformers, entry['audio_extractor'])
            extractor = cls.from_pretrained(folder, local_files_only=True)
            self._extractors[modality] = extractor
        if not osp.isfile(path):
            raise BundleError(f'{modality}: file not found: {path}')
        with wave.open(path, 'rb') as w:
            rate, width, channels = w.getframerate(), w.getsampwidth(), w.getnchannels()
            frames = w.readframes(w.getnframes())
        if width != 2:
            raise BundleError(f'{modality}: {path} is not 16-bit PCM; give a .npy log-mel')
        wav = np.frombuffer(frames, dtype='<i2').astype(np.float32) / 32768.0
        wav = wav.reshape(-1, channels).mean(axis=1)
        if rate != extractor.sampling_rate:
            raise BundleError(f'{modality}: {path} is at {rate} Hz, the model expects '
                              f'{extractor.sampling_rate} Hz')
        feats = extractor(wav, sampling_rate=rate, return_tensors='np')
        feats = np.asarray(feats[extractor.model_input_names[0]][0], dtype=np.float32)
        n_mels = entry['shape'][-2]
        return feats.T if feats.shape[0] != n_mels else feats  # frequency first

    # ------------------------------------------------------ postprocess
    def postprocess(self, outputs: List[np.ndarray]) -> List[dict]:
        """Graph outputs -> one JSON-friendly prediction per sample."""
        post = self.spec['postprocess']
        if self.task == 'detection':
            return self._detections(outputs, post)
        if self.task == 'segmentation':
            return [dict(sem_seg=logits.argmax(axis=0).astype(np.int64).tolist())
                    for logits in outputs[0]]
        logits = outputs[0].astype(np.float64)
        if post['score'] == 'softmax':
            scores = np.exp(logits - logits.max(axis=1, keepdims=True))
            scores /= scores.sum(axis=1, keepdims=True)
        else:
            scores = 1.0 / (1.0 + np.exp(-logits))
        results = []
        for row in scores:
            if self.task == 'multilabel':
                idx = [int(i) for i in np.nonzero(row >= post['thr'])[0]]
                results.append(dict(labels=idx, names=[self._name(i) for i in idx],
                                    scores=[float(row[i]) for i in idx]))
                continue
            top = [int(i) for i in np.argsort(-row)[:5]]
            result = dict(label=top[0], score=float(row[top[0]]), name=self._name(top[0]),
                          topk=[[self._name(i), float(row[i])] for i in top])
            if self.task == 'vqa':
                result['answer'] = result.pop('name')
            results.append(result)
        return results

    def _name(self, index: int):
        return self.labels[index] if self.labels and index < len(self.labels) else index

    def _detections(self, outputs: List[np.ndarray], post: dict) -> List[dict]:
        """FCOS decoding and class-wise NMS, as ``FCOSHead.predict`` does it."""
        levels = len(post['strides'])
        cls_scores, bbox_preds = outputs[:levels], outputs[levels:2 * levels]
        centernesses = outputs[2 * levels:]
        height, width = next(e['size'] for e in self.inputs if e['kind'] == 'image')
        results = []
        for b in range(cls_scores[0].shape[0]):
            boxes, scores, labels = [], [], []
            for cls, dist, ctr, stride in zip(cls_scores, bbox_preds, centernesses,
                                              post['strides']):
                k, h, w = cls.shape[1:]
                probs = _sigmoid(cls[b].reshape(k, -1).T)  # (P, K)
                ys, xs = np.meshgrid((np.arange(h) + 0.5) * stride,
                                     (np.arange(w) + 0.5) * stride, indexing='ij')
                points = np.stack([xs.reshape(-1), ys.reshape(-1)], axis=1)
                point_idx, class_idx = np.nonzero(probs > post['score_thr'])
                level_scores = probs[point_idx, class_idx]
                if level_scores.size > post['nms_pre']:
                    keep = np.argsort(-level_scores, kind='stable')[:post['nms_pre']]
                    level_scores, point_idx = level_scores[keep], point_idx[keep]
                    class_idx = class_idx[keep]
                level_ctr = _sigmoid(ctr[b].reshape(-1)[point_idx])
                ltrb = dist[b].reshape(4, -1).T[point_idx]
                pts = points[point_idx]
                boxes.append(np.concatenate([pts - ltrb[:, :2], pts + ltrb[:, 2:]], axis=1))
                scores.append(np.sqrt(level_scores * level_ctr))
                labels.append(class_idx)
            boxes = np.concatenate(boxes).reshape(-1, 4)
            scores, labels = np.concatenate(scores), np.concatenate(labels)
            boxes = np.stack([boxes[:, 0].clip(0, width), boxes[:, 1].clip(0, height),
                              boxes[:, 2].clip(0, width), boxes[:, 3].clip(0, height)], axis=1)
            keep = _batched_nms(boxes, scores, labels, post['nms_iou_thr'])
            keep = keep[:post['max_per_img']]
            results.append(dict(bboxes=boxes[keep].tolist(), scores=scores[keep].tolist(),
                                labels=labels[keep].tolist(),
                                names=[self._name(int(i)) for i in labels[keep]]))
        return results

    def predict(self, samples: Sequence[Dict[str, object]]) -> List[dict]:
        """Raw samples -> predictions (one dict per sample)."""
        return self.postprocess(self.run(self.preprocess(samples)))


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _batched_nms(boxes: np.ndarray, scores: np.ndarray, labels: np.ndarray,
                 iou_thr: float) -> np.ndarray:
    """Class-wise greedy NMS (torchvision's ``batched_nms``), highest score first.

    Written out in numpy because the runner must not need torchvision.
    """
    if boxes.shape[0] == 0:
        return np.zeros(0, dtype=np.int64)
    # offset each class's boxes so boxes of different classes never overlap
    offsets = labels.astype(boxes.dtype) * (boxes.max() + 1)
    shifted = boxes + offsets[:, None]
    x1, y1, x2, y2 = shifted.T
    areas = (x2 - x1).clip(0) * (y2 - y1).clip(0)
    order = np.argsort(-scores, kind='stable')
    keep = []
    while order.size:
        i = order[0]
        keep.append(i)
        rest = order[1:]
        w = (np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest])).clip(0)
        h = (np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest])).clip(0)
        inter = w * h
        iou = inter / np.maximum(areas[i] + areas[rest] - inter, 1e-12)
        order = rest[iou <= iou_thr]
    return np.asarray(keep, dtype=np.int64)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description='Run an exported mmfusion bundle on one sample')
    parser.add_argument('inputs', nargs='+', help='modality=value, e.g. image=a.png '
                        '"text=how many circles?"')
    parser.add_argument('--bundle', default=osp.dirname(osp.abspath(__file__)),
                        help='the bundle folder (default: the folder of this file)')
    parser.add_argument('--threads', type=int, default=0)
    parser.add_argument('--graph', default=None,
                        help='another graph file of the bundle, e.g. model.int8_static.onnx')
    args = parser.parse_args(argv)
    sample = {}
    for item in args.inputs:
        if '=' not in item:
            parser.error(f'expected modality=value, got {item!r}')
        key, value = item.split('=', 1)
        sample[key] = value
    try:
        bundle = Bundle(args.bundle, num_threads=args.threads, graph=args.graph)
        for result in bundle.predict([sample]):
            print(json.dumps(result))
    except BundleError as exc:
        print(f'error: {exc}', file=sys.stderr)
        return 2
    return 0


if __name__ == '__main__':
    sys.exit(main())
