"""Fine-tuning settings of one model part (a tower or a fusion), from its config.

Any encoder config (``model.encoders.<name>``) and the fusion config of
:class:`~mmfusion.models.MultiModalClassifier` may carry these keys besides
the component's own arguments; they are taken off before the component is
built and applied to it afterwards, so every registered encoder (timm,
Hugging Face, audio, word embeddings) and every fusion module gets them
without knowing about them:

``peft=dict(type='LoraConfig', r=8, target_modules=['query', 'value'])``
    a ``peft`` config (LoRA, Hu et al., ICLR 2022; IA3, Liu et al., NeurIPS
    2022; LoHa, LoKr, ... any tuner ``peft.inject_adapter_in_model``
    accepts). ``peft`` puts its adapters into the part and freezes the rest
    of the part. ``target_modules`` names are matched as ``peft`` matches
    them (a name or a suffix of a module path, or a regex);
    ``nn.MultiheadAttention`` (the token fusions' attention) is a LoRA target.
``freeze``
    ``True`` freezes the whole part; a list of ``fnmatch`` patterns freezes
    the parameters whose names (relative to the part) match.
``unlocked_groups=N``
    with ``freeze=True``: the last N layer groups stay trainable (LiT-style
    locking of a pretrained tower, open_clip's ``--lock-image-unlocked-groups``;
    groups as in :func:`mmfusion.models.layers.layer_groups`).
``trainable``
    ``fnmatch`` patterns made trainable after everything else, e.g. the
    norms next to LoRA adapters, or a fusion's output projection.
``grad_checkpointing=True``
    recompute activations in the backward pass: timm's
    ``set_grad_checkpointing``, Hugging Face's ``gradient_checkpointing_enable``
    (non-reentrant), or ``torch.utils.checkpoint`` around each block of the
    part's block list for other modules.
``save_frozen=False``
    checkpoints keep only the part's trainable parameters plus a digest of
    its frozen ones; loading such a checkpoint takes the frozen weights from
    the model as the config builds it (``HFTextEncoder(pretrained=...)``,
    ``TimmEncoder(checkpoint=...)``) and refuses when they are not the
    weights the checkpoint was trained on.
"""
import fnmatch
import hashlib
import importlib
from typing import Any, Dict, List, Optional, Sequence, Union

import torch
import torch.nn as nn
import torch.utils.checkpoint as torch_checkpoint

from mmfusion.errors import CheckpointMismatchError, ConfigError
from mmfusion.registry import MODELS

from ..layers.groups import _longest_module_list, layer_groups

FINE_TUNE_KEYS = ('peft', 'freeze', 'unlocked_groups', 'trainable', 'grad_checkpointing',
                  'save_frozen')
# the state-dict entry that stands for a part's frozen weights in a trainable-only checkpoint
DIGEST_KEY = 'frozen_weights_sha1'
PEFT_HINT = ('peft is not installed; install the optional extra with `pip install peft` '
             '(or `pip install -e ".[optional]"`)')


def require_peft() -> Any:
    """Import ``peft``, or raise :class:`ConfigError` with the install hint."""
    try:
        return importlib.import_module('peft')
    except ImportError as exc:
        raise ConfigError(f'a config asks for a peft adapter but {PEFT_HINT}') from exc


def build_peft_config(cfg: Any, key: str) -> Any:
    """A ``peft`` config object from ``dict(type='LoraConfig', ...)`` (a
    class name of ``peft`` or the class itself, as xtuner's configs hold it),
    or a ready ``peft.PeftConfig``."""
    peft = require_peft()
    if isinstance(cfg, peft.PeftConfig):
        return cfg
    if not isinstance(cfg, dict) or 'type' not in cfg:
        raise ConfigError(f"{key}.peft must be dict(type='LoraConfig', ...) (a peft config "
                          f'class and its arguments), got {cfg!r}')
    args = dict(cfg)
    kind = args.pop('type')
    config_cls = getattr(peft, kind, None) if isinstance(kind, str) else kind
    if not (isinstance(config_cls, type) and issubclass(config_cls, peft.PeftConfig)):
        raise ConfigError(f'{key}.peft.type={kind!r} is not a peft config class; expected one '
                          "of peft's, e.g. 'LoraConfig' or 'IA3Config'")
    # lists from a config file arrive as tuples or ConfigDict-wrapped lists; peft wants
    # sets/lists of plain strings
    for name in ('target_modules', 'feedforward_modules', 'modules_to_save'):
        if isinstance(args.get(name), (list, tuple)):
            args[name] = list(args[name])
    try:
        return config_cls(**args)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f'{key}.peft: {config_cls.__name__} refused its arguments: '
                          f'{exc}') from exc


def _linear_like_names(module: nn.Module, limit: int = 8) -> List[str]:
    """Short names of the layers a LoRA could target, for an error message."""
    kinds = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Embedding, nn.MultiheadAttention)
    names = sorted({n.rsplit('.', 1)[-1] for n, m in module.named_modules()
                    if n and isinstance(m, kinds)})
    return names[:limit]


def apply_peft(module: nn.Module, cfg: Any, key: str) -> nn.Module:
    """Inject the adapters of ``cfg`` into ``module`` in place (``peft``'s
    ``inject_adapter_in_model``: no ``PeftModel`` wrapper, so the module
    keeps its type, attributes and state-dict prefix)."""
    peft = require_peft()
    from peft.tuners.tuners_utils import check_target_module_exists

    config = build_peft_config(cfg, key)
    targets = getattr(config, 'target_modules', None)
    if targets is not None:
        matched = [n for n, _ in module.named_modules()
                   if n and check_target_module_exists(config, n)]
        if not matched:
            shown = targets if isinstance(targets, str) else sorted(targets)
            raise ConfigError(
                f'{key}.peft.target_modules={shown!r} matches no module of '
                f'{type(module).__name__}; its layers that an adapter can target are named '
                f'e.g. {_linear_like_names(module)}')
    try:
        peft.inject_adapter_in_model(config, module)
    except ValueError as exc:
        raise ConfigError(f'{key}.peft: {exc}') from exc
    _keep_adapted_attention_on_slow_path(module)
    return module


def _no_op_pre_hook(module: nn.Module, args: tuple) -> None:
    return None


def _keep_adapted_attention_on_slow_path(module: nn.Module) -> None:
    """In eval mode without gradients ``nn.TransformerEncoderLayer`` runs a
    fused kernel that reads its attention's ``in_proj_weight`` directly, which
    would skip an adapter wrapped around that attention. Torch leaves the
    fused path whenever a module of the layer has a forward hook, so each
    adapted ``nn.MultiheadAttention`` gets a hook that does nothing."""
    from peft.tuners.tuners_utils import BaseTunerLayer

    for layer in module.modules():
        if isinstance(layer, BaseTunerLayer) and isinstance(layer.get_base_layer(),
                                                            nn.MultiheadAttention):
            layer.register_forward_pre_hook(_no_op_pre_hook)


def _match_any(name: str, patterns: Sequence[str]) -> bool:
    return any(fnmatch.fnmatchcase(name, p) for p in patterns)


def _patterns(value: Union[str, Sequence[str]], key: str) -> List[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, (list, tuple)) and all(isinstance(p, str) for p in value):
        return list(value)
    raise ConfigError(f'{key} must be a list of name patterns such as ["model.embeddings.*"], '
                      f'got {value!r}')


def set_trainable(module: nn.Module, patterns: Sequence[str], trainable: bool,
                  key: str) -> List[str]:
    """Set ``requires_grad`` of the parameters whose names match ``patterns``.

    Returns the names changed. Raises :class:`ConfigError` naming ``key``
    when a pattern matches no parameter (a misspelt pattern would otherwise
    silently train, or freeze, nothing).
    """
    names = [n for n, _ in module.named_parameters()]
    for pattern in patterns:
        if not any(fnmatch.fnmatchcase(n, pattern) for n in names):
            first = ', '.join(names[:4])
            raise ConfigError(f'{key}: pattern {pattern!r} matches no parameter of '
                              f'{type(module).__name__} (names look like {first}, ...)')
    changed = []
    for name, param in module.named_parameters():
        if _match_any(name, patterns):
            param.requires_grad_(trainable)
            changed.append(name)
    return changed


def lock(module: nn.Module, unlocked_groups: int = 0, key: str = 'model') -> None:
    """Freeze ``module`` except its last ``unlocked_groups`` layer groups."""
    if not isinstance(unlocked_groups, int) or unlocked_groups < 0:
        raise ConfigError(f'{key}.unlocked_groups must be an integer >= 0, got '
                          f'{unlocked_groups!r}')
    groups = layer_groups(module)
    if unlocked_groups > len(groups):
        raise ConfigError(f'{key}.unlocked_groups={unlocked_groups} but '
                          f'{type(module).__name__} has only {len(groups)} layer groups')
    module.requires_grad_(False)
    keep = {n for g in groups[len(groups) - unlocked_groups:] for n in g} \
        if unlocked_groups else set()
    for name, param in module.named_parameters():
        if name in keep:
            param.requires_grad_(True)


class _CheckpointedForward:
    """A block's ``forward`` run under ``torch.utils.checkpoint``.

    MMEngine's ``activation_checkpointing`` wraps forwards the same way but
    passes positional arguments only and leaves ``use_reentrant`` unset; the
    fusion blocks take keyword masks, and the reentrant variant returns no
    gradient when the block's inputs come from a frozen tower.
    """

    def __init__(self, module: nn.Module) -> None:
        self.forward = module.forward

    def __call__(self, *args, **kwargs):
        if not torch.is_grad_enabled():
            return self.forward(*args, **kwargs)
        return torch_checkpoint.checkpoint(self.forward, *args, use_reentrant=False, **kwargs)


def enable_grad_checkpointing(module: nn.Module, key: str = 'model') -> str:
    """Turn on activation checkpointing in ``module``; returns how
    (``'timm'``, ``'transformers'`` or ``'blocks:<path>'``)."""
    inner = getattr(module, 'model', module)
    if hasattr(inner, 'set_grad_checkpointing'):  # timm
        inner.set_grad_checkpointing(True)
        return 'timm'
    if hasattr(inner, 'gradient_checkpointing_enable'):  # transformers
        if not getattr(inner, 'supports_gradient_checkpointing', True):
            raise ConfigError(f'{key}.grad_checkpointing: {type(inner).__name__} does not '
                              'support gradient checkpointing')
        # transformers 5 renamed it; the old name still works but warns
        if hasattr(inner, 'activation_checkpointing_enable'):
            inner.activation_checkpointing_enable(
                activation_checkpointing_kwargs=dict(use_reentrant=False))
        else:
            inner.gradient_checkpointing_enable(
                gradient_checkpointing_kwargs=dict(use_reentrant=False))
        return 'transformers'
    blocks = _longest_module_list(module)
    if not blocks:
        raise ConfigError(f'{key}.grad_checkpointing: {type(module).__name__} is neither a '
                          'timm nor a transformers model and has no list of blocks to '
                          'checkpoint')
    for block in module.get_submodule(blocks):
        block.forward = _CheckpointedForward(block)
    return f'blocks:{blocks}'


# ---------------------------------------------------------------------------
# Checkpoints with only the trainable weights


def frozen_digest(module: nn.Module) -> torch.Tensor:
    """SHA-1 of ``module``'s frozen parameters (names, shapes and values) as a
    (20,) uint8 tensor: what a trainable-only checkpoint records about them."""
    sha = hashlib.sha1()
    for name, param in module.named_parameters():
        if not param.requires_grad:
            value = param.detach().to('cpu').contiguous()
            sha.update(name.encode())
            sha.update(str(tuple(value.shape)).encode())
            sha.update(value.view(torch.uint8).numpy().tobytes() if value.numel() else b'')
    return torch.tensor(list(sha.digest()), dtype=torch.uint8)


class TrainableOnlyState:
    """State-dict hooks that leave ``module``'s frozen parameters out of its
    checkpoints and put :func:`frozen_digest` in their place.

    Saving: ``module.state_dict()`` (and MMEngine's ``get_state_dict``,
    which runs the same hooks) drops each frozen parameter and adds
    ``<prefix>frozen_weights_sha1``. Loading a state dict that has the
    digest: the frozen parameters are not expected from it (they are the
    ones the model was built with) and the digest must equal the model's, or
    :class:`CheckpointMismatchError` says the frozen base differs. A full
    state dict (no digest) loads as usual.
    """

    def __init__(self, module: nn.Module, key: str) -> None:
        self.key = key
        self.handles = [
            # torch marks public hooks with an attribute, which a bound method cannot take
            module.register_state_dict_post_hook(
                lambda *args: self._save_hook(*args)),
            module.register_load_state_dict_pre_hook(self._load_pre_hook),
            module.register_load_state_dict_post_hook(self._load_post_hook),
        ]
        self._expect_missing: List[str] = []

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()

    @staticmethod
    def _frozen_names(module: nn.Module) -> List[str]:
        return [n for n, p in module.named_parameters() if not p.requires_grad]

    def _save_hook(self, module, state_dict, prefix, local_metadata):
        for name in self._frozen_names(module):
            state_dict.pop(prefix + name, None)
        state_dict[prefix + DIGEST_KEY] = frozen_digest(module)

    def _load_pre_hook(self, module, state_dict, prefix, local_metadata, strict, missing_keys,
                       unexpected_keys, error_msgs):
        digest = state_dict.pop(prefix + DIGEST_KEY, None)
        self._expect_missing = []
        if digest is None:
            return
        if not torch.equal(digest.to('cpu', torch.uint8), frozen_digest(module)):
            raise CheckpointMismatchError(
                f'the checkpoint holds only the trainable weights of {self.key} and was trained '
                'on other frozen weights than this model has: load the same base weights '
                '(the pretrained folder or weights file of its config) before the checkpoint')
        self._expect_missing = [prefix + n for n in self._frozen_names(module)]

    def _load_post_hook(self, module, incompatible_keys):
        if self._expect_missing:
            expected = set(self._expect_missing)
            incompatible_keys.missing_keys[:] = [
                k for k in incompatible_keys.missing_keys if k not in expected]
            self._expect_missing = []


# ---------------------------------------------------------------------------
# Applying the settings


def apply_fine_tuning(module: nn.Module, key: str = 'model', peft: Optional[Any] = None,
                      freeze: Union[bool, Sequence[str], None] = None,
                      unlocked_groups: Optional[int] = None,
                      trainable: Optional[Sequence[str]] = None,
                      grad_checkpointing: bool = False, save_frozen: bool = True) -> nn.Module:
    """Apply the fine-tuning keys (see the module docstring) to a built module.

    Order: freezing and locking, then the ``peft`` adapters (which freeze
    what they do not add), then ``trainable``, then gradient checkpointing.
    ``key`` is the module's config path, used in error messages.
    """
    if unlocked_groups is not None and freeze is not True:
        raise ConfigError(f'{key}.unlocked_groups={unlocked_groups} needs {key}.freeze=True '
                          '(lock the part, then unlock its last groups)')
    if freeze is True:
        lock(module, unlocked_groups or 0, key)
        if hasattr(module, 'frozen') and not unlocked_groups and hasattr(module, 'model'):
            module.freeze()  # the encoder's own freezing: eval-mode norm statistics too
    elif freeze:
        set_trainable(module, _patterns(freeze, f'{key}.freeze'), False, f'{key}.freeze')
    if peft is not None:
        apply_peft(module, peft, key)
    if trainable:
        set_trainable(module, _patterns(trainable, f'{key}.trainable'), True,
                      f'{key}.trainable')
    if grad_checkpointing:
        enable_grad_checkpointing(module, key)
    if not save_frozen:
        module._trainable_only_state = TrainableOnlyState(module, key)
    return module


def build_fine_tuned(cfg: Dict[str, Any], key: str) -> nn.Module:
    """``MODELS.build(cfg)`` after taking the fine-tuning keys off ``cfg``,
    then :func:`apply_fine_tuning` with them. ``key`` is ``cfg``'s config
    path (``'model.encoders.text'``), for error messages."""
    cfg = dict(cfg)
    settings = {k: cfg.pop(k) for k in FINE_TUNE_KEYS if k in cfg}
    module = MODELS.build(cfg)
    if settings:
        apply_fine_tuning(module, key, **settings)
    return module


def merge_adapters(model: nn.Module) -> int:
    """Merge every ``peft`` adapter of ``model`` into its base layer and put
    the base layer back in its place (``peft``'s ``merge_and_unload`` for
    adapters injected without a ``PeftModel``). Trainable-only checkpoint
    hooks are removed: the merged model is saved whole. Returns the number
    of layers merged."""
    require_peft()
    from peft.tuners.tuners_utils import BaseTunerLayer

    for module in model.modules():
        state = getattr(module, '_trainable_only_state', None)
        if state is not None:
            state.remove()
            del module._trainable_only_state
    merged = 0
    # outermost first, one at a time: a LoRA MultiheadAttention merges the LoRA
    # of its out_proj itself, and unwrapping it moves that out_proj's path
    while True:
        found = next(((n, m) for n, m in model.named_modules()
                      if isinstance(m, BaseTunerLayer)), None)
        if found is None:
            return merged
        name, layer = found
        if not layer.merged:
            layer.merge()
        parent_name, _, child = name.rpartition('.')
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, layer.get_base_layer())
        merged += 1


def trainable_summary(model: nn.Module) -> Dict[str, Union[int, float]]:
    """``dict(trainable=..., total=..., percent=...)`` parameter counts."""
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return dict(trainable=trainable, total=total,
                percent=100.0 * trainable / total if total else 0.0)


__all__ = ['DIGEST_KEY', 'FINE_TUNE_KEYS', 'TrainableOnlyState', 'apply_fine_tuning',
           'apply_peft', 'build_fine_tuned', 'build_peft_config', 'enable_grad_checkpointing',
           'frozen_digest', 'lock', 'merge_adapters', 'require_peft', 'set_trainable',
           'trainable_summary']
