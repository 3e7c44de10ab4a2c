"""VQA accuracy, computed exactly as the official VQAv2 evaluation computes it.

Reference: ``PythonEvaluationTools/vqaEvaluation/vqaEval.py`` of
https://github.com/GT-Vision-Lab/VQA, the script behind the VQAv2 evaluation
server. The answer-processing tables below (``contractions``, ``manualMap``,
``articles``, ``punct``, ``commaStrip``, ``periodStrip``) are the official
ones, quirks included, so that a number computed here is the number the
official script would report for the same predictions. Where this module
deliberately departs from the official code it says so next to the change.

Public names:

* :func:`normalize_answer`: the official answer processing
  (``processPunctuation`` then ``processDigitArticle``).
* :func:`vqa_accuracy`: the accuracy of one predicted answer against the
  annotators' answers (``min(1, #matches / 3)`` averaged leave-one-out).
* :func:`vqa_soft_scores`: the accuracy each distinct normalised annotator
  answer would get, i.e. the soft target for training a VQA classifier.
* :func:`build_answer_vocab`: a deterministic answer vocabulary.

Everything here is pure Python, so it can run in data pipelines and tools
that do not import torch.
"""
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from functools import lru_cache

__all__ = [
    'build_answer_vocab',
    'normalize_answer',
    'process_digit_article',
    'process_punctuation',
    'vqa_accuracy',
    'vqa_soft_scores',
]

# ---------------------------------------------------------------------------
# Official tables (vqaEval.py). Keep them byte-for-byte: answers are compared
# as strings after this processing, so any change shifts reported accuracy.
# ---------------------------------------------------------------------------

# Quirks kept on purpose: the keys with capital letters ("Id've", "Im",
# "Ive") can never match because words are lower-cased first, and
# "somebody'd" maps *to* "somebodyd", the reverse of every other entry.
_CONTRACTIONS: dict[str, str] = {
    "aint": "ain't", "arent": "aren't", "cant": "can't", "couldve": "could've",
    "couldnt": "couldn't", "couldn'tve": "couldn't've", "couldnt've": "couldn't've",
    "didnt": "didn't", "doesnt": "doesn't", "dont": "don't", "hadnt": "hadn't",
    "hadnt've": "hadn't've", "hadn'tve": "hadn't've", "hasnt": "hasn't",
    "havent": "haven't", "hed": "he'd", "hed've": "he'd've", "he'dve": "he'd've",
    "hes": "he's", "howd": "how'd", "howll": "how'll", "hows": "how's",
    "Id've": "I'd've", "I'dve": "I'd've", "Im": "I'm", "Ive": "I've", "isnt": "isn't",
    "itd": "it'd", "itd've": "it'd've", "it'dve": "it'd've", "itll": "it'll",
    "let's": "let's", "maam": "ma'am", "mightnt": "mightn't",
    "mightnt've": "mightn't've", "mightn'tve": "mightn't've", "mightve": "might've",
    "mustnt": "mustn't", "mustve": "must've", "neednt": "needn't", "notve": "not've",
    "oclock": "o'clock", "oughtnt": "oughtn't", "ow's'at": "'ow's'at",
    "'ows'at": "'ow's'at", "'ow'sat": "'ow's'at", "shant": "shan't",
    "shed've": "she'd've", "she'dve": "she'd've", "she's": "she's",
    "shouldve": "should've", "shouldnt": "shouldn't", "shouldnt've": "shouldn't've",
    "shouldn'tve": "shouldn't've", "somebody'd": "somebodyd",
    "somebodyd've": "somebody'd've", "somebody'dve": "somebody'd've",
    "somebodyll": "somebody'll", "somebodys": "somebody's", "someoned": "someone'd",
    "someoned've": "someone'd've", "someone'dve": "someone'd've",
    "someonell": "someone'll", "someones": "someone's", "somethingd": "something'd",
    "somethingd've": "something'd've", "something'dve": "something'd've",
    "somethingll": "something'll", "thats": "that's", "thered": "there'd",
    "thered've": "there'd've", "there'dve": "there'd've", "therere": "there're",
    "theres": "there's", "theyd": "they'd", "theyd've": "they'd've",
    "they'dve": "they'd've", "theyll": "they'll", "theyre": "they're",
    "theyve": "they've", "twas": "'twas", "wasnt": "wasn't", "wed've": "we'd've",
    "we'dve": "we'd've", "weve": "we've", "werent": "weren't", "whatll": "what'll",
    "whatre": "what're", "whats": "what's", "whatve": "what've", "whens": "when's",
    "whered": "where'd", "wheres": "where's", "whereve": "where've", "whod": "who'd",
    "whod've": "who'd've", "who'dve": "who'd've", "wholl": "who'll", "whos": "who's",
    "whove": "who've", "whyll": "why'll", "whyre": "why're", "whys": "why's",
    "wont": "won't", "wouldve": "would've", "wouldnt": "wouldn't",
    "wouldnt've": "wouldn't've", "wouldn'tve": "wouldn't've", "yall": "y'all",
    "yall'll": "y'all'll", "y'allll": "y'all'll", "yall'd've": "y'all'd've",
    "y'alld've": "y'all'd've", "y'all'dve": "y'all'd've", "youd": "you'd",
    "youd've": "you'd've", "you'dve": "you'd've", "youll": "you'll",
    "youre": "you're", "youve": "you've",
}

# Number words become digits. Note 'none' -> '0' (official).
_MANUAL_MAP: dict[str, str] = {
    'none': '0', 'zero': '0', 'one': '1', 'two': '2', 'three': '3', 'four': '4',
    'five': '5', 'six': '6', 'seven': '7', 'eight': '8', 'nine': '9', 'ten': '10',
}

_ARTICLES: tuple[str, ...] = ('a', 'an', 'the')

# Periods and apostrophes are not in this list: periods are handled by
# _PERIOD_STRIP, apostrophes survive so that contractions can be matched.
_PUNCT: tuple[str, ...] = (
    ';', '/', '[', ']', '"', '{', '}', '(', ')', '=', '+', '\\', '_', '-', '>', '<', '@',
    '`', ',', '?', '!'
)

# A comma between two digits ("1,000"); its presence anywhere in the answer
# switches every punctuation mark from "replace by a space" to "delete".
_COMMA_STRIP = re.compile(r'(\d)(\,)(\d)')

# The official pattern, typo included: "(?!<=\d)" was meant to be the
# look-behind "(?<!\d)" but is a negative look-ahead for the literal text
# "<=" followed by a digit, which can never match where a "." starts. The
# pattern therefore strips every period that is NOT followed by a digit:
# "yes." -> "yes", "mr. smith" -> "mr smith", but "3.5" and ".5" keep theirs.
# Kept as is so that numbers match the official script.
_PERIOD_STRIP = re.compile(r'(?!<=\d)(\.)(?!\d)')


def _clean_whitespace(text: str) -> str:
    """Newlines and tabs become spaces, then the ends are stripped.

    The official script does this to every answer (prediction and annotator
    answers) before anything else.
    """
    return text.replace('\n', ' ').replace('\t', ' ').strip()


def process_punctuation(text: str) -> str:
    """The official ``processPunctuation``.

    For each mark of the official ``punct`` list: if the mark appears next to
    a space anywhere in the answer, or the answer contains a digit-comma-digit
    group, every occurrence of the mark is deleted; otherwise every occurrence
    is replaced by a space ("red,blue" -> "red blue", "1,000" -> "1000").
    The decision is taken on the *input* text, as in the official code, not on
    the text already rewritten for the previous marks. Finally every period
    not followed by a digit is deleted (see ``_PERIOD_STRIP``).
    """
    out = text
    has_digit_comma = _COMMA_STRIP.search(text) is not None
    for mark in _PUNCT:
        if (mark + ' ' in text or ' ' + mark in text) or has_digit_comma:
            out = out.replace(mark, '')
        else:
            out = out.replace(mark, ' ')
    # Deliberate fix: the official code calls
    # ``periodStrip.sub("", outText, re.UNICODE)``, which passes re.UNICODE
    # (== 32) as the *count* argument, so at most 32 periods are stripped
    # (mmpretrain copied this). No count is passed here; the result is
    # identical for every answer with at most 32 periods to strip (so for any
    # answer with fewer than 32 periods). No flag is needed either: str
    # patterns are Unicode-aware by default in Python 3.
    return _PERIOD_STRIP.sub('', out)


def process_digit_article(text: str) -> str:
    """The official ``processDigitArticle``.

    Lower-cases, splits on whitespace, maps number words to digits, drops the
    articles "a", "an", "the", restores apostrophes of known contractions
    ("dont" -> "don't") and joins the words with single spaces.
    """
    words: list[str] = []
    for word in text.lower().split():
        # The official code uses ``manualMap.setdefault(word, word)``, which
        # also inserts ``word -> word`` into the table; the returned value is
        # the same as ``get(word, word)``, so the side effect is not copied.
        word = _MANUAL_MAP.get(word, word)
        if word not in _ARTICLES:
            words.append(word)
    return ' '.join(_CONTRACTIONS.get(word, word) for word in words)


@lru_cache(maxsize=1 << 16)
def _normalize_cached(answer: str) -> str:
    return process_digit_article(process_punctuation(_clean_whitespace(answer)))


def normalize_answer(answer: str) -> str:
    """Normalise an answer the way the official VQA evaluation does.

    Newlines and tabs become spaces and the ends are stripped (the official
    script does this before processing), then ``processPunctuation`` and
    ``processDigitArticle`` are applied. Examples: "Two" -> "2",
    "the dog" -> "dog", "dont" -> "don't", "yes." -> "yes", "1,000" -> "1000",
    "3.5" -> "3.5".

    Note that :func:`vqa_accuracy` does NOT always normalise: like the
    official script it compares raw answers when all annotators gave the same
    string.
    """
    if not isinstance(answer, str):
        raise TypeError(f'an answer must be a str, got {type(answer).__name__}: {answer!r}')
    # Datasets repeat the same few answers ("yes", "no", "2") millions of
    # times, so caching makes vocabulary building and soft targets cheap.
    return _normalize_cached(answer)


def _check_answers(gt_answers: Sequence[str]) -> list[str]:
    """Validate the annotator answers and return them whitespace-cleaned."""
    if isinstance(gt_answers, str):
        raise TypeError('gt_answers must be a list of answer strings, got a single str '
                        f'{gt_answers!r}; wrap it in a list')
    answers = list(gt_answers)
    if not answers:
        raise ValueError('gt_answers is empty: VQA accuracy needs at least one annotator '
                         'answer per question')
    for answer in answers:
        if not isinstance(answer, str):
            raise TypeError(f'every gt answer must be a str, got {type(answer).__name__}: '
                            f'{answer!r}')
    return [_clean_whitespace(answer) for answer in answers]


def _prepare_answers(gt_answers: Sequence[str]) -> tuple[list[str], bool]:
    """The annotator answers as the official script compares them.

    Returns the answers and whether predictions must be normalised before
    being compared with them. The official script normalises the annotator
    answers and the prediction ONLY if the (whitespace-cleaned) annotator
    answers are not all identical; with unanimous annotators it compares the
    raw strings. A single answer is the exception (see :func:`vqa_accuracy`).
    """
    answers = _check_answers(gt_answers)
    if len(answers) == 1 or len(set(answers)) > 1:
        return [normalize_answer(answer) for answer in answers], True
    return answers, False


def _leave_one_out(pred: str, answers: list[str]) -> float:
    """``min(1, #matches / 3)`` averaged over the leave-one-out subsets.

    ``pred`` and ``answers`` must already be processed alike. The loop and
    the summation order follow the official code so that results are
    bit-identical to it. The official code removes an annotator by comparing
    answer dicts, which in VQAv2 differ by ``answer_id``; leaving out by
    position is the same thing.
    """
    if len(answers) == 1:
        # The leave-one-out formula would leave no answer to match and always
        # give 0; exact match is the only meaningful score.
        return 1.0 if pred == answers[0] else 0.0
    accs = []
    for left_out in range(len(answers)):
        matches = sum(1 for i, answer in enumerate(answers)
                      if i != left_out and answer == pred)
        # min(1, ...) with the int 1, as the official code: it keeps ints in
        # the list, and since Python 3.12 sum() rounds int/float mixes
        # differently from all-float lists
        accs.append(min(1, matches / 3))
    return float(sum(accs)) / len(accs)


def vqa_accuracy(pred: str, gt_answers: Sequence[str]) -> float:
    """Accuracy in [0, 1] of one predicted answer, as the official VQA eval.

    Steps, as in the official ``VQAEval.evaluate``:

    1. newlines and tabs are replaced by spaces and the ends stripped, for
       the prediction and for every annotator answer;
    2. ONLY IF the annotator answers are not all identical, the official
       processing (:func:`normalize_answer`) is applied to them and to the
       prediction. With unanimous annotators the raw strings are compared, so
       10 x "Two" scores "Two" 1.0 but "2" and "two" 0.0 (an official quirk,
       kept; harmless on VQAv2, whose stored answers are already processed);
    3. for each annotator i, ``acc_i = min(1, m_i / 3)`` where ``m_i`` is the
       number of the OTHER annotators whose answer equals the prediction;
    4. the result is the mean of the ``acc_i``.

    With 10 annotators this gives 0, 0.3, 0.6, 0.9 and 1.0 for 0, 1, 2, 3 and
    4+ matching answers.

    Datasets with fewer than 10 answers per question:

    * ``n >= 2``: the same leave-one-out average over the ``n`` subsets of
      ``n - 1`` answers. With ``n < 4`` a subset holds fewer than 3 answers,
      so the maximum is below 1: 3 identical answers give 2/3 to a matching
      prediction, 2 give 1/3.
    * ``n == 1``: the official formula would always give 0 (the only subset
      is empty), so this function uses exact match after normalisation
      instead: 1.0 or 0.0.
    * ``n == 0``: ``ValueError``.

    Args:
        pred: The predicted answer.
        gt_answers: The raw answers of all annotators of the question.

    Returns:
        float: The accuracy, in [0, 1].
    """
    if not isinstance(pred, str):
        raise TypeError(f'the predicted answer must be a str, got {type(pred).__name__}: '
                        f'{pred!r}')
    answers, normalise = _prepare_answers(gt_answers)
    pred = normalize_answer(pred) if normalise else _clean_whitespace(pred)
    return _leave_one_out(pred, answers)


def vqa_soft_scores(gt_answers: Sequence[str]) -> dict[str, float]:
    """Soft training targets: the accuracy each distinct answer would get.

    Keys are the distinct NORMALISED annotator answers (always normalised,
    because a VQA head predicts normalised vocabulary strings), in order of
    first appearance; each value is exactly ``vqa_accuracy(key, gt_answers)``.
    An answer outside the keys would score 0.

    Beware of the official unanimous-annotators quirk (see
    :func:`vqa_accuracy`): if all annotators gave the same raw string and
    normalising it changes it, e.g. 10 x "Two", the only key "2" scores 0.0,
    because the official metric would give 0 to a prediction of "2". Feed
    already-normalised answers (as VQAv2's are) to avoid such empty targets.

    Args:
        gt_answers: The raw answers of all annotators of the question.

    Returns:
        dict[str, float]: ``{normalised answer: accuracy in [0, 1]}``.
    """
    answers, normalise = _prepare_answers(gt_answers)
    keys = dict.fromkeys(normalize_answer(answer) for answer in answers)
    scores = {}
    for key in keys:
        # Same path as vqa_accuracy(key, gt_answers); normalising a key again
        # is a no-op (the processing is idempotent), cleaning it too.
        pred = normalize_answer(key) if normalise else _clean_whitespace(key)
        scores[key] = _leave_one_out(pred, answers)
    return scores


def build_answer_vocab(answer_lists: Iterable[Sequence[str]],
                       min_count: int = 1,
                       max_size: int | None = None) -> list[str]:
    """Build the answer vocabulary of a VQA classifier.

    Every annotator answer of every question is normalised with
    :func:`normalize_answer` and counted. Answers counted at least
    ``min_count`` times are kept, sorted by decreasing count and then
    alphabetically (so the order, hence the class indices, are deterministic),
    and the list is cut to ``max_size`` entries. An answer that normalises to
    the empty string (e.g. "the") is never a class.

    Args:
        answer_lists: One list of annotator answers per question.
        min_count: Minimum number of occurrences to keep an answer.
        max_size: Maximum vocabulary size; ``None`` for no limit.

    Returns:
        list[str]: The vocabulary, most frequent answer first.
    """
    if min_count < 1:
        raise ValueError(f'min_count must be >= 1, got {min_count}')
    if max_size is not None and max_size < 0:
        raise ValueError(f'max_size must be >= 0 or None, got {max_size}')
    counts: Counter = Counter()
    for answers in answer_lists:
        if isinstance(answers, str):
            raise TypeError('answer_lists must hold one LIST of answers per question, got '
                            f'the str {answers!r}')
        counts.update(normalize_answer(answer) for answer in answers)
    counts.pop('', None)
    vocab = sorted((answer for answer, count in counts.items() if count >= min_count),
                   key=lambda answer: (-counts[answer], answer))
    return vocab if max_size is None else vocab[:max_size]
