"""Run every documented bad-input case and print the error a user sees, as a table.

    python tools/misc/bad_input_examples.py > /tmp/table.md

Each case builds a small broken input in a temporary folder (shown as
``data/`` in the messages) and feeds it to the real component: a dataset and
its pipeline, a config through the checks ``tools/train.py`` runs, a
checkpoint through mmfusion's loader (and one of another model into a
model), a checkpoint write under a file-size limit, a training step. Free
disk space, which changes from run to run, is shown as ``X GiB``. The table in
``docs/reliability.md`` is this script's output, and
``tests/test_tools/test_bad_input_examples.py`` checks that it still is.
"""
import io
import json
import os.path as osp
import re
import subprocess
import sys
import tempfile
import wave
from typing import Callable, List, NamedTuple, Tuple

import cv2
import numpy as np
import torch

import mmfusion  # noqa: F401
from mmfusion.utils import register_all_modules

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


class Case(NamedTuple):
    """A bad input: what it is, what triggers it, and what the message must name."""
    group: str
    what: str
    trigger: Callable[[str], None]  # given the temporary folder, raises the error
    names: List[str]  # strings the message must contain (after path shortening)


# ---------------------------------------------------------------------------
# Building inputs


def write_png(path: str, size: int = 16) -> None:
    cv2.imwrite(path, np.full((size, size, 3), 127, np.uint8))


def write_wav(path: str, seconds: float = 0.1, rate: int = 16000) -> None:
    samples = (np.sin(np.arange(int(seconds * rate)) / 5) * 3000).astype(np.int16)
    with wave.open(path, 'wb') as f:
        f.setnchannels(1)
        f.setsampwidth(2)
        f.setframerate(rate)
        f.writeframes(samples.tobytes())


def write_jsonl(path: str, rows: list) -> None:
    with open(path, 'w', encoding='utf-8') as f:
        for row in rows:
            f.write((row if isinstance(row, str) else json.dumps(row)) + '\n')


def good_files(root: str) -> None:
    write_png(osp.join(root, 'ok.png'))
    write_wav(osp.join(root, 'ok.wav'))


def load_cls(root: str, rows: list, pipeline: tuple = (), **kwargs):
    """A ``ListClsDataset`` over ``rows``; fetches every sample."""
    from mmfusion.datasets import ListClsDataset

    good_files(root)
    write_jsonl(osp.join(root, 'train.jsonl'), rows)
    dataset = ListClsDataset(ann_file='train.jsonl', data_root=root, classes=['cat', 'dog'],
                             pipeline=list(pipeline), **kwargs)
    for i in range(len(dataset)):
        dataset[i]


IMAGE_PIPELINE = (dict(type='LoadImageFromFile'),)
AUDIO_PIPELINE = (dict(type='LoadAudioFromFile'),)


def bad_image(content: Callable[[str], bytes]) -> Callable[[str], None]:
    def trigger(root: str) -> None:
        path = osp.join(root, 'bad.png')
        good_files(root)
        with open(path, 'wb') as f:
            f.write(content(root))
        load_cls(root, [{'img_path': 'ok.png', 'label': 0}, {'img_path': 'bad.png', 'label': 1}],
                 IMAGE_PIPELINE)
    return trigger


def bad_audio(content: Callable[[str], bytes]) -> Callable[[str], None]:
    def trigger(root: str) -> None:
        path = osp.join(root, 'bad.wav')
        good_files(root)
        with open(path, 'wb') as f:
            f.write(content(root))
        load_cls(root, [{'audio_path': 'ok.wav', 'label': 0},
                        {'audio_path': 'bad.wav', 'label': 1}], AUDIO_PIPELINE)
    return trigger


def half_of(name: str) -> Callable[[str], bytes]:
    def content(root: str) -> bytes:
        data = open(osp.join(root, name), 'rb').read()
        return data[:len(data) // 2]
    return content


def missing_image_at_load(root: str) -> None:
    load_cls(root, [{'img_path': 'ok.png', 'label': 0}, {'img_path': 'gone.png', 'label': 1}],
             IMAGE_PIPELINE, check_files=False)


def vqa_without_answers(root: str) -> None:
    from mmfusion.datasets import VQAv2Dataset

    good_files(root)
    with open(osp.join(root, 'questions.json'), 'w') as f:
        json.dump({'questions': [{'image_id': 1, 'question': 'what colour?',
                                  'question_id': 10}]}, f)
    with open(osp.join(root, 'annotations.json'), 'w') as f:
        json.dump({'annotations': [{'question_id': 10, 'answer_type': 'other'}]}, f)
    VQAv2Dataset(question_file='questions.json', ann_file='annotations.json', data_root=root,
                 img_file_template='ok.png', pipeline=[])


# ---------------------------------------------------------------------------
# Configs: the checks tools/train.py runs, on configs/classification/mmshapes_av.py


def config_case(options: dict) -> Callable[[str], None]:
    def trigger(root: str) -> None:
        from mmengine.config import Config

        from mmfusion.registry import MODELS
        from mmfusion.utils import check_modalities, explain_config_errors

        cfg = Config.fromfile(osp.join(REPO_ROOT, 'configs/classification/mmshapes_av.py'))
        cfg.merge_from_dict(options)
        check_modalities(cfg, ('train_dataloader', 'val_dataloader'))
        with explain_config_errors(cfg):
            MODELS.build(cfg.model)
    return trigger


PACK_IMAGE_ONLY = {'train_dataloader.dataset.pipeline.6.inputs': dict(_delete_=True, image='img')}


# ---------------------------------------------------------------------------
# Checkpoints and training


class CreatesAFile:
    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (open, (self.path, 'w'))


def load_ckpt(obj_or_bytes) -> Callable[[str], None]:
    def trigger(root: str) -> None:
        from mmfusion.engine import load_checkpoint_file

        path = osp.join(root, 'epoch_1.pth')
        data = obj_or_bytes(root)
        if isinstance(data, bytes):
            open(path, 'wb').write(data)
        else:
            torch.save(data, path)
        load_checkpoint_file(path)
    return trigger


def legacy_checkpoint(root: str) -> dict:
    from mmengine.logging import HistoryBuffer
    return {'state_dict': {'w': torch.zeros(2)},
            'message_hub': {'log_scalars': {'train/loss': HistoryBuffer([1.0], [1])}}}


def truncated_checkpoint(root: str) -> bytes:
    buf = io.BytesIO()
    torch.save({'state_dict': {'w': torch.arange(100.0)}}, buf)
    return buf.getvalue()[:400]


def checkpoint_of_another_model(root: str) -> None:
    """The audio-only classifier's weights loaded where the weights must be the
    checkpoint's (tools/test.py, tools/infer.py) into the audio-visual model."""
    from mmengine.config import Config

    from mmfusion.engine.checkpoint_fit import load_checkpoint_strict
    from mmfusion.registry import MODELS

    other = 'configs/classification/mmshapes_av_audio_only.py'
    model = MODELS.build(Config.fromfile(osp.join(REPO_ROOT, other)).model)
    path = osp.join(root, 'epoch_1.pth')
    torch.save({'state_dict': model.state_dict(), 'meta': {'config_file': other}}, path)
    config = 'configs/classification/mmshapes_av.py'
    load_checkpoint_strict(MODELS.build(Config.fromfile(osp.join(REPO_ROOT, config)).model),
                           path, config=config)


# Writes 64 KiB with mmfusion's atomic checkpoint writer in a process that may
# write files of at most 4 KiB (as `ulimit -f 4` would; a full disk fails the
# same write), and prints the error it raised.
WRITE_UNDER_A_SIZE_LIMIT = '''
import json, resource, signal, sys
from mmfusion.engine.checkpoint import atomic_write
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a failed write, not a killed process
resource.setrlimit(resource.RLIMIT_FSIZE, (4096, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
try:
    atomic_write(sys.argv[1], bytes(65536))
except Exception as e:
    print(json.dumps([type(e).__name__, str(e), getattr(e, 'errno', None)]))
'''


def checkpoint_write_without_space(root: str) -> None:
    """Re-raises, with its type and message, the error that writing a checkpoint
    raised in a process under a file-size limit (the limit stays in that process)."""
    import mmfusion.errors

    path = osp.join(root, 'epoch_2.pth')
    proc = subprocess.run([sys.executable, '-c', WRITE_UNDER_A_SIZE_LIMIT, path],
                          capture_output=True, text=True, cwd=REPO_ROOT, timeout=120)
    if not proc.stdout.strip():
        raise AssertionError(f'the write did not fail: {proc.stderr[-2000:]}')
    name, message, errno = json.loads(proc.stdout)
    if osp.exists(path):
        raise AssertionError(f'{path} was written in part')
    error = getattr(mmfusion.errors, name, RuntimeError)(message)
    error.errno = errno
    raise error


def nan_loss(root: str) -> None:
    from mmengine.logging import MessageHub
    from mmengine.optim import OptimWrapper

    from mmfusion.registry import MODELS
    from mmfusion.structures import MultiModalDataSample

    model = MODELS.build(dict(
        type='MultiModalClassifier',
        encoders=dict(vector=dict(type='MLPEncoder', in_dim=4, hidden_dims=(8,), out_dim=8)),
        fusion=dict(type='ConcatFusion', out_dim=8), head=dict(type='ClsHead', num_classes=2)))
    wrapper = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.1))
    MessageHub.get_current_instance().update_info('iter', 1233)
    samples = [MultiModalDataSample() for _ in range(2)]
    for i, s in enumerate(samples):
        s.gt_label = i
    vectors = torch.ones(2, 4)
    vectors[0, 0] = float('inf')
    model.train_step(dict(inputs=dict(vector=list(vectors)), data_samples=samples), wrapper)


CASES = [
    # group, what, trigger, names the message must contain
    Case('image', 'a missing image file (found when the annotations load)',
         lambda root: load_cls(root, [{'img_path': 'gone.png', 'label': 0}]),
         ['data/train.jsonl', 'img_path', 'data/gone.png']),
    Case('image', 'a missing image file (`check_files=False`: found when the sample loads)',
         missing_image_at_load, ['sample 1', 'data/gone.png']),
    Case('image', 'an empty image file', bad_image(lambda root: b''),
         ['sample 1', 'data/bad.png']),
    Case('image', 'a truncated PNG', bad_image(half_of('ok.png')), ['sample 1', 'data/bad.png']),
    Case('image', 'a text file named `.png`', bad_image(lambda root: b'hello, world\n'),
         ['sample 1', 'data/bad.png']),
    Case('audio', 'a truncated WAV', bad_audio(half_of('ok.wav')), ['sample 1', 'data/bad.wav']),
    Case('audio', 'a text file named `.wav`', bad_audio(lambda root: b'hello, world\n' * 10),
         ['sample 1', 'data/bad.wav']),
    Case('annotations', 'a line that is not JSON',
         lambda root: load_cls(root, [{'img_path': 'ok.png', 'label': 0}, '{"img_path": ']),
         ['data/train.jsonl', 'line 2']),
    Case('annotations', 'a missing required key',
         lambda root: load_cls(root, [{'img_path': 'ok.png'}]),
         ['data/train.jsonl', 'label']),
    Case('annotations', 'a value of the wrong type',
         lambda root: load_cls(root, [{'img_path': 'ok.png', 'text': 42, 'label': 0}]),
         ['data/train.jsonl', 'text', '42']),
    Case('annotations', 'an unknown class',
         lambda root: load_cls(root, [{'img_path': 'ok.png', 'label': 'cow'}]),
         ['data/train.jsonl', "'cow'", "'cat'"]),
    Case('annotations', 'an empty split', lambda root: load_cls(root, []),
         ['data/train.jsonl']),
    Case('annotations', 'a VQA annotation without `answers`', vqa_without_answers,
         ['data/annotations.json', 'answers']),
    Case('config', 'an unknown component type',
         config_case({'model.fusion.type': 'MLBFuson'}), ['model.fusion.type', "'MLBFusion'"]),
    Case('config', 'a misspelled argument',
         config_case({'model.fusion.out_dimm': 64}), ['model.fusion.out_dimm', "'out_dim'"]),
    Case('config', 'a modality the model encodes but the pipeline does not pack',
         config_case(PACK_IMAGE_ONLY), ['model.encoders', 'audio']),
    Case('config', 'a modality the pipeline packs but the model does not encode',
         config_case({'model.encoders.audio': None}), ['model.encoders', 'audio']),
    Case('config', 'encoder output and fusion input sizes disagree',
         config_case({'model.fusion.in_dims': dict(image=256, audio=64)}),
         ['model.fusion.in_dims', 'audio', '128']),
    Case('checkpoint', 'a checkpoint whose unpickling would run code',
         load_ckpt(lambda root: {'meta': CreatesAFile(osp.join(root, 'pwned'))}),
         ['data/epoch_1.pth', 'open', 'convert_checkpoint.py']),
    Case('checkpoint', 'an MMEngine checkpoint (pickled `HistoryBuffer`)',
         load_ckpt(legacy_checkpoint), ['HistoryBuffer', '--trusted']),
    Case('checkpoint', 'a truncated checkpoint', load_ckpt(truncated_checkpoint),
         ['data/epoch_1.pth']),
    Case('checkpoint', 'a checkpoint of another model (weights that must be the checkpoint\'s)',
         checkpoint_of_another_model,
         ['data/epoch_1.pth', 'configs/classification/mmshapes_av.py',
          'configs/classification/mmshapes_av_audio_only.py', 'missing from the checkpoint']),
    Case('checkpoint', 'a checkpoint write that runs out of space (a file-size limit)',
         checkpoint_write_without_space,
         ['data/epoch_2.pth', 'File too large', 'unchanged', '--resume']),
    Case('training', 'a loss that becomes infinite or NaN', nan_loss, ['iteration 1234']),
]


FREE_SPACE = re.compile(r'\d+(?:\.\d+)? (?:bytes|KiB|MiB|GiB|TiB) (free on its disk)')


def run_case(case: Case) -> Tuple[type, str]:
    """The type of the error ``case`` raises and its message, with the
    temporary folder shown as ``data``."""
    with tempfile.TemporaryDirectory() as root:
        try:
            case.trigger(root)
        except Exception as e:  # any type: the caller checks which
            message = str(e).replace(root, 'data')
            return type(e), FREE_SPACE.sub(r'X GiB \1', message)
    raise AssertionError(f'{case.what}: no error was raised')


def markdown(rows: List[tuple]) -> str:
    lines = ['| Bad input | Error | Message |', '|---|---|---|']
    for case, (error_type, message) in rows:
        first, *table = message.split('\n')
        message = (first + (f' (then a {len(table)}-line table)' if table else '')).replace(
            '|', '\\|')
        lines.append(f'| {case.group}: {case.what} | `{error_type.__name__}` | {message} |')
    return '\n'.join(lines)


def collect() -> List[tuple]:
    """(case, (error type, message)) for every case, in order."""
    register_all_modules()
    return [(case, run_case(case)) for case in CASES]


def main() -> None:
    import logging

    logging.getLogger('mmengine').setLevel(logging.ERROR)  # warnings of the skipped cases
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)  # truncated-PNG notes
    sys.stdout.write(markdown(collect()) + '\n')


if __name__ == '__main__':
    main()
