"""What every compression table measures: val accuracy, CPU latency, model size.

Shared by :mod:`mmfusion.deployment.quantization` and
:mod:`mmfusion.deployment.pruning`, so both tables measure the same way: the
val set is loaded and preprocessed once (:class:`ValSet`), every variant is a
function from the graph's flat inputs (numpy) to its outputs, and latencies of
all variants are taken in the same process, interleaved, so the noise of a
shared machine hits them alike.
"""
import time
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np
import torch
import torch.nn as nn

from mmfusion.errors import ConfigError

from .export import flatten_inputs, input_layout, model_task

# a variant: flat graph inputs (numpy, input_layout order) -> the logits (B, C)
RunFn = Callable[[Sequence[np.ndarray]], np.ndarray]


class ValSet:
    """The config's val set, preprocessed once into the graph's flat inputs.

    Args:
        cfg, model: the model's config and the (original) model, whose data
            preprocessor turns the loader's batches into tensors.
        max_samples: stop after this many samples (``None``: all).
        batch_size: the loader's batch size (default the config's).

    Attributes: ``batches`` (list of flat numpy input tuples), ``samples``
    (the data samples with ground truth, in the same order), ``task`` and
    ``answers`` (VQA) or ``None``.
    """

    def __init__(self, cfg, model: nn.Module, max_samples: Optional[int] = None,
                 batch_size: Optional[int] = None) -> None:
        from mmengine.runner import Runner

        self.task = model_task(model)
        if self.task not in ('vqa', 'classification'):
            raise ConfigError(f'compression tables measure VQA or single-label classification '
                              f'accuracy; this model does {self.task}')
        self.answers = list(model.head.answers) if self.task == 'vqa' else None
        self.names = [s['name'] for s in input_layout(model)]
        loader_cfg = dict(cfg.val_dataloader)
        loader_cfg.update(num_workers=0, persistent_workers=False)
        if batch_size is not None:
            loader_cfg['batch_size'] = batch_size
        loader = Runner.build_dataloader(loader_cfg)
        self.batches: List[tuple] = []
        self.samples: list = []
        seen = 0
        with torch.no_grad():
            for data in loader:
                batch = model.data_preprocessor(data, False)
                self.batches.append(tuple(t.numpy() for t in
                                          flatten_inputs(model, batch['inputs'])))
                self.samples.extend(batch['data_samples'])
                seen += len(batch['data_samples'])
                if max_samples is not None and seen >= max_samples:
                    break

    def __len__(self) -> int:
        return len(self.samples)

    def accuracy(self, run: RunFn) -> float:
        """Accuracy in percent: the official VQA accuracy, or top-1."""
        from mmfusion.evaluation.functional import vqa_accuracy

        preds = np.concatenate([np.asarray(run(batch)).argmax(axis=1) for batch in self.batches])
        scores = []
        for pred, sample in zip(preds, self.samples):
            if self.task == 'vqa':
                scores.append(vqa_accuracy(self.answers[int(pred)], sample.gt_answers))
            else:
                scores.append(float(int(pred) == int(sample.gt_label[0])))
        return 100.0 * float(np.mean(scores))

    def feeds(self, batch_size: int) -> tuple:
        """Flat inputs of exactly ``batch_size`` val samples (repeated if the set is smaller)."""
        first = self.batches[0]
        rows = np.arange(batch_size) % first[0].shape[0]
        return tuple(np.ascontiguousarray(a[rows]) for a in first)


def latencies_ms(variants: Dict[str, RunFn], feeds: tuple, repeats: int = 20,
                 warmup: int = 3) -> Dict[str, float]:
    """Median wall time per call of each variant, in ms, measured interleaved.

    Each round runs every variant once, so a burst of load from other
    processes slows all variants of that round rather than one of them.
    """
    for run in variants.values():
        for _ in range(warmup):
            run(feeds)
    times: Dict[str, List[float]] = {name: [] for name in variants}
    for _ in range(repeats):
        for name, run in variants.items():
            start = time.perf_counter()
            run(feeds)
            times[name].append((time.perf_counter() - start) * 1000.0)
    return {name: float(np.median(t)) for name, t in times.items()}


def torch_runner(model: nn.Module) -> RunFn:
    """A variant that runs an mmfusion model in eager PyTorch on flat numpy inputs."""
    from .export import ExportWrapper

    wrapper = ExportWrapper(model).eval()

    def run(feeds: Sequence[np.ndarray]) -> np.ndarray:
        with torch.no_grad():
            return wrapper(*[torch.from_numpy(a) for a in feeds])[0].numpy()

    return run


def onnx_runner(path: str, num_threads: int = 1) -> RunFn:
    """A variant that runs an ONNX graph with onnxruntime's CPU provider."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = num_threads
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(path, options, providers=['CPUExecutionProvider'])
    names = [i.name for i in session.get_inputs()]

    def run(feeds: Sequence[np.ndarray]) -> np.ndarray:
        return session.run(None, dict(zip(names, feeds)))[0]

    return run


def param_bytes(model: nn.Module) -> int:
    """Bytes of the parameters and buffers as stored densely."""
    return sum(t.numel() * t.element_size()
               for t in list(model.parameters()) + list(model.buffers()))


def markdown_table(rows: List[dict], columns: Sequence[str]) -> str:
    """A GitHub markdown table of ``rows`` (dicts) with the given columns."""
    def cell(value) -> str:
        if isinstance(value, float):
            return f'{value:.2f}'
        return str(value)

    lines = ['| ' + ' | '.join(columns) + ' |', '|' + '---|' * len(columns)]
    lines += ['| ' + ' | '.join(cell(row.get(c, '')) for c in columns) + ' |' for row in rows]
    return '\n'.join(lines)


__all__ = ['ValSet', 'latencies_ms', 'markdown_table', 'onnx_runner', 'param_bytes',
           'torch_runner']
