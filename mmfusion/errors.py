"""The errors mmfusion raises for bad input, in one place.

Every user-facing failure (a bad config, a bad data file, an unsafe
checkpoint, a diverging loss) is one of these types, and its message names
the file, sample, field or config key involved and what was expected.
``tools/train.py`` and ``tools/test.py`` print such an error as one message
without a traceback (set ``MMFUSION_TRACEBACK=1`` to see it); anything else
is a bug and keeps its traceback. ``docs/reliability.md`` lists each case
with the message a user sees.

Each type also derives from the built-in exception that code written
against plain Python would catch (``ValueError``, ``FileNotFoundError``,
``pickle.UnpicklingError``, ``FloatingPointError``).
"""
import pickle


class MMFusionError(Exception):
    """Base of every documented mmfusion error."""


class ConfigError(MMFusionError, ValueError):
    """A config names an unknown component or argument, or its parts disagree
    (e.g. an encoder's output size and the fusion module's input size)."""


class DataError(MMFusionError, ValueError):
    """A data file or annotation record is unusable. The corrupt-sample
    policy (``on_bad_sample``) of mmfusion's datasets skips exactly these."""


class AnnotationError(DataError):
    """An annotation file is not valid JSON/CSV, misses a key, has a value of
    the wrong type, references a missing file or unknown class, or holds no
    samples."""


class AnnotationFileNotFoundError(AnnotationError, FileNotFoundError):
    """An annotation, question or classes file does not exist."""


class ImageLoadError(DataError):
    """An image file is empty, truncated or not an image."""


class ImageFileNotFoundError(ImageLoadError, FileNotFoundError):
    """An image file does not exist."""


class AudioLoadError(DataError):
    """An audio file is empty, truncated or not a readable audio file."""


class AudioFileNotFoundError(AudioLoadError, FileNotFoundError):
    """An audio file does not exist."""


class CheckpointError(MMFusionError, ValueError):
    """A checkpoint file is missing, truncated, not a PyTorch checkpoint, does
    not fit the model, or could not be written."""


class CheckpointMismatchError(CheckpointError):
    """A checkpoint's keys or tensor shapes do not match the model it is
    loaded into (a checkpoint of another model or config). The message names
    the checkpoint, the config and a table of the missing, unexpected and
    shape-mismatched keys."""


class CheckpointWriteError(CheckpointError, OSError):
    """A checkpoint (or ``last_checkpoint``) could not be written: the disk
    is full, a quota or file-size limit was reached. The previous files are
    unchanged; ``errno`` is that of the failed write."""


class UnsafeCheckpointError(CheckpointError, pickle.UnpicklingError):
    """A checkpoint holds objects outside the allow-list of plain checkpoint
    types; loading it could run code from the file, so it is refused."""


class NonFiniteLossError(MMFusionError, FloatingPointError):
    """A loss term became NaN or infinite during training."""


class LostRankError(MMFusionError, RuntimeError):
    """A distributed collective failed because another rank died or hung."""


class LauncherError(MMFusionError, RuntimeError):
    """A distributed launcher is unknown, or the environment it needs (the
    variables torchrun, srun or mpirun set) is missing."""


__all__ = ['AnnotationError', 'AnnotationFileNotFoundError', 'AudioFileNotFoundError',
           'AudioLoadError', 'CheckpointError', 'CheckpointMismatchError',
           'CheckpointWriteError', 'ConfigError', 'DataError',
           'ImageFileNotFoundError', 'ImageLoadError', 'LauncherError', 'LostRankError',
           'MMFusionError',
           'NonFiniteLossError', 'UnsafeCheckpointError']
