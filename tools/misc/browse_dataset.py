"""Look at a dataset as the model gets it: ``python tools/misc/browse_dataset.py CONFIG``.

Builds a data loader's dataset with its pipeline, so random transforms (flips,
crops) show, and draws each sample's ground truth (boxes, masks, label maps,
the text prompt as a caption, the depth map as a panel beside the image)
into a window and/or ``<output-dir>/<index>_<image stem>.png``. ``--data-root
DIR`` browses a copy of the dataset elsewhere.
"""
import argparse
import os.path as osp

from mmengine.config import DictAction

import mmfusion  # noqa: F401  (config compatibility, before any config is read)
from mmfusion.errors import ConfigError
from mmfusion.registry import DATASETS
from mmfusion.utils import (
    add_data_root_argument,
    explain_config_errors,
    read_tool_config,
    register_all_modules,
    run_main,
)
from mmfusion.visualization import MultiModalVisualizer


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Draw the samples of a dataset after its '
                                     'pipeline')
    parser.add_argument('config', help='config file path')
    parser.add_argument('--output-dir', help='write one PNG per sample into this folder')
    parser.add_argument('--not-show', action='store_true', help='do not open a window')
    parser.add_argument('--show-interval', type=float, default=2,
                        help='seconds each sample stays in the window')
    parser.add_argument('--max-samples', type=int, default=None,
                        help='draw at most this many samples (default: all)')
    parser.add_argument('--phase', choices=['train', 'val', 'test'], default='train',
                        help='whose data loader: <phase>_dataloader')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config entries, e.g. train_dataloader.dataset.split=val')
    add_data_root_argument(parser)
    args = parser.parse_args()
    if args.not_show and args.output_dir is None:
        parser.error('--not-show without --output-dir draws nothing; give --output-dir DIR')
    if args.max_samples is not None and args.max_samples < 1:
        parser.error(f'--max-samples must be at least 1, got {args.max_samples}')
    return args


def main() -> None:
    args = parse_args()
    register_all_modules()
    cfg = read_tool_config(args.config, args.cfg_options, args.data_root)
    loader_key = f'{args.phase}_dataloader'
    if not isinstance(cfg.get(loader_key), dict) or 'dataset' not in cfg[loader_key]:
        raise ConfigError(f'{args.config} has no {loader_key}.dataset; choose another --phase')

    with explain_config_errors(cfg):
        dataset = DATASETS.build(cfg[loader_key].dataset)
    visualizer = MultiModalVisualizer(name='browse_dataset')
    visualizer.dataset_meta = dataset.metainfo

    total = len(dataset) if args.max_samples is None else min(args.max_samples, len(dataset))
    for index in range(total):
        item = dataset[index]
        inputs, sample = item['inputs'], item['data_samples']
        if 'image' not in inputs:
            raise ConfigError(f'{loader_key}.dataset.pipeline packs no image (inputs: '
                              f'{sorted(inputs)}); browse_dataset draws image datasets')
        image = inputs['image'].permute(1, 2, 0).numpy()[..., ::-1]  # loaded as BGR
        name = osp.splitext(osp.basename(sample.metainfo.get('img_path', str(index))))[0]
        out_file = (osp.join(args.output_dir, f'{index:05d}_{name}.png')
                    if args.output_dir else None)
        visualizer.add_datasample(name, image, sample, draw_pred=False, show=not args.not_show,
                                  wait_time=args.show_interval, out_file=out_file,
                                  depth=inputs.get('depth'))
        print(f'[{index + 1}/{total}] {out_file or name}', flush=True)


if __name__ == '__main__':
    run_main(main)
