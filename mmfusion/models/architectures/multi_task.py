"""Shared encoders, one head per task: multi-task learning on a mixture of datasets."""
from typing import Dict, List, Optional, Sequence, Union

import torch
import torch.nn as nn

from mmfusion.errors import ConfigError
from mmfusion.registry import MODELS
from mmfusion.structures import MultiModalDataSample

from .base import BaseMultiModalModel

SHARED = 'shared'


@MODELS.register_module()
class MultiTaskModel(BaseMultiModalModel):
    """Encoders shared by several tasks, each with its own head (hard
    parameter sharing, Caruana 1997), trained on a mixture of datasets.

    Args:
        encoders: modality name -> encoder config, shared by every task that
            uses the modality. Two text inputs that need different
            vocabularies are two modalities (``question``, ``caption``).
        tasks: task name -> ``dict(head=..., modalities=[...], fusion=...)``:

            * ``head``: the task's head config (``ClsHead``, ``VQAHead``,
              ``MultiLabelClsHead`` ...); ``in_dim`` is filled in;
            * ``modalities``: the encoders the task uses (default: all); its
              batches must carry exactly these;
            * ``fusion``: the task's own fusion config, ``'shared'`` for the
              model's ``fusion``, or ``None`` for a one-modality task (the
              encoder's pooled vector goes straight to the head).

            The task names must be those of the ``MultiTaskDataset`` (each
            data sample's ``task``).
        fusion: a fusion shared by the tasks that say ``fusion='shared'``
            (they must use the same modalities).
        task_weighting: how the task losses are weighed
            (``FixedTaskWeighting`` by default, ``UncertaintyTaskWeighting``,
            ``DWATaskWeighting``); ``tasks`` is filled in.
        data_preprocessor, on_nonfinite_loss, max_nonfinite_skips, init_cfg:
            as for :class:`MultiModalClassifier`.

    ``forward(inputs, data_samples, mode, task=None)``: a batch holds one
    task (``TaskBatchSampler``), read from the data samples' ``task`` (or
    given as ``task=``). ``mode='loss'`` returns ``<task>/loss`` (weighted,
    summed into the total), ``<task>/raw`` (unweighted) and
    ``<task>/weight``; ``'predict'`` the head's predictions in the data
    samples; ``'tensor'`` the head's raw output (B, ...).
    """


    def __init__(self, encoders: Dict[str, dict], tasks: Dict[str, dict],
                 fusion: Optional[dict] = None, task_weighting: Optional[dict] = None,
                 data_preprocessor: Optional[dict] = None,
                 on_nonfinite_loss: str = 'raise', max_nonfinite_skips: int = 10,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg,
                         on_nonfinite_loss=on_nonfinite_loss,
                         max_nonfinite_skips=max_nonfinite_skips)
        self.build_encoders(encoders)
        if not isinstance(tasks, dict) or not tasks:
            raise ConfigError('model.tasks must be a non-empty dict of task name -> '
                              'dict(head=..., modalities=[...], fusion=...)')
        enc_dims = {name: enc.out_dim for name, enc in self.encoders.items()}
        self.task_modalities: Dict[str, List[str]] = {}
        self.task_fusion: Dict[str, Optional[str]] = {}  # None, 'own' or 'shared'
        shared_users = []
        branches = {}
        for task, cfg in tasks.items():
            if not isinstance(cfg, dict) or 'head' not in cfg:
                raise ConfigError(f'model.tasks.{task} must be a dict with a head config')
            unknown = sorted(set(cfg) - {'head', 'modalities', 'fusion'})
            if unknown:
                raise ConfigError(f'model.tasks.{task}: unknown keys {unknown}; expected head, '
                                  'modalities, fusion')
            mods = list(cfg.get('modalities') or enc_dims)
            missing = [m for m in mods if m not in enc_dims]
            if missing:
                raise ConfigError(f'model.tasks.{task}.modalities names {missing}, which '
                                  f'model.encoders does not encode ({sorted(enc_dims)})')
            self.task_modalities[task] = mods
            branch = nn.ModuleDict()
            fusion_cfg = cfg.get('fusion')
            if fusion_cfg == SHARED:
                shared_users.append(task)
                self.task_fusion[task] = SHARED
                in_dim = None  # known once the shared fusion is built
            elif fusion_cfg is None:
                if len(mods) != 1:
                    raise ConfigError(f'model.tasks.{task} uses {len(mods)} modalities {mods} '
                                      "and so needs a fusion (its own config, or 'shared')")
                self.task_fusion[task] = None
                in_dim = enc_dims[mods[0]]
            else:
                branch['fusion'] = self._build_fusion(fusion_cfg, {m: enc_dims[m] for m in mods},
                                                      f'model.tasks.{task}.fusion')
                self.task_fusion[task] = 'own'
                in_dim = branch['fusion'].out_dim
            branches[task] = (branch, dict(cfg['head']), in_dim)

        self.fusion = None
        if shared_users:
            if fusion is None:
                raise ConfigError(f"model.tasks {shared_users} say fusion='shared' but "
                                  'model.fusion is not set')
            sets = {tuple(sorted(self.task_modalities[t])) for t in shared_users}
            if len(sets) > 1:
                raise ConfigError(f"the tasks with fusion='shared' ({shared_users}) must use "
                                  f'the same modalities, got {sorted(sets)}')
            mods = sorted(sets.pop())
            self.fusion = self._build_fusion(fusion, {m: enc_dims[m] for m in mods},
                                             'model.fusion')
        elif fusion is not None:
            raise ConfigError("model.fusion is set but no task uses it (fusion='shared')")

        self.tasks = nn.ModuleDict()
        for task, (branch, head, in_dim) in branches.items():
            in_dim = self.fusion.out_dim if in_dim is None else in_dim
            head.setdefault('in_dim', in_dim)
            if head['in_dim'] != in_dim:
                raise ConfigError(f'model.tasks.{task}.head.in_dim={head["in_dim"]} but its '
                                  f'input has {in_dim} features')
            branch['head'] = MODELS.build(head)
            self.tasks[task] = branch

        weighting = dict(task_weighting or dict(type='FixedTaskWeighting'))
        weighting['tasks'] = list(self.tasks)
        self.task_weighting = MODELS.build(weighting)

    @staticmethod
    def _build_fusion(cfg: dict, enc_dims: Dict[str, int], key: str) -> nn.Module:
        cfg = dict(cfg)
        given = cfg.setdefault('in_dims', enc_dims)
        if dict(given) != enc_dims:
            raise ConfigError(f'{key}.in_dims={dict(given)} but the encoders of its modalities '
                              f'output {enc_dims}; drop in_dims to use the encoder sizes')
        return MODELS.build(cfg)

    @property
    def task_names(self) -> List[str]:
        return list(self.tasks)

    def batch_task(self, data_samples: Optional[Sequence[MultiModalDataSample]],
                   task: Optional[str] = None) -> str:
        """The one task of a batch: ``task`` or the data samples' ``task``."""
        if task is None:
            found = {s.metainfo.get('task') for s in data_samples or ()}
            if not found or None in found:
                raise ConfigError('MultiTaskModel: the data samples carry no "task" metainfo; '
                                  "train and evaluate on a MultiTaskDataset, or pass task=")
            if len(found) > 1:
                raise ConfigError(f'MultiTaskModel: one batch mixes tasks {sorted(found)}; add '
                                  "batch_sampler=dict(type='TaskBatchSampler') to the data "
                                  'loader')
            task = found.pop()
        if task not in self.tasks:
            raise ConfigError(f'MultiTaskModel: the batch is of task {task!r} but model.tasks '
                              f'has {self.task_names}; name the model\'s tasks like the '
                              "MultiTaskDataset's datasets")
        return task

    def extract_feat(self, inputs: Dict[str, Union[torch.Tensor, dict, None]], task: str,
                     data_samples: Optional[Sequence[MultiModalDataSample]] = None
                     ) -> torch.Tensor:
        """Encode the task's modalities and fuse: (B, D) for the task's head.

        Samples that lack a modality (``modality_mask`` in their data
        samples, or a ``None`` batch input) are left out of its encoder and
        masked in the fusion, as in :class:`MultiModalClassifier`.
        """
        mods = self.task_modalities[task]
        if sorted(inputs) != sorted(mods):
            raise ConfigError(f'task {task!r} uses modalities {sorted(mods)} '
                              f'(model.tasks.{task}.modalities) but its batch carries '
                              f'{sorted(inputs)}; make its dataset\'s PackMultiModalInputs'
                              '(inputs=...) and the task agree')
        batch_size = self.batch_size(inputs, data_samples)
        masks = {m: v for m, v in self.modality_masks(inputs, data_samples).items()
                 if m in mods}
        feats = {m: self._encode_present(m, self.encoders[m], inputs[m], masks.get(m),
                                         batch_size) for m in mods}
        if self.task_fusion[task] is None:
            return feats[mods[0]].pooled
        fusion = self.fusion if self.task_fusion[task] == SHARED else self.tasks[task]['fusion']
        return self.fuse_features(fusion, feats, masks)

    def forward(self, inputs: Dict[str, Union[torch.Tensor, dict]],
                data_samples: Optional[List[MultiModalDataSample]] = None,
                mode: str = 'tensor', task: Optional[str] = None):
        task = self.batch_task(data_samples, task)
        feats = self.extract_feat(inputs, task, data_samples)
        head = self.tasks[task]['head']
        if mode == 'loss':
            losses = head.loss(feats, data_samples)
            raw = sum(v for k, v in losses.items() if 'loss' in k)
            out = {f'{task}/loss': self.task_weighting(task, raw), f'{task}/raw': raw.detach()}
            out[f'{task}/weight'] = torch.tensor(self.task_weighting.weight(task))
            return out
        if mode == 'predict':
            return head.predict(feats, data_samples)
        if mode == 'tensor':
            return head(feats)
        raise ValueError(f'unknown mode {mode!r}; expected "loss", "predict" or "tensor"')


__all__ = ['MultiTaskModel']
