"""Text augmentation: random word dropout, word swaps and typo-style character noise.

The operations of EDA (Wei and Zou, "EDA: Easy Data Augmentation Techniques
for Boosting Performance on Text Classification Tasks", EMNLP 2019: random
deletion and swap) and keyboard-typo noise (Belinkov and Bisk, "Synthetic and
Natural Noise Both Break Neural Machine Translation", ICLR 2018). Written
here because the libraries that have them (nlpaug, textattack) pull in large
dependencies for a few lines each.

Each transform edits the strings under ``keys`` of the pipeline results
(``text`` by default; ``question`` for VQA) and draws from NumPy's global
generator, as mmcv's transforms do, so a seeded run is reproducible.

A caution that the augmentations cannot check: an edit can change what the
label means (dropping "red" from "is there a red circle?" changes the
answer; swapping words of a caption can turn a match into a mismatch). Use
small probabilities, and prefer them for tasks whose label survives noise.
"""
import string
from typing import List, Sequence, Union

import numpy as np
from mmcv.transforms import BaseTransform

from mmfusion.errors import ConfigError
from mmfusion.registry import TRANSFORMS


class _TextTransform(BaseTransform):
    """Apply :meth:`augment` to every string in ``results[key]`` for each key.

    Args:
        keys: the results keys holding text.
        prob: per-sample probability of augmenting at all.
    """

    def __init__(self, keys: Union[str, Sequence[str]] = ('text', ), prob: float = 1.0) -> None:
        self.keys = (keys, ) if isinstance(keys, str) else tuple(keys)
        if not 0.0 <= prob <= 1.0:
            raise ConfigError(f'{type(self).__name__}.prob must be in [0, 1], got {prob}')
        self.prob = float(prob)

    def transform(self, results: dict) -> dict:
        missing = set(results.get('missing_modalities') or ())
        for key in self.keys:
            if key not in results:
                if missing:  # a sample whose text modality was removed
                    continue
                raise ConfigError(f'{type(self).__name__}: the sample has no {key!r} field '
                                  f'(it has {sorted(results)}); set keys=')
            value = results[key]
            if value is None or np.random.rand() >= self.prob:
                continue
            if isinstance(value, str):
                results[key] = self.augment(value)
            elif isinstance(value, (list, tuple)):
                results[key] = type(value)(self.augment(v) for v in value)
            else:
                raise ConfigError(f'{type(self).__name__}: {key!r} must hold a string, got '
                                  f'{type(value).__name__}')
        return results

    def augment(self, text: str) -> str:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f'{type(self).__name__}(keys={self.keys}, prob={self.prob})'


@TRANSFORMS.register_module()
class RandomWordDropout(_TextTransform):
    """Delete each word with probability ``drop_prob`` (EDA's random deletion).

    Args:
        drop_prob: per-word probability.
        min_words: never leave fewer words than this (nor more than were
            there); the kept words are the first ones drawn to stay.
        keys, prob: see the module docstring.

    Words are whitespace-separated; the result is joined with single spaces.
    """

    def __init__(self, drop_prob: float = 0.1, min_words: int = 1, **kwargs) -> None:
        super().__init__(**kwargs)
        if not 0.0 <= drop_prob <= 1.0:
            raise ConfigError(f'RandomWordDropout.drop_prob must be in [0, 1], got {drop_prob}')
        self.drop_prob = float(drop_prob)
        self.min_words = int(min_words)

    def augment(self, text: str) -> str:
        words = text.split()
        keep = np.random.rand(len(words)) >= self.drop_prob
        need = min(self.min_words, len(words)) - int(keep.sum())
        if need > 0:  # restore random dropped words up to min_words
            dropped = np.flatnonzero(~keep)
            keep[np.random.choice(dropped, need, replace=False)] = True
        return ' '.join(w for w, k in zip(words, keep) if k)


@TRANSFORMS.register_module()
class RandomWordSwap(_TextTransform):
    """Swap ``num_swaps`` random pairs of words (EDA's random swap).

    Args:
        num_swaps: pairs swapped per augmented string.
        keys, prob: see the module docstring.
    """

    def __init__(self, num_swaps: int = 1, **kwargs) -> None:
        super().__init__(**kwargs)
        if num_swaps < 0:
            raise ConfigError(f'RandomWordSwap.num_swaps must be >= 0, got {num_swaps}')
        self.num_swaps = int(num_swaps)

    def augment(self, text: str) -> str:
        words = text.split()
        if len(words) < 2:
            return text
        for _ in range(self.num_swaps):
            i, j = np.random.choice(len(words), 2, replace=False)
            words[i], words[j] = words[j], words[i]
        return ' '.join(words)


@TRANSFORMS.register_module()
class RandomCharNoise(_TextTransform):
    """Typo-style character noise: each letter is, with probability
    ``char_prob``, deleted, doubled, replaced by a random letter, or swapped
    with its right neighbour (one of ``ops``, drawn uniformly).

    Args:
        char_prob: per-letter probability of an edit.
        ops: among ``'delete'``, ``'insert'``, ``'substitute'``, ``'swap'``.
        keys, prob: see the module docstring.

    Only letters are edited; spaces, digits and punctuation stay, so the
    word count and numbers are unchanged.
    """

    OPS = ('delete', 'insert', 'substitute', 'swap')

    def __init__(self, char_prob: float = 0.05,
                 ops: Sequence[str] = ('delete', 'insert', 'substitute', 'swap'),
                 **kwargs) -> None:
        super().__init__(**kwargs)
        if not 0.0 <= char_prob <= 1.0:
            raise ConfigError(f'RandomCharNoise.char_prob must be in [0, 1], got {char_prob}')
        unknown = sorted(set(ops) - set(self.OPS))
        if unknown or not ops:
            raise ConfigError(f'RandomCharNoise.ops must be a non-empty subset of {self.OPS}, '
                              f'got {list(ops)}')
        self.char_prob = float(char_prob)
        self.ops = tuple(ops)

    def augment(self, text: str) -> str:
        chars: List[str] = list(text)
        out: List[str] = []
        i = 0
        while i < len(chars):
            c = chars[i]
            if not c.isalpha() or np.random.rand() >= self.char_prob:
                out.append(c)
                i += 1
                continue
            op = self.ops[np.random.randint(len(self.ops))]
            if op == 'insert':
                out.extend([c, c])
            elif op == 'substitute':
                letters = string.ascii_uppercase if c.isupper() else string.ascii_lowercase
                out.append(letters[np.random.randint(len(letters))])
            elif op == 'swap' and i + 1 < len(chars) and chars[i + 1].isalpha():
                out.extend([chars[i + 1], c])
                i += 1
            elif op == 'swap':
                out.append(c)
            # 'delete' appends nothing
            i += 1
        return ''.join(out)

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(char_prob={self.char_prob}, ops={self.ops}, '
                f'keys={self.keys}, prob={self.prob})')


__all__ = ['RandomCharNoise', 'RandomWordDropout', 'RandomWordSwap']
