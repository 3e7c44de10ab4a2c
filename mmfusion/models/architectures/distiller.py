"""Knowledge distillation: a frozen teacher from a config and checkpoint teaches a student."""
import copy
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
from mmengine.config import Config

from mmfusion.errors import CheckpointMismatchError, ConfigError
from mmfusion.registry import MODELS
from mmfusion.structures import MultiModalDataSample

from ..encoders.base import ModalityFeatures
from .base import BaseMultiModalModel


class _OutputRecorder:
    """Keep the first output of named submodules during one forward pass.

    Forward hooks, so any architecture works without exposing its
    intermediate features (the idea of MMRazor's recorders). The first call
    is the one kept: a model may call a module again for an auxiliary
    score (e.g. the head on masked fusions).
    """

    def __init__(self, model: nn.Module, names: Sequence[str], key: str) -> None:
        modules = dict(model.named_modules())
        self.outputs: Dict[str, Any] = {}
        self.handles = []
        for name in names:
            if name not in modules:
                raise ConfigError(f'{key}: the model has no submodule {name!r}; e.g. '
                                  f'{[n for n in modules if n and n.count(".") < 2][:12]}')
            self.handles.append(modules[name].register_forward_hook(self._hook(name)))

    def _hook(self, name: str):
        def hook(module, args, output):
            self.outputs.setdefault(name, output)
        return hook

    def reset(self) -> None:
        self.outputs.clear()

    def get(self, name: str) -> torch.Tensor:
        out = self.outputs.get(name)
        if out is None:
            raise RuntimeError(f'the submodule {name!r} did not run in this forward pass')
        if isinstance(out, ModalityFeatures):
            return out.pooled
        if isinstance(out, (tuple, list)):
            out = out[0]
        return out


def build_teacher(cfg: dict, key: str = 'model.teacher') -> nn.Module:
    """A trained model from ``dict(config=path | model=dict, checkpoint=path,
    cfg_options=dict)``, loaded strictly, frozen and in eval mode.

    Raises:
        ConfigError: neither ``config`` nor ``model``, or no ``checkpoint``.
        CheckpointMismatchError: the checkpoint does not fit the config
            (the message starts with ``<key>.checkpoint`` and has the table
            of the differences).
    """
    # the one layer that resolves vocabularies and loads checkpoints strictly;
    # imported here because mmfusion.apis imports mmfusion.models
    from mmfusion.apis import init_model

    cfg = dict(cfg)
    unknown = sorted(set(cfg) - {'config', 'model', 'checkpoint', 'cfg_options'})
    if unknown:
        raise ConfigError(f'{key}: unknown keys {unknown}; expected config (or model), '
                          'checkpoint, cfg_options')
    if ('config' in cfg) == ('model' in cfg):
        raise ConfigError(f'{key} needs exactly one of config (a config file) and model (a '
                          'model config dict)')
    if not cfg.get('checkpoint'):
        raise ConfigError(f'{key}.checkpoint is required: a teacher is a trained model')
    if 'config' in cfg:
        teacher_cfg = Config.fromfile(cfg['config'])
    else:
        teacher_cfg = Config(dict(model=copy.deepcopy(cfg['model'])))
    if cfg.get('cfg_options'):
        teacher_cfg.merge_from_dict(cfg['cfg_options'])
    try:
        teacher = init_model(teacher_cfg, cfg['checkpoint'])
    except CheckpointMismatchError as exc:
        raise CheckpointMismatchError(f'{key}.checkpoint: {exc}') from None
    for param in teacher.parameters():
        param.requires_grad_(False)
    return teacher.eval()


@MODELS.register_module()
class KnowledgeDistiller(BaseMultiModalModel):
    """Train a student with a frozen teacher's outputs as extra targets.

    Args:
        student: the student's model config (e.g. a
            ``MultiModalClassifier``). Its own data preprocessor is unused:
            the distiller's prepares the batch for both models.
        teacher: ``dict(config='configs/....py', checkpoint='....pth')`` (or
            ``model=dict(...)`` instead of ``config``; ``cfg_options`` to
            override the teacher config). Loaded strictly: a checkpoint that
            does not fit the config is a ``CheckpointMismatchError`` naming
            ``model.teacher.checkpoint``.
        logit_loss: e.g. ``dict(type='KDLoss', temperature=4)`` on the two
            heads' logits; ``None`` for none.
        feature_losses: FitNets-style hints, each ``dict(student='fusion',
            teacher='fusion', loss=dict(type='FitNetsLoss', ...))``: the
            outputs of the named submodules (an encoder's pooled vector, a
            fusion's fused vector, a map) are matched through the loss's
            learnable projection; its ``student_dim``/``teacher_dim`` default
            to the modules' ``out_dim``.
        task_loss_weight: factor on the student's own loss (its head's loss
            against the labels); 0 trains on the teacher alone.
        data_preprocessor: prepares every modality either model uses;
            defaults to the student's.

    The teacher sees the modalities of its own encoders and the student
    those of its own, so a teacher may see more: cross-modal distillation
    (an image+audio teacher, an image-only student) is a student config
    with fewer encoders and a batch that carries the teacher's modalities.

    The teacher is kept outside the module tree: it is not in
    ``state_dict()`` (so never in the student's checkpoints), not in
    ``parameters()`` (so no optimizer touches it), and ``train()`` does not
    reach it (so it stays in eval mode: no dropout, frozen batch-norm
    statistics). ``to()``/``cuda()`` move it with the distiller.

    ``forward(inputs, data_samples, mode)``: ``'loss'`` returns the
    student's losses plus ``loss_kd`` and ``loss_fitnet_<i>``;
    ``'predict'`` and ``'tensor'`` run the student alone.
    """

    def __init__(self, student: dict, teacher: dict, logit_loss: Optional[dict] = None,
                 feature_losses: Optional[List[dict]] = None, task_loss_weight: float = 1.0,
                 data_preprocessor: Optional[dict] = None,
                 on_nonfinite_loss: str = 'raise', max_nonfinite_skips: int = 10,
                 init_cfg: Optional[dict] = None) -> None:
        if data_preprocessor is None:
            data_preprocessor = student.get('data_preprocessor')
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg,
                         on_nonfinite_loss=on_nonfinite_loss,
                         max_nonfinite_skips=max_nonfinite_skips)
        if not isinstance(teacher, dict):
            raise ConfigError('model.teacher must be dict(config=..., checkpoint=...)')
        self.student = MODELS.build(student)
        for key, model in (('model.student', self.student),):
            if not hasattr(model, 'head') or not hasattr(model, 'encoders'):
                raise ConfigError(f'{key}: distillation needs a model with encoders and a head '
                                  f'(e.g. MultiModalClassifier), got {type(model).__name__}')
        # a plain list hides the teacher from nn.Module's registration (see docstring)
        self._teacher: List[nn.Module] = [build_teacher(teacher)]
        if not hasattr(self.teacher, 'head') or not hasattr(self.teacher, 'encoders'):
            raise ConfigError('model.teacher: distillation needs a teacher with encoders and a '
                              f'head, got {type(self.teacher).__name__}')
        self.task_loss_weight = float(task_loss_weight)
        self.logit_loss = MODELS.build(logit_loss) if logit_loss else None

        self.feature_pairs: List[Tuple[str, str]] = []
        self.feature_losses = nn.ModuleList()
        for i, spec in enumerate(feature_losses or []):
            key = f'model.feature_losses[{i}]'
            spec = dict(spec)
            if not {'student', 'teacher', 'loss'} <= set(spec):
                raise ConfigError(f'{key} needs student, teacher (submodule names) and loss')
            loss = dict(spec['loss'])
            loss.setdefault('student_dim', self._out_dim(self.student, spec['student'],
                                                         f'{key}.student'))
            loss.setdefault('teacher_dim', self._out_dim(self.teacher, spec['teacher'],
                                                         f'{key}.teacher'))
            self.feature_losses.append(MODELS.build(loss))
            self.feature_pairs.append((spec['student'], spec['teacher']))
        if self.logit_loss is None and not self.feature_pairs:
            raise ConfigError('KnowledgeDistiller: set model.logit_loss and/or '
                              'model.feature_losses, or nothing is distilled')

        self._student_rec = _OutputRecorder(
            self.student, ['head'] + [s for s, _ in self.feature_pairs], 'model.feature_losses')
        self._teacher_rec = _OutputRecorder(
            self.teacher, ['head'] + [t for _, t in self.feature_pairs], 'model.feature_losses')

    @property
    def teacher(self) -> nn.Module:
        """The frozen teacher (not a submodule; see the class docstring)."""
        return self._teacher[0]

    @staticmethod
    def _out_dim(model: nn.Module, name: str, key: str) -> int:
        module = dict(model.named_modules()).get(name)
        if module is None:
            raise ConfigError(f'{key}: the model has no submodule {name!r}')
        dim = getattr(module, 'out_dim', None)
        if not isinstance(dim, int):
            raise ConfigError(f'{key}: {name!r} has no out_dim; give the loss\'s student_dim '
                              'and teacher_dim')
        return dim

    def _apply(self, fn, *args, **kwargs):
        # .to()/.cuda()/.half() reach the teacher too, although it is no submodule
        super()._apply(fn, *args, **kwargs)
        self.teacher._apply(fn, *args, **kwargs)
        return self

    @staticmethod
    def _select(inputs: Dict[str, Any], model: nn.Module, who: str) -> Dict[str, Any]:
        missing = [m for m in model.encoders if m not in inputs]
        if missing:
            raise ConfigError(f'the {who} encodes {missing}, which the batch lacks (it carries '
                              f'{sorted(inputs)}); the pipeline must pack every modality the '
                              'teacher or the student uses')
        return {m: inputs[m] for m in model.encoders}

    def forward(self, inputs: Dict[str, Union[torch.Tensor, dict]],
                data_samples: Optional[List[MultiModalDataSample]] = None,
                mode: str = 'tensor'):
        student_inputs = self._select(inputs, self.student, 'student')
        if mode != 'loss':
            return self.student(student_inputs, data_samples, mode=mode)
        self._student_rec.reset()
        self._teacher_rec.reset()
        losses = self.student(student_inputs, data_samples, mode='loss')
        losses = {k: v * self.task_loss_weight if 'loss' in k else v for k, v in losses.items()}
        self.teacher.eval()  # in case a caller switched it
        with torch.no_grad():
            self.teacher(self._select(inputs, self.teacher, 'teacher'), None, mode='tensor')
        if self.logit_loss is not None:
            losses['loss_kd'] = self.logit_loss(self._student_rec.get('head'),
                                                self._teacher_rec.get('head'))
        for i, ((s_name, t_name), loss) in enumerate(zip(self.feature_pairs,
                                                         self.feature_losses)):
            losses[f'loss_fitnet_{i}'] = loss(self._student_rec.get(s_name),
                                              self._teacher_rec.get(t_name))
        return losses


__all__ = ['KnowledgeDistiller', 'build_teacher']
