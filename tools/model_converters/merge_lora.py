"""Merge a model's peft adapters (LoRA, IA3) into its base weights, for export.

    python tools/model_converters/merge_lora.py CONFIG CHECKPOINT OUT.pth [--out-config OUT.py]

Builds the model of CONFIG (its frozen base weights come from the config's
pretrained folders / weights files, as when it was trained), loads CHECKPOINT
(a whole one, or one with only the trainable weights: ``save_frozen=False``),
merges every adapter into the layer it adapts (``W + B A * alpha / r`` for
LoRA) and writes an ordinary checkpoint of the plain model: the same keys as
the model without ``peft``, no adapter left. ``--out-config`` (default: OUT
with ``.py``) is CONFIG without the ``peft`` and ``save_frozen`` keys, the
config that loads OUT.pth (``tools/test.py OUT.py OUT.pth``, export, the
inferencer); its outputs equal the adapted model's up to float rounding.
"""
import argparse
import io
import os
import os.path as osp
from typing import List, Optional

import mmfusion  # noqa: F401
from mmfusion.errors import ConfigError
from mmfusion.utils import add_data_root_argument, read_tool_config, register_all_modules, run_main

ADAPTER_KEYS = ('peft', 'save_frozen')


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    from mmengine.config import DictAction

    parser = argparse.ArgumentParser(description='Merge peft adapters into the base weights')
    parser.add_argument('config', help='the config the checkpoint was trained with')
    parser.add_argument('checkpoint', help='the trained checkpoint (.pth)')
    parser.add_argument('out', help='the merged checkpoint to write (.pth)')
    parser.add_argument('--out-config', help='the config of the merged model '
                        '(default: OUT with .py)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    add_data_root_argument(parser)
    return parser.parse_args(argv)


def strip_adapter_keys(model_cfg: dict) -> List[str]:
    """Remove ``peft`` and ``save_frozen`` from the encoders and the fusion of
    a model config; returns the keys removed."""
    removed = []
    parts = [(f'model.encoders.{n}', c) for n, c in (model_cfg.get('encoders') or {}).items()]
    parts.append(('model.fusion', model_cfg.get('fusion')))
    for path, part in parts:
        if isinstance(part, dict):
            for key in ADAPTER_KEYS:
                if key in part:
                    part.pop(key)
                    removed.append(f'{path}.{key}')
    return removed


def main(argv: Optional[List[str]] = None) -> None:
    import torch
    from mmengine.runner.checkpoint import weights_to_cpu

    from mmfusion.apis import resolve_vocabularies
    from mmfusion.engine import atomic_write, load_checkpoint_strict
    from mmfusion.models.adapters import merge_adapters
    from mmfusion.registry import MODELS

    args = parse_args(argv)
    register_all_modules()
    cfg = read_tool_config(args.config, args.cfg_options, args.data_root)
    resolve_vocabularies(cfg, args.checkpoint)
    model = MODELS.build(cfg.model)
    load_checkpoint_strict(model, args.checkpoint, args.config)
    merged = merge_adapters(model)
    if not merged:
        raise ConfigError(f'{args.config}: the model has no peft adapters (no peft key in '
                          'model.encoders.<name> or model.fusion), so there is nothing to merge')
    out_config = args.out_config or osp.splitext(args.out)[0] + '.py'
    for path in (args.out, out_config):
        os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    removed = strip_adapter_keys(cfg.model)
    cfg.dump(out_config)
    checkpoint = dict(meta=dict(config_file=out_config, merged_from=args.checkpoint),
                      state_dict=weights_to_cpu(model.state_dict()))
    buffer = io.BytesIO()
    torch.save(checkpoint, buffer)
    atomic_write(args.out, buffer.getvalue())
    print(f'merged {merged} adapted layers of {args.checkpoint} into {args.out} '
          f'({osp.getsize(args.out) / 2**20:.1f} MiB); its config: {out_config} '
          f'(without {", ".join(removed)})')


if __name__ == '__main__':
    run_main(main)
