"""Parameters and FLOPs of a config's model, in total and per component.

    python tools/analysis_tools/get_flops.py CONFIG [--batch-size 1] \\
        [--shape H [W]] [--text-length L] [--audio-length T] \\
        [--json-out FILE] [--cfg-options ...]

The input is real: the first ``--batch-size`` samples of the config's val
set (``val_dataloader.dataset``) go through its pipeline and the model's data
preprocessor, so every modality has the shape the model sees in evaluation
(image size, padded question length, spectrogram frames). The options
change one modality's size on that batch: ``--shape`` resizes images (and
depth maps), ``--text-length`` pads or cuts token sequences, and
``--audio-length`` resizes spectrograms along time.

MMEngine's :func:`~mmengine.analysis.get_model_complexity_info` counts the
whole forward pass (encoders, necks, fusion, head; the data preprocessor's
normalisation is not part of it) and :class:`~mmengine.analysis.FlopAnalyzer`
splits it by component. As in fvcore and the OpenMMLab tools, one FLOP is one
multiply-add: a ``Linear(in, out)`` on a batch of ``B`` counts ``B*in*out``.
"""
import argparse
import json
import logging
from typing import Any, Dict, List, Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.analysis import FlopAnalyzer, get_model_complexity_info, parameter_count
from mmengine.config import Config, DictAction
from mmengine.dataset import pseudo_collate
from mmengine.logging import MMLogger
from terminaltables import AsciiTable

import mmfusion  # noqa: F401  (config compatibility, before any config is read)
from mmfusion.errors import ConfigError
from mmfusion.registry import DATASETS, MODELS
from mmfusion.utils import (
    add_data_root_argument,
    check_modalities,
    explain_config_errors,
    read_tool_config,
    register_all_modules,
    run_main,
)

SPATIAL_MODALITIES = ('image', 'depth')


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Count the parameters and FLOPs of a model')
    parser.add_argument('config', help='config file path')
    parser.add_argument('--batch-size', type=int, default=1,
                        help='how many val samples make the input batch (default: 1)')
    parser.add_argument('--shape', type=int, nargs='+',
                        help='resize images (and depth maps) to H W (or H H)')
    parser.add_argument('--text-length', type=int,
                        help='pad or cut token sequences to this many tokens')
    parser.add_argument('--audio-length', type=int,
                        help='resize spectrograms to this many time frames')
    parser.add_argument('--json-out', help='also write the exact numbers to this JSON file')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config entries, e.g. model.fusion.out_dim=256')
    add_data_root_argument(parser)
    args = parser.parse_args()
    if args.batch_size < 1:
        parser.error(f'--batch-size must be at least 1, got {args.batch_size}')
    if args.shape is not None:
        if len(args.shape) not in (1, 2) or min(args.shape) < 1:
            parser.error(f'--shape takes H or H W (positive), got {args.shape}')
        args.shape = tuple(args.shape) * (2 if len(args.shape) == 1 else 1)
    for name in ('text_length', 'audio_length'):
        value = getattr(args, name)
        if value is not None and value < 1:
            parser.error(f'--{name.replace("_", "-")} must be at least 1, got {value}')
    return args


# --------------------------------------------------------------------------
# Model and input


def build_model(cfg: Config) -> nn.Module:
    """The config's model as the tools build it, vocabularies filled in."""
    try:
        from mmfusion.apis import resolve_vocabularies
    except ImportError:  # an mmfusion whose configs still name their vocabulary sources
        resolve_vocabularies = None
    with explain_config_errors(cfg):
        if resolve_vocabularies is not None:
            resolve_vocabularies(cfg)
        model = MODELS.build(cfg.model)
    model.eval()
    return model


def real_batch(cfg: Config, model: nn.Module, batch_size: int) -> Tuple[dict, list]:
    """``(inputs, data_samples)`` of the first val samples after the pipeline
    and the model's data preprocessor."""
    loader = cfg.get('val_dataloader')
    if not isinstance(loader, dict) or 'dataset' not in loader:
        raise ConfigError('get_flops takes its input from val_dataloader.dataset, which the '
                          'config does not have')
    with explain_config_errors(cfg):
        dataset = DATASETS.build(loader['dataset'])
    if len(dataset) < batch_size:
        raise ConfigError(f'--batch-size {batch_size} but val_dataloader.dataset has only '
                          f'{len(dataset)} samples')
    batch = pseudo_collate([dataset[i] for i in range(batch_size)])
    with torch.no_grad():
        data = model.data_preprocessor(batch, False)
    return data['inputs'], data.get('data_samples')


def _resize_tokens(value: Any, length: int) -> Any:
    """Pad (with 0, the padding id and an empty mask) or cut (B, N) token tensors."""
    if isinstance(value, dict):
        return {k: _resize_tokens(v, length) for k, v in value.items()}
    if not torch.is_tensor(value) or value.dim() != 2:
        return value
    if value.size(1) >= length:
        return value[:, :length]
    return F.pad(value, (0, length - value.size(1)), value=0)


def resize_inputs(inputs: dict, shape: Optional[Tuple[int, int]] = None,
                  text_length: Optional[int] = None,
                  audio_length: Optional[int] = None) -> dict:
    """The batch with the sizes the command line asks for."""
    out = dict(inputs)
    for name, value in inputs.items():
        if shape is not None and name in SPATIAL_MODALITIES and torch.is_tensor(value):
            out[name] = F.interpolate(value.float(), size=shape, mode='bilinear',
                                      align_corners=False)
        elif audio_length is not None and name == 'audio' and torch.is_tensor(value):
            size = tuple(value.shape[2:-1]) + (audio_length,)
            out[name] = F.interpolate(value.float(), size=size, mode='nearest')
        elif text_length is not None and (not torch.is_tensor(value)
                                          or not value.is_floating_point()):
            out[name] = _resize_tokens(value, text_length)
    asked = dict(image=shape, audio=audio_length)
    for name, value in asked.items():
        if value is not None and name not in inputs:
            raise ConfigError(f'--{"shape" if name == "image" else "audio-length"} was given '
                              f'but the model takes no {name} (inputs: {sorted(inputs)})')
    return out


def describe_inputs(inputs: dict) -> List[str]:
    """``'image: (1, 3, 64, 64) float32'`` lines, one per tensor."""
    lines = []
    for name, value in inputs.items():
        if torch.is_tensor(value):
            lines.append(f'{name}: {tuple(value.shape)} {str(value.dtype).replace("torch.", "")}')
        elif isinstance(value, dict):
            lines += [f'{name}.{line}' for line in describe_inputs(value)]
        else:
            lines.append(f'{name}: {type(value).__name__}')
    return lines


class TensorForward(nn.Module):
    """The model with the batch's data samples bound, so that the tracer sees
    tensors only: ``forward(inputs) == model(inputs, data_samples, 'tensor')``."""

    def __init__(self, model: nn.Module, data_samples: Optional[list]) -> None:
        super().__init__()
        self.model = model
        self.data_samples = data_samples

    def forward(self, inputs: dict) -> Any:
        return self.model(inputs, self.data_samples, mode='tensor')


# --------------------------------------------------------------------------
# Counting


def components(model: nn.Module) -> List[Tuple[str, nn.Module]]:
    """The model's parts: each top-level child, with containers
    (``encoders``, ``necks``) split into their members."""
    parts = []
    for name, child in model.named_children():
        if isinstance(child, (nn.ModuleDict, nn.ModuleList)):
            parts += [(f'{name}.{sub}', module) for sub, module in child.named_children()]
        else:
            parts.append((name, child))
    return parts


def count(model: nn.Module, inputs: dict, data_samples: Optional[list]) -> Dict[str, Any]:
    """Totals from ``get_model_complexity_info`` and a per-component split.

    Returns a dict with ``flops``, ``params`` (totals) and ``rows``: one
    ``(component, type, params, flops)`` per component.
    """
    wrapped = TensorForward(model, data_samples)
    # the analyzers warn about every op without a FLOP formula (activations,
    # additions); those cost no multiply-adds, so keep the output to the table
    logger = MMLogger.get_current_instance()
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with torch.no_grad():
            info = get_model_complexity_info(wrapped, inputs=(inputs,), show_table=False,
                                             show_arch=False)
            analyzer = FlopAnalyzer(wrapped, (inputs,))
            analyzer.unsupported_ops_warnings(False)
            analyzer.uncalled_modules_warnings(False)
            by_module = analyzer.by_module()
    finally:
        logger.setLevel(level)
    params = parameter_count(wrapped)
    rows = []
    for name, module in components(model):
        key = f'model.{name}'
        rows.append((name, type(module).__name__, int(params.get(key, 0)),
                     int(by_module.get(key, 0))))
    return dict(flops=int(info['flops']), params=int(info['params']), rows=rows,
                flops_str=info['flops_str'], params_str=info['params_str'])


def human(number: float) -> str:
    """12345678 -> '12.35M' (powers of 1000, as MMEngine writes sizes)."""
    for unit, size in (('T', 1e12), ('G', 1e9), ('M', 1e6), ('K', 1e3)):
        if abs(number) >= size:
            return f'{number / size:.2f}{unit}'
    return str(int(number))


def complexity_table(result: Dict[str, Any], batch_size: int) -> str:
    total_flops, total_params = result['flops'], result['params']
    rows = [['component', 'type', 'params', 'FLOPs', 'FLOPs %']]
    for name, kind, params, flops in result['rows']:
        if params == 0 and flops == 0:  # e.g. the data preprocessor: outside the forward
            continue
        share = 100.0 * flops / total_flops if total_flops else 0.0
        rows.append([name, kind, human(params), human(flops), f'{share:.1f}'])
    rows.append(['total', '', human(total_params), human(total_flops), '100.0'])
    table = AsciiTable(rows, title=f'Complexity (batch of {batch_size})')
    table.inner_footing_row_border = True
    for column in (2, 3, 4):
        table.justify_columns[column] = 'right'
    return table.table


def main() -> None:
    args = parse_args()
    register_all_modules()
    cfg = read_tool_config(args.config, args.cfg_options, args.data_root)
    check_modalities(cfg, ('val_dataloader',))
    model = build_model(cfg)
    inputs, data_samples = real_batch(cfg, model, args.batch_size)
    inputs = resize_inputs(inputs, args.shape, args.text_length, args.audio_length)
    result = count(model, inputs, data_samples)

    print('input batch (val set, after the data preprocessor):')
    for line in describe_inputs(inputs):
        print(f'  {line}')
    print(complexity_table(result, args.batch_size))
    print(f'Params: {result["params_str"]} ({result["params"]})')
    print(f'FLOPs: {result["flops_str"]} ({result["flops"]}) for the batch of {args.batch_size}, '
          f'{human(result["flops"] / args.batch_size)} per sample')
    if args.json_out:
        with open(args.json_out, 'w', encoding='utf-8') as f:
            json.dump(dict(batch_size=args.batch_size, inputs=describe_inputs(inputs),
                           flops=result['flops'], params=result['params'],
                           components={name: dict(type=kind, params=params, flops=flops)
                                       for name, kind, params, flops in result['rows']}),
                      f, indent=2)
    print('One FLOP is one multiply-add. Ops without a formula (activations, additions, '
          'pooling) count as zero, as in MMEngine/fvcore; check the numbers before relying '
          'on them for a new architecture.')


if __name__ == '__main__':
    run_main(main)
