"""Print a config with its ``_base_`` files merged and overrides applied.

    python tools/misc/print_config.py CONFIG [--cfg-options key=value ...] [--json]

What the Runner gets: every inherited value in place, ``{{_base_.x}}``
references and ``--cfg-options`` resolved, printed as Python (MMEngine's
``Config.pretty_text``) or, with ``--json``, as JSON. Vocabularies that a
config leaves to the training set stay open here (they are data, filled in
when a tool builds the model).
"""
import argparse
import json

from mmengine.config import DictAction

import mmfusion  # noqa: F401  (config compatibility, before any config is read)
from mmfusion.utils import read_tool_config, run_main


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Print the fully resolved config')
    parser.add_argument('config', help='config file path')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config entries, e.g. model.fusion.out_dim=256')
    parser.add_argument('--json', action='store_true', help='print JSON instead of Python')
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    cfg = read_tool_config(args.config, args.cfg_options)
    if args.json:
        print(json.dumps(cfg.to_dict(), indent=2, default=repr))
    else:
        print(f'Config:\n{cfg.pretty_text}')


if __name__ == '__main__':
    run_main(main)
