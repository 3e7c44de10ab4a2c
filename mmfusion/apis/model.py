"""Build a model from a config, vocabularies resolved and weights loaded."""
import copy
from typing import Optional, Union

import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope

from mmfusion.errors import CheckpointError, CheckpointMismatchError, MMFusionError
from mmfusion.registry import MODELS
from mmfusion.utils import explain_config_errors, register_all_modules

from .vocabulary import find_vocabulary_slots, resolve_vocabularies


def resolve_vocabularies_for_checkpoint(cfg: Config, checkpoint: Optional[str],
                                        config_name: Optional[str] = None):
    """:func:`resolve_vocabularies` for a model that ``checkpoint`` will be loaded into.

    A checkpoint of another model stores no vocabulary for this config's
    slots; the vocabularies are then built from the training data, and the
    strict load that follows reports the misfit as a table. When that
    fallback fails too (no training data here), the failure is reported as
    the checkpoint not fitting the config, not as a data problem.

    Returns:
        What :func:`resolve_vocabularies` returns.
    """
    if checkpoint is None:
        return resolve_vocabularies(cfg)
    try:
        return resolve_vocabularies(cfg, checkpoint=checkpoint)
    except CheckpointError:
        raise
    except (MMFusionError, FileNotFoundError) as exc:
        still_open = [slot.path for slot in find_vocabulary_slots(cfg.get('model') or {})]
        if not still_open:
            raise
        from mmfusion.engine.checkpoint import load_checkpoint_file
        from mmfusion.engine.checkpoint_fit import trained_with

        origin = trained_with(load_checkpoint_file(checkpoint, map_location='cpu'))
        origin_text = f' It was trained with {origin}.' if origin else ''
        where = f' of {config_name}' if config_name else ''
        raise CheckpointMismatchError(
            f'checkpoint {checkpoint} does not fit the model{where}: it stores no vocabulary '
            f'for {", ".join(still_open)}, and building one from the training data failed '
            f'({exc}).{origin_text} Use the config the checkpoint was trained with, or a '
            'checkpoint trained with this config.') from exc


def init_model(config: Union[str, Config], checkpoint: Optional[str] = None,
               device: str = 'cpu') -> torch.nn.Module:
    """The model a config describes, ready to run (OpenMMLab's ``init_model``).

    Args:
        config: a config file or a loaded :class:`Config` (not modified).
        checkpoint: weights to load, strictly and weights-only; its stored
            vocabularies are used, so no training data is read.
        device: where the model goes.

    Returns:
        The model in eval mode, with ``model.cfg`` the config it was built from
        (vocabularies filled in) and ``model.dataset_meta`` the training set's
        metainfo stored in the checkpoint (class names ...), or None.

    Raises:
        CheckpointMismatchError: the checkpoint's keys or shapes do not match
            the model (the message has a table of the differences).
    """
    from mmfusion.engine.checkpoint_fit import load_checkpoint_strict

    register_all_modules(init_default_scope=False)
    init_default_scope('mmfusion')
    cfg = Config.fromfile(config) if isinstance(config, str) else copy.deepcopy(config)
    config_name = config if isinstance(config, str) else cfg.filename
    with explain_config_errors(cfg):
        resolve_vocabularies_for_checkpoint(cfg, checkpoint, config_name)
        model = MODELS.build(cfg.model)
    dataset_meta = None
    if checkpoint is not None:
        # a checkpoint of another model is an error, never a half-random model
        loaded = load_checkpoint_strict(model, checkpoint, config=config_name)
        meta = loaded.get('meta') if isinstance(loaded, dict) else None
        # the runner stores the training set's metainfo (class names ...)
        dataset_meta = meta.get('dataset_meta') if isinstance(meta, dict) else None
    model.cfg = cfg
    model.dataset_meta = dict(dataset_meta) if isinstance(dataset_meta, dict) else None
    return model.to(device).eval()


__all__ = ['init_model', 'resolve_vocabularies_for_checkpoint']
