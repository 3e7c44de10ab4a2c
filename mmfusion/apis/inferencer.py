"""Predictions from raw inputs for every task: images, depth maps, sounds,
text and vectors in (paths or arrays), answers, labels, boxes or masks out."""
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from mmengine.config import Config
from mmengine.dataset import pseudo_collate

from mmfusion.datasets.transforms.modality import MISSING_KEY
from mmfusion.errors import ConfigError, DataError
from mmfusion.utils import explain_config_errors

from .model import init_model

InputType = Dict[str, Any]

# transforms that read ground truth, which raw inputs do not have
ANNOTATION_TRANSFORMS = ('LoadAnnotations', )


def _type_name(step: Any) -> str:
    value = step.get('type') if isinstance(step, dict) else None
    name = value if isinstance(value, str) else getattr(value, '__name__', '')
    return name.rsplit('.', 1)[-1]


def inference_pipeline(cfg: Config) -> List[dict]:
    """The test pipeline without its annotation loading.

    Read from ``test_dataloader.dataset.pipeline`` (else ``test_pipeline``);
    every :data:`ANNOTATION_TRANSFORMS` step is dropped, the rest kept in order.

    Raises:
        ConfigError: there is no test pipeline, or it has no
            ``PackMultiModalInputs`` step.
    """
    dataset = ((cfg.get('test_dataloader') or {}).get('dataset') or {})
    pipeline = dataset.get('pipeline') if isinstance(dataset, dict) else None
    if pipeline is None:
        pipeline = cfg.get('test_pipeline')
    if not pipeline:
        raise ConfigError('the config has neither test_dataloader.dataset.pipeline nor '
                          'test_pipeline; the inferencer takes its preprocessing from there')
    steps = [dict(step) for step in pipeline if _type_name(step) not in ANNOTATION_TRANSFORMS]
    if not any(_type_name(step) == 'PackMultiModalInputs' for step in steps):
        raise ConfigError('test_dataloader.dataset.pipeline has no PackMultiModalInputs '
                          'step; the inferencer needs it to know which inputs the model '
                          'takes')
    return steps


class _Loader:
    """Where a loading transform reads its path and writes its array."""

    def __init__(self, index: int, path_key: str, out_key: str, kind: str,
                 transform: Any) -> None:
        self.index = index
        self.path_key = path_key
        self.out_key = out_key
        self.kind = kind  # 'image', 'map' (one-channel aligned image) or 'audio'
        self.transform = transform


class MultiModalInferencer:
    """Run a trained model of any task on raw inputs.

    Args:
        config: a config file or a loaded :class:`Config`.
        checkpoint: weights to load (weights-only, no code runs on load); its
            stored vocabularies and class names are used, so no dataset is read.
        device: ``'cpu'``, ``'cuda'``, ...; default CUDA when available.
        batch_size: how many inputs :meth:`__call__` runs through the model at once.

    Call it with one input or a list, each a dict keyed by modality name as in
    the test pipeline's ``PackMultiModalInputs(inputs=...)``:

    * ``image``: a file path or an (H, W, 3) BGR uint8 array (as OpenCV reads
      it; (H, W) grey is repeated to 3 channels);
    * ``depth`` (and other one-channel aligned maps): a file path (a uint16
      PNG, scaled as the pipeline's ``LoadDepthFromFile`` says) or an (H, W)
      or (H, W, 1) float array already in the model's unit (metres);
    * ``audio``: a file path (WAV), a mono waveform (T,) float array at the
      pipeline's sample rate, or ``(waveform, sample_rate)`` (resampled);
    * ``text``: a string (a question, a caption, a referring expression);
    * ``vector``: a sequence or 1-D array of floats.

    Returns one dict per input with plain Python values, by task:

    * VQA: ``pred_answer``, ``topk_answers``, ``topk_scores``;
    * classification: ``pred_label`` (int), ``pred_class`` and ``pred_score``
      (list of C floats); multi-label: ``pred_labels`` and ``pred_classes``
      (lists, possibly empty) and ``pred_score``;
    * detection (also referring): ``bboxes`` (N x 4 ``[x1, y1, x2, y2]`` in
      the input image's pixels), ``scores``, ``labels``, ``label_names``;
    * segmentation (also referring): ``sem_seg`` (H, W) int64 array of class
      indices at the input's size, ``classes`` (names, index order). For a
      two-class referring model class 1 is the referred object;
    * retrieval (a contrastive :class:`~mmfusion.models.DualEncoder`): an
      input may hold any of the towers' modalities (a text query, a gallery
      image, or both); ``embeddings``: modality -> the L2-normalised (D,)
      embedding as a list. :meth:`retrieve` ranks a gallery for queries.
    """

    def __init__(self, config: Union[str, Config], checkpoint: Optional[str] = None,
                 device: Optional[str] = None, batch_size: int = 16) -> None:
        from mmengine.registry import init_default_scope

        from mmfusion.utils import check_modalities

        cfg = Config.fromfile(config) if isinstance(config, str) else config
        self.device = device or ('cuda' if torch.cuda.is_available() else 'cpu')
        if batch_size < 1:
            raise ConfigError(f'MultiModalInferencer: batch_size must be >= 1, got {batch_size}')
        self.batch_size = int(batch_size)
        check_modalities(cfg, ('test_dataloader', ))
        self.model = init_model(cfg, checkpoint, self.device)
        self.cfg = self.model.cfg
        init_default_scope('mmfusion')
        self.dataset_meta: dict = dict(getattr(self.model, 'dataset_meta', None) or {})
        if not self.dataset_meta.get('classes'):
            classes = ((self.cfg.get('test_dataloader') or {}).get('dataset') or {}).get(
                'classes') if isinstance(self.cfg.get('test_dataloader'), dict) else None
            if classes:
                self.dataset_meta['classes'] = tuple(classes)
        self.classes: Optional[Tuple[str, ...]] = (
            tuple(self.dataset_meta['classes']) if self.dataset_meta.get('classes') else None)

        steps = inference_pipeline(self.cfg)
        pack = [s for s in steps if _type_name(s) == 'PackMultiModalInputs'][-1]
        from mmfusion.datasets.transforms.formatting import DEFAULT_INPUT_KEYS
        self.input_keys: Dict[str, str] = {
            m: k for m, k in dict(pack.get('inputs') or DEFAULT_INPUT_KEYS).items()
            if k is not None}
        from mmfusion.registry import TRANSFORMS
        with explain_config_errors(self.cfg):
            self.transforms = [TRANSFORMS.build(s) for s in steps]
        self._loaders = self._find_loaders()
        self.task = self._task()

    # ------------------------------------------------------------ set-up
    def _find_loaders(self) -> Dict[str, _Loader]:
        """Results key written by each file-loading step -> how to bypass it."""
        from mmcv.transforms import LoadImageFromFile as MMCVLoadImageFromFile

        from mmfusion.datasets.transforms.audio import LoadAudioFromFile
        from mmfusion.datasets.transforms.loading import LoadDepthFromFile, LoadImageFromFile

        loaders: Dict[str, _Loader] = {}
        for i, t in enumerate(self.transforms):
            if isinstance(t, LoadDepthFromFile):
                loaders[t.key] = _Loader(i, f'{t.key}_path', t.key, 'map', t)
            elif isinstance(t, (LoadImageFromFile, MMCVLoadImageFromFile)):
                loaders['img'] = _Loader(i, 'img_path', 'img', 'image', t)
            elif isinstance(t, LoadAudioFromFile):
                loaders[t.out_key] = _Loader(i, t.key, t.out_key, 'audio', t)
        return loaders

    def _task(self) -> str:
        from mmfusion.models.architectures.dual_encoder import DualEncoder
        if isinstance(self.model, DualEncoder):
            return 'retrieval'
        head = getattr(self.model, 'head', None)
        name = type(head).__name__ if head is not None else ''
        if 'VQA' in name:
            return 'vqa'
        if 'MultiLabel' in name:
            return 'multi_label'
        if 'Seg' in name:
            return 'segmentation'
        if hasattr(head, 'predict_by_feat') or 'Det' in name or 'FCOS' in name:
            return 'detection'
        return 'classification'

    @property
    def modalities(self) -> List[str]:
        """The modalities the model takes, in the pipeline's order."""
        return list(self.input_keys)

    def metadata(self) -> dict:
        """What the model takes and gives: task, modalities, classes or answers."""
        out: dict = dict(task=self.task, modalities=self.modalities,
                         inputs={m: self._input_kind(m) for m in self.modalities})
        if self.classes is not None:
            out['classes'] = list(self.classes)
        answers = getattr(getattr(self.model, 'head', None), 'answers', None)
        if answers is not None:
            out['answers'] = list(answers)
        if self.task == 'retrieval':
            out['embed_dim'] = int(self.model.embed_dim)
        return out

    def _input_kind(self, modality: str) -> str:
        loader = self._loaders.get(self.input_keys[modality])
        if loader is not None:
            return loader.kind
        return 'vector' if modality == 'vector' else 'text'

    # ---------------------------------------------------------- one input
    def _array_input(self, modality: str, loader: _Loader, value: Any) -> dict:
        """The results the bypassed loader would have written for an array."""
        if loader.kind == 'image':
            img = np.asarray(value)
            if img.ndim == 2:
                img = np.repeat(img[..., None], 3, axis=2)
            if img.ndim != 3 or img.shape[2] != 3 or img.size == 0:
                raise DataError(f'input {modality!r}: expected an (H, W, 3) BGR array (or '
                                f'(H, W) grey), got shape {img.shape}')
            if img.dtype != np.uint8 and not getattr(loader.transform, 'to_float32', False):
                img = np.clip(img, 0, 255).astype(np.uint8)
            return dict(img=img, img_shape=img.shape[:2], ori_shape=img.shape[:2])
        if loader.kind == 'map':
            arr = np.asarray(value, dtype=np.float32)
            if arr.ndim == 3 and arr.shape[2] == 1:
                arr = arr[..., 0]
            if arr.ndim != 2 or arr.size == 0:
                raise DataError(f'input {modality!r}: expected an (H, W) or (H, W, 1) array, '
                                f'got shape {arr.shape}')
            return {loader.out_key: arr[..., None]}
        # audio: a waveform at the pipeline's rate, or (waveform, rate)
        rate = getattr(loader.transform, 'sample_rate', None)
        if isinstance(value, tuple) and len(value) == 2 and np.isscalar(value[1]):
            wav, given_rate = np.asarray(value[0], dtype=np.float32), int(value[1])
            if rate is not None and given_rate != rate:
                from mmfusion.datasets.transforms.audio import resample_audio
                wav = resample_audio(wav.reshape(-1, wav.shape[-1]), given_rate, rate)
            rate = rate or given_rate
        else:
            wav = np.asarray(value, dtype=np.float32)
        if rate is None:
            raise DataError(f'input {modality!r}: the pipeline does not fix a sample rate; give '
                            '(waveform, sample_rate)')
        if wav.ndim == 2 and getattr(loader.transform, 'mono', True):
            wav = wav.mean(axis=0, dtype=np.float32)
        if wav.ndim not in (1, 2) or wav.shape[-1] == 0 or not np.isfinite(wav).all():
            raise DataError(f'input {modality!r}: expected a finite waveform (T,), got shape '
                            f'{wav.shape}')
        return {loader.out_key: np.ascontiguousarray(wav), 'sample_rate': rate}

    def check_input(self, item: InputType) -> None:
        """Raise :class:`DataError` naming the field for an unknown or missing modality."""
        if not isinstance(item, dict):
            raise DataError(f'each input must be a dict keyed by modality '
                            f'({", ".join(self.modalities)}), got {type(item).__name__}')
        unknown = sorted(set(item) - set(self.input_keys))
        if unknown:
            raise DataError(f'unknown input {", ".join(map(repr, unknown))}; this model takes '
                            f'{", ".join(self.modalities)}')
        missing = [m for m in self.input_keys if item.get(m) is None]
        if self.task == 'retrieval' and len(missing) < len(self.input_keys):
            return  # each tower embeds what it is given
        if missing:
            raise DataError(f'missing input {", ".join(map(repr, missing))}; this model takes '
                            f'{", ".join(self.modalities)}')

    def preprocess(self, item: InputType) -> dict:
        """One input -> the packed ``dict(inputs=..., data_samples=...)``."""
        self.check_input(item)
        results: dict = {}
        absent = [m for m in self.input_keys if item.get(m) is None]
        if absent:  # retrieval: packed as missing, never read
            results[MISSING_KEY] = absent
        skip = set()
        for modality, value in item.items():
            if value is None:
                continue
            key = self.input_keys[modality]
            loader = self._loaders.get(key)
            if loader is None:
                if isinstance(value, np.ndarray):
                    value = value.astype(np.float32).reshape(-1).tolist()
                results[key] = value
            elif isinstance(value, str):
                results[loader.path_key] = value
            else:
                results.update(self._array_input(modality, loader, value))
                skip.add(loader.index)
        # the transforms run directly rather than through a Compose: one
        # object per input, whichever loaders an input bypasses
        for i, transform in enumerate(self.transforms):
            if i in skip:
                continue
            results = transform(results)
            if results is None:
                raise DataError(f'the pipeline step {type(transform).__name__} dropped the '
                                f'input {sorted(item)}')
        return results

    # -------------------------------------------------------------- batch
    def forward(self, packed: Sequence[dict]) -> list:
        """Packed inputs -> data samples with predictions (one model call)."""
        batch = pseudo_collate(list(packed))
        with torch.inference_mode():
            return self.model.test_step(batch)

    def postprocess(self, sample: Any) -> dict:
        """A predicted data sample -> a dict of plain values (see the class docstring)."""
        names = self.classes
        if 'pred_answer' in sample:
            return dict(pred_answer=sample.pred_answer,
                        topk_answers=list(sample.pred_topk_answers),
                        topk_scores=sample.pred_topk_scores.float().cpu().tolist())
        if 'pred_instances' in sample:
            inst = sample.pred_instances
            labels = inst.labels.cpu().tolist()
            return dict(bboxes=inst.bboxes.float().cpu().tolist(),
                        scores=inst.scores.float().cpu().tolist(), labels=labels,
                        label_names=[names[i] if names and i < len(names) else str(i)
                                     for i in labels])
        if 'pred_sem_seg' in sample:
            out = dict(sem_seg=sample.pred_sem_seg.data[0].cpu().numpy().astype(np.int64))
            if names:
                out['classes'] = list(names)
            return out
        embeds = {m: sample.get(f'{m}_embeds') for m in self.input_keys}
        if any(e is not None for e in embeds.values()):
            return dict(embeddings={m: e[0].float().cpu().tolist()
                                    for m, e in embeds.items() if e is not None})
        if 'pred_label' in sample:
            score = sample.pred_score.float().cpu().tolist()
            labels = sample.pred_label.cpu().tolist()
            if self.task == 'multi_label':
                return dict(pred_labels=labels, pred_score=score,
                            pred_classes=[names[i] for i in labels] if names else labels)
            label = int(labels[0])
            return dict(pred_label=label, pred_score=score,
                        pred_class=names[label] if names and label < len(names) else label)
        raise DataError(f'the model returned no prediction field the inferencer knows '
                        f'(got {sorted(sample.keys())})')

    def __call__(self, inputs: Union[InputType, Sequence[InputType]],
                 batch_size: Optional[int] = None,
                 return_datasamples: bool = False) -> List[Any]:
        """Predict for one input (a dict) or a list of them.

        Args:
            inputs: see the class docstring.
            batch_size: inputs per model call; default the constructor's.
            return_datasamples: return the predicted data samples (for
                drawing) instead of plain dicts.

        Returns:
            One dict (or data sample) per input, in order.
        """
        items = [inputs] if isinstance(inputs, dict) else list(inputs)
        size = batch_size or self.batch_size
        outputs: List[Any] = []
        for start in range(0, len(items), size):
            packed = [self.preprocess(x) for x in items[start:start + size]]
            samples = self.forward(packed)
            outputs.extend(samples if return_datasamples else
                           [self.postprocess(s) for s in samples])
        return outputs

    def retrieve(self, queries: Union[InputType, Sequence[InputType]],
                 gallery: Sequence[InputType], topk: int = 5,
                 batch_size: Optional[int] = None) -> List[dict]:
        """Rank ``gallery`` for each query by cosine similarity (retrieval models).

        Args:
            queries: one input or a list, each holding one modality, e.g.
                ``{'text': 'two red circles'}``.
            gallery: the candidates, each holding one modality other than the
                query's, e.g. ``[{'image': 'a.png'}, {'image': 'b.png'}]``.
            topk: how many candidates to return per query.
            batch_size: inputs per model call; default the constructor's.

        Returns:
            Per query ``dict(indices=[...], scores=[...])``: gallery positions,
            best first, and their cosine similarities.
        """
        if self.task != 'retrieval':
            raise ConfigError(f'retrieve() needs a retrieval model (DualEncoder); this model '
                              f'does {self.task}')
        queries = [queries] if isinstance(queries, dict) else list(queries)
        gallery = list(gallery)
        if not queries or not gallery:
            raise DataError('retrieve() needs at least one query and one gallery item')
        if topk < 1:
            raise DataError(f'retrieve(): topk must be >= 1, got {topk}')

        def one_modality(items: List[InputType], role: str) -> List[torch.Tensor]:
            out = []
            for i, (item, result) in enumerate(zip(items, self(items, batch_size))):
                given = [m for m, v in item.items() if v is not None]
                if len(given) != 1:
                    raise DataError(f'retrieve(): {role} {i} must hold exactly one modality, '
                                    f'got {given}')
                out.append((given[0], torch.tensor(result['embeddings'][given[0]])))
            return out

        query_embeds = one_modality(queries, 'query')
        gallery_embeds = one_modality(gallery, 'gallery item')
        same = sorted({m for m, _ in query_embeds} & {m for m, _ in gallery_embeds})
        if same:
            raise DataError(f'retrieve(): queries and gallery share the modality {same[0]!r}; '
                            'rank one modality against another (text -> image ...)')
        sims = torch.stack([e for _, e in query_embeds]) @ torch.stack(
            [e for _, e in gallery_embeds]).T
        scores, indices = sims.topk(min(topk, len(gallery)), dim=1)
        return [dict(indices=i.tolist(), scores=s.tolist()) for i, s in zip(indices, scores)]


__all__ = ['ANNOTATION_TRANSFORMS', 'MultiModalInferencer', 'inference_pipeline']
