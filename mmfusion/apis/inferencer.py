"""Predictions from raw inputs: an image (path or array) and a question."""
from typing import Dict, List, Optional, Sequence, Union

import numpy as np
import torch
from mmengine.config import Config
from mmengine.dataset import Compose, pseudo_collate
from mmengine.registry import init_default_scope

from mmfusion.errors import ConfigError
from mmfusion.utils import check_modalities, explain_config_errors, register_all_modules

from .model import init_model

InputType = Dict[str, Union[str, np.ndarray]]


class MultiModalInferencer:
    """Run a trained model on raw inputs.

    Args:
        config: a config file or a loaded :class:`Config`.
        checkpoint: weights to load (weights-only, no code runs on load).
        device: ``'cpu'``, ``'cuda'``, ...; default CUDA when available.

    Call it with one input or a list, each a dict keyed by modality name as in
    the config's ``PackMultiModalInputs(inputs=...)``, e.g.
    ``{'image': 'scene.png' or HxWx3 BGR uint8 array, 'text': 'how many circles are there?'}``,
    or ``{'image': ..., 'audio': 'clip.wav'}``: whatever modalities the model takes.
    Returns one dict per input: ``pred_answer``, ``topk_answers``,
    ``topk_scores`` (VQA) or ``pred_label``, ``pred_score`` (classification).
    """

    def __init__(self, config: Union[str, Config], checkpoint: Optional[str] = None,
                 device: Optional[str] = None) -> None:
        register_all_modules(init_default_scope=False)
        init_default_scope('mmfusion')
        cfg = Config.fromfile(config) if isinstance(config, str) else config
        self.device = device or ('cuda' if torch.cuda.is_available() else 'cpu')
        check_modalities(cfg, ('test_dataloader',))
        self.model = init_model(cfg, checkpoint, self.device)
        self.cfg = self.model.cfg

        pipeline = list(self.cfg.test_dataloader.dataset.pipeline)
        pack = [t for t in pipeline if t['type'] == 'PackMultiModalInputs']
        if not pack:
            raise ConfigError('test_dataloader.dataset.pipeline has no PackMultiModalInputs '
                              'step; the inferencer needs it to know which inputs the model '
                              'takes')
        self.input_keys = dict(pack[-1].get('inputs') or {})
        # an image given as an array skips the file-loading step
        with explain_config_errors(self.cfg):
            self.pipeline_from_path = Compose(pipeline)
            self.pipeline_from_array = Compose(
                [t for t in pipeline if t['type'] != 'LoadImageFromFile'])

    def _results(self, item: InputType) -> dict:
        unknown = set(item) - set(self.input_keys)
        if unknown:
            raise KeyError(f'unknown input modalities {sorted(unknown)}; this model takes '
                           f'{sorted(self.input_keys)}')
        results: dict = {}
        from_path = True
        for modality, value in item.items():
            key = self.input_keys[modality]
            if key == 'img' and isinstance(value, str):
                results['img_path'] = value
            elif key == 'audio' and isinstance(value, str):
                results['audio_path'] = value  # read by LoadAudioFromFile
            elif key == 'img':
                value = np.asarray(value)
                results.update(img=value, img_shape=value.shape[:2], ori_shape=value.shape[:2])
                from_path = False
            else:
                results[key] = value
        pipeline = self.pipeline_from_path if from_path else self.pipeline_from_array
        return pipeline(results)

    @torch.no_grad()
    def __call__(self, inputs: Union[InputType, Sequence[InputType]],
                 batch_size: int = 16) -> List[dict]:
        items = [inputs] if isinstance(inputs, dict) else list(inputs)
        outputs: List[dict] = []
        for start in range(0, len(items), batch_size):
            batch = pseudo_collate([self._results(x) for x in items[start:start + batch_size]])
            for sample in self.model.test_step(batch):
                out = {}
                if 'pred_answer' in sample:
                    out.update(pred_answer=sample.pred_answer,
                               topk_answers=sample.pred_topk_answers,
                               topk_scores=sample.pred_topk_scores.cpu().tolist())
                elif 'pred_label' in sample:
                    out.update(pred_label=int(sample.pred_label[0]),
                               pred_score=sample.pred_score.cpu().tolist())
                outputs.append(out)
        return outputs
