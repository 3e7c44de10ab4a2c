"""Vocabularies are data: fill a model config's word and answer lists before the model is built.

A VQA model has two vocabularies that come from the training data, not from
the architecture: the words of a :func:`WordLevelTokenizer` and the answer
list of a :class:`VQAHead`. A config leaves them open::

    text=dict(tokenizer=dict(type='WordLevelTokenizer', max_vocab_size=128))
    head=dict(type='VQAHead')            # answer_vocab=None: the training set's

and :func:`resolve_vocabularies` fills them in, as plain lists in the config,
from

* the checkpoint, when one is given (test, inference, export): the lists it
  was trained with travel in its state dict, so no training data is needed;
* otherwise the training set ``cfg.train_dataloader.dataset``, loaded once;
  the tools hand that same dataset object to the runner
  (:func:`use_built_train_set`), so training reads its annotations once.

A user's own dataset is therefore named once, in the data loaders. A slot can
still name its own source: ``answer_vocab=dict(dataset=..., min_count=2,
max_size=3000)``, ``WordLevelTokenizer(dataset=...)``, or a fixed list/file.
The resolved lists are what the runner writes into the work dir's config, so
that config is self-contained. :class:`~mmfusion.engine.VocabularyCheckHook`
then checks at start-up that a fixed vocabulary fits the training data.

This is the place for vocabularies because it is the one layer that may
import both datasets and models (as mmpretrain keeps ``classes`` in the
dataset's metainfo and checks the head against them with a hook).
"""
from dataclasses import dataclass
from typing import Any, Iterator, List, Optional, Tuple

from mmengine.config import Config
from mmengine.logging import print_log

from mmfusion.errors import ConfigError
from mmfusion.registry import DATASETS

WORD_LEVEL = 'WordLevelTokenizer'
ANSWER_HEADS = ('VQAHead',)


@dataclass
class VocabularySlot:
    """One open vocabulary in a model config.

    ``kind`` is ``'words'`` (a word-level tokenizer, ``node`` its config) or
    ``'answers'`` (a head, ``node`` its config); ``path`` is the config key
    (``model.head``); ``module`` the state-dict prefix of the module that
    stores the vocabulary (``head``, ``data_preprocessor``); ``modality`` the
    text modality a tokenizer serves.
    """
    kind: str
    node: dict
    path: str
    module: str
    modality: Optional[str] = None

    @property
    def source(self) -> Optional[dict]:
        """A dataset config that this slot names instead of the training set."""
        spec = self.node.get('answer_vocab') if self.kind == 'answers' else self.node
        return spec.get('dataset') if isinstance(spec, dict) else None


def _type_name(node: dict) -> str:
    value = node.get('type', '')
    return value.split('.')[-1] if isinstance(value, str) else getattr(value, '__name__', '')


def _walk(node: Any, path: Tuple[str, ...]) -> Iterator[Tuple[Tuple[str, ...], dict]]:
    if isinstance(node, dict):
        yield path, node
        for key, value in node.items():
            yield from _walk(value, path + (str(key),))
    elif isinstance(node, (list, tuple)):
        for i, value in enumerate(node):
            yield from _walk(value, path + (str(i),))


def find_vocabulary_slots(model_cfg: dict) -> List[VocabularySlot]:
    """The vocabularies a model config leaves to the data."""
    slots = []
    for path, node in _walk(model_cfg, ()):
        name = _type_name(node)
        if name == WORD_LEVEL and node.get('vocab') is None and node.get('texts') is None:
            # model.data_preprocessor.<modality>.tokenizer
            if len(path) < 3 or path[-1] != 'tokenizer':
                raise ConfigError(f'a WordLevelTokenizer at model.{".".join(path)} is not '
                                  'the tokenizer of a data preprocessor modality')
            slots.append(VocabularySlot('words', node, 'model.' + '.'.join(path),
                                        '.'.join(path[:-2]), modality=path[-2]))
        elif name in ANSWER_HEADS:
            spec = node.get('answer_vocab')
            if spec is None or isinstance(spec, dict):
                slots.append(VocabularySlot('answers', node, 'model.' + '.'.join(path),
                                            '.'.join(path)))
    return slots


def resolve_vocabularies(cfg: Config, checkpoint: Optional[str] = None):
    """Fill every open vocabulary of ``cfg.model`` in place.

    Args:
        cfg: a loaded config (``model`` and, unless a checkpoint has every
            vocabulary, ``train_dataloader``).
        checkpoint: a checkpoint trained from this config; its stored
            vocabularies are used, and the training set is not read.

    Returns:
        The training set, when it had to be built (pass it to
        :func:`use_built_train_set` so the runner does not load it again),
        else None.
    """
    slots = find_vocabulary_slots(cfg.get('model') or {})
    if not slots:
        return None
    if checkpoint is not None:
        slots = _fill_from_checkpoint(slots, checkpoint)
        if not slots:
            return None
    train_set = None
    for slot in slots:
        if slot.source is not None:
            dataset = _build_dataset(dict(slot.source, pipeline=[]), f'{slot.path} dataset')
        else:
            if train_set is None:
                train_set = _build_train_set(cfg)
            dataset = train_set
        _fill_from_dataset(slot, dataset, cfg)
    return train_set


def use_built_train_set(runner, train_set) -> None:
    """Give ``runner`` the training set :func:`resolve_vocabularies` built.

    MMEngine builds a data loader from its config dict, and accepts a built
    dataset in place of the ``dataset`` entry; the runner keeps that dict
    until ``train()`` builds the loader, so swapping the entry before then
    spares reading the annotations twice (MMEngine deep-copies the loader
    config, dataset included: a memory copy of the parsed samples).
    """
    if train_set is None:
        return
    loader_cfg = getattr(runner, '_train_dataloader', None)
    if isinstance(loader_cfg, dict):
        loader_cfg['dataset'] = train_set


# ---------------------------------------------------------------------------
# Sources


def _build_dataset(dataset_cfg: dict, what: str):
    if not isinstance(dataset_cfg, dict) or 'type' not in dataset_cfg:
        raise ConfigError(f'{what} must be a dataset config dict with a type, got '
                          f'{dataset_cfg!r}')
    dataset = DATASETS.build(dataset_cfg)
    if hasattr(dataset, 'full_init'):
        dataset.full_init()
    return dataset


def _build_train_set(cfg: Config):
    loader = cfg.get('train_dataloader')
    if not loader or 'dataset' not in loader:
        raise ConfigError('the model leaves a vocabulary to the training set, but the config '
                          'has no train_dataloader.dataset; give the vocabulary explicitly '
                          '(a list or a file) or test with a checkpoint that stores it')
    return _build_dataset(loader['dataset'], 'train_dataloader.dataset')


def _text_key(slot: VocabularySlot, cfg: Config) -> str:
    """The sample field that ``PackMultiModalInputs`` packs as the slot's modality."""
    if slot.node.get('text_key'):
        return slot.node['text_key']
    pipeline = ((cfg.get('train_dataloader') or {}).get('dataset') or {}).get('pipeline') or []
    for step in pipeline:
        if isinstance(step, dict) and _type_name(step) == 'PackMultiModalInputs':
            return (step.get('inputs') or {}).get(slot.modality, slot.modality)
    return slot.modality


def _fill_from_dataset(slot: VocabularySlot, dataset, cfg: Config) -> None:
    from mmfusion.evaluation.functional import build_answer_vocab
    from mmfusion.models.data_preprocessors.tokenizers import count_words

    infos = [dataset.get_data_info(i) for i in range(len(dataset))]
    where = f'{slot.path} (from {type(dataset).__name__} with {len(infos)} samples)'
    if slot.kind == 'answers':
        answers = [info.get('gt_answers') for info in infos]
        if not answers or any(a is None for a in answers):
            raise ConfigError(f'{where}: the answer vocabulary is built from the samples\' '
                              'gt_answers, and some samples have none (a split without '
                              'answers cannot be the training set)')
        spec = dict(slot.node.get('answer_vocab') or {})
        spec.pop('dataset', None)
        unknown = set(spec) - {'min_count', 'max_size'}
        if unknown:
            raise ConfigError(f'{slot.path}.answer_vocab: unknown keys {sorted(unknown)}; '
                              'expected dataset, min_count, max_size')
        slot.node['answer_vocab'] = build_answer_vocab(answers, **spec)
        if not slot.node['answer_vocab']:
            raise ConfigError(f'{where}: no answer is left for the vocabulary')
    else:
        key = _text_key(slot, cfg)
        missing = [i for i, info in enumerate(infos) if key not in info]
        if missing:
            fields = sorted(infos[missing[0]])
            raise ConfigError(f'{where}: sample {missing[0]} has no {key!r} field to learn '
                              f'the words from (fields: {fields}); set text_key')
        options = {k: slot.node[k] for k in ('max_vocab_size', 'min_count', 'lowercase')
                   if k in slot.node}
        slot.node['vocab'] = count_words((info[key] for info in infos), **options)
        slot.node.pop('dataset', None)
        slot.node.pop('text_key', None)


def _fill_from_checkpoint(slots: List[VocabularySlot], checkpoint: str) -> List[VocabularySlot]:
    """Fill what the checkpoint stores; return the slots it could not fill."""
    from mmfusion.engine.checkpoint import load_checkpoint_file
    from mmfusion.models.data_preprocessors.tokenizers import words_of_state
    from mmfusion.utils.extra_state import decode_extra_state

    saved = load_checkpoint_file(checkpoint, map_location='cpu')
    state = saved.get('state_dict', saved) if isinstance(saved, dict) else {}
    left = []
    for slot in slots:
        stored = decode_extra_state(state.get(f'{slot.module}._extra_state'))
        if slot.kind == 'answers' and isinstance(stored, dict) and stored.get('answers'):
            slot.node['answer_vocab'] = list(stored['answers'])
        elif (slot.kind == 'words' and isinstance(stored, dict)
              and isinstance(stored.get(slot.modality), dict)):
            slot.node['vocab'] = words_of_state(stored[slot.modality])
            slot.node.pop('dataset', None)
            slot.node.pop('text_key', None)
        else:
            print_log(f'checkpoint {checkpoint} stores no vocabulary for {slot.path}; '
                      'building it from the training data', logger='current', level=30)
            left.append(slot)
    return left


__all__ = ['VocabularySlot', 'find_vocabulary_slots', 'resolve_vocabularies',
           'use_built_train_set']
