"""Batch preparation for every modality: stack, pad, normalise, tokenise, move."""
from typing import Dict, List, Optional, Sequence

import torch
from mmengine.logging import print_log
from mmengine.model import BaseDataPreprocessor
from mmengine.model.utils import stack_batch

from mmfusion.registry import MODELS
from mmfusion.utils.extra_state import decode_extra_state, encode_extra_state

from .tokenizers import build_tokenizer, tokenizer_from_state, tokenizer_state


@MODELS.register_module()
class MultiModalDataPreprocessor(BaseDataPreprocessor):
    """Turn a collated batch into model inputs, modality by modality.

    Each keyword argument configures one modality (the key used by
    ``PackMultiModalInputs``):

    * image-like (``image``, ``depth``, ...): ``dict(mean=[...], std=[...],
      bgr_to_rgb=False, pad_size_divisor=1, pad_value=0)``. Tensors (C, H, W)
      are padded to a common size, stacked to (B, C, H, W) float and
      normalised. ``bgr_to_rgb=True`` flips channels of images loaded by
      OpenCV-based loaders.
    * text: ``dict(tokenizer=dict(type=...), max_length=64)``. Strings are
      tokenised in one batched call of a fast tokenizer into
      ``dict(input_ids=(B, L), attention_mask=(B, L))``, L = the longest
      sample in the batch (at most ``max_length``).
    * anything else is stacked as a float tensor;
    * ``None`` drops a modality configured by a base config.

    Missing modalities: a sample whose modality is ``None`` (packed so by
    ``PackMultiModalInputs`` when it is missing) gets a placeholder in the
    batch (zeros of a present sample's shape, or an empty string before
    tokenising) and ``False`` in its data sample's ``modality_mask``; the
    models encode only the present samples, so the placeholder never reaches
    an encoder. A modality no sample of the batch has becomes ``None``.

    The tokenizers are saved in the model's state dict (``get_extra_state``),
    so a checkpoint carries the exact vocabulary it was trained with.

    ``batch_augments``: a list of batch augmentation configs (e.g.
    ``dict(type='MultiModalMixup', alpha=0.2, num_classes=...)``) applied in
    training only, after the batch is built, as mmpretrain's
    ``batch_augments``: mixing needs a partner sample from the same batch.
    """

    def __init__(self, non_blocking: bool = False,
                 batch_augments: Optional[List[dict]] = None, **modalities: dict) -> None:
        super().__init__(non_blocking=non_blocking)
        self.batch_augments = [MODELS.build(cfg) for cfg in batch_augments or []]
        self.image_cfgs: Dict[str, dict] = {}
        self.text_cfgs: Dict[str, dict] = {}
        self.tokenizers = {}
        for name, cfg in modalities.items():
            if cfg is None:  # drops an inherited modality, e.g. in a unimodal ablation config
                continue
            cfg = dict(cfg)
            if 'tokenizer' in cfg:
                self.tokenizers[name] = build_tokenizer(cfg.pop('tokenizer'))
                self.text_cfgs[name] = dict(max_length=cfg.pop('max_length', 64))
            else:
                mean, std = cfg.pop('mean', None), cfg.pop('std', None)
                if (mean is None) != (std is None):
                    raise ValueError(f'MultiModalDataPreprocessor: {name} needs both mean and std')
                if mean is not None:
                    self.register_buffer(f'{name}_mean', torch.tensor(mean).view(-1, 1, 1), False)
                    self.register_buffer(f'{name}_std', torch.tensor(std).view(-1, 1, 1), False)
                self.image_cfgs[name] = dict(normalize=mean is not None,
                                             bgr_to_rgb=cfg.pop('bgr_to_rgb', False),
                                             pad_size_divisor=cfg.pop('pad_size_divisor', 1),
                                             pad_value=cfg.pop('pad_value', 0))
            if cfg:
                raise TypeError(f'MultiModalDataPreprocessor: unknown options for {name}: '
                                f'{sorted(cfg)}')

    def vocab_size(self, modality: str) -> int:
        """Number of ids the tokenizer of ``modality`` can produce."""
        return len(self.tokenizers[modality])

    def forward(self, data: dict, training: bool = False) -> dict:
        inputs = data['inputs']
        samples = self.cast_data(data.get('data_samples'))
        batch = {}
        for name, values in inputs.items():
            values = self._fill_missing(name, values, samples)
            if values is None:
                batch[name] = None
            elif name in self.tokenizers:
                batch[name] = self._tokenize(name, values)
            elif isinstance(values, torch.Tensor):
                batch[name] = values.to(self.device).float()
            else:
                batch[name] = self._stack(name, values)
        image_batches = [batch[name] for name in self.image_cfgs
                         if batch.get(name) is not None]
        if samples and image_batches:
            # the padded size, which dense heads need to undo the padding
            shape = tuple(image_batches[0].shape[-2:])
            for sample in samples:
                sample.set_metainfo(dict(batch_input_shape=shape))
        if training:
            for augment in self.batch_augments:
                batch, samples = augment(batch, samples)
        return dict(inputs=batch, data_samples=samples)

    def _fill_missing(self, name: str, values, samples):
        """``values`` with a placeholder for each missing (``None``) sample, or
        ``None`` when no sample has the modality; records presence in the
        data samples' ``modality_mask``."""
        if values is None or isinstance(values, torch.Tensor):
            return values
        present = [v is not None for v in values]
        if all(present):
            return values
        if samples is None or len(samples) != len(present):
            raise ValueError(f'MultiModalDataPreprocessor: modality {name!r} is missing for '
                             'some samples, but the batch has no data samples to carry the '
                             'modality_mask to the model')
        for sample, has in zip(samples, present):
            mask = dict(sample.metainfo.get('modality_mask', {}))
            mask[name] = has
            sample.set_field(mask, 'modality_mask', field_type='metainfo')
        if not any(present):
            return None
        first = values[present.index(True)]
        filler = '' if isinstance(first, str) else torch.zeros_like(first)
        return [v if v is not None else filler for v in values]

    def _tokenize(self, name: str, texts: Sequence[str]) -> Dict[str, torch.Tensor]:
        if not all(isinstance(t, str) for t in texts):
            raise TypeError(f'MultiModalDataPreprocessor: modality {name!r} has a tokenizer, '
                            'so every sample must carry a string')
        enc = self.tokenizers[name](list(texts), padding='longest', truncation=True,
                                    max_length=self.text_cfgs[name]['max_length'],
                                    return_tensors='pt')
        return dict(input_ids=enc['input_ids'].to(self.device),
                    attention_mask=enc['attention_mask'].to(self.device))

    def _stack(self, name: str, tensors: List[torch.Tensor]) -> torch.Tensor:
        if isinstance(tensors[0], str):
            raise TypeError(f'MultiModalDataPreprocessor: modality {name!r} holds text but '
                            f'has no tokenizer; add {name}=dict(tokenizer=...)')
        cfg = self.image_cfgs.get(name)
        if cfg is None:
            return torch.stack(list(tensors)).to(self.device).float()
        batch = stack_batch(list(tensors), cfg['pad_size_divisor'], cfg['pad_value'])
        batch = batch.to(self.device, non_blocking=self._non_blocking).float()
        if cfg['bgr_to_rgb']:
            batch = batch.flip(1)
        if cfg['normalize']:
            batch = (batch - getattr(self, f'{name}_mean')) / getattr(self, f'{name}_std')
        return batch

    # The vocabularies travel with the weights (see mmfusion.utils.extra_state).
    def get_extra_state(self) -> torch.Tensor:
        return encode_extra_state(
            {name: tokenizer_state(tok) for name, tok in self.tokenizers.items()})

    def set_extra_state(self, state) -> None:
        for name, tok_state in (decode_extra_state(state) or {}).items():
            restored = tokenizer_from_state(tok_state)
            current = self.tokenizers.get(name)
            if current is not None and restored.get_vocab() != current.get_vocab():
                print_log(f'The {name} tokenizer in the checkpoint differs from the one built '
                          'from the config; using the checkpoint\'s.', logger='current')
            self.tokenizers[name] = restored

    def save_vocabulary(self, out_dir: str) -> None:
        """Write each tokenizer to ``out_dir/tokenizer_<modality>/`` (HF format)."""
        import os.path as osp
        for name, tok in self.tokenizers.items():
            tok.save_pretrained(osp.join(out_dir, f'tokenizer_{name}'))
