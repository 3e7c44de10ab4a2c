"""Export a trained model into a self-contained bundle, with a parity check.

A bundle is a folder a user can copy to a machine without mmfusion:

    model.onnx | model.pt2 | model.ts    the graph: preprocessed tensors in, raw head outputs out
    preprocess.json                      inputs (names, modality, mean/std, sizes, max length),
                                         outputs and post-processing parameters
    labels.txt                           class names or VQA answers, in index order
    tokenizer_<modality>/tokenizer.json  the exact training vocabulary (``tokenizers`` format)
    audio_<modality>/preprocessor_config.json   the log-mel extractor settings
    runner.py                            a copy of :mod:`mmfusion.deployment.bundle_runner`

What stays outside the graph, and why:

* decoding files, tokenising, normalising (mean/std) and the log-mel
  spectrogram: they are string/file work that no graph runtime does well,
  and the runner does it with numpy, Pillow and ``tokenizers``;
* the detection post-processing (score threshold, box decoding, NMS): the
  number of boxes is data-dependent, so the graph ends at the head outputs
  (class logits, distances, centerness per level) and the runner decodes
  them and runs NMS in numpy, with the parameters of the head's config.

The graph has a dynamic batch axis and, for text, a dynamic sequence axis;
image sizes are fixed at the training size (written into ``preprocess.json``).

The model's ``forward`` takes a dict of modalities and data samples, which
neither ``torch.jit.trace`` nor ONNX accept; :class:`ExportWrapper` calls the
same encoders, fusion and head with flat tensors instead, so no model code
changes for export.
"""
import copy
import json
import os
import os.path as osp
import shutil
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from mmfusion.errors import ConfigError

FORMATS = ('onnx', 'torch.export', 'torchscript')
GRAPH_FILES = {'onnx': 'model.onnx', 'torch.export': 'model.pt2', 'torchscript': 'model.ts'}
# fp32 graphs agree with eager PyTorch to ~1e-5 on these models (different
# kernels sum in different orders); a broken export is off by far more.
DEFAULT_ATOL = 1e-3


def model_task(model: nn.Module) -> str:
    """'vqa', 'classification', 'multilabel', 'detection' or 'segmentation', from the head."""
    head = type(model.head).__name__
    if head == 'VQAHead':
        return 'vqa'
    if head == 'MultiLabelClsHead':
        return 'multilabel'
    if hasattr(model.head, 'num_classes') and hasattr(model.head, 'classifier'):
        return 'classification'
    if hasattr(model.head, 'nms_iou_thr'):
        return 'detection'
    if hasattr(model.head, 'conv_seg'):
        return 'segmentation'
    raise ConfigError(f'export: no export recipe for a model with a {head}; supported heads are '
                      'VQAHead, ClsHead, MultiLabelClsHead, FCOSHead and FPNSegHead')


def input_layout(model: nn.Module) -> List[dict]:
    """The graph's flat inputs, in order: one per tensor the encoders take.

    Each entry: ``name`` (the graph input name), ``modality``, ``field`` (the
    key inside a text modality's dict, else ``None``) and ``kind``
    (``'text'``, ``'image'`` for image-like modalities the preprocessor
    normalises, or ``'array'``).
    """
    pre = model.data_preprocessor
    tokenizers = getattr(pre, 'tokenizers', {})
    image_cfgs = getattr(pre, 'image_cfgs', {})
    layout = []
    for modality in model.encoders:
        if modality in tokenizers:
            for field in ('input_ids', 'attention_mask'):
                layout.append(dict(name=f'{modality}_{field}', modality=modality, field=field,
                                   kind='text'))
        else:
            layout.append(dict(name=modality, modality=modality, field=None,
                               kind='image' if modality in image_cfgs else 'array'))
    return layout


def output_names(model: nn.Module) -> List[str]:
    task = model_task(model)
    if task == 'detection':
        levels = range(len(model.head.strides))
        return ([f'cls_score_{i}' for i in levels] + [f'bbox_pred_{i}' for i in levels]
                + [f'centerness_{i}' for i in levels])
    if task == 'segmentation':
        return ['seg_logits']
    return ['logits']


class ExportWrapper(nn.Module):
    """A model with flat tensor inputs and a tuple of tensor outputs, for export.

    Inputs: the tensors of :func:`input_layout` in order, e.g. for VQA
    ``image`` (B, 3, H, W) float (normalised), ``text_input_ids`` (B, L) int64,
    ``text_attention_mask`` (B, L) int64.

    Outputs (the head's raw outputs, as ``model.forward(mode='tensor')`` and
    the head give them):

    * classification / VQA: ``logits`` (B, C);
    * detection (FCOS): per level ``cls_score_l`` (B, K, H_l, W_l), then
      ``bbox_pred_l`` (B, 4, H_l, W_l) distances in pixels, then
      ``centerness_l`` (B, 1, H_l, W_l) logits; decoding and NMS run outside;
    * segmentation: ``seg_logits`` (B, C, H, W) at the input size.
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.layout = input_layout(model)
        self.task = model_task(model)

    def to_inputs(self, tensors: Sequence[torch.Tensor]) -> Dict[str, object]:
        inputs: Dict[str, object] = {}
        for spec, tensor in zip(self.layout, tensors):
            if spec['field'] is None:
                inputs[spec['modality']] = tensor
            else:
                inputs.setdefault(spec['modality'], {})[spec['field']] = tensor
        return inputs

    def forward(self, *tensors: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        feats = self.model.extract_feat(self.to_inputs(tensors))
        if self.task == 'detection':
            cls_scores, bbox_preds, centernesses = self.model.head(feats)
            return tuple(cls_scores) + tuple(bbox_preds) + tuple(centernesses)
        if self.task == 'segmentation':
            logits = self.model.head(feats)
            size = tensors[[s['kind'] for s in self.layout].index('image')].shape[-2:]
            return (F.interpolate(logits, size=size, mode='bilinear', align_corners=False), )
        return (self.model.head(feats), )


def flatten_inputs(model: nn.Module, inputs: Dict[str, object]) -> Tuple[torch.Tensor, ...]:
    """The flat tensors of :func:`input_layout` from a preprocessed batch."""
    flat = []
    for spec in input_layout(model):
        value = inputs[spec['modality']]
        tensor = value[spec['field']] if spec['field'] else value
        flat.append(tensor.contiguous())
    return tuple(flat)


@torch.no_grad()
def reference_outputs(model: nn.Module, inputs: Dict[str, object]) -> List[torch.Tensor]:
    """The original model's outputs on a batch, through ``model.forward`` itself."""
    task = model_task(model)
    out = model(inputs, mode='tensor')
    if task == 'detection':
        cls_scores, bbox_preds, centernesses = model.head(out)
        return list(cls_scores) + list(bbox_preds) + list(centernesses)
    if task == 'segmentation':
        image = next(v for k, v in inputs.items() if k in model.data_preprocessor.image_cfgs)
        return [F.interpolate(model.head(out), size=image.shape[-2:], mode='bilinear',
                              align_corners=False)]
    return [out]


def load_val_batch(cfg, model: nn.Module, batch_size: Optional[int] = None,
                   split: str = 'val_dataloader'):
    """First batch of the config's val loader, preprocessed by the model.

    Returns ``(inputs, data_samples, dataset)``.
    """
    from mmengine.runner import Runner

    if split not in cfg:
        raise ConfigError(f'export: the config has no {split} to check parity on')
    loader_cfg = copy.deepcopy(cfg[split])
    if batch_size is not None:
        loader_cfg['batch_size'] = batch_size
    loader_cfg.update(num_workers=0, persistent_workers=False)
    loader = Runner.build_dataloader(loader_cfg)
    data = next(iter(loader))
    with torch.no_grad():
        batch = model.data_preprocessor(data, False)
    return batch['inputs'], batch['data_samples'], loader.dataset


def dynamic_shapes(model: nn.Module, example: Sequence[torch.Tensor]) -> Tuple[dict, ...]:
    """Batch (and sequence length, for text) dynamic; every other axis fixed."""
    batch = torch.export.Dim('batch', min=1, max=4096)
    seq = torch.export.Dim('seq', min=1, max=4096)
    shapes = []
    for spec, tensor in zip(input_layout(model), example):
        dims = {0: batch}
        if spec['kind'] == 'text':
            dims[1] = seq
        shapes.append(dims)
    return tuple(shapes)


def export_graph(model: nn.Module, example: Sequence[torch.Tensor], fmt: str, path: str) -> None:
    """Write the graph of ``ExportWrapper(model)`` traced on ``example`` to ``path``."""
    if fmt not in FORMATS:
        raise ConfigError(f'export: --format must be one of {FORMATS}, got {fmt!r}')
    wrapper = ExportWrapper(model).eval()
    example = tuple(example)
    names = [s['name'] for s in input_layout(model)]
    with torch.no_grad():
        if fmt == 'torchscript':
            # tracing records one path through the Python code; the model has
            # no data-dependent branches, and the parity check on a batch of
            # another size catches shapes baked into the trace
            traced = torch.jit.trace(wrapper, example, check_trace=False, strict=False)
            traced.save(path)
            return
        shapes = dynamic_shapes(model, example)
        if fmt == 'torch.export':
            program = torch.export.export(wrapper, example, dynamic_shapes=(shapes, ))
            torch.export.save(program, path)
            return
        onnx_program = torch.onnx.export(wrapper, example, dynamo=True,
                                          dynamic_shapes=(shapes, ), input_names=names,
                                          output_names=output_names(model),
                                          external_data=False, verbose=False)
        onnx_program.save(path)


def preprocess_spec(model: nn.Module, cfg, example: Sequence[torch.Tensor], fmt: str,
                    dataset=None) -> dict:
    """What ``preprocess.json`` holds: how the runner turns raw inputs into graph inputs."""
    pre = model.data_preprocessor
    task = model_task(model)
    inputs = []
    for spec, tensor in zip(input_layout(model), example):
        entry = dict(spec, dtype=str(tensor.dtype).replace('torch.', ''),
                     shape=['batch'] + (['seq'] if spec['kind'] == 'text' else [])
                     + list(tensor.shape[1 + (spec['kind'] == 'text'):]))
        modality = spec['modality']
        if spec['kind'] == 'text':
            entry.update(tokenizer=f'tokenizer_{modality}/tokenizer.json',
                         max_length=int(pre.text_cfgs[modality]['max_length']),
                         pad_id=int(pre.tokenizers[modality].pad_token_id or 0))
        elif spec['kind'] == 'image':
            icfg = pre.image_cfgs[modality]
            mean = getattr(pre, f'{modality}_mean', None)
            std = getattr(pre, f'{modality}_std', None)
            entry.update(size=list(tensor.shape[-2:]), channels=int(tensor.shape[1]),
                         mean=mean.flatten().tolist() if mean is not None else None,
                         std=std.flatten().tolist() if std is not None else None,
                         pad_size_divisor=int(icfg['pad_size_divisor']),
                         pad_value=float(icfg['pad_value']),
                         depth_scale=_depth_scale(cfg, modality))
        else:
            audio = _audio_extractor(cfg, modality)
            if audio is not None:
                entry.update(audio_features=f'audio_{modality}/preprocessor_config.json',
                             audio_extractor=type(audio).__name__)
        inputs.append(entry)
    post: dict = dict(task=task)
    if task in ('vqa', 'classification', 'multilabel'):
        use_sigmoid = getattr(model.head, 'use_sigmoid', None)
        if use_sigmoid is None:  # VQAHead: the scale its loss trained
            use_sigmoid = getattr(model.head.loss_module, 'use_sigmoid', True)
        post.update(score='sigmoid' if use_sigmoid else 'softmax')
        if task == 'multilabel':
            post.update(thr=float(model.head.thr))
    elif task == 'detection':
        head = model.head
        post.update(strides=list(head.strides), score_thr=float(head.score_thr),
                    nms_pre=int(head.nms_pre), nms_iou_thr=float(head.nms_iou_thr),
                    max_per_img=int(head.max_per_img))
    return dict(format=fmt, graph=GRAPH_FILES[fmt], task=task, inputs=inputs,
                outputs=output_names(model), postprocess=post,
                labels='labels.txt' if labels_of(model, dataset) else None)


def labels_of(model: nn.Module, dataset=None) -> Optional[List[str]]:
    """VQA answers, or the dataset's class names (``metainfo['classes']``)."""
    if model_task(model) == 'vqa':
        return list(model.head.answers)
    classes = (dataset.metainfo.get('classes') if dataset is not None else None)
    if model_task(model) == 'segmentation' and classes is not None:
        num = model.head.num_classes
        if len(classes) != num:  # e.g. referring segmentation: background / referred
            classes = ['background'] + list(classes) if len(classes) + 1 == num else None
    return [str(c) for c in classes] if classes else None


def _pipeline(cfg) -> list:
    loader = cfg.get('test_dataloader') or cfg.get('val_dataloader') or {}
    return list(loader.get('dataset', {}).get('pipeline', []))


def _depth_scale(cfg, modality: str) -> Optional[float]:
    for step in _pipeline(cfg):
        if step.get('type') == 'LoadDepthFromFile' and step.get('key', 'depth') == modality:
            return float(step.get('scale', 0.001))
    return None


def _audio_extractor(cfg, modality: str):
    for step in _pipeline(cfg):
        if step.get('type') == 'AudioLogMel' and step.get('out_key', 'audio') == modality:
            from mmfusion.datasets.transforms.audio import build_feature_extractor
            return build_feature_extractor(step.get('feature_extractor', 'ASTFeatureExtractor'))
    return None


def write_bundle_files(model: nn.Module, cfg, spec: dict, out_dir: str, dataset=None) -> None:
    """Everything but the graph: preprocess.json, labels, tokenizers, extractor, runner."""
    os.makedirs(out_dir, exist_ok=True)
    with open(osp.join(out_dir, 'preprocess.json'), 'w', encoding='utf-8') as f:
        json.dump(spec, f, indent=2)
    labels = labels_of(model, dataset)
    if labels:
        with open(osp.join(out_dir, 'labels.txt'), 'w', encoding='utf-8') as f:
            f.write('\n'.join(labels) + '\n')
    pre = model.data_preprocessor
    for modality, tok in getattr(pre, 'tokenizers', {}).items():
        folder = osp.join(out_dir, f'tokenizer_{modality}')
        os.makedirs(folder, exist_ok=True)
        # the backend's own file: the runner needs only the `tokenizers` library
        tok.backend_tokenizer.save(osp.join(folder, 'tokenizer.json'))
    for entry in spec['inputs']:
        if entry.get('audio_features'):
            extractor = _audio_extractor(cfg, entry['modality'])
            extractor.save_pretrained(osp.join(out_dir, osp.dirname(entry['audio_features'])))
    here = osp.dirname(osp.abspath(__file__))
    shutil.copyfile(osp.join(here, 'bundle_runner.py'), osp.join(out_dir, 'runner.py'))


def raw_samples(cfg, dataset, count: int) -> Optional[List[dict]]:
    """The first ``count`` val samples as the runner takes them (paths and strings).

    Follows the test pipeline's ``PackMultiModalInputs(inputs=...)``: ``img``
    is the image file, a loaded key such as ``depth`` or ``audio`` its
    ``<key>_path`` file, anything else (a question, a caption) the field
    itself. ``None`` when a modality cannot be traced back to the data.
    """
    pack = next((s for s in reversed(_pipeline(cfg)) if s.get('type') == 'PackMultiModalInputs'),
                None)
    if pack is None or not pack.get('inputs'):
        return None
    samples = []
    for index in range(count):
        info = dataset.get_data_info(index)
        sample = {}
        for modality, key in pack['inputs'].items():
            field = 'img_path' if key == 'img' else f'{key}_path'
            if field in info:
                sample[modality] = info[field]
            elif isinstance(info.get(key), str):
                sample[modality] = info[key]
            else:
                return None
        samples.append(sample)
    return samples


def max_abs_diff(a: Sequence[np.ndarray], b: Sequence[np.ndarray]) -> float:
    """Largest absolute difference over all outputs (inf when shapes differ)."""
    if len(a) != len(b):
        return float('inf')
    worst = 0.0
    for x, y in zip(a, b):
        x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
        if x.shape != y.shape:
            return float('inf')
        if x.size:
            worst = max(worst, float(np.abs(x - y).max()))
    return worst


def export_bundle(model: nn.Module, cfg, out_dir: str, fmt: str = 'onnx',
                  batch_size: Optional[int] = None, example_batch: int = 2,
                  atol: float = DEFAULT_ATOL) -> dict:
    """Export ``model`` into a bundle at ``out_dir`` and check parity on a val batch.

    The graph is traced on the first ``example_batch`` samples and checked on
    the whole val batch (another batch size, so a batch axis baked into the
    graph shows up as a shape mismatch).

    Returns:
        dict(format, out_dir, graph, max_abs_diff (graph vs original on the
        same preprocessed tensors), end_to_end_diff (runner.py's own
        preprocessing of the raw val files, then the graph, vs the original;
        ``None`` when the inputs cannot be traced back to files), atol,
        batch_size, passed).
    """
    model = model.eval()
    inputs, _, dataset = load_val_batch(cfg, model, batch_size)
    flat = flatten_inputs(model, inputs)
    if flat[0].shape[0] < 2:
        raise ConfigError('export: the parity check needs a val batch of at least 2 samples')
    example_batch = max(1, min(example_batch, flat[0].shape[0] - 1))
    example = tuple(t[:example_batch] for t in flat)
    spec = preprocess_spec(model, cfg, example, fmt, dataset)
    write_bundle_files(model, cfg, spec, out_dir, dataset)
    export_graph(model, example, fmt, osp.join(out_dir, GRAPH_FILES[fmt]))
    return check_parity(model, cfg, out_dir, atol=atol, batch=(inputs, dataset))


def check_parity(model: nn.Module, cfg, bundle_dir: str, batch_size: Optional[int] = None,
                 atol: float = DEFAULT_ATOL, batch: Optional[tuple] = None) -> dict:
    """Run a bundle and ``model`` on the same val batch; see :func:`export_bundle`.

    ``batch`` is ``(inputs, dataset)`` from :func:`load_val_batch`, to reuse.
    """
    from .bundle_runner import Bundle

    model = model.eval()
    if batch is None:
        inputs, _, dataset = load_val_batch(cfg, model, batch_size)
    else:
        inputs, dataset = batch
    flat = flatten_inputs(model, inputs)
    bundle = Bundle(bundle_dir)
    expected = [t.numpy() for t in reference_outputs(model, inputs)]
    got = bundle.run({s['name']: t.numpy() for s, t in zip(bundle.inputs, flat)})
    diff = max_abs_diff(expected, got)
    # the whole path a user runs: the runner's own preprocessing of the raw
    # files and strings, then the graph, against the original model
    raw = raw_samples(cfg, dataset, int(flat[0].shape[0]))
    end_to_end = None
    if raw is not None:
        end_to_end = max_abs_diff(expected, bundle.run(bundle.preprocess(raw)))
    passed = diff <= atol and (end_to_end is None or end_to_end <= atol)
    return dict(format=bundle.spec['format'], out_dir=bundle_dir,
                graph=osp.join(bundle_dir, bundle.spec['graph']),
                max_abs_diff=diff, end_to_end_diff=end_to_end, atol=atol,
                batch_size=int(flat[0].shape[0]), passed=bool(passed))


__all__ = ['FORMATS', 'ExportWrapper', 'check_parity', 'export_bundle', 'export_graph',
           'flatten_inputs', 'input_layout', 'load_val_batch', 'max_abs_diff', 'model_task',
           'preprocess_spec', 'raw_samples', 'reference_outputs']
