"""Text tokenizers. Every builder returns a Hugging Face fast tokenizer.

Two sources, one result type, so the rest of the library never cares which:

* ``HFTokenizer``: a pretrained tokenizer from a local folder (never the hub).
* ``WordLevelTokenizer``: a word-level vocabulary for data without a pretrained
  one, built with the ``tokenizers`` library (normaliser, pre-tokeniser,
  special tokens) from an ordered word list (``vocab=``) or by counting a
  corpus (``texts=``), ordered deterministically by (-count, word) so the
  same corpus always gives the same ids.

A config normally gives neither ``vocab`` nor ``texts``: the vocabulary is
data, and :func:`mmfusion.apis.resolve_vocabularies` fills it from the
training set (or from a checkpoint) before the model is built. The tokenizer
is serialised into checkpoints by the data preprocessor (see
``MultiModalDataPreprocessor.get_extra_state``), so test and inference use
exactly the training vocabulary.
"""
import os.path as osp
from collections import Counter
from typing import Iterable, List, Optional, Sequence, Union

from mmfusion.errors import ConfigError
from mmfusion.registry import TOKENIZERS

SPECIAL_TOKENS = dict(pad_token='[PAD]', unk_token='[UNK]', cls_token='[CLS]',
                      sep_token='[SEP]')

# Arguments of WordLevelTokenizer. A config that swaps an inherited
# WordLevelTokenizer for an HFTokenizer without ``_delete_=True`` would pass
# them on to AutoTokenizer.from_pretrained, which accepts (and ignores) any
# keyword; catch them by name instead.
WORD_LEVEL_ARGS = ('texts', 'vocab', 'dataset', 'text_key', 'max_vocab_size', 'min_count',
                   'lowercase')


def tokenizer_state(tokenizer) -> dict:
    """Plain-data state of a fast tokenizer (safe to store in a checkpoint)."""
    return dict(backend=tokenizer.backend_tokenizer.to_str(),
                special_tokens={k: str(v) for k, v in tokenizer.special_tokens_map.items()
                                if isinstance(v, str)},
                model_max_length=int(min(tokenizer.model_max_length, 1 << 30)))


def tokenizer_from_state(state: dict):
    """Rebuild the fast tokenizer saved by :func:`tokenizer_state`."""
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast(tokenizer_object=Tokenizer.from_str(state['backend']),
                                   model_max_length=state['model_max_length'],
                                   **state['special_tokens'])


def words_of_state(state: dict) -> List[str]:
    """The ordinary words (no special tokens) of a saved word-level tokenizer, in id order.

    ``WordLevelTokenizer(vocab=words_of_state(s))`` rebuilds the same ids.
    """
    import json

    backend = json.loads(state['backend'])
    vocab = backend.get('model', {}).get('vocab')
    if backend.get('model', {}).get('type') != 'WordLevel' or not isinstance(vocab, dict):
        raise ConfigError('the saved tokenizer is not a word-level one, so its words cannot '
                          'fill a WordLevelTokenizer config')
    specials = set(SPECIAL_TOKENS.values())
    return [w for w, _ in sorted(vocab.items(), key=lambda kv: kv[1]) if w not in specials]


@TOKENIZERS.register_module()
def HFTokenizer(name_or_path: str, **kwargs):
    """A pretrained fast tokenizer from a local folder (``AutoTokenizer``)."""
    from transformers import AutoTokenizer

    stray = [key for key in kwargs if key in WORD_LEVEL_ARGS]
    if stray:
        raise ConfigError(
            f'HFTokenizer got {stray}, arguments of WordLevelTokenizer: they were probably '
            'inherited from a base config. Replace the tokenizer with '
            "dict(_delete_=True, type='HFTokenizer', name_or_path=...)")
    if not osp.isdir(name_or_path):
        raise FileNotFoundError(
            f'HFTokenizer: {name_or_path!r} is not a local folder. mmfusion never '
            'downloads: pass the folder holding tokenizer.json / vocab.txt.')
    return AutoTokenizer.from_pretrained(name_or_path, local_files_only=True,
                                         use_fast=True, **kwargs)


def count_words(texts: Iterable[str], max_vocab_size: int = 1000, min_count: int = 1,
                lowercase: bool = True) -> List[str]:
    """The word list a :func:`WordLevelTokenizer` learns from a corpus.

    Words are normalised (NFKC, optionally lower-cased) and split as the
    tokenizer will split them, counted, and sorted by (-count, word); words
    seen fewer than ``min_count`` times are left out, and the list is cut so
    that it plus the 4 special tokens has at most ``max_vocab_size`` entries.
    """
    normalizer, pre_tokenizer = _normalizer(lowercase), _pre_tokenizer()
    counts: Counter = Counter()
    for text in texts:
        if not isinstance(text, str):
            raise ConfigError(f'WordLevelTokenizer: the corpus holds a {type(text).__name__}, '
                              f'not a string: {text!r}')
        normed = normalizer.normalize_str(text)
        counts.update(word for word, _ in pre_tokenizer.pre_tokenize_str(normed))
    specials = set(SPECIAL_TOKENS.values())
    words = [w for w, c in sorted(counts.items(), key=lambda wc: (-wc[1], wc[0]))
             if c >= min_count and w not in specials]
    return words[:max(max_vocab_size - len(SPECIAL_TOKENS), 0)]


def _normalizer(lowercase: bool):
    from tokenizers import normalizers

    return normalizers.Sequence([normalizers.NFKC()]
                                + ([normalizers.Lowercase()] if lowercase else []))


def _pre_tokenizer():
    from tokenizers import pre_tokenizers

    return pre_tokenizers.Whitespace()


@TOKENIZERS.register_module()
def WordLevelTokenizer(vocab: Optional[Sequence[str]] = None,
                       texts: Optional[Iterable[str]] = None,
                       text_key: Optional[str] = None,
                       max_vocab_size: int = 1000,
                       min_count: int = 1,
                       lowercase: bool = True,
                       dataset: Optional[dict] = None):
    """A word-level fast tokenizer over a given word list or one learnt from ``texts``.

    Args:
        vocab: the words, in id order after the 4 special tokens
            (``[PAD] [UNK] [CLS] [SEP]``). Filled in from the training set by
            :func:`mmfusion.apis.resolve_vocabularies` when a config gives
            neither ``vocab`` nor ``texts``.
        texts: a corpus to learn the words from (:func:`count_words`).
        text_key: which sample field holds the text, for the resolver; by
            default the field that ``PackMultiModalInputs`` packs as this
            modality.
        max_vocab_size: total size including the 4 special tokens; the text
            encoder's ``vocab_size`` must be at least this.
        min_count: words seen fewer times become ``[UNK]``.
        lowercase: lower-case before looking words up.
        dataset: a dataset config to learn the words from instead of the
            training set; read by the resolver, never by this function.

    Returns:
        ``transformers.PreTrainedTokenizerFast`` that adds ``[CLS]`` ... ``[SEP]``.
    """
    from tokenizers import Tokenizer, processors
    from tokenizers.models import WordLevel
    from transformers import PreTrainedTokenizerFast

    if vocab is None and texts is None:
        raise ConfigError(
            'WordLevelTokenizer has no vocabulary (neither vocab=[...] nor texts=[...]). '
            'mmfusion\'s tools fill it from the training set; in your own code call '
            'mmfusion.apis.resolve_vocabularies(cfg) before building the model'
            + (' (dataset= is read by that resolver)' if dataset is not None else ''))
    if vocab is None:
        vocab = count_words(texts, max_vocab_size, min_count, lowercase)
    specials = list(SPECIAL_TOKENS.values())
    ids = {tok: i for i, tok in enumerate(specials + [w for w in vocab if w not in specials])}

    backend = Tokenizer(WordLevel(vocab=ids, unk_token=SPECIAL_TOKENS['unk_token']))
    backend.normalizer = _normalizer(lowercase)
    backend.pre_tokenizer = _pre_tokenizer()
    backend.post_processor = processors.TemplateProcessing(
        single='[CLS] $A [SEP]', pair='[CLS] $A [SEP] $B [SEP]',
        special_tokens=[('[CLS]', ids['[CLS]']), ('[SEP]', ids['[SEP]'])])
    return PreTrainedTokenizerFast(tokenizer_object=backend, **SPECIAL_TOKENS)


def build_tokenizer(cfg: Union[dict, object]):
    """Build a tokenizer from a config dict; pass a built tokenizer through."""
    if isinstance(cfg, dict):
        return TOKENIZERS.build(cfg)
    return cfg
