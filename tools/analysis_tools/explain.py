"""Explain a trained model's predictions on its test split, batch-wise.

    python tools/analysis_tools/explain.py CONFIG CKPT --work-dir DIR \\
        [--methods cam attention ig contributions pointing] [--num-samples N] \\
        [--show 8] [--cam-methods gradcam gradcam++] [--target-layer NAME] \\
        [--modality image] [--ig-steps 32]
    python tools/analysis_tools/explain.py CONFIG CKPT --work-dir DIR \
        --input image=scene.png --input "text=what color is the circle?" \
        [--methods cam attention ig]

* ``cam``: Grad-CAM and Grad-CAM++ of the predicted class / answer on each
  image-like encoder (default layer: the encoder's last 4-D feature map),
  overlaid on the input: ``DIR/cam/<i>_<modality>.png`` for the first
  ``--show`` samples.
* ``attention``: the attention weights of every attention-based fusion module
  (``mmfusion.analysis.record_attention``), averaged over heads and queries,
  drawn over the image grid when the keys are its cells, else per key
  token: ``DIR/attention/<i>_<module>.png``.
* ``ig``: integrated gradients (captum) of the predicted class on every
  modality; images and spectrograms drawn (``DIR/ig/<i>.png``), the
  question's per-token attributions printed and saved in ``DIR/ig.json``.
* ``contributions``: per-modality leave-one-out and Shapley values (exact up
  to 6 modalities, sampled beyond) of the per-sample score (classification
  and VQA) and of the split metric, per sample and averaged, with the
  efficiency check (sum = full - none): ``DIR/contributions.{json,png}``.
* ``pointing``: the pointing game on MMShapes VQA questions that name one
  object ("what color is the triangle?"): is the maximum of the CAM inside
  that object's instance mask? Next to a random-point and a centre-point
  baseline: ``DIR/pointing.json``.

``--input MODALITY=VALUE`` (repeatable: a file path, or the text) explains
one input of your own instead of the split, preprocessed as
``tools/infer.py`` does (the test pipeline without annotation loading);
``contributions`` and ``pointing`` score against ground truth, so they need
the split.

Prints the wall time of each part.
"""
import argparse
import json
import logging
import os
import os.path as osp
import re
import time
from typing import Dict, List, Optional

import numpy as np
import torch
from mmengine.config import DictAction
from mmengine.logging import MMLogger

import mmfusion  # noqa: F401  (config and checkpoint compatibility)
from mmfusion.analysis import (
    CAM_METHODS,
    MISSING_MODES,
    argmax_point,
    build_evaluator,
    build_loader,
    class_activation_map,
    data_kind,
    dense_score_fn,
    drop_modalities,
    find_target_layer,
    integrated_gradients,
    leave_one_out,
    per_sample_scores,
    pointing_hits,
    record_attention,
    shapley_values,
    supports_modality_mask,
    upsample,
)
from mmfusion.apis import init_model
from mmfusion.errors import ConfigError, DataError
from mmfusion.utils import add_data_root_argument, load_tool_config, register_all_modules, run_main
from mmfusion.utils.analysis import import_pyplot, save_figure

METHODS = ('cam', 'attention', 'ig', 'contributions', 'pointing')
ONE_OBJECT = re.compile(r'^what (?:color|colour) is the (\w+)\?$')


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description='Explain an mmfusion model')
    p.add_argument('config')
    p.add_argument('checkpoint')
    p.add_argument('--work-dir', required=True)
    p.add_argument('--methods', nargs='+', default=['cam', 'attention', 'ig', 'contributions'],
                   choices=METHODS)
    p.add_argument('--num-samples', type=int, help='only the first N test samples')
    p.add_argument('--batch-size', type=int)
    p.add_argument('--show', type=int, default=6, help='samples drawn per method')
    p.add_argument('--cam-methods', nargs='+', default=['gradcam', 'gradcam++'],
                   choices=CAM_METHODS)
    p.add_argument('--modality', help='image-like modality for CAMs (default: every one)')
    p.add_argument('--cam-class', type=int,
                   help='explain this class / answer index instead of the predicted one')
    p.add_argument('--cam-box', type=float, nargs=4, metavar=('X1', 'Y1', 'X2', 'Y2'),
                   help='detection: the strongest candidate inside this box; segmentation: '
                   'the mean logit over this box (network-input pixels)')
    p.add_argument('--target-layer', help='module name for CAMs, e.g. '
                   'encoders.image.model.layer3 (default: the last 4-D feature map)')
    p.add_argument('--ig-steps', type=int, default=32)
    p.add_argument('--exact-max', type=int, default=6,
                   help='exact Shapley values up to this many modalities, sampled beyond')
    p.add_argument('--permutations', type=int, default=64)
    p.add_argument('--split', default='test', choices=['test', 'val'])
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--missing-mode', choices=MISSING_MODES, default=None,
                   help="how contributions remove a modality: 'mask' (the model's "
                   "missing-modality path; default where the model has it) or 'zero'")
    p.add_argument('--input', action='append', default=[], metavar='MODALITY=VALUE',
                   help='explain this input instead of the split: a file path, or the text '
                   '(repeat per modality)')
    p.add_argument('--cfg-options', nargs='+', action=DictAction)
    add_data_root_argument(p)
    args = p.parse_args(argv)
    needs_truth = [m for m in args.methods if m in ('contributions', 'pointing')]
    if args.input and needs_truth:
        p.error(f'--input: {", ".join(needs_truth)} score predictions against the ground truth '
                'of a split; drop --input, or leave those out of --methods')
    for spec in args.input:
        if '=' not in spec or not spec.split('=', 1)[0]:
            p.error(f'--input {spec!r}: expected MODALITY=VALUE, e.g. image=scene.png')
    return args


def image_of(raw, model, modality: str) -> np.ndarray:
    """(H, W, 3) float in [0, 1] for drawing a raw image-like input."""
    x = torch.as_tensor(raw).float()
    if x.ndim == 2:
        x = x[None]
    cfg = getattr(model.data_preprocessor, 'image_cfgs', {}).get(modality, {})
    if cfg.get('bgr_to_rgb') and x.shape[0] == 3:
        x = x.flip(0)
    x = x - x.min()
    x = x / x.max().clamp_min(1e-12)
    x = x.permute(1, 2, 0).numpy()
    return np.repeat(x, 3, axis=2) if x.shape[2] == 1 else x


def one_input(cfg, checkpoint: str, specs: List[str]):
    """(model, [one raw batch]) for ``--input MODALITY=VALUE`` options,
    preprocessed by :class:`MultiModalInferencer` (paths for files, the
    value itself for text)."""
    from mmengine.dataset import pseudo_collate

    from mmfusion.apis import MultiModalInferencer
    item = dict(spec.split('=', 1) for spec in specs)
    inferencer = MultiModalInferencer(cfg, checkpoint, device='cpu')
    for modality, value in item.items():
        kind = inferencer._input_kind(modality) if modality in inferencer.input_keys else None
        if kind in ('image', 'map', 'audio') and not osp.isfile(value):
            raise DataError(f'--input {modality}={value}: no such file')
    return inferencer.model, [pseudo_collate([inferencer.preprocess(item)])]


def describe_prediction(sample) -> str:
    """A short caption of one predicted data sample, any task."""
    if 'pred_answer' in sample:
        return str(sample.pred_answer)
    if 'pred_instances' in sample:
        inst = sample.pred_instances
        if len(inst.scores) == 0:
            return 'no boxes'
        top = int(inst.scores.argmax())
        return (f'{len(inst.scores)} boxes, top class {int(inst.labels[top])} '
                f'({float(inst.scores[top]):.2f})')
    if 'pred_sem_seg' in sample:
        return 'classes ' + ','.join(map(str, sample.pred_sem_seg.data.unique().tolist()))
    return str(int(sample.pred_label[0]))


class Explainer:

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        cfg = load_tool_config(args.config, args.work_dir, args.cfg_options,
                               data_root=args.data_root)
        if args.input:
            self.loader = None
            self.model, self.batches = one_input(cfg, args.checkpoint, args.input)
        else:
            self.model = init_model(cfg, args.checkpoint)
            self.loader = build_loader(self.model.cfg, args.split, args.batch_size,
                                       args.num_samples)
            self.batches = list(self.loader)
        self.plt = import_pyplot()
        self.image_mods = [m for m in self.model.encoders
                           if data_kind(m) == 'image' and not isinstance(
                               self.batches[0]['inputs'][m][0], str)]
        if args.modality:
            if args.modality not in self.image_mods:
                raise ConfigError(f'--modality {args.modality!r}: the image-like modalities '
                                  f'are {self.image_mods}')
            self.image_mods = [args.modality]
        self.tokenized = set(getattr(self.model.data_preprocessor, 'tokenizers', {}))
        head = type(getattr(self.model, 'head', None)).__name__
        self.task = ('detection' if hasattr(self.model.head, 'predict_by_feat') else
                     'segmentation' if 'Seg' in head else 'classification') \
            if hasattr(self.model, 'spatial_modalities') else 'classification'
        dense_only = [m for m in args.methods if m in ('ig', 'contributions', 'pointing')]
        if self.task != 'classification' and dense_only:
            raise ConfigError(f'--methods {" ".join(dense_only)}: explained for classification '
                              f'and VQA models; for this {self.task} model use cam (of the '
                              'predicted class, --cam-class, --cam-box) and attention')
        masks = supports_modality_mask(self.model)
        self.missing_mode = args.missing_mode or ('mask' if masks else 'zero')
        if self.missing_mode == 'mask' and not masks:
            raise ConfigError(f'--missing-mode mask: {type(self.model).__name__} does not take '
                              'modality masks; use --missing-mode zero')
        os.makedirs(args.work_dir, exist_ok=True)

    def processed(self, data: dict) -> dict:
        with torch.no_grad():
            return self.model.data_preprocessor(data, False)

    # ------------------------------------------------------------------ CAM
    def target_layers(self) -> Dict[str, str]:
        if self.args.target_layer:
            return {self.image_mods[0]: self.args.target_layer}
        p = self.processed(self.batches[0])
        return {m: find_target_layer(self.model, p, m) for m in self.image_mods}

    def cam(self) -> dict:
        layers = self.target_layers()
        out_dir = osp.join(self.args.work_dir, 'cam')
        data = self.batches[0]
        p = self.processed(data)
        n = min(self.args.show, len(data['data_samples']))
        dense = self.task in ('detection', 'segmentation')
        if self.args.cam_box is not None and not dense:
            raise ConfigError('--cam-box: boxes and masks are explained for detection and '
                              f'segmentation models; this is a {self.task} model')
        score_fn = dense_score_fn(self.model, self.args.cam_box) if dense else None
        targets = None
        if self.args.cam_class is not None:
            targets = torch.full((len(data['data_samples']), ), self.args.cam_class)
        for m, layer in layers.items():
            maps = {}
            for method in self.args.cam_methods:
                cams, explained = class_activation_map(self.model, p, layer, targets=targets,
                                                       method=method, score_fn=score_fn)
                size = tuple(p['inputs'][m].shape[-2:])
                maps[method] = upsample(cams, size)
            for i in range(n):
                img = image_of(data['inputs'][m][i], self.model, m)
                fig, axes = self.plt.subplots(1, 1 + len(maps), figsize=(3 * (1 + len(maps)), 3.2))
                axes[0].imshow(img)
                axes[0].set_title(self.caption(data, i), fontsize=7)
                for ax, (method, cam) in zip(axes[1:], maps.items()):
                    ax.imshow(img)
                    ax.imshow(cam[i].numpy(), cmap='jet', alpha=0.5, vmin=0, vmax=1)
                    ax.set_title(f'{method} ({layer.split(".")[-1]}) class '
                                 f'{int(explained[i])}', fontsize=8)
                    if self.args.cam_box is not None:
                        x1, y1, x2, y2 = self.args.cam_box
                        ax.add_patch(self.plt.Rectangle((x1, y1), x2 - x1, y2 - y1,
                                                        fill=False, color='w', lw=1.5))
                for ax in axes:
                    ax.axis('off')
                fig.tight_layout()
                save_figure(fig, osp.join(out_dir, f'{i}_{m}.png'))
        print(f'CAMs of {n} samples in {out_dir} (layers {layers})')
        return dict(layers=layers, explained=explained.tolist())

    def caption(self, data: dict, i: int) -> str:
        sample = data['data_samples'][i]
        texts = [data['inputs'][t][i] for t in self.tokenized if t in data['inputs']]
        pred = self.predictions(data)[i]
        truth = sample.get('gt_label', None)
        truth = '' if truth is None else f' gt {int(truth[0])}'
        return ' '.join(texts) + f'\npred {pred}{truth}'

    def predictions(self, data: dict) -> List[str]:
        key = id(data)
        if getattr(self, '_pred_key', None) != key:
            with torch.no_grad():
                outs = self.model(**self.processed(data), mode='predict')
            self._pred = [describe_prediction(o) for o in outs]
            self._pred_key = key
        return self._pred

    # ------------------------------------------------------------ attention
    def attention(self) -> dict:
        data = self.batches[0]
        p = self.processed(data)
        with torch.no_grad(), record_attention(self.model) as maps:
            self.model(**p, mode='tensor')
        if not maps:
            print(f'attention: the fusion ({type(self.model.fusion).__name__}) has no attention '
                  'weights to show')
            return {}
        grids = {}
        with torch.no_grad():
            for m in self.image_mods:
                tokens = self.model.encoders[m](p['inputs'][m]).tokens
                if tokens is not None:
                    grids[m] = tokens.shape[1]
        out_dir = osp.join(self.args.work_dir, 'attention')
        n = min(self.args.show, len(data['data_samples']))
        for name, w in maps.items():
            keys = w.mean(dim=(1, 2))  # (B, L_key): averaged over heads and queries
            grid_mod = next((m for m, g in grids.items() if g == keys.shape[1]), None)
            for i in range(n):
                fig, ax = self.plt.subplots(figsize=(3.4, 3.4))
                if grid_mod is not None:
                    side = int(round(keys.shape[1] ** 0.5))
                    img = image_of(data['inputs'][grid_mod][i], self.model, grid_mod)
                    heat = upsample(keys[i].view(1, side, -1), img.shape[:2])[0]
                    ax.imshow(img)
                    ax.imshow(heat.numpy(), cmap='jet', alpha=0.5)
                    ax.axis('off')
                else:
                    ax.bar(range(keys.shape[1]), keys[i].numpy())
                    ax.set_xlabel('key token')
                ax.set_title(f'{name}\n{self.caption(data, i)}', fontsize=7)
                fig.tight_layout()
                save_figure(fig, osp.join(out_dir, f'{i}_{name.replace(".", "_")}.png'))
        print(f'attention maps of {len(maps)} modules in {out_dir}: '
              + ', '.join(f'{k} {tuple(v.shape)}' for k, v in maps.items()))
        return {k: list(v.shape) for k, v in maps.items()}

    # -------------------------------------------------------------------- IG
    def ig(self) -> dict:
        data = self.batches[0]
        n = min(self.args.show, len(data['data_samples']))
        sub = dict(inputs={k: v[:n] for k, v in data['inputs'].items()},
                   data_samples=data['data_samples'][:n])
        p = self.processed(sub)
        with torch.no_grad():
            targets = self.model(**p, mode='tensor').argmax(dim=1)
        attrs, delta = integrated_gradients(self.model, p, targets, n_steps=self.args.ig_steps,
                                            internal_batch_size=max(n * 8, 1))
        out_dir = osp.join(self.args.work_dir, 'ig')
        report = []
        for i in range(n):
            entry = dict(sample=i, pred=self.predictions(sub)[i],
                         total={m: float(a[i].sum()) for m, a in attrs.items()},
                         convergence_delta=float(delta[i]))
            dense = [m for m in attrs if m not in self.tokenized]
            if dense:
                fig, axes = self.plt.subplots(1, len(dense), figsize=(3.4 * len(dense), 3.2),
                                              squeeze=False)
                for ax, m in zip(axes[0], dense):
                    a = attrs[m][i]
                    if data_kind(m) == 'image':
                        img = image_of(sub['inputs'][m][i], self.model, m)
                        ax.imshow(img)
                        ax.imshow(a.abs().sum(0).numpy(), cmap='hot', alpha=0.6)
                    else:
                        lim = float(a.abs().max()) or 1.0  # white = no attribution
                        ax.imshow(a.reshape(a.shape[-2], -1).numpy(), cmap='bwr', aspect='auto',
                                  origin='lower', vmin=-lim, vmax=lim)
                    ax.set_title(f'IG {m} (sum {entry["total"][m]:+.2f})', fontsize=8)
                    ax.axis('off')
                fig.suptitle(self.caption(sub, i), fontsize=7)
                fig.tight_layout()
                save_figure(fig, osp.join(out_dir, f'{i}.png'))
            for m in self.tokenized:
                if m not in attrs:
                    continue
                tok = self.model.data_preprocessor.tokenizers[m]
                ids = p['inputs'][m]['input_ids'][i]
                mask = p['inputs'][m]['attention_mask'][i].bool()
                words = tok.convert_ids_to_tokens(ids[mask].tolist())
                scores = attrs[m][i][mask].tolist()
                entry[f'{m}_tokens'] = list(zip(words, scores))
                print(f'[{i}] pred {entry["pred"]!r}: ' + ' '.join(
                    f'{w}({s:+.2f})' for w, s in zip(words, scores)))
            report.append(entry)
        with open(osp.join(self.args.work_dir, 'ig.json'), 'w', encoding='utf-8') as f:
            json.dump(report, f, indent=2)
        print('IG totals per modality (sample 0): ' + ', '.join(
            f'{m} {v:+.3f}' for m, v in report[0]['total'].items()))
        return dict(samples=n)

    # -------------------------------------------------------- contributions
    def contributions(self) -> dict:
        model = self.model
        players = list(model.encoders)
        evaluator = build_evaluator(model.cfg, self.loader.dataset, self.args.split)
        per_sample_ok = True

        def value(coalition) -> dict:
            nonlocal per_sample_ok
            dropped = [m for m in players if m not in coalition]
            scores = []
            for data in self.batches:
                with torch.no_grad():
                    p = drop_modalities(model.data_preprocessor(data, False), dropped,
                                        self.missing_mode)
                    outs = model(**p, mode='predict')
                evaluator.process(data_samples=outs, data_batch=data)
                if per_sample_ok:
                    try:
                        scores.append(per_sample_scores(outs))
                    except ConfigError:
                        per_sample_ok = False
            metrics = evaluator.evaluate(sum(len(d['data_samples']) for d in self.batches))
            metric = next(iter(metrics))
            return dict(metric=float(metrics[metric]), name=metric,
                        scores=torch.cat(scores) if per_sample_ok and scores else None)

        cache = {}

        def v_all(coalition):
            key = frozenset(coalition)
            if key not in cache:
                cache[key] = value(key)
            return cache[key]

        split_phi = shapley_values(lambda s: v_all(s)['metric'], players, self.args.exact_max,
                                   self.args.permutations, self.args.seed)
        split_loo = leave_one_out(lambda s: v_all(s)['metric'], players)
        full, none = v_all(players), v_all([])
        result = dict(metric=full['name'], missing_mode=self.missing_mode,
                      full=full['metric'], none=none['metric'],
                      shapley_split={k: float(v) for k, v in split_phi.items()},
                      leave_one_out_split={k: float(v) for k, v in split_loo.items()},
                      efficiency_gap=float(sum(split_phi.values())
                                           - (full['metric'] - none['metric'])),
                      exact=len(players) <= self.args.exact_max,
                      coalitions={'+'.join(sorted(k)) or '(none)': v['metric']
                                  for k, v in cache.items()})
        if per_sample_ok and full['scores'] is not None:
            phi = shapley_values(lambda s: v_all(s)['scores'], players, self.args.exact_max,
                                 self.args.permutations, self.args.seed)
            loo = leave_one_out(lambda s: v_all(s)['scores'], players)
            result['shapley_per_sample_mean'] = {k: float(v.mean()) for k, v in phi.items()}
            result['leave_one_out_per_sample_mean'] = {k: float(v.mean()) for k, v in loo.items()}
            result['shapley_per_sample'] = {k: v.tolist() for k, v in phi.items()}
            gaps = sum(phi.values()) - (full['scores'] - none['scores'])
            result['per_sample_efficiency_max_gap'] = float(gaps.abs().max())
        with open(osp.join(self.args.work_dir, 'contributions.json'), 'w',
                  encoding='utf-8') as f:
            json.dump(result, f, indent=2)
        self.plot_contributions(result)
        print(f'{result["metric"]}: all modalities {result["full"]:.2f}, none '
              f'{result["none"]:.2f}; Shapley ' + ', '.join(
                  f'{k} {v:+.2f}' for k, v in result['shapley_split'].items())
              + f' (sum {sum(result["shapley_split"].values()):+.2f} = full - none '
              f'{result["full"] - result["none"]:+.2f}); leave-one-out ' + ', '.join(
                  f'{k} {v:+.2f}' for k, v in result['leave_one_out_split'].items()))
        return {k: v for k, v in result.items() if k != 'shapley_per_sample'}

    def plot_contributions(self, result: dict) -> None:
        mods = list(result['shapley_split'])
        x = np.arange(len(mods))
        fig, ax = self.plt.subplots(figsize=(1.8 + 1.6 * len(mods), 3.6))
        ax.bar(x - 0.2, [result['shapley_split'][m] for m in mods], 0.4, label='Shapley')
        ax.bar(x + 0.2, [result['leave_one_out_split'][m] for m in mods], 0.4,
               label='leave-one-out')
        ax.set_xticks(x, mods)
        ax.set_ylabel(f'contribution to {result["metric"]}')
        ax.axhline(0, color='k', lw=0.8)
        ax.set_title(f'{osp.splitext(osp.basename(self.args.config))[0]}: all '
                     f'{result["full"]:.1f}, none {result["none"]:.1f}', fontsize=9)
        ax.legend(fontsize=8)
        fig.tight_layout()
        save_figure(fig, osp.join(self.args.work_dir, 'contributions.png'))

    # -------------------------------------------------------- pointing game
    def pointing(self) -> dict:
        """The pointing game on MMShapes VQA questions that name one object."""
        from PIL import Image

        data_root = getattr(self.loader.dataset, 'data_root', None) or ''
        coco_of: Dict[str, tuple] = {}

        def instances(split: str) -> tuple:
            """category names, annotations per image and mask files of a split."""
            if split not in coco_of:
                ann_file = osp.join(data_root, 'annotations', f'instances_{split}.json')
                if not osp.isfile(ann_file):
                    raise DataError('the pointing game needs MMShapes instance masks: '
                                    f'{ann_file} not found')
                with open(ann_file, encoding='utf-8') as f:
                    coco = json.load(f)
                anns: Dict[int, list] = {}
                for a in coco['annotations']:
                    anns.setdefault(a['image_id'], []).append(a)
                coco_of[split] = ({c['id']: c['name'] for c in coco['categories']}, anns,
                                  {im['id']: im['inst_mask_file'] for im in coco['images']})
            return coco_of[split]

        text_mod = next(iter(self.tokenized), None)
        if text_mod is None or not self.image_mods:
            raise ConfigError('the pointing game needs a question (text) and an image modality')
        m = self.image_mods[0]
        layer = self.args.target_layer or find_target_layer(
            self.model, self.processed(self.batches[0]), m)
        rng = np.random.default_rng(self.args.seed)
        hits = {meth: [] for meth in self.args.cam_methods}
        hits['random'], hits['centre'], area = [], [], []
        grid = None
        for data in self.batches:
            keep, masks = [], []
            for i, (q, s) in enumerate(zip(data['inputs'][text_mod], data['data_samples'])):
                match = ONE_OBJECT.match(q.strip().lower())
                if not match:
                    continue
                image_id = int(osp.splitext(osp.basename(s.img_path))[0])
                cats, anns, files = instances(osp.basename(osp.dirname(s.img_path)))
                named = [k for k, a in enumerate(anns.get(image_id, []), 1)
                         if cats[a['category_id']] == match.group(1)]
                if len(named) != 1:
                    continue
                inst = np.array(Image.open(osp.join(data_root, files[image_id])))
                keep.append(i)
                masks.append(torch.from_numpy(inst == named[0]))
            if not keep:
                continue
            sub = dict(inputs={k: [v[i] for i in keep] for k, v in data['inputs'].items()},
                       data_samples=[data['data_samples'][i] for i in keep])
            p = self.processed(sub)
            size = tuple(p['inputs'][m].shape[-2:])
            for meth in self.args.cam_methods:
                cams, _ = class_activation_map(self.model, p, layer, method=meth)
                grid = tuple(cams.shape[-2:])
                hits[meth] += pointing_hits(argmax_point(upsample(cams, size)), masks).tolist()
            pts = torch.stack([torch.from_numpy(rng.integers(0, size[0], len(keep))),
                               torch.from_numpy(rng.integers(0, size[1], len(keep)))], 1)
            hits['random'] += pointing_hits(pts, masks).tolist()
            centre = torch.tensor([[size[0] // 2, size[1] // 2]] * len(keep))
            hits['centre'] += pointing_hits(centre, masks).tolist()
            area += [float(mk.float().mean()) for mk in masks]
        if not area:
            raise DataError('no "what color is the <shape>?" question with exactly one such '
                            'object among the samples')
        result = dict(layer=layer, grid=grid, questions=len(area),
                      hit_rate={k: 100.0 * float(np.mean(v)) for k, v in hits.items()},
                      random_expected=100.0 * float(np.mean(area)))
        with open(osp.join(self.args.work_dir, 'pointing.json'), 'w', encoding='utf-8') as f:
            json.dump(result, f, indent=2)
        print(f'pointing game on {len(area)} one-object questions ({layer}, grid {grid}): '
              + ', '.join(f'{k} {v:.1f}%' for k, v in result['hit_rate'].items())
              + f' (random expected {result["random_expected"]:.1f}%)')
        return result


def main(argv: Optional[List[str]] = None) -> dict:
    args = parse_args(argv)
    register_all_modules()
    if not osp.isfile(args.checkpoint):
        raise DataError(f'checkpoint not found: {args.checkpoint}')
    MMLogger.get_current_instance().setLevel(logging.WARNING)
    torch.manual_seed(args.seed)
    t0 = time.perf_counter()
    ex = Explainer(args)
    timing = dict(load=time.perf_counter() - t0)
    results = {}
    for method in args.methods:
        t = time.perf_counter()
        results[method] = getattr(ex, method)()
        timing[method] = time.perf_counter() - t
    results['wall_time_s'] = timing
    results['num_samples'] = len(ex.loader.dataset) if ex.loader is not None else 1
    with open(osp.join(args.work_dir, 'explain.json'), 'w', encoding='utf-8') as f:
        json.dump(results, f, indent=2, default=str)
    print('wall time (s): ' + ', '.join(f'{k} {v:.1f}' for k, v in timing.items()))
    return results


if __name__ == '__main__':
    run_main(main)
