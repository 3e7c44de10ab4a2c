"""Zero-shot classification with a contrastively trained checkpoint.

    python tools/analysis_tools/zero_shot.py CONFIG CHECKPOINT [--work-dir DIR]

CONFIG is a ``ZeroShotClassifier`` config (e.g.
``configs/retrieval/mmshapes_clip_zeroshot_colors.py``): the dual encoder of
the checkpoint, the class names and prompt templates, and a classification
``test_dataloader`` / ``test_evaluator`` (any classification dataset and the
classification metrics). No label is trained on: the text tower writes the
classifier from the prompts. Unlike ``tools/test.py``, the test data need not
carry the text modality (the prompts are the text). Prints the metrics and
writes them to ``<work_dir>/zero_shot_metrics.json``.

``--linear-probe`` also scores, side by side and with the same evaluator, the
supervised reference of CLIP's paper: a logistic regression (scikit-learn)
fitted with the labels of ``probe_dataloader`` on the same frozen image
embeddings.
"""
import argparse
import json
import os
import os.path as osp

import torch
from mmengine.config import DictAction
from mmengine.runner import Runner

import mmfusion  # noqa: F401
from mmfusion.apis.model import resolve_vocabularies_for_checkpoint
from mmfusion.engine.checkpoint_fit import checkpoint_fit_hook
from mmfusion.errors import CheckpointError, ConfigError
from mmfusion.utils import explain_config_errors, load_tool_config, register_all_modules, run_main


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Zero-shot classification from a '
                                     'contrastive checkpoint')
    parser.add_argument('config', help='a ZeroShotClassifier config')
    parser.add_argument('checkpoint', help='a checkpoint of the dual encoder')
    parser.add_argument('--work-dir', help='where the metrics go')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config entries')
    parser.add_argument('--linear-probe', action='store_true',
                        help='also fit a supervised linear probe on the frozen image embeddings '
                        'of probe_dataloader and score it with the test evaluator')
    return parser.parse_args()


@torch.no_grad()
def embed(model, loader, num_classes: int):
    """(N, D) item embeddings, (N, C) 0/1 targets and the data samples of a loader."""
    feats, targets, samples = [], [], []
    for batch in loader:
        data = model.data_preprocessor(batch, False)
        feats.append(model.encode(model.item_modality, data['inputs'][model.item_modality]))
        for sample in data['data_samples']:
            target = torch.zeros(num_classes)
            target[sample.gt_label] = 1
            targets.append(target)
            samples.append(sample)
    return torch.cat(feats).cpu().numpy(), torch.stack(targets).numpy(), samples


def linear_probe(runner, cfg) -> dict:
    """Fit logistic regression on ``probe_dataloader``'s embeddings, score the test set."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.multiclass import OneVsRestClassifier

    if 'probe_dataloader' not in cfg:
        raise ConfigError('--linear-probe needs probe_dataloader in the config: labelled '
                          'training data of the test task')
    model = runner.model
    model.eval()
    num_classes = len(model.class_names)
    x_train, y_train, _ = embed(model, runner.build_dataloader(cfg.probe_dataloader),
                                num_classes)
    x_test, _, samples = embed(model, runner.test_dataloader, num_classes)
    if model.multi_label:
        clf = OneVsRestClassifier(LogisticRegression(max_iter=2000)).fit(x_train, y_train)
        scores = clf.predict_proba(x_test)
    else:
        clf = LogisticRegression(max_iter=2000).fit(x_train, y_train.argmax(1))
        scores = clf.predict_proba(x_test)
    for sample, score in zip(samples, scores):
        sample.set_field(torch.as_tensor(score, dtype=torch.float32), 'pred_score')
        if not model.multi_label:
            sample.set_field(torch.as_tensor([int(score.argmax())]), 'pred_label')
    evaluator = runner.test_evaluator
    evaluator.process(data_samples=samples, data_batch=None)
    return evaluator.evaluate(len(samples))


def main() -> None:
    args = parse_args()
    register_all_modules()
    if not osp.isfile(args.checkpoint):
        raise CheckpointError(f'checkpoint not found: {args.checkpoint}')
    cfg = load_tool_config(args.config, args.work_dir, args.cfg_options, 'none')
    if cfg.model.get('type') != 'ZeroShotClassifier':
        raise ConfigError(f'{args.config}: model.type must be "ZeroShotClassifier", got '
                          f'{cfg.model.get("type")!r}')
    cfg.load_from = args.checkpoint
    cfg.resume = False
    with explain_config_errors(cfg):
        resolve_vocabularies_for_checkpoint(cfg, args.checkpoint, args.config)
        checkpoint_fit_hook(cfg, strict=True)
        runner = Runner.from_cfg(cfg)
        metrics = runner.test()
        if args.linear_probe:
            probe = linear_probe(runner, cfg)
            metrics.update({f'linear_probe/{k}': v for k, v in probe.items()})
    flat = {k: float(v) for k, v in metrics.items()}
    for key, value in flat.items():
        print(f'{key}: {value:.2f}')
    os.makedirs(cfg.work_dir, exist_ok=True)
    out = osp.join(cfg.work_dir, 'zero_shot_metrics.json')
    with open(out, 'w', encoding='utf-8') as f:
        json.dump(flat, f, indent=2)
    print(f'metrics written to {out}')


if __name__ == '__main__':
    run_main(main)
